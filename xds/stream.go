package xds

import (
	"context"
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/mesh"
)

// privilegedMeta are node metadata keys that widen what a proxy may skip
// (MetaAuthz=ext-authz drops RBAC for a proxyless server). They are
// honoured only on a stream authenticated by a certificate whose identity
// the node matches; elsewhere they are dropped and logged.
var privilegedMeta = []string{MetaAuthz}

// streamState is one xDS stream: who opened it and, from its first
// request on, the connection (proxy state) it is bound to. Nothing is
// shared between streams, not even between streams with one node id
// (Istio keys its connections the same way: nodeID-counter).
type streamState struct {
	peer   streamPeer
	conn   string     // connection key once bound, else ""
	nodeID string     // the node id of the first request
	pinned *core.Node // what every later request's node is replaced with
}

// openStream admits a new stream under the stream caps.
func (s *Server) openStream(ctx context.Context, stream int64) error {
	p := peerOf(ctx)
	if p.node != "" {
		s.m.rejectedStreams.WithLabelValues(rejectIdentity).Inc()
		s.warnRefusal("xds stream refused: a node proxy may open only delta ADS", "node", p.node, "source", p.source)
		return status.Error(codes.PermissionDenied, "a node certificate may open only delta ADS")
	}
	return s.admit(p, stream)
}

// openNodeStream admits a node proxy's delta stream under the same caps
// as every other stream (they share --max-xds-streams and the per-source
// cap); closeStream releases it.
func (s *Server) openNodeStream(p streamPeer) (int64, error) {
	id := -s.nodeStreamSeq.Add(1) // go-control-plane's ids are positive
	return id, s.admit(p, id)
}

// admit counts a stream against the caps, or refuses it.
func (s *Server) admit(p streamPeer, stream int64) error {
	lim := s.cfg.Limits
	s.mu.Lock()
	reason := ""
	switch {
	case over(len(s.streams)+1, lim.MaxStreams):
		reason = rejectStreams
	case p.source != "" && over(s.sources[p.source]+1, lim.MaxStreamsPerSource):
		reason = rejectSourceStreams
	default:
		s.streams[stream] = &streamState{peer: p}
		s.sources[p.source]++
	}
	s.mu.Unlock()
	if reason == "" {
		return nil
	}
	s.m.rejectedStreams.WithLabelValues(reason).Inc()
	s.warnRefusal("xds stream refused: too many streams", "reason", reason, "source", p.source)
	return status.Errorf(codes.ResourceExhausted, "too many xDS streams (%s)", reason)
}

// bind returns the node a request of stream must carry from now on: the
// stream's pinned node, whose id is its connection key. The first request
// binds the stream: its node is validated and, on the secure port,
// matched against the caller's certificate, and the stream gets its own
// connection state. A later request naming another node is refused.
func (s *Server) bind(stream int64, n *core.Node) (*core.Node, error) {
	s.mu.Lock()
	st := s.streams[stream]
	var bound streamState
	if st != nil {
		bound = *st
	}
	s.mu.Unlock()
	if st == nil {
		return nil, status.Error(codes.Internal, "xds stream not admitted")
	}
	if bound.conn != "" {
		if id := n.GetId(); id != "" && id != bound.nodeID && id != bound.conn {
			s.m.rejectedStreams.WithLabelValues(rejectNode).Inc()
			s.warnRefusal("xds stream refused: node changed mid-stream", "proxy", s.clip(bound.nodeID), "new_node", s.clip(id))
			return nil, status.Error(codes.InvalidArgument, "node.id changed mid-stream")
		}
		return bound.pinned, nil
	}
	if err := s.cfg.Limits.checkNode(n); err != nil {
		s.m.rejectedStreams.WithLabelValues(rejectNode).Inc()
		s.warnRefusal("xds stream refused: invalid node", "proxy", s.clip(n.GetId()), "source", bound.peer.source, "err", err)
		return nil, err
	}
	p := ProxyFromNode(n)
	if err := s.authorize(bound.peer, p); err != nil {
		s.m.rejectedStreams.WithLabelValues(rejectIdentity).Inc()
		s.warnRefusal("xds stream refused", "proxy", s.clip(p.ID), "source", bound.peer.source, "err", err)
		return nil, err
	}
	return s.attachConn(st, p), nil
}

// authorize binds p to the stream's caller. On the secure port the node's
// namespace and service account must be the certificate's (empty ones
// are taken from it); on the plaintext port privileged metadata is
// dropped.
func (s *Server) authorize(peer streamPeer, p *mesh.Proxy) error {
	if !peer.secure {
		for _, k := range privilegedMeta {
			if v, ok := p.Metadata[k]; ok {
				delete(p.Metadata, k)
				s.m.ignoredMeta.WithLabelValues(k).Inc()
				s.warnRefusal("node metadata ignored on an unauthenticated stream", "proxy", s.clip(p.ID), "key", k, "value", s.clip(v))
			}
		}
		return nil
	}
	id := peer.identity
	if p.Namespace == "" {
		p.Namespace = id.Namespace
	}
	if p.ServiceAccount == "" {
		p.ServiceAccount = id.ServiceAccount
	}
	if p.Namespace != id.Namespace || p.ServiceAccount != id.ServiceAccount {
		return status.Errorf(codes.PermissionDenied, "node %s claims namespace %q service account %q, but the client certificate is for namespace %q service account %q",
			s.clip(p.ID), s.clip(p.Namespace), s.clip(p.ServiceAccount), id.Namespace, id.ServiceAccount)
	}
	return nil
}

// attachConn gives a bound stream its own connection state, keyed
// nodeID-counter, and computes its config so its first request is
// answered at once.
func (s *Server) attachConn(st *streamState, p *mesh.Proxy) *core.Node {
	s.mu.Lock()
	s.connSeq++
	key := fmt.Sprintf("%s-%d", p.ID, s.connSeq)
	c := &conn{id: key, node: p.ID, proxy: p, secure: st.peer.secure, connectedAt: s.cfg.Clock.Now(), status: map[string]*typeStatus{}}
	for _, url := range typeURLs {
		c.status[url] = &typeStatus{}
	}
	pinned := &core.Node{Id: key}
	st.conn, st.nodeID, st.pinned = key, p.ID, pinned
	s.conns[key] = c
	s.m.connected.Set(float64(len(s.conns)))
	ix, seq, since := s.ix, s.seq, s.cfg.Clock.Now()
	s.mu.Unlock()
	s.log.Info("proxy connected", "proxy", s.clip(p.ID), "connection", s.clip(key), "type", p.Type, "namespace", s.clip(p.Namespace),
		"secure", st.peer.secure, "source", st.peer.source)
	if ix != nil {
		s.refresh(ix, seq, c, since)
	}
	return pinned
}

// closeStream forgets a stream and drops its connection state.
func (s *Server) closeStream(stream int64) {
	s.mu.Lock()
	st := s.streams[stream]
	if st == nil {
		s.mu.Unlock()
		return
	}
	delete(s.streams, stream)
	if s.sources[st.peer.source]--; s.sources[st.peer.source] <= 0 {
		delete(s.sources, st.peer.source)
	}
	c := s.conns[st.conn]
	if c != nil {
		delete(s.conns, st.conn)
		s.m.connected.Set(float64(len(s.conns)))
	}
	s.mu.Unlock()
	if c == nil {
		return
	}
	s.log.Info("proxy disconnected", "proxy", s.clip(c.node), "connection", s.clip(c.id))
}

// connOf returns the connection key of a stream ("" before its first
// request).
func (s *Server) connOf(stream int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[stream]; st != nil {
		return st.conn
	}
	return ""
}
