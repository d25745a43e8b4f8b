package mesh

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash"
	"sort"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// Snapshot is an immutable view of all mesh config and the service registry
// derived from it, with indexes by kind, namespace, key and host. Build one
// with NewSnapshot; never modify anything reachable from it.
type Snapshot struct {
	mesh    MeshConfig
	version string

	byKind   map[Kind][]*Config
	byKindNS map[Kind]map[string][]*Config
	byKey    map[Key]*Config

	services       []*Service
	servicesByHost map[string][]*Service
	servicesByNS   map[string][]*Service
	members        map[*Service][]*Workload
	workloads      []*Workload
	workloadsByNS  map[string][]*Workload
	byIP           map[string][]ipMember // every service member by address
}

// NewSnapshot indexes configs under mesh config m (defaulted). It takes
// ownership of configs: the caller must not modify them afterwards.
// Duplicate keys keep the last occurrence.
func NewSnapshot(m MeshConfig, configs []*Config) *Snapshot {
	s := &Snapshot{
		mesh:     m.WithDefaults(),
		byKind:   map[Kind][]*Config{},
		byKindNS: map[Kind]map[string][]*Config{},
		byKey:    make(map[Key]*Config, len(configs)),
	}
	for _, c := range configs {
		s.byKey[c.Key()] = c
	}
	for _, c := range s.byKey {
		s.byKind[c.Kind] = append(s.byKind[c.Kind], c)
	}
	for k, list := range s.byKind {
		sortByName(list)
		ns := map[string][]*Config{}
		for _, c := range list {
			ns[c.Namespace] = append(ns[c.Namespace], c)
		}
		s.byKindNS[k] = ns
	}
	s.buildRegistry()
	s.version = s.hash()
	return s
}

func sortByName(list []*Config) {
	sort.Slice(list, func(i, j int) bool {
		if list[i].Namespace != list[j].Namespace {
			return list[i].Namespace < list[j].Namespace
		}
		return list[i].Name < list[j].Name
	})
}

func (s *Snapshot) buildRegistry() {
	s.servicesByHost = map[string][]*Service{}
	s.servicesByNS = map[string][]*Service{}
	s.members = map[*Service][]*Workload{}
	s.workloadsByNS = map[string][]*Workload{}
	s.byIP = map[string][]ipMember{}
	for _, c := range s.byKind[KindWorkloadEntry] {
		w := workloadFromEntry(c.Namespace, c.Name, c.Spec.(*networking.WorkloadEntry), c.Key())
		s.workloads = append(s.workloads, w)
		s.workloadsByNS[c.Namespace] = append(s.workloadsByNS[c.Namespace], w)
	}
	for _, c := range s.byKind[KindServiceEntry] {
		se := c.Spec.(*networking.ServiceEntry)
		members := s.entryMembers(c, se)
		for _, svc := range servicesFromEntry(c, se) {
			s.services = append(s.services, svc)
			s.servicesByHost[svc.Hostname] = append(s.servicesByHost[svc.Hostname], svc)
			s.servicesByNS[svc.Namespace] = append(s.servicesByNS[svc.Namespace], svc)
			s.members[svc] = members
			s.indexByIP(svc, members)
		}
	}
	sort.SliceStable(s.services, func(i, j int) bool { return serviceLess(s.services[i], s.services[j]) })
	for _, list := range s.servicesByHost {
		sort.SliceStable(list, func(i, j int) bool { return olderService(list[i], list[j]) })
	}
}

func (s *Snapshot) entryMembers(c *Config, se *networking.ServiceEntry) []*Workload {
	if sel := se.GetWorkloadSelector(); sel != nil {
		var out []*Workload
		for _, w := range s.workloadsByNS[c.Namespace] {
			if Selector(sel.GetLabels()).Matches(w.Labels) {
				out = append(out, w)
			}
		}
		return out
	}
	out := make([]*Workload, 0, len(se.GetEndpoints()))
	for _, we := range se.GetEndpoints() {
		out = append(out, workloadFromEntry(c.Namespace, "", we, c.Key()))
	}
	return out
}

func serviceLess(a, b *Service) bool {
	if a.Hostname != b.Hostname {
		return a.Hostname < b.Hostname
	}
	return a.Namespace < b.Namespace
}

