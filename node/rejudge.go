package node

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
)

// active is one established inbound connection: what policy judged and
// the connection to the workload, whose close ends the whole path.
type active struct {
	transport string
	conn      Conn
	up        net.Conn
}

// tracker holds a pod's established inbound connections so a policy
// change can re-judge them, as ztunnel does: a connection the new policy
// denies is closed; the rest are untouched.
type tracker struct {
	mu    sync.Mutex
	conns map[*active]struct{}
}

// track registers up for c until the returned func is called.
func (t *tracker) track(transport string, c Conn, up net.Conn) (untrack func()) {
	a := &active{transport: transport, conn: c, up: up}
	t.mu.Lock()
	if t.conns == nil {
		t.conns = map[*active]struct{}{}
	}
	t.conns[a] = struct{}{}
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.conns, a)
		t.mu.Unlock()
	}
}

func (t *tracker) snapshot() []*active {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*active, 0, len(t.conns))
	for a := range t.conns {
		out = append(out, a)
	}
	return out
}

// trackedConn untracks itself when closed.
type trackedConn struct {
	net.Conn
	once    sync.Once
	untrack func()
}

func (c *trackedConn) Close() error {
	c.once.Do(c.untrack)
	return c.Conn.Close()
}

// CloseWrite keeps half-close working through the wrapper.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// rejudge re-evaluates every established inbound connection of every pod
// against the current policy and closes those it now denies.
func (p *Proxy) rejudge(ctx context.Context) {
	p.mu.Lock()
	pods := make([]*pod, 0, len(p.pods))
	for _, pd := range p.pods {
		pods = append(pods, pd)
	}
	p.mu.Unlock()
	for _, pd := range pods {
		for _, a := range pd.active.snapshot() {
			v := pd.verdict(ctx, a.conn)
			if v.Allowed {
				continue // unchanged: not logged or counted again
			}
			p.decided(Decision{Workload: pd.w.Source, Transport: a.transport, Conn: a.conn, Verdict: v, Established: true})
			a.up.Close()
		}
	}
}

// SyscallConn exposes the socket, so hbone.Copy can wait for it to become
// readable without holding a buffer.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
