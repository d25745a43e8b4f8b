package xds

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// conn is one connected proxy (all streams sharing its node id).
type conn struct {
	id          string
	proxy       *mesh.Proxy
	streams     int
	connectedAt time.Time
	fingerprint string
	gen         *generated
	status      map[string]*typeStatus // by type URL
}

// typeStatus is the sync state of one resource type for one proxy.
type typeStatus struct {
	Sent         string    `json:"sent,omitempty"`
	SentNonce    string    `json:"-"`
	Acked        string    `json:"acked,omitempty"`
	Pending      string    `json:"pending,omitempty"`
	PendingSince time.Time `json:"-"`
	Nacks        int       `json:"nacks,omitempty"`
	NackedVer    string    `json:"nackedVersion,omitempty"`
	LastNack     string    `json:"lastNack,omitempty"`
}

// generated is the validated output for one fingerprint, ready to cache.
type generated struct {
	res      *translate.Resources
	versions translate.Versions
	snap     *cachev3.Snapshot
}

type genEntry struct {
	once sync.Once
	g    *generated
	err  error
}

var typeURLs = []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

// shortType names a type URL in metrics and logs.
func shortType(url string) string {
	switch url {
	case resource.ListenerType:
		return "lds"
	case resource.RouteType:
		return "rds"
	case resource.ClusterType:
		return "cds"
	case resource.EndpointType:
		return "eds"
	}
	return url
}

// generate computes, validates and packs the resources of one scope.
func generate(ix *translate.Index, sc *translate.Scope, hooks translate.Hooks) (*generated, error) {
	res := translate.Generate(ix, sc, hooks)
	if err := res.Validate(); err != nil {
		return nil, fmt.Errorf("generate config for proxy %s: %w", sc.Proxy.ID, err)
	}
	v := res.Versions()
	snap := &cachev3.Snapshot{}
	snap.Resources[types.Listener] = cachev3.NewResources(v.Listeners, toRes(res.Listeners))
	snap.Resources[types.Route] = cachev3.NewResources(v.Routes, toRes(res.Routes))
	snap.Resources[types.Cluster] = cachev3.NewResources(v.Clusters, toRes(res.Clusters))
	snap.Resources[types.Endpoint] = cachev3.NewResources(v.Endpoints, toRes(res.Endpoints))
	// Build the delta version map now: the snapshot is shared by every
	// proxy with this fingerprint and must not be mutated later.
	if err := snap.ConstructVersionMap(); err != nil {
		return nil, fmt.Errorf("generate config for proxy %s: version map: %w", sc.Proxy.ID, err)
	}
	return &generated{res: res, versions: v, snap: snap}, nil
}

func toRes[T types.Resource](in []T) []types.Resource {
	out := make([]types.Resource, len(in))
	for i, r := range in {
		out[i] = r
	}
	return out
}

// version returns the generated version of a type URL.
func (g *generated) version(url string) string {
	switch url {
	case resource.ListenerType:
		return g.versions.Listeners
	case resource.RouteType:
		return g.versions.Routes
	case resource.ClusterType:
		return g.versions.Clusters
	case resource.EndpointType:
		return g.versions.Endpoints
	}
	return ""
}

// fingerprintOf computes the proxy's scope and cache key under ix.
func (s *Server) fingerprintOf(ix *translate.Index, p *mesh.Proxy) (*translate.Scope, string) {
	sc := ix.Scope(p)
	fp := ix.Fingerprint(sc)
	if s.cfg.Hooks.Fingerprint != nil {
		fp += "/" + s.cfg.Hooks.Fingerprint(ix.Snapshot(), p)
	}
	return sc, fp
}

// generationFor returns the (possibly shared, possibly cached) output for
// a fingerprint, generating it at most once.
func (s *Server) generationFor(ix *translate.Index, sc *translate.Scope, fp string) (*generated, error) {
	s.mu.Lock()
	e := s.gens[fp]
	if e == nil {
		e = &genEntry{}
		s.gens[fp] = e
	}
	s.mu.Unlock()
	e.once.Do(func() { e.g, e.err = generate(ix, sc, s.cfg.Hooks) })
	return e.g, e.err
}

