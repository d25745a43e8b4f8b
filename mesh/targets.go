package mesh

// Claim is a workload at one of a proxy's IPs that backs a service in the
// proxy's namespace but runs as another identity: the proxy may not serve
// it (see ProxyServices).
type Claim struct {
	Service  *Service
	Workload *Workload
}

// ipMember is one workload backing a service, indexed by its address.
type ipMember struct {
	svc *Service
	w   *Workload
}

// Runs reports whether proxy p runs workload w: w's address is one of
// p's IPs and w's identity (namespace, service account defaulting to
// "default") is p's. The identity is what pins the match: a proxy's IPs
// are its own claim, its identity is its certificate's.
func (p *Proxy) Runs(w *Workload) bool {
	return p.hasIP(w.Address) && p.Identity("") == w.Identity("")
}

func (p *Proxy) hasIP(ip string) bool {
	for _, a := range p.IPs {
		if a == ip {
			return true
		}
	}
	return false
}

// ProxyServices returns the services proxy p serves (its service
// targets, in Istio's words), each once:
//
//   - the services of p's namespace whose workloadSelector matches p's
//     labels (ServicesForWorkload; Kubernetes Services arrive as such);
//   - the services of p's namespace with a workload at one of p's IPs: an
//     inline ServiceEntry endpoint or a WorkloadEntry the ServiceEntry
//     selects (Istio's ServiceEntry registry looks instances up by the
//     proxy's IPs the same way, in the proxy's namespace).
//
// Unlike Istio, an IP match counts only when p.Runs the workload: a
// workload of another identity at p's IP is returned in refused instead,
// so that a proxy cannot take on another workload's service by naming
// its address.
func (s *Snapshot) ProxyServices(p *Proxy) (served []*Service, refused []Claim) {
	served = s.ServicesForWorkload(p.Namespace, p.Labels)
	seen := make(map[*Service]bool, len(served))
	for _, svc := range served {
		seen[svc] = true
	}
	for _, ip := range p.IPs {
		for _, m := range s.byIP[ip] {
			switch {
			case seen[m.svc] || m.svc.Namespace != p.Namespace:
			case p.Runs(m.w):
				seen[m.svc] = true
				served = append(served, m.svc)
			default:
				refused = append(refused, Claim{Service: m.svc, Workload: m.w})
			}
		}
	}
	return served, refused
}

// indexByIP records every member of svc under its address.
func (s *Snapshot) indexByIP(svc *Service, members []*Workload) {
	for _, w := range members {
		if w.Address != "" {
			s.byIP[w.Address] = append(s.byIP[w.Address], ipMember{svc: svc, w: w})
		}
	}
}
