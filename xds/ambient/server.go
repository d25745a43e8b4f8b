package ambient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
)

// DeltaStream is the server side of a delta ADS stream.
type DeltaStream = discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer

// Config holds the server's collaborators.
type Config struct {
	// Auth returns the node named in the caller's verified node
	// certificate (ca.CA.PeerNode); an error refuses the stream.
	Auth  func(ctx context.Context) (string, error)
	Log   *slog.Logger
	Clock func() time.Time
	// Metrics receives the server's series; nil registers none.
	Metrics Registerer
	// OnSend, when set, sees every response before it is sent (tests).
	OnSend func(node string, resp *discovery.DeltaDiscoveryResponse)
	// OnAnswer, when set, sees every ACK (nack false) or NACK once it is
	// recorded (tests).
	OnAnswer func(node, url string, nack bool)
}

// Server serves node proxies. Update hands it each new snapshot; every
// connected node is sent what changed in its view.
type Server struct {
	cfg Config
	m   *metrics

	mu    sync.Mutex
	enc   *encoder
	views map[string]*view // by node, for enc's snapshot
	conns map[string]*conn // by connection key
	seq   uint64
}

// New builds a server; it serves nothing until Update.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Server{cfg: cfg, m: newMetrics(cfg.Metrics), views: map[string]*view{}, conns: map[string]*conn{}}
}

// Update applies a new snapshot: every connected node gets the resources
// of its view that changed and the removal of those it no longer has.
func (s *Server) Update(snap *mesh.Snapshot) error {
	enc, err := newEncoder(snap)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.enc, s.views = enc, map[string]*view{}
	conns := slices.Collect(maps.Values(s.conns))
	s.mu.Unlock()
	for _, c := range conns {
		c.poke()
	}
	return nil
}

// AuthenticateNode returns the node the caller's certificate names.
func (s *Server) AuthenticateNode(ctx context.Context) (string, error) {
	if s.cfg.Auth == nil {
		return "", errors.New("node streams are not authenticated by this server")
	}
	return s.cfg.Auth(ctx)
}

// viewFor returns node's view of the current snapshot (nil before the
// first Update); views are built once per snapshot and node.
func (s *Server) viewFor(node string) (*view, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enc == nil {
		return nil, nil
	}
	if v := s.views[node]; v != nil {
		return v, nil
	}
	v, err := s.enc.generate(node)
	if err != nil {
		return nil, err
	}
	s.views[node] = v
	return v, nil
}

// conn is one node stream's state; only its stream goroutine changes
// types, under mu (read by Connections).
type conn struct {
	key, node   string
	connectedAt time.Time
	wake        chan struct{}

	mu    sync.Mutex
	types map[string]*typeState
	nonce uint64
}

// typeState is what the node holds of one type and its sync state.
type typeState struct {
	wildcard bool
	names    map[string]bool   // explicit subscriptions
	sent     map[string]string // name → version the node holds (or was just sent)
	acked    map[string]string // as of the last ACK
	status   TypeStatus
	nonce    string
	answered bool // a response was sent (so the node knows the type's state)
}

// TypeStatus is the sync state of one type on one node stream.
type TypeStatus struct {
	Sent      string `json:"sent,omitempty"`
	Acked     string `json:"acked,omitempty"`
	Resources int    `json:"resources"`
	Nacks     int    `json:"nacks,omitempty"`
	NackedVer string `json:"nackedVersion,omitempty"`
	LastNack  string `json:"lastNack,omitempty"`
}

func (c *conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (s *Server) open(node string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	c := &conn{key: "node~" + node + "-" + strconv.FormatUint(s.seq, 10), node: node, connectedAt: s.cfg.Clock(),
		wake: make(chan struct{}, 1), types: map[string]*typeState{}}
	s.conns[c.key] = c
	s.m.connected.Set(float64(len(s.conns)))
	return c
}

func (s *Server) close(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.key)
	s.m.connected.Set(float64(len(s.conns)))
	s.mu.Unlock()
	s.cfg.Log.Info("node proxy disconnected", "node", c.node, "connection", c.key)
}

// ServeNode serves one delta ADS stream of node, the node named in the
// caller's certificate: the Node the client sends is never consulted.
func (s *Server) ServeNode(node string, stream DeltaStream) error {
	c := s.open(node)
	defer s.close(c)
	s.cfg.Log.Info("node proxy connected", "node", node, "connection", c.key)
	ctx := stream.Context()
	reqs, errc := make(chan *discovery.DeltaDiscoveryRequest), make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err = <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case r := <-reqs:
			err = s.handle(c, stream, r)
		case <-c.wake:
			err = s.pushAll(c, stream)
		}
		if err != nil {
			return err
		}
	}
}

// handle records an ACK or NACK, applies subscription changes and answers
// a type's first request (or a new subscription) with what the node lacks.
func (s *Server) handle(c *conn, stream DeltaStream, r *discovery.DeltaDiscoveryRequest) error {
	url := r.GetTypeUrl()
	if !mcp.IsNodeType(url) {
		return status.Errorf(codes.InvalidArgument, "type %q is not served to node proxies", url)
	}
	c.mu.Lock()
	ts := c.types[url]
	first := ts == nil
	if first {
		ts = &typeState{names: map[string]bool{}, sent: maps.Clone(r.GetInitialResourceVersions())}
		if ts.sent == nil {
			ts.sent = map[string]string{}
		}
		ts.acked = maps.Clone(ts.sent)
		c.types[url] = ts
	}
	answer := s.answered(c, url, ts, r)
	changed := subscribe(ts, r, first)
	c.mu.Unlock()
	if answer != nil && s.cfg.OnAnswer != nil {
		s.cfg.OnAnswer(c.node, url, *answer)
	}
	if !first && !changed {
		return nil
	}
	return s.respond(c, stream, url)
}

