package als

import (
	"strings"
	"testing"
)

func TestReadRecords(t *testing.T) {
	good := `{"time":"2026-11-20T10:00:00Z","reporter":"r","side":"server","protocol":"http","mtls":true,"denied":false}`
	rs, err := ReadRecords(strings.NewReader(good + "\n\n" + good + "\n" + `{"time":"2026-11-`))
	if err != nil || len(rs) != 2 || rs[0].Reporter != "r" || !rs[1].MTLS {
		t.Fatalf("torn last line: %v %+v", err, rs)
	}
	if _, err := ReadRecords(strings.NewReader(good + "\nnot json\n" + good + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad middle line: %v", err)
	}
}
