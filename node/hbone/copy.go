package hbone

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
)

// Copy buffer sizes: a chatty connection reads into a small buffer; one
// whose reads fill the buffer (bulk transfer) moves up to a large one, and
// back down when reads get small again. Fixed 256 KiB buffers cost 1 MiB
// per proxied connection across both ends and made garbage collection a
// third of the proxy's CPU on short connections.
const (
	smallBuffer = 4 << 10
	largeBuffer = 256 << 10
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuffer); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, largeBuffer); return &b }}
)

// buffers is a Copy's current buffer, taken from a pool only while it is
// needed.
type buffers struct {
	cur   *[]byte
	large bool
}

func (b *buffers) get() []byte {
	if b.cur == nil {
		if b.large {
			b.cur = largePool.Get().(*[]byte)
		} else {
			b.cur = smallPool.Get().(*[]byte)
		}
	}
	return *b.cur
}

func (b *buffers) release() {
	if b.cur == nil {
		return
	}
	if b.large {
		largePool.Put(b.cur)
	} else {
		smallPool.Put(b.cur)
	}
	b.cur = nil
}

func (b *buffers) size(large bool) {
	if large != b.large {
		b.release()
		b.large = large
	}
}

// Copy copies src to dst until EOF or an error, like io.Copy, with the
// adaptive buffer above. It returns the bytes written; EOF is not an error.
//
// An idle connection holds no buffer: after a read that did not fill the
// buffer, Copy returns it to its pool and waits for more without one. From
// a socket (a syscall.Conn) it reads without blocking and lets the
// runtime's poller wait; from another reader, such as an HTTP/2 body, it
// waits in a zero-length Read, which Go's HTTP/2 body pipes block in until
// data or an error arrives (a reader that returns at once only costs a
// call: the buffered Read after it blocks as usual). Most open connections
// are idle, and their copy buffers were 16 KiB of the 55 KiB heap per
// connection in TestAmbientScale.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	var bufs buffers
	defer bufs.release()
	read := reader(src, &bufs)
	var total int64
	for {
		p, n, rerr := read()
		if n > 0 {
			w, werr := dst.Write(p[:n])
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
		case n == len(p) && !bufs.large:
			bufs.size(true)
		case n < smallBuffer/2 && bufs.large:
			bufs.size(false)
		case n < len(p):
			bufs.release() // drained: wait for more without a buffer
		}
	}
}

// reader returns a function that reads src into bufs' buffer.
func reader(src io.Reader, bufs *buffers) func() ([]byte, int, error) {
	if sc, ok := src.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			return func() ([]byte, int, error) { return readRaw(rc, bufs) }
		}
	}
	return func() ([]byte, int, error) {
		if bufs.cur == nil {
			if _, err := src.Read(nil); err != nil {
				return nil, 0, err
			}
		}
		p := bufs.get()
		n, err := src.Read(p)
		return p, n, err
	}
}

// readRaw reads the socket without blocking; when it would block, the
// buffer goes back to its pool while the runtime's poller waits for the
// socket to become readable (as net.Conn.Read waits, minus the buffer).
func readRaw(rc syscall.RawConn, bufs *buffers) ([]byte, int, error) {
	var p []byte
	var n int
	var err error
	cerr := rc.Read(func(fd uintptr) bool {
		p = bufs.get()
		for {
			n, err = syscall.Read(int(fd), p)
			if !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		if errors.Is(err, syscall.EAGAIN) {
			bufs.release()
			return false
		}
		return true
	})
	switch {
	case cerr != nil:
		return p, 0, cerr
	case err != nil:
		return p, 0, os.NewSyscallError("read", err)
	case n == 0:
		return p, 0, io.EOF
	}
	return p, n, nil
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