// answered records the node's answer to the response with r's nonce.
// On NACK the node keeps its previous resources, so what it holds
// reverts to the last ACKed state (and is sent again on the next change).
// It returns whether it was a NACK, or nil for no (current) answer.
func (s *Server) answered(c *conn, url string, ts *typeState, r *discovery.DeltaDiscoveryRequest) *bool {
	if r.GetResponseNonce() == "" || r.GetResponseNonce() != ts.nonce {
		return nil
	}
	ts.nonce = ""
	if d := r.GetErrorDetail(); d != nil {
		ts.status.Nacks++
		ts.status.NackedVer, ts.status.LastNack = ts.status.Sent, clip(d.GetMessage())
		ts.sent = maps.Clone(ts.acked)
		s.m.nacks.WithLabelValues(ShortType(url)).Inc()
		s.cfg.Log.Warn("node proxy rejected config", "node", c.node, "connection", c.key, "type", ShortType(url), "version", ts.status.Sent, "err", ts.status.LastNack)
		nack := true
		return &nack
	}
	ts.status.Acked = ts.status.Sent
	ts.acked = maps.Clone(ts.sent)
	nack := false
	return &nack
}

// subscribe applies r's subscription changes; it reports whether the
// subscribed set changed.
func subscribe(ts *typeState, r *discovery.DeltaDiscoveryRequest, first bool) bool {
	sub, unsub := r.GetResourceNamesSubscribe(), r.GetResourceNamesUnsubscribe()
	if first && len(sub) == 0 {
		ts.wildcard = true
	}
	for _, n := range sub {
		if n == "*" {
			ts.wildcard = true
		} else {
			ts.names[n] = true
		}
	}
	for _, n := range unsub {
		if n == "*" {
			ts.wildcard = false
		}
		delete(ts.names, n)
		delete(ts.sent, n) // unsubscribed: not removed, simply forgotten
	}
	return len(sub) > 0 || len(unsub) > 0
}

// pushAll sends every subscribed type what changed.
func (s *Server) pushAll(c *conn, stream DeltaStream) error {
	c.mu.Lock()
	urls := slices.Sorted(maps.Keys(c.types))
	c.mu.Unlock()
	for _, url := range urls {
		if err := s.respond(c, stream, url); err != nil {
			return err
		}
	}
	return nil
}

// respond sends url's changed and removed resources, if any (and the
// type's first response even when empty, so the node learns it is synced:
// an empty collection is a state too).
func (s *Server) respond(c *conn, stream DeltaStream, url string) error {
	v, err := s.viewFor(c.node)
	if err != nil {
		s.cfg.Log.Error("node config not generated; the node keeps its previous config", "node", c.node, "err", err)
		return nil
	}
	if v == nil {
		return nil // no snapshot yet: the node stays unsynced (fail closed)
	}
	c.mu.Lock()
	ts := c.types[url]
	resp := diff(ts, v, url)
	if resp == nil && ts.answered {
		c.mu.Unlock()
		return nil
	}
	if resp == nil {
		resp = &discovery.DeltaDiscoveryResponse{TypeUrl: url, SystemVersionInfo: v.versions[url]}
	}
	c.nonce++
	resp.Nonce = strconv.FormatUint(c.nonce, 10)
	ts.answered = true
	ts.nonce, ts.status.Sent, ts.status.Resources = resp.Nonce, v.versions[url], len(ts.sent)
	c.mu.Unlock()
	if s.cfg.OnSend != nil {
		s.cfg.OnSend(c.node, resp)
	}
	s.m.pushes.WithLabelValues(ShortType(url)).Inc()
	s.m.pushBytes.WithLabelValues(ShortType(url)).Add(float64(proto.Size(resp)))
	if err := stream.Send(resp); err != nil {
		return fmt.Errorf("send %s to node %s: %w", ShortType(url), c.node, err)
	}
	return nil
}

// diff builds the response that brings ts to v's url resources, updating
// ts.sent, or returns nil when the node holds them already.
func diff(ts *typeState, v *view, url string) *discovery.DeltaDiscoveryResponse {
	want := v.res[url]
	resp := &discovery.DeltaDiscoveryResponse{TypeUrl: url, SystemVersionInfo: v.versions[url]}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if !ts.wildcard && !ts.names[name] {
			continue
		}
		r := want[name]
		if ts.sent[name] != r.Version {
			resp.Resources = append(resp.Resources, &discovery.Resource{Name: name, Version: r.Version, Resource: r.Resource})
			ts.sent[name] = r.Version
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ts.sent)) {
		if _, ok := want[name]; !ok {
			resp.RemovedResources = append(resp.RemovedResources, name)
			delete(ts.sent, name)
		}
	}
	if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 {
		return nil
	}
	return resp
}

// ShortType names a node type URL in metrics, logs and proxy-status.
func ShortType(url string) string {
	switch url {
	case mcp.TypeMeshConfig:
		return "mesh"
	case mcp.TypeWorkloadEntry:
		return "workloads"
	case mcp.TypeServiceEntry:
		return "services"
	case mcp.TypePeerAuthentication:
		return "peerauthn"
	case mcp.TypeAuthorizationPolicy:
		return "authz"
	}
	return "other"
}

func clip(s string) string {
	const max = 1024
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
