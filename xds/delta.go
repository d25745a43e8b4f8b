package xds

import (
	"slices"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Delta xDS is answered here, like state of the world, from the resources
// each config side marshalled once, with per-resource versions hashed once
// per side (encoded.versions) and shared by every proxy holding the side.
// (go-control-plane's snapshot cache marshals every resource of every
// delta response again and hashes every resource of every proxy's
// snapshot, and needs a per-proxy copy of each resource map.) The response
// logic is go-control-plane's createDeltaResponse: changed or new
// resources, removals of what the stream holds that no longer exists, and
// an empty first answer to a wildcard subscription.

type deltaWatch struct {
	req *cachev3.DeltaRequest
	sub cachev3.Subscription
	ch  chan cachev3.DeltaResponse
}

// CreateDeltaWatch answers at once when the stream lacks something it
// subscribed to, else parks the watch until set.
func (w *watcher) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	node := req.GetNode().GetId()
	w.mu.Lock()
	if resp := respondDelta(w.s.enc, w.s.current(node), req, sub); resp != nil {
		w.mu.Unlock()
		ch <- resp // buffered by the server: two slots per type
		return func() {}, nil
	}
	w.nextID++
	id := w.nextID
	if w.deltaWatches[node] == nil {
		w.deltaWatches[node] = map[int64]*deltaWatch{}
	}
	w.deltaWatches[node][id] = &deltaWatch{req: req, sub: sub, ch: ch}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.deltaWatches[node], id)
		if len(w.deltaWatches[node]) == 0 {
			delete(w.deltaWatches, node)
		}
		w.mu.Unlock()
	}, nil
}

// respondDelta builds the delta response a watch needs for g, or nil.
func respondDelta(enc *encoder, g *generated, req *cachev3.DeltaRequest, sub cachev3.Subscription) cachev3.DeltaResponse {
	if g == nil {
		return nil
	}
	url := req.GetTypeUrl()
	t := typeIndex(url)
	if t < 0 {
		return nil
	}
	returned, subscribed, wildcard := sub.ReturnedResources(), sub.SubscribedResources(), sub.IsWildcard()
	next := map[string]string{}
	resp := &discovery.DeltaDiscoveryResponse{TypeUrl: url, SystemVersionInfo: g.version(url)}
	g.eachResource(t, func(name string, a *anypb.Any, version string) {
		if _, ok := subscribed[name]; !ok && !wildcard {
			return
		}
		next[name] = version
		if v, ok := returned[name]; !ok || v != version {
			resp.Resources = append(resp.Resources, &discovery.Resource{Name: name, Version: version, Resource: a})
		}
	})
	for name := range returned {
		_, asked := subscribed[name]
		if _, ok := next[name]; !ok && (wildcard || asked) {
			resp.RemovedResources = append(resp.RemovedResources, name)
		}
	}
	slices.Sort(resp.RemovedResources)
	if len(resp.Resources) == 0 && len(resp.RemovedResources) == 0 && !(wildcard && req.GetResponseNonce() == "") {
		return nil
	}
	if len(resp.Resources) == len(g.anys[t]) {
		enc.attachDelta(resp, g.enc[t]) // everything, in order: shared bytes
	}
	return &cachev3.DeltaPassthroughResponse{DeltaRequest: req, DeltaDiscoveryResponse: resp, NextVersionMap: next}
}

// eachResource calls f for every resource of type t in g, in name order
// within each side, with its per-resource version.
func (g *generated) eachResource(t int, f func(name string, a *anypb.Any, version string)) {
	i := 0
	for _, e := range g.enc[t] {
		vs := e.resourceVersions()
		for j, a := range e.anys {
			f(g.names[t][i], a, vs[j])
			i++
		}
	}
}
