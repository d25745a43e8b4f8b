package hbone

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
)

// burstyReader alternates large and tiny reads, so Copy grows and
// shrinks its buffer several times.
type burstyReader struct {
	r io.Reader
	i int
}

func (b *burstyReader) Read(p []byte) (int, error) {
	b.i++
	if b.i%3 == 0 && len(p) > 10 {
		p = p[:10]
	}
	return b.r.Read(p)
}

func TestCopy(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	for name, src := range map[string]func() io.Reader{
		"bulk":     func() io.Reader { return bytes.NewReader(data) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:100<<10])) },
		"bursty":   func() io.Reader { return &burstyReader{r: bytes.NewReader(data)} },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := Copy(&out, src())
			if err != nil || n != int64(out.Len()) || !bytes.Equal(out.Bytes(), data[:out.Len()]) || (name != "one byte" && out.Len() != len(data)) {
				t.Fatalf("copied %d (%v), output %d bytes, equal prefix %v", n, err, out.Len(), bytes.Equal(out.Bytes(), data[:out.Len()]))
			}
		})
	}
	boom := errors.New("boom")
	if _, err := Copy(io.Discard, iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("read error = %v, want boom", err)
	}
	if _, err := Copy(shortWriter{}, bytes.NewReader(data)); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("short write: %v, want io.ErrShortWrite", err)
	}
}

// TestCopySocket: from a socket Copy reads without blocking and waits
// for readability between messages holding no buffer; the data, its
// order and EOF come through, in bursts of every size with the sender
// waiting for each to arrive (so Copy idles between them), and a Close
// while Copy waits ends it with an error.
func TestCopySocket(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := make([]byte, 3<<20)
	rand.Read(data)
	got := make(chan []byte, 64)
	done := make(chan error, 1)
	go func() {
		_, err := Copy(chanWriter(got), b)
		close(got)
		done <- err
	}()
	var out []byte
	for off, size := 0, 1; off < len(data); off, size = off+size, size*3 {
		msg := data[off:min(off+size, len(data))]
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		for len(out) < off+len(msg) { // wait for the burst: Copy idles again
			out = append(out, <-got...)
		}
	}
	a.(*net.TCPConn).CloseWrite()
	for p := range got {
		out = append(out, p...)
	}
	if err := <-done; err != nil || !bytes.Equal(out, data) {
		t.Fatalf("copied %d of %d bytes (equal %v), %v", len(out), len(data), bytes.Equal(out, data), err)
	}

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, err := Copy(io.Discard, s); done <- err }()
	c.Write([]byte("x")) // Copy has read once and waits again
	s.Close()
	if err := <-done; err == nil {
		t.Error("Copy from a socket closed while it waited returned nil, want an error")
	}
}

// chanWriter hands a copy of every write to a channel.
type chanWriter chan []byte

func (c chanWriter) Write(p []byte) (int, error) {
	c <- bytes.Clone(p)
	return len(p), nil
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) - 1, nil }
