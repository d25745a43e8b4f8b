package hbone

import (
	"io"
	"sync"
)

// Copy buffer sizes: an idle or chatty connection holds a small buffer;
// one whose reads fill the buffer (bulk transfer) moves up to large ones
// from a pool, and back down when reads get small again. Fixed 256 KiB
// buffers cost 1 MiB per proxied connection across both ends and made
// garbage collection a third of the proxy's CPU on short connections.
const (
	smallBuffer = 4 << 10
	largeBuffer = 256 << 10
)

var largePool = sync.Pool{New: func() any { b := make([]byte, largeBuffer); return &b }}

// Copy copies src to dst until EOF or an error, like io.Copy, with the
// adaptive buffer above. It returns the bytes written; EOF is not an error.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	small := make([]byte, smallBuffer)
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			largePool.Put(large)
		}
	}()
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w != n {
				return total, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
		switch {
		case n == len(buf) && large == nil:
			large = largePool.Get().(*[]byte)
			buf = *large
		case n < smallBuffer/2 && large != nil:
			largePool.Put(large)
			large, buf = nil, small
		}
	}
}

// writeChunks writes p to w in pieces of at most size bytes, calling
// flush (when set) after each: every piece becomes one HTTP/2 DATA frame
// whose header and payload fill whole TLS records (see frameHeader).
func writeChunks(w io.Writer, p []byte, size int, flush func() error) (int, error) {
	var total int
	for len(p) > 0 {
		n, err := w.Write(p[:min(len(p), size)])
		total += n
		if err == nil && flush != nil {
			err = flush()
		}
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}