func olderService(a, b *Service) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return serviceLess(a, b)
}

// hash computes the content hash over the mesh config and every object.
func (s *Snapshot) hash() string {
	h := sha256.New()
	mc, _ := json.Marshal(s.mesh)
	writeField(h, mc)
	keys := make([]Key, 0, len(s.byKey))
	for k := range s.byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	opts := proto.MarshalOptions{Deterministic: true}
	for _, k := range keys {
		c := s.byKey[k]
		writeField(h, []byte(k.String()))
		writeMap(h, c.Labels)
		writeMap(h, c.Annotations)
		ts, _ := c.CreationTimestamp.MarshalBinary()
		writeField(h, ts)
		spec, _ := opts.Marshal(c.Spec)
		writeField(h, spec)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func keyLess(a, b Key) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// writeField writes a length-prefixed field so that adjacent fields cannot
// run into each other and collide.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

func writeMap(h hash.Hash, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	writeField(h, []byte{byte(len(keys))})
	for _, k := range keys {
		writeField(h, []byte(k))
		writeField(h, []byte(m[k]))
	}
}

// Version is the snapshot's content hash: equal configs give equal versions.
func (s *Snapshot) Version() string { return s.version }

// Mesh returns the defaulted mesh config.
func (s *Snapshot) Mesh() MeshConfig { return s.mesh }

// Len returns the number of config objects.
func (s *Snapshot) Len() int { return len(s.byKey) }

// All returns every config of kind k, sorted by namespace and name.
func (s *Snapshot) All(k Kind) []*Config { return s.byKind[k] }

// InNamespace returns the configs of kind k in namespace ns, sorted by name.
func (s *Snapshot) InNamespace(k Kind, ns string) []*Config { return s.byKindNS[k][ns] }

// Get returns one config by key.
func (s *Snapshot) Get(k Key) (*Config, bool) {
	c, ok := s.byKey[k]
	return c, ok
}

// Keys returns every key, sorted by kind, namespace and name.
func (s *Snapshot) Keys() []Key {
	keys := make([]Key, 0, len(s.byKey))
	for k := range s.byKey {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	return keys
}

// Namespaces returns every namespace that holds config, sorted.
func (s *Snapshot) Namespaces() []string {
	set := map[string]bool{}
	for k := range s.byKey {
		set[k.Namespace] = true
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

// Services returns every service, sorted by hostname then namespace.
func (s *Snapshot) Services() []*Service { return s.services }

// ServicesInNamespace returns the services declared in ns.
func (s *Snapshot) ServicesInNamespace(ns string) []*Service { return s.servicesByNS[ns] }

// ServicesByHost returns the services for a hostname, oldest first (Istio's
// precedence when several namespaces declare one host).
func (s *Snapshot) ServicesByHost(host string) []*Service { return s.servicesByHost[host] }

// Workloads returns every WorkloadEntry workload, sorted by namespace/name.
func (s *Snapshot) Workloads() []*Workload { return s.workloads }

// WorkloadsInNamespace returns the WorkloadEntry workloads of ns.
func (s *Snapshot) WorkloadsInNamespace(ns string) []*Workload { return s.workloadsByNS[ns] }

// Members returns the workloads backing a service.
func (s *Snapshot) Members(svc *Service) []*Workload { return s.members[svc] }

// Endpoints returns the endpoints of svc for service port p, resolving each
// workload's target port.
func (s *Snapshot) Endpoints(svc *Service, p Port) []Endpoint {
	ws := s.members[svc]
	out := make([]Endpoint, 0, len(ws))
	for _, w := range ws {
		out = append(out, Endpoint{Workload: w, Port: targetPort(w, p)})
	}
	return out
}

// ServicesForWorkload returns the services whose endpoints include a
// workload in namespace ns with labels l (selector-based ServiceEntries).
func (s *Snapshot) ServicesForWorkload(ns string, l Labels) []*Service {
	var out []*Service
	for _, svc := range s.servicesByNS[ns] {
		if svc.WorkloadSelector != nil && svc.WorkloadSelector.Matches(l) {
			out = append(out, svc)
		}
	}
	return out
}
