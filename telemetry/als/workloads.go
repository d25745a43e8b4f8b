package als

import (
	"sort"
	"strings"
)

// Workload is what Metrics learns of a workload from the mesh: its name,
// namespace, service account, labels and the services it backs.
type Workload struct {
	Name           string
	Namespace      string
	ServiceAccount string
	Labels         map[string]string
	Services       []Service
}

// Service is a mesh service: its host and namespace.
type Service struct {
	Host      string
	Namespace string
}

// Name is Istio's destination_service_name of the service: the first
// label of a Kubernetes host (<name>.<namespace>.svc...), else the host
// (a ServiceEntry's name in Istio's service model is its host).
func (s Service) Name() string {
	if name, ok := s.kubeName(); ok {
		return name
	}
	return s.Host
}

// kubeName is the name of a Kubernetes host <name>.<namespace>.svc...
func (s Service) kubeName() (string, bool) {
	name, rest, ok := strings.Cut(s.Host, ".")
	if !ok || s.Namespace == "" {
		return "", false
	}
	rest, ok = strings.CutPrefix(rest, s.Namespace)
	return name, ok && (rest == ".svc" || strings.HasPrefix(rest, ".svc."))
}

// peer is the workload labels of one principal; "" is not known.
type peer struct{ workload, canonical, revision, app, version string }

// directory is what Metrics knows of the mesh, replaced whole by
// SetWorkloads.
type directory struct {
	peers    map[string]peer      // principal → workload labels
	services map[string][]Service // principal → services its workloads back, by host
	hosts    map[string]Service   // host → service
}

// SetWorkloads replaces what Metrics knows of the mesh's workloads, so
// that records name their source and destination workloads
// (source_workload, destination_workload), canonical services and
// revisions, apps and versions as Istio's do, and the services they were
// addressed to (Resolve). A record carries only SPIFFE IDs, so a label
// is set only when every workload of the identity
// spiffe://<trustDomain>/ns/<ns>/sa/<sa> agrees on its value; otherwise,
// and for identities of other trust domains, it stays "unknown". Safe to
// call while records are counted.
func (m *Metrics) SetWorkloads(trustDomain string, ws []Workload) {
	d := &directory{peers: map[string]peer{}, services: map[string][]Service{}, hosts: map[string]Service{}}
	seen := map[string]bool{}
	for _, w := range ws {
		for _, s := range w.Services {
			d.hosts[s.Host] = s
		}
		if w.Namespace == "" || w.ServiceAccount == "" {
			continue
		}
		id := "spiffe://" + trustDomain + "/ns/" + w.Namespace + "/sa/" + w.ServiceAccount
		d.services[id] = append(d.services[id], w.Services...)
		p := workloadPeer(w)
		if !seen[id] {
			seen[id], d.peers[id] = true, p
			continue
		}
		d.peers[id] = agree(d.peers[id], p)
	}
	for id, ss := range d.services {
		d.services[id] = uniqueByHost(ss)
	}
	m.dir.Store(d)
}

func workloadPeer(w Workload) peer {
	return peer{
		workload:  w.Name,
		canonical: firstLabel(w.Labels, w.Name, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app"),
		revision:  firstLabel(w.Labels, "latest", "service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"),
		app:       w.Labels["app"],
		version:   w.Labels["version"],
	}
}

// agree keeps the labels two workloads of one identity share.
func agree(a, b peer) peer {
	same := func(x, y string) string {
		if x != y {
			return ""
		}
		return x
	}
	return peer{same(a.workload, b.workload), same(a.canonical, b.canonical), same(a.revision, b.revision),
		same(a.app, b.app), same(a.version, b.version)}
}

// firstLabel is the value of the first of keys set in labels, else def:
// Istio's default canonical service (label
// service.istio.io/canonical-name, else app.kubernetes.io/name, else app,
// else the workload's name) and revision (…/canonical-revision, else
// app.kubernetes.io/version, else version, else "latest").
func firstLabel(labels map[string]string, def string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return def
}

func uniqueByHost(ss []Service) []Service {
	sort.Slice(ss, func(i, j int) bool { return ss[i].Host < ss[j].Host })
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s.Host != ss[i-1].Host {
			out = append(out, s)
		}
	}
	return out
}
