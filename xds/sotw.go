package xds

import (
	"bytes"
	"strconv"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// watcher is the cache the go-control-plane server reads. State-of-the-
// world and delta watches are answered here from resources marshalled once
// per shared config side (go-control-plane's snapshot cache marshals every
// resource again for every response, which dominated CPU at 2,000
// proxies), and the responses are sent as shared bytes (encode.go). It
// also never re-sends a version the proxy just rejected: go-control-plane
// would answer the NACK, which carries the old version, with the same
// config in a loop. (The embedded snapshot cache only answers unary
// fetches, which the callbacks refuse.)
type watcher struct {
	cachev3.SnapshotCache
	s *Server

	mu      sync.Mutex
	nextID  int64
	watches map[string]map[int64]*sotwWatch // node → watches
	// sent remembers configs recently sent, by generated.seq, so endpoint
	// and route responses can carry only what changed since the stream's
	// last response (see respond). Pruned after every push.
	sent map[uint64]*generated
	// diffs caches wildcard incremental responses by (previous config,
	// current config, type): proxies sharing configs share the diff.
	diffs map[diffKey]*encoded
	// deltaWatches are the parked delta watches, by node (see delta.go).
	deltaWatches map[string]map[int64]*deltaWatch
}

type diffKey struct {
	prev, cur uint64
	t         int
}

// sentinel is the one ReturnedResources key Ward uses for EDS and RDS: it
// names the config last sent on the stream instead of listing thousands
// of resource names per stream.
const sentinel = "\x00ward-config"

type sotwWatch struct {
	req *cachev3.Request
	sub cachev3.Subscription
	ch  chan cachev3.Response
}

var _ cachev3.Cache = (*watcher)(nil)

func newWatcher(s *Server) *watcher {
	return &watcher{SnapshotCache: s.cache, s: s, watches: map[string]map[int64]*sotwWatch{}, sent: map[uint64]*generated{}, diffs: map[diffKey]*encoded{}, deltaWatches: map[string]map[int64]*deltaWatch{}}
}

// CreateWatch answers at once when the proxy lacks the current version (or
// newly subscribed names), else parks the watch until set.
func (w *watcher) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	node := req.GetNode().GetId()
	w.mu.Lock()
	g := w.s.current(node)
	if resp := w.respond(g, req, sub); resp != nil {
		w.mu.Unlock()
		ch <- resp // buffered by the server: one slot per type
		return func() {}, nil
	}
	w.nextID++
	id := w.nextID
	if w.watches[node] == nil {
		w.watches[node] = map[int64]*sotwWatch{}
	}
	w.watches[node][id] = &sotwWatch{req: req, sub: sub, ch: ch}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.watches[node], id)
		if len(w.watches[node]) == 0 {
			delete(w.watches, node)
		}
		w.mu.Unlock()
	}, nil
}

// set hands a node's new config to its parked watches, state of the
// world and delta.
func (w *watcher) set(node string, g *generated) error {
	w.mu.Lock()
	var out []func()
	for id, wt := range w.watches[node] {
		if resp := w.respond(g, wt.req, wt.sub); resp != nil {
			delete(w.watches[node], id)
			ch := wt.ch
			out = append(out, func() { ch <- resp })
		}
	}
	for id, wt := range w.deltaWatches[node] {
		if resp := respondDelta(w.s.enc, g, wt.req, wt.sub); resp != nil {
			delete(w.deltaWatches[node], id)
			ch := wt.ch
			out = append(out, func() { ch <- resp })
		}
	}
	w.mu.Unlock()
	for _, f := range out {
		f()
	}
	return nil
}

