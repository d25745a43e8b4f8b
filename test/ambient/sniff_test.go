package ambient

import (
	"bytes"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// sniffer records every frame crossing the fabric namespace (all veth
// ends and the bridge) with an AF_PACKET socket: a packet capture without
// tcpdump.
type sniffer struct {
	fd   int
	stop atomic.Bool
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func (c *cluster) sniff(t testing.TB) *sniffer {
	t.Helper()
	s := &sniffer{done: make(chan struct{})}
	opened := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is retired
		f, err := os.Open("/var/run/netns/" + c.fabric)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		if err == nil {
			s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0x0300) // htons(ETH_P_ALL)
		}
		if err == nil {
			tv := unix.Timeval{Usec: 50_000} // bounded reads so stop is seen
			err = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		}
		opened <- err
		if err != nil {
			close(s.done)
			return
		}
		defer close(s.done)
		defer unix.Close(s.fd)
		frame := make([]byte, 1<<16)
		for !s.stop.Load() {
			n, _, err := unix.Recvfrom(s.fd, frame, 0)
			if err == nil && n > 0 {
				s.mu.Lock()
				s.buf.Write(frame[:n])
				s.mu.Unlock()
			}
		}
		// Frames queued when stop was asked for are part of the capture:
		// drain the socket without waiting.
		for {
			n, _, err := unix.Recvfrom(s.fd, frame, unix.MSG_DONTWAIT)
			if err != nil || n <= 0 {
				break
			}
			s.mu.Lock()
			s.buf.Write(frame[:n])
			s.mu.Unlock()
		}
	}()
	if err := <-opened; err != nil {
		t.Skipf("packet capture unavailable: %v", err)
	}
	return s
}

// captured stops the capture and returns every frame's bytes.
func (s *sniffer) captured() []byte {
	s.stop.Store(true)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Bytes()
}

// TestAmbientWireIsEncrypted: the payload of a pod-to-pod connection
// never crosses the wire in the clear, while the same capture does see a
// plaintext caller's payload (so the capture works).
func TestAmbientWireIsEncrypted(t *testing.T) {
	w := newWorld(t)
	secret := "ward-secret-payload-7d1f0c"
	s := w.c.sniff(t)
	if got, err := exchange(t, w.a, w.b.addr+":9000", secret); err != nil || got != secret {
		t.Fatalf("echo = %q, %v", got, err)
	}
	control := "ward-plaintext-control-93ab"
	if got, err := exchange(t, w.plain, w.d.addr+":9000", control); err != nil || got != control {
		t.Fatalf("plaintext echo = %q, %v", got, err)
	}
	wire := s.captured()
	if !bytes.Contains(wire, []byte(control)) {
		t.Fatalf("capture (%d bytes) missed the plaintext control payload: capture broken", len(wire))
	}
	if bytes.Contains(wire, []byte(secret)) {
		t.Fatal("the mesh payload crossed the wire in the clear")
	}
	if !bytes.Contains(wire, []byte{0x3a, 0xa0}) { // port 15008 in a TCP header
		t.Error("no HBONE (port 15008) traffic captured")
	}
}
