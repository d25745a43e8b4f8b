package xds

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	"github.com/wardmesh/ward/mesh/mcp"
)

// callbacks connect go-control-plane's stream events to the server's
// bookkeeping: admission, binding each stream to its own connection
// state, sends, ACKs and NACKs.
type callbacks struct{ s *Server }

var _ serverv3.Callbacks = (*callbacks)(nil)

func (c *callbacks) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	return c.s.openStream(ctx, id)
}

func (c *callbacks) OnStreamClosed(id int64, _ *core.Node) {
	c.s.throttle.closeStream(id)
	c.s.closeStream(id)
}

func (c *callbacks) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	return c.s.openStream(ctx, id)
}

func (c *callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) { c.s.closeStream(id) }

// OnFetchRequest refuses unary fetches: they are bound to no stream, so
// to no identity, and would serve whatever config a claimed node id has.
func (c *callbacks) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error {
	return status.Error(codes.Unimplemented, "xDS fetch (REST/unary) is not served; use ADS")
}

func (c *callbacks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// OnStreamRequest binds the stream on its first request and from then on
// replaces every request's node with the stream's pinned node, whose id is
// the connection key: the cache and every later callback see only this
// stream's state.
func (c *callbacks) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	node, err := c.s.bind(id, req.GetNode())
	if err != nil {
		return err
	}
	req.Node = node
	if req.GetResponseNonce() != "" {
		c.s.throttle.release(id, req.GetTypeUrl())
		c.s.acknowledge(node.GetId(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
	}
	return nil
}

func (c *callbacks) OnStreamResponse(_ context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	c.s.throttle.acquire(id, resp.GetTypeUrl())
	c.s.sent(req.GetNode().GetId(), resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
}

func (c *callbacks) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	if mcp.IsNodeType(req.GetTypeUrl()) {
		c.s.m.rejectedStreams.WithLabelValues(rejectIdentity).Inc()
		return status.Errorf(codes.PermissionDenied, "%s is served only to node proxies authenticated by their node certificate", req.GetTypeUrl())
	}
	node, err := c.s.bind(id, req.GetNode())
	if err != nil {
		return err
	}
	req.Node = node
	if req.GetResponseNonce() != "" {
		c.s.acknowledge(node.GetId(), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail().GetMessage(), req.GetErrorDetail() != nil)
	}
	return nil
}

func (c *callbacks) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	c.s.sent(c.s.connOf(id), resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
}

// sent records a response about to go out.
func (s *Server) sent(node, url, nonce, version string) {
	s.m.pushes.WithLabelValues(shortType(url)).Inc()
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.status(node, url); st != nil {
		st.Sent, st.SentNonce = version, nonce
	}
}

// acknowledge records an ACK or NACK of the response with nonce. For SotW
// the ACKed version is the request's version_info; for delta (version "")
// it is the version sent with that nonce.
func (s *Server) acknowledge(node, url, nonce, version, detail string, nack bool) {
	s.mu.Lock()
	st := s.status(node, url)
	if st == nil || nonce != st.SentNonce {
		s.mu.Unlock()
		return // an answer to a superseded response
	}
	if nack {
		detail = s.clipTo(detail, MaxNackDetail)
		st.Nacks++
		st.NackedVer, st.LastNack = st.Sent, detail
		nodeID := s.conns[node].node
		s.mu.Unlock()
		s.m.rejects.WithLabelValues(shortType(url)).Inc()
		s.log.Warn("proxy rejected config", "proxy", s.clip(nodeID), "connection", s.clip(node), "type", shortType(url), "version", st.NackedVer, "err", s.clip(detail))
		return
	}
	if version == "" {
		version = st.Sent
	}
	st.Acked = version
	s.conns[node].rememberAcked(url, version)
	var wait float64 = -1
	if st.Pending == version {
		wait = s.cfg.Clock.Now().Sub(st.PendingSince).Seconds()
		st.Pending = ""
	}
	s.mu.Unlock()
	if wait >= 0 {
		s.m.convergence.Observe(wait)
	}
}

// rememberAcked keeps the config whose url-type version the proxy just
// ACKed (the current or the previous one; an older version than both is
// no longer known and clears the record). s.mu must be held.
func (c *conn) rememberAcked(url, version string) {
	i := typeIndex(url)
	if i < 0 {
		return
	}
	if a := c.acked[i]; a != nil && a.version(url) == version {
		return
	}
	c.acked[i] = nil
	for _, g := range []*generated{c.gen, c.prev} {
		if g != nil && g.version(url) == version {
			c.acked[i] = g
			return
		}
	}
}

// status returns the sync state of connection key/type; s.mu must be held.
func (s *Server) status(key, url string) *typeStatus {
	c := s.conns[key]
	if c == nil {
		return nil
	}
	return c.status[url]
}

// rejectedCurrent returns the version the node rejected for type url when
// it is still the version the cache would send, else "".
func (s *Server) rejectedCurrent(node, url string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status(node, url)
	c := s.conns[node]
	if st == nil || c == nil || c.gen == nil || st.NackedVer == "" || st.NackedVer != c.gen.version(url) {
		return ""
	}
	return st.NackedVer
}
