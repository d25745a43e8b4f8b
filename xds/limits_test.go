package xds

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestClipKeepsRunesAndLength(t *testing.T) {
	s := NewServer(Config{})
	long := strings.Repeat("é", 200) // 400 bytes
	got := s.clip(long)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "…(400 bytes)") || len(got) > MaxLogString+len("…(400 bytes)") {
		t.Fatalf("clip = %q", got)
	}
	if s.clip("short") != "short" {
		t.Fatal("short strings must be kept as they are")
	}
}

func TestLogLimiter(t *testing.T) {
	l := logLimiter{burst: 2, interval: time.Second}
	t0 := time.Unix(100, 0)
	for i, want := range []bool{true, true, false, false} {
		if ok, _ := l.allow(t0); ok != want {
			t.Fatalf("line %d: allow %v, want %v", i, ok, want)
		}
	}
	if ok, dropped := l.allow(t0.Add(time.Second)); !ok || dropped != 2 {
		t.Fatalf("next interval: allow %v dropped %d, want true 2", ok, dropped)
	}
}
