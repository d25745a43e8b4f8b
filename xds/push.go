package xds

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// conn is one connected proxy: the state of one xDS stream, never shared
// with another stream, even one with the same node id.
type conn struct {
	id          string // connection key: nodeID-counter
	node        string // the node id the proxy sent
	proxy       *mesh.Proxy
	secure      bool // the stream came over mTLS and matched its certificate
	connectedAt time.Time
	fingerprint string
	gen         *generated
	status      map[string]*typeStatus // by type URL

	prev *generated // the config before gen (streams may lag one behind)
	// acked holds, per type (typeURLs order), the config whose version
	// the proxy last ACKed: what it enforces, which may be older than gen.
	acked     [4]*generated
	refreshMu sync.Mutex
	seq       uint64 // index sequence of the last refresh
	// refused holds the service claims already logged (logRefused);
	// guarded by refreshMu.
	refused map[string]bool
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
	seq      uint64 // unique per generated config
	res      *translate.Resources
	versions translate.Versions
	// parts are the sides the config was combined from.
	parts []*partial
	anys  [4][]*anypb.Any
	names [4][]string
	enc   [4][]*encoded // anys[t] is the concatenation of enc[t]'s
	once  [4]sync.Once
	index [4]map[string]*anypb.Any
}

type genEntry struct {
	once sync.Once
	v    any
	err  error
}

// genSeq numbers generated configs.
var genSeq atomic.Uint64

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

// partial is one validated side (outbound or inbound) of a proxy's config,
// shared by every proxy with the same side fingerprint, with its
// per-type cache resources prebuilt.
type partial struct {
	res      *translate.Resources
	versions translate.Versions
	anys     [4][]*anypb.Any // by type (listener, route, cluster, endpoint): marshalled once, in name order
	names    [4][]string
	enc      [4]*encoded     // anys' wire form, built on first send
	refs     *translate.Refs // what the side references and provides
}

func newPartial(res *translate.Resources) *partial {
	v := res.Versions()
	p := &partial{res: res, versions: v, refs: res.Refs(),
		anys: [4][]*anypb.Any{marshalAll(res.Listeners), marshalAll(res.Routes), marshalAll(res.Clusters), marshalAll(res.Endpoints)},
		names: [4][]string{
			names(res.Listeners, func(m *listener.Listener) string { return m.GetName() }),
			names(res.Routes, func(m *route.RouteConfiguration) string { return m.GetName() }),
			names(res.Clusters, func(m *cluster.Cluster) string { return m.GetName() }),
			names(res.Endpoints, func(m *endpoint.ClusterLoadAssignment) string { return m.GetClusterName() }),
		}}
	p.encodeLazily()
	return p
}

var cacheTypes = [4]types.ResponseType{types.Listener, types.Route, types.Cluster, types.Endpoint}

// pair is the outbound config and endpoint sides joined, shared by every
// proxy with both: their resources merged once and their references
// checked once (for the full mesh that is 8,000 clusters and endpoint
// sets, which no proxy should pay for again).
type pair struct {
	merged *partial
	needs  *translate.Refs // references neither side provides
}

func newPair(o, e *partial) *pair {
	merged := &partial{res: translate.MergeSorted(o.res, e.res)}
	merged.versions = o.versions
	merged.versions.Endpoints = e.versions.Endpoints
	for i := range cacheTypes {
		src := o
		if len(o.anys[i]) == 0 && len(e.anys[i]) > 0 {
			src = e
		}
		merged.anys[i], merged.names[i], merged.enc[i] = src.anys[i], src.names[i], src.enc[i]
	}
	return &pair{merged: merged, needs: translate.Join(o.refs.Resolve(o.refs, e.refs), e.refs.Resolve(o.refs, e.refs))}
}

// combine joins a pair with the inbound side into one proxy config. A type
// only one side has reuses that side's resources (and version) as is, so
// replicas and proxies of one namespace share maps; other types get a
// merged map and a version hashed from the sides'. References are checked
// incrementally: the pair's leftovers against the inbound side, the
// inbound side's against everything.
func combine(pr *pair, o, e, in *partial) (*generated, []error, error) {
	fatal, dangling := translate.Join(pr.needs.Resolve(in.refs), in.refs.Resolve(o.refs, e.refs, in.refs)).Errors()
	if len(fatal) > 0 {
		return nil, nil, errors.Join(fatal...)
	}
	parts := []*partial{pr.merged, in}
	g := &generated{seq: genSeq.Add(1), res: translate.MergeSorted(pr.merged.res, in.res), parts: parts}
	var vs [4]string
	for i := range cacheTypes {
		with := withItems(parts, i)
		switch len(with) {
		case 0:
			vs[i] = parts[0].versions.List()[i]
		case 1:
			vs[i] = with[0].versions.List()[i]
			g.anys[i], g.names[i], g.enc[i] = with[0].anys[i], with[0].names[i], []*encoded{with[0].enc[i]}
		default:
			n := 0
			for _, p := range with {
				n += len(p.anys[i])
			}
			g.anys[i], g.names[i] = make([]*anypb.Any, 0, n), make([]string, 0, n)
			for _, p := range with {
				vs[i] = translate.CombineVersions(vs[i], p.versions.List()[i])
				g.anys[i] = append(g.anys[i], p.anys[i]...)
				g.names[i] = append(g.names[i], p.names[i]...)
				g.enc[i] = append(g.enc[i], p.enc[i])
			}
		}
	}
	g.versions = translate.Versions{Listeners: vs[0], Routes: vs[1], Clusters: vs[2], Endpoints: vs[3]}
	return g, dangling, nil
}