// refresh recomputes one proxy under ix and hands the result to the cache
// when it changed. since is when the config change reached the server.
func (s *Server) refresh(ix *translate.Index, c *conn, since time.Time) {
	sc, fp := s.fingerprintOf(ix, c.proxy)
	s.mu.Lock()
	same := fp == c.fingerprint && c.gen != nil
	s.mu.Unlock()
	if same {
		return
	}
	g, err := s.generationFor(ix, sc, fp)
	if err != nil {
		s.m.genErrors.Inc()
		s.log.Error("config not pushed: generated resources are invalid; proxy keeps its previous config", "proxy", c.id, "err", err)
		return
	}
	if d := g.res.Dangling(); len(d) > 0 {
		s.log.Warn("routes name clusters the proxy does not have", "proxy", c.id, "err", errors.Join(d...))
	}
	s.mu.Lock()
	if s.conns[c.id] != c {
		s.mu.Unlock()
		return // disconnected meanwhile
	}
	c.fingerprint, c.gen = fp, g
	for _, url := range typeURLs {
		st := c.status[url]
		if v := g.version(url); v != st.Acked && v != st.Pending {
			st.Pending, st.PendingSince = v, since
		}
	}
	s.mu.Unlock()
	if err := s.cache.SetSnapshot(context.Background(), c.id, g.snap); err != nil {
		s.log.Error("set snapshot", "proxy", c.id, "err", err)
	}
}

// push applies a snapshot: re-index, then refresh every connected proxy
// with bounded concurrency. Proxies whose fingerprint did not change are
// skipped without generating anything.
func (s *Server) push(snap *mesh.Snapshot, since time.Time) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	start := s.cfg.Clock.Now()
	ix := translate.NewIndex(snap)
	s.mu.Lock()
	s.ix, s.updateAt = ix, since
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	work := make(chan *conn)
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.PushConcurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				s.refresh(ix, c, since)
			}
		}()
	}
	for _, c := range conns {
		work <- c
	}
	close(work)
	wg.Wait()
	s.pruneGens()
	s.m.pushTime.Observe(s.cfg.Clock.Now().Sub(start).Seconds())
	s.log.Debug("pushed snapshot", "version", snap.Version(), "proxies", len(conns))
}

// pruneGens drops cached outputs no connected proxy uses.
func (s *Server) pruneGens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	used := map[string]bool{}
	for _, c := range s.conns {
		used[c.fingerprint] = true
	}
	for fp := range s.gens {
		if !used[fp] {
			delete(s.gens, fp)
		}
	}
}

// attach registers a stream of node n; the first stream of a node
// computes its config so the first request is answered at once.
func (s *Server) attach(streamID int64, n *core.Node) {
	s.mu.Lock()
	if _, ok := s.streams[streamID]; ok || n.GetId() == "" {
		s.mu.Unlock()
		return
	}
	s.streams[streamID] = n.GetId()
	c := s.conns[n.GetId()]
	if c != nil {
		c.streams++
		s.mu.Unlock()
		return
	}
	c = &conn{id: n.GetId(), proxy: ProxyFromNode(n), streams: 1, connectedAt: s.cfg.Clock.Now(), status: map[string]*typeStatus{}}
	for _, url := range typeURLs {
		c.status[url] = &typeStatus{}
	}
	s.conns[c.id] = c
	s.m.connected.Set(float64(len(s.conns)))
	ix, since := s.ix, s.cfg.Clock.Now()
	s.mu.Unlock()
	s.log.Info("proxy connected", "proxy", c.id, "type", c.proxy.Type, "namespace", c.proxy.Namespace)
	if ix != nil {
		s.refresh(ix, c, since)
	}
}

// detach forgets a stream; the last one of a node drops its state.
func (s *Server) detach(streamID int64) {
	s.mu.Lock()
	id, ok := s.streams[streamID]
	if !ok {
		s.mu.Unlock()
		return
	}
	delete(s.streams, streamID)
	c := s.conns[id]
	if c == nil {
		s.mu.Unlock()
		return
	}
	c.streams--
	if c.streams > 0 {
		s.mu.Unlock()
		return
	}
	delete(s.conns, id)
	s.m.connected.Set(float64(len(s.conns)))
	s.mu.Unlock()
	s.cache.ClearSnapshot(id)
	s.log.Info("proxy disconnected", "proxy", id)
}
