package xds

import (
	"net"
	"sync"
)

// Defaults of ConnLimits.
const (
	DefaultMaxConnections          = 10000
	DefaultMaxConnectionsPerSource = 256
)

// ConnLimits bound the connections a gRPC listener (15010, 15012) keeps
// open. Zero fields take the defaults; a negative one disables that bound.
type ConnLimits struct {
	MaxConnections, MaxConnectionsPerSource int
}

// LimitListener wraps l so that a connection over the caps is closed as
// soon as it is accepted, before any TLS or HTTP/2 work, and counted in
// ward_grpc_rejected_connections_total. Connections are counted until
// closed.
func (s *Server) LimitListener(l net.Listener, lim ConnLimits) net.Listener {
	if lim.MaxConnections == 0 {
		lim.MaxConnections = DefaultMaxConnections
	}
	if lim.MaxConnectionsPerSource == 0 {
		lim.MaxConnectionsPerSource = DefaultMaxConnectionsPerSource
	}
	return &limitListener{Listener: l, s: s, lim: lim, bySource: map[string]int{}}
}

type limitListener struct {
	net.Listener
	s   *Server
	lim ConnLimits

	mu       sync.Mutex
	total    int
	bySource map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := hostOf(c.RemoteAddr())
		if reason := l.admit(src); reason != "" {
			l.s.m.rejectedConns.WithLabelValues(reason).Inc()
			l.s.warnRefusal("connection refused: too many connections", "reason", reason, "source", src)
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(src) }}, nil
	}
}

func (l *limitListener) admit(src string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case over(l.total+1, l.lim.MaxConnections):
		return "max_connections"
	case over(l.bySource[src]+1, l.lim.MaxConnectionsPerSource):
		return "max_connections_per_source"
	}
	l.total++
	l.bySource[src]++
	return ""
}

func (l *limitListener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}
