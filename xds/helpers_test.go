package xds

import (
	"context"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// attach opens stream id as a plaintext peer and binds it to n, as the
// first request of a real stream does.
func (s *Server) attach(id int64, n *core.Node) {
	if err := s.openStream(context.Background(), id); err != nil {
		panic(err)
	}
	if _, err := s.bind(id, n); err != nil {
		panic(err)
	}
}

// currentOf returns the config of node id's most recent connection.
func (s *Server) currentOf(node string) *generated {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.latestOf(node); c != nil {
		return c.gen
	}
	return nil
}
