package hbone

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
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

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) - 1, nil }
