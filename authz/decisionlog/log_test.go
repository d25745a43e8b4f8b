package decisionlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func TestMasksSensitiveHeaders(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Config{Writer: &buf, Headers: []string{"authorization", "x-tenant"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{DecisionID: "d1", Headers: l.HeaderFilter(map[string]string{"authorization": "Bearer secret", "x-tenant": "acme", "cookie": "c"})}
	if !l.Log(e) {
		t.Fatal("entry not written")
	}
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("token leaked into the log: %s", buf.String())
	}
	var got Entry
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Headers["x-tenant"] != "acme" || !strings.HasPrefix(got.Headers["authorization"], "sha256:") || got.Headers["cookie"] != "" {
		t.Errorf("headers = %v", got.Headers)
	}
}

func TestRateLimitRefillsWithClock(t *testing.T) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l, err := New(Config{Writer: &buf, Rate: 2, Burst: 2, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	written := 0
	for i := 0; i < 5; i++ {
		if l.Log(&Entry{DecisionID: "x"}) {
			written++
		}
	}
	if written != 2 || l.Dropped() != 3 {
		t.Fatalf("written %d dropped %d, want 2 and 3", written, l.Dropped())
	}
	clk.t = clk.t.Add(time.Second)
	if !l.Log(&Entry{DecisionID: "y"}) {
		t.Error("bucket did not refill after a second")
	}
}

func TestRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions.log")
	l, err := New(Config{Path: path, MaxBytes: 300, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		l.Log(&Entry{DecisionID: strings.Repeat("a", 50)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Size() > 300 {
			t.Errorf("%s is %d bytes, over the 300 byte bound", name, st.Size())
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600 (decisions are not for every local user)", name, st.Mode().Perm())
		}
		f, _ := os.Open(name)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("%s: bad line %q: %v", name, sc.Text(), err)
			}
		}
		f.Close()
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("more files kept than MaxFiles")
	}
}

// blockingWriter holds every Write until release is closed, telling
// started when the first one begins.
type blockingWriter struct {
	started chan struct{}
	release chan struct{}
	once    bool
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if !w.once {
		w.once = true
		close(w.started)
	}
	<-w.release
	return w.buf.Write(p)
}

// TestQueueWritesOffTheCallersPath: with a Queue, Log returns while the
// writer is stuck, a full queue drops (and counts) entries, and Close
// writes what was queued, in order.
func TestQueueWritesOffTheCallersPath(t *testing.T) {
	w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	l, err := New(Config{Writer: w, Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Log(&Entry{DecisionID: "a"}) {
		t.Fatal("first entry not taken")
	}
	<-w.started // the writer holds "a"; the queue is empty
	for _, id := range []string{"b", "c"} {
		if !l.Log(&Entry{DecisionID: id}) {
			t.Fatalf("entry %s not queued", id)
		}
	}
	if l.Log(&Entry{DecisionID: "d"}) {
		t.Fatal("entry d taken although the queue is full")
	}
	if got := l.Dropped(); got != 1 {
		t.Errorf("dropped %d, want 1", got)
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Log(&Entry{DecisionID: "e"}) {
		t.Error("entry taken after Close")
	}
	var ids []string
	sc := bufio.NewScanner(&w.buf)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.DecisionID)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Errorf("written %v, want a,b,c", ids)
	}
}