// respond builds the response a watch needs now, or nil. w.mu is held.
func (w *watcher) respond(g *generated, req *cachev3.Request, sub cachev3.Subscription) cachev3.Response {
	if g == nil {
		return nil
	}
	url := req.GetTypeUrl()
	t := typeIndex(url)
	if t < 0 {
		return nil
	}
	version := g.version(url)
	if req.GetErrorDetail() != nil && w.s.rejectedCurrent(req.GetNode().GetId(), url) == version {
		return nil // hold: the proxy rejected exactly this version
	}
	wildcard := sub.IsWildcard()
	incremental := url == resource.EndpointType || url == resource.RouteType
	var prev *generated
	if incremental {
		if id, err := strconv.ParseUint(sub.ReturnedResources()[sentinel], 10, 64); err == nil {
			prev = w.sent[id]
		}
	}
	if req.GetVersionInfo() == version && !w.newNames(g, prev, t, sub, wildcard, incremental) {
		return nil
	}
	resp := &discovery.DiscoveryResponse{VersionInfo: version, TypeUrl: url}
	var returned map[string]string
	var enc []*encoded // what resp.Resources are made of, if shared
	switch {
	case incremental:
		// Endpoints and routes are not full-state in SotW: send only what
		// is new or changed since the config last sent on this stream
		// (everything when unknown), as Istio's incremental EDS does.
		byName := g.byName(t)
		var prevByName map[string]*anypb.Any
		if prev != nil {
			prevByName = prev.byName(t)
		}
		add := func(name string, a *anypb.Any) {
			if old, ok := prevByName[name]; !ok || (old != a && !bytes.Equal(old.GetValue(), a.GetValue())) {
				resp.Resources = append(resp.Resources, a)
			}
		}
		switch {
		case wildcard && prev == nil:
			resp.Resources, enc = g.anys[t], g.enc[t] // everything
		case wildcard:
			key := diffKey{prev: prev.seq, cur: g.seq, t: t}
			d, ok := w.diffs[key]
			if !ok {
				for i, name := range g.names[t] {
					add(name, g.anys[t][i])
				}
				d = newEncoded(resp.Resources)
				w.diffs[key] = d
			}
			resp.Resources, enc = d.anys, []*encoded{d}
		default:
			for name := range sub.SubscribedResources() {
				if a, ok := byName[name]; ok {
					add(name, a)
				}
			}
		}
		returned = map[string]string{sentinel: strconv.FormatUint(g.seq, 10)}
		w.sent[g.seq] = g
	case wildcard:
		resp.Resources, enc = g.anys[t], g.enc[t]
	default:
		returned = map[string]string{}
		byName := g.byName(t)
		for name := range sub.SubscribedResources() {
			if a, ok := byName[name]; ok {
				resp.Resources = append(resp.Resources, a)
				returned[name] = version
			}
		}
	}
	if enc != nil {
		w.s.enc.attach(resp, enc)
	}
	return &cachev3.PassthroughResponse{Request: req, DiscoveryResponse: resp, ReturnedResources: returned}
}

// newNames reports subscribed resources that exist but were not returned
// on this stream.
func (w *watcher) newNames(g, prev *generated, t int, sub cachev3.Subscription, wildcard, incremental bool) bool {
	if wildcard {
		return false
	}
	known := sub.ReturnedResources()
	var prevByName map[string]*anypb.Any
	if incremental && prev != nil {
		prevByName = prev.byName(t)
	}
	byName := g.byName(t)
	for name := range sub.SubscribedResources() {
		_, ok := known[name]
		if incremental {
			_, ok = prevByName[name]
		}
		if !ok {
			if _, exists := byName[name]; exists {
				return true
			}
		}
	}
	return false
}

// prune forgets sent configs no connected proxy holds.
func (w *watcher) prune(keep map[uint64]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.sent {
		if !keep[id] {
			delete(w.sent, id)
		}
	}
	for k := range w.diffs {
		if !keep[k.prev] || !keep[k.cur] {
			delete(w.diffs, k)
		}
	}
}

func typeIndex(url string) int {
	for i, u := range typeURLs {
		if u == url {
			return i
		}
	}
	return -1
}

// marshalAll packs resources once; the Anys are shared read-only by every
// response that carries them.
func marshalAll[T proto.Message](in []T) []*anypb.Any {
	out := make([]*anypb.Any, len(in))
	for i, m := range in {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			panic("xds: marshal generated resource: " + err.Error()) // validated protos always marshal
		}
		out[i] = &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}
	}
	return out
}
