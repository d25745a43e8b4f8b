package als

// Workload is what Metrics learns of a workload from the mesh: its name,
// namespace, service account and labels.
type Workload struct {
	Name           string
	Namespace      string
	ServiceAccount string
	Labels         map[string]string
}

// peer is the workload labels of one principal; "" is not known.
type peer struct{ workload, canonical string }

func (p peer) orUnknown() peer {
	return peer{orUnknown(p.workload), orUnknown(p.canonical)}
}

// SetWorkloads replaces what Metrics knows of the mesh's workloads, so
// that records name their source and destination workloads
// (source_workload, destination_workload) and canonical services
// (source_canonical_service, destination_canonical_service) as Istio's
// do. A record carries only SPIFFE IDs, so a label is set only when
// every workload of the identity spiffe://<trustDomain>/ns/<ns>/sa/<sa>
// agrees on its value; otherwise, and for identities of other trust
// domains, it stays "unknown". Safe to call while records are counted.
func (m *Metrics) SetWorkloads(trustDomain string, ws []Workload) {
	peers := map[string]peer{}
	seen := map[string]bool{}
	for _, w := range ws {
		if w.Namespace == "" || w.ServiceAccount == "" {
			continue
		}
		id := "spiffe://" + trustDomain + "/ns/" + w.Namespace + "/sa/" + w.ServiceAccount
		p := peer{w.Name, canonicalService(w)}
		if !seen[id] {
			seen[id], peers[id] = true, p
			continue
		}
		peers[id] = agree(peers[id], p)
	}
	m.peers.Store(&peers)
}

// agree keeps the labels two workloads of one identity share.
func agree(a, b peer) peer {
	if a.workload != b.workload {
		a.workload = ""
	}
	if a.canonical != b.canonical {
		a.canonical = ""
	}
	return a
}

// canonicalService is Istio's default canonical service of a workload:
// the service.istio.io/canonical-name label, else app.kubernetes.io/name,
// else app, else the workload's name.
func canonicalService(w Workload) string {
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := w.Labels[k]; v != "" {
			return v
		}
	}
	return w.Name
}
