package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// Resources is everything generated for one proxy.
type Resources struct {
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
}

// sort orders every list by resource name so output is deterministic.
func (r *Resources) sort() {
	sort.Slice(r.Listeners, func(i, j int) bool { return r.Listeners[i].GetName() < r.Listeners[j].GetName() })
	sort.Slice(r.Routes, func(i, j int) bool { return r.Routes[i].GetName() < r.Routes[j].GetName() })
	sort.Slice(r.Clusters, func(i, j int) bool { return r.Clusters[i].GetName() < r.Clusters[j].GetName() })
	sort.Slice(r.Endpoints, func(i, j int) bool { return r.Endpoints[i].GetClusterName() < r.Endpoints[j].GetClusterName() })
}

// Versions are the content hashes of each resource type.
type Versions struct {
	Listeners, Routes, Clusters, Endpoints string
}

// Versions hashes each type's resources: equal content, equal version.
func (r *Resources) Versions() Versions {
	return Versions{
		Listeners: hashList(len(r.Listeners), func(i int) proto.Message { return r.Listeners[i] }),
		Routes:    hashList(len(r.Routes), func(i int) proto.Message { return r.Routes[i] }),
		Clusters:  hashList(len(r.Clusters), func(i int) proto.Message { return r.Clusters[i] }),
		Endpoints: hashList(len(r.Endpoints), func(i int) proto.Message { return r.Endpoints[i] }),
	}
}

func hashList(n int, at func(int) proto.Message) string {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	for i := 0; i < n; i++ {
		buf, _ = opts.MarshalAppend(buf[:0], at(i))
		var l [4]byte
		l[0], l[1], l[2], l[3] = byte(len(buf)>>24), byte(len(buf)>>16), byte(len(buf)>>8), byte(len(buf))
		h.Write(l[:])
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil)[:10])
}

// List returns the versions in listener, route, cluster, endpoint order.
func (v Versions) List() [4]string { return [4]string{v.Listeners, v.Routes, v.Clusters, v.Endpoints} }

// CombineVersions derives the version of a type whose resources come from
// two separately versioned parts.
func CombineVersions(a, b string) string { return hashStrings(a, b) }
