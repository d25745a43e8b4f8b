package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/wardmesh/ward/xds/translate"
)

// svcEndpoints is one service's endpoint sets for one EndpointPart key:
// generated, validated, hashed and marshalled once, and reused by every
// endpoint side (of this snapshot and later ones) holding the same key.
type svcEndpoints struct {
	clas []*endpoint.ClusterLoadAssignment // sorted by cluster name
	anys []*anypb.Any
	hash string
}

// endpointSide assembles the proxy's outbound endpoint side from
// per-service parts. A WorkloadEntry change alters one service's part key,
// so only that service's endpoint sets are generated, validated and
// marshalled again; the others come from the cache, where they stay while
// a live endpoint side uses them (pruneLocked). key is the side's own cache
// key.
func (s *Server) endpointSide(ix *translate.Index, sc *translate.Scope, key string) (*partial, error) {
	parts := ix.EndpointParts(sc)
	keys := make([]string, len(parts))
	sets := make([]*svcEndpoints, len(parts))
	for i, p := range parts {
		keys[i] = "s:" + p.Key
		v, err := s.cached(keys[i], func() (any, error) {
			res := &translate.Resources{Endpoints: translate.GenerateServiceEndpoints(ix, sc, p.Service)}
			if err := res.ValidateEach(); err != nil {
				return nil, fmt.Errorf("generate endpoints of %s for proxy %s: %w", p.Service.Hostname, sc.Proxy.ID, err)
			}
			return &svcEndpoints{clas: res.Endpoints, anys: marshalAll(res.Endpoints), hash: res.Versions().Endpoints}, nil
		})
		if err != nil {
			return nil, err
		}
		sets[i] = v.(*svcEndpoints)
	}
	s.mu.Lock()
	s.partsOf[key] = keys
	s.mu.Unlock()
	return assembleEndpoints(sets), nil
}

// assembleEndpoints joins per-service endpoint sets into one side, in
// cluster name order, versioned by the parts' hashes.
func assembleEndpoints(sets []*svcEndpoints) *partial {
	type item struct {
		cla *endpoint.ClusterLoadAssignment
		any *anypb.Any
	}
	var items []item
	h := sha256.New()
	for _, set := range sets {
		h.Write([]byte(set.hash))
		h.Write([]byte{0})
		for i, cla := range set.clas {
			items = append(items, item{cla, set.anys[i]})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].cla.GetClusterName() < items[j].cla.GetClusterName() })
	res := &translate.Resources{Endpoints: make([]*endpoint.ClusterLoadAssignment, len(items))}
	p := &partial{res: res, versions: (&translate.Resources{}).Versions()}
	p.versions.Endpoints = hex.EncodeToString(h.Sum(nil)[:10])
	p.anys[3], p.names[3] = make([]*anypb.Any, len(items)), make([]string, len(items))
	for i, it := range items {
		res.Endpoints[i], p.anys[3][i], p.names[3][i] = it.cla, it.any, it.cla.GetClusterName()
	}
	p.refs = res.Refs()
	p.encodeLazily()
	return p
}