func withItems(parts []*partial, t int) []*partial {
	var with []*partial
	for _, p := range parts {
		if len(p.anys[t]) > 0 {
			with = append(with, p)
		}
	}
	return with
}

func names[T any](in []T, name func(T) string) []string {
	out := make([]string, len(in))
	for i, m := range in {
		out[i] = name(m)
	}
	return out
}

// byName indexes type t's packed resources by name (built on first use:
// only non-wildcard subscribers, e.g. proxyless gRPC, need it).
func (g *generated) byName(t int) map[string]*anypb.Any {
	g.once[t].Do(func() {
		m := make(map[string]*anypb.Any, len(g.anys[t]))
		for i, n := range g.names[t] {
			m[n] = g.anys[t][i]
		}
		g.index[t] = m
	})
	return g.index[t]
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

// fingerprintOf computes the proxy's scope and the cache keys of its three
// sides under ix: outbound config (clusters, listeners, routes), outbound
// endpoints, inbound.
func (s *Server) fingerprintOf(ix *translate.Index, p *mesh.Proxy) (sc *translate.Scope, keys [3]string) {
	sc = ix.Scope(p)
	keys = [3]string{"o:" + ix.OutboundConfigFingerprint(sc), "e:" + ix.EndpointsFingerprint(sc), "i:" + ix.InboundFingerprint(sc)}
	if s.cfg.Hooks.Fingerprint != nil {
		h := "/" + s.cfg.Hooks.Fingerprint(ix.Snapshot(), p)
		for i := range keys {
			keys[i] += h
		}
	}
	return sc, keys
}

// endpointSide is the index of the outbound endpoint side in
// fingerprintOf's keys; it is assembled from per-service parts
// (endpointSide) rather than generated whole.
const endpointSide = 1

// sideGenerators produce the three sides, in fingerprintOf's key order.
var sideGenerators = [3]func(*translate.Index, *translate.Scope, translate.Hooks) *translate.Resources{
	translate.GenerateOutboundConfig, translate.GenerateEndpoints, translate.GenerateInbound,
}

// cached runs f at most once per key among concurrent and later callers
// (until pruned).
func (s *Server) cached(key string, f func() (any, error)) (any, error) {
	s.mu.Lock()
	e := s.gens[key]
	if e == nil {
		e = &genEntry{}
		s.gens[key] = e
	}
	s.mu.Unlock()
	e.once.Do(func() { e.v, e.err = f() })
	return e.v, e.err
}

// generationFor returns the proxy's config: each side generated and
// validated once per side fingerprint, combined once per key triple.
func (s *Server) generationFor(ix *translate.Index, sc *translate.Scope, keys [3]string) (*generated, error) {
	side := func(i int) (*partial, error) {
		v, err := s.cached(keys[i], func() (any, error) {
			if i == endpointSide {
				return s.endpointSide(ix, sc, keys[i])
			}
			res := sideGenerators[i](ix, sc, s.cfg.Hooks)
			if err := res.ValidateEach(); err != nil { // references are checked once the sides are combined
				return nil, fmt.Errorf("generate config for proxy %s: %w", s.clip(sc.Proxy.ID), err)
			}
			return newPartial(res), nil
		})
		if err != nil {
			return nil, err
		}
		return v.(*partial), nil
	}
	v, err := s.cached(strings.Join(keys[:], "|"), func() (any, error) {
		var parts [3]*partial
		for i := range keys {
			p, err := side(i)
			if err != nil {
				return nil, err
			}
			parts[i] = p
		}
		pv, _ := s.cached(pairKey(keys[0], keys[1]), func() (any, error) { return newPair(parts[0], parts[1]), nil })
		g, dangling, err := combine(pv.(*pair), parts[0], parts[1], parts[2])
		if err != nil {
			return nil, fmt.Errorf("generate config for proxy %s: %w", s.clip(sc.Proxy.ID), err)
		}
		// Once per combined config, not per proxy refresh.
		if len(dangling) > 0 {
			s.log.Warn("routes name clusters the proxy does not have", "proxy", s.clip(sc.Proxy.ID), "err", errors.Join(dangling...))
		}
		return g, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*generated), nil
}

// pairKey is the cache key of an outbound config and endpoints pair.
func pairKey(o, e string) string { return "p:" + o + "|" + e }

// refresh recomputes one proxy under ix and hands the result to the cache
// when it changed. since is when the config change reached the server.
func (s *Server) refresh(ix *translate.Index, seq uint64, c *conn, since time.Time) {
	// One refresh per proxy at a time, and never an older index after a
	// newer one (a connect-time refresh can race a push).
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if seq < c.seq {
		return
	}
	c.seq = seq
	sc, keys := s.fingerprintOf(ix, c.proxy)
	s.logRefused(c, sc.Refused, ix.Snapshot().Mesh().TrustDomain)
	fp := strings.Join(keys[:], "|")
	s.mu.Lock()
	same := fp == c.fingerprint && c.gen != nil
	s.mu.Unlock()
	if same {
		return
	}
	g, err := s.generationFor(ix, sc, keys)
	if err != nil {
		s.m.genErrors.Inc()
		s.log.Error("config not pushed: generated resources are invalid; proxy keeps its previous config", "proxy", s.clip(c.node), "connection", s.clip(c.id), "err", err)
		return
	}
	s.mu.Lock()
	if s.conns[c.id] != c {
		s.mu.Unlock()
		return // disconnected meanwhile
	}
	c.fingerprint, c.prev, c.gen = fp, c.gen, g
	for _, url := range typeURLs {
		st := c.status[url]
		if v := g.version(url); v != st.Acked && v != st.Pending {
			st.Pending, st.PendingSince = v, since
		}
	}
	s.mu.Unlock()
	if err := s.watch.set(c.id, g); err != nil {
		s.log.Error("set snapshot", "proxy", s.clip(c.node), "connection", s.clip(c.id), "err", err)
	}
}

// maxRefusedLogged bounds the claims remembered per connection.
const maxRefusedLogged = 64

// logRefused logs, once per connection, each workload at the proxy's IPs
// that backs a service of its namespace under another identity: Ward does
// not let the proxy serve it (mesh.Snapshot.ProxyServices), where Istio
// would. Called with c.refreshMu held.
func (s *Server) logRefused(c *conn, refused []mesh.Claim, td string) {
	for _, r := range refused {
		key := r.Service.Namespace + "/" + r.Service.Hostname + "|" + r.Workload.Address + "|" + r.Workload.Identity("").Principal()
		if c.refused[key] || len(c.refused) >= maxRefusedLogged {
			continue
		}
		if c.refused == nil {
			c.refused = map[string]bool{}
		}
		c.refused[key] = true
		s.log.Warn("proxy not given a service whose endpoint is at its IP: the endpoint runs as another identity",
			"proxy", s.clip(c.node), "connection", s.clip(c.id), "namespace", r.Service.Namespace, "service", r.Service.Hostname,
			"address", r.Workload.Address, "endpoint_identity", r.Workload.Identity(td).String(), "proxy_identity", c.proxy.Identity(td).String())
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
	s.warnConfig(ix)
	s.mu.Lock()
	s.seq++
	seq := s.seq
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
				s.refresh(ix, seq, c, since)
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
	keep := s.pruneLocked()
	s.watch.prune(keep) // after s.mu is released: the watcher takes w.mu before s.mu
}

// pruneLocked drops unused cache entries and returns the configs still
// held by proxies.
func (s *Server) pruneLocked() map[uint64]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	used := map[string]bool{}
	keep := map[uint64]bool{}
	for _, c := range s.conns {
		if c.gen != nil {
			keep[c.gen.seq] = true
		}
		if c.prev != nil {
			keep[c.prev.seq] = true
		}
		used[c.fingerprint] = true
		if ks := strings.Split(c.fingerprint, "|"); len(ks) == 3 {
			used[pairKey(ks[0], ks[1])] = true
		}
		for _, k := range strings.Split(c.fingerprint, "|") {
			used[k] = true
			for _, pk := range s.partsOf[k] {
				used[pk] = true
			}
		}
	}
	for fp := range s.gens {
		if !used[fp] {
			delete(s.gens, fp)
		}
	}
	for k := range s.partsOf {
		if !used[k] {
			delete(s.partsOf, k)
		}
	}
	return keep
}

// current returns the config last handed out on connection key, or nil.
func (s *Server) current(key string) *generated {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[key]; c != nil {
		return c.gen
	}
	return nil
}

// latestOf returns the most recent connection of node id, or nil; s.mu
// must be held. Debug pages look proxies up by node id.
func (s *Server) latestOf(node string) *conn {
	var latest *conn
	for _, c := range s.conns {
		if c.node == node && (latest == nil || c.connectedAt.After(latest.connectedAt) || (c.connectedAt.Equal(latest.connectedAt) && c.id > latest.id)) {
			latest = c
		}
	}
	return latest
}

// warnConfig logs configuration that has no effect (Istio ignores it
// too), once per change of the set of warnings.
func (s *Server) warnConfig(ix *translate.Index) {
	ws := ix.LocalityWarnings()
	msgs := make([]string, len(ws))
	for i, w := range ws {
		msgs[i] = w.Error()
	}
	key := strings.Join(msgs, "\n")
	if key == s.lastWarnings {
		return
	}
	s.lastWarnings = key
	for _, w := range ws {
		s.log.Warn("config has no effect", "err", w)
	}
}
