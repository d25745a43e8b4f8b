package analyze

import (
	"fmt"
	"slices"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// AnnotationTemplates is Istio's injection-template annotation; a
// WorkloadEntry whose annotation lists the "grpc-agent" template is a
// proxyless gRPC workload, as in Istio.
const (
	AnnotationTemplates = "inject.istio.io/templates"
	TemplateGRPCAgent   = "grpc-agent"
)

// perProxy reports the authn findings that only exist for a given proxy
// (modes proxyless gRPC cannot express, clusters it must send in
// plaintext). It runs the xDS translator for each proxy with the same
// authn hooks the control plane uses and collects what authn reports,
// so the ports and services looked at are exactly those the proxy gets.
func (a *analyzer) perProxy(proxies []*mesh.Proxy) {
	if proxies == nil {
		proxies = DeclaredProxies(a.snap)
	}
	for _, p := range proxies {
		var fs []authn.Finding
		hooks := translate.Hooks{
			InboundSecurity: func(s *mesh.Snapshot, p *mesh.Proxy, port uint32) []translate.ChainSecurity {
				if p.Type == mesh.ProxyRouter {
					return nil // gateways are not subject to PeerAuthentication
				}
				vs, f := authn.InboundVariants(s, p, port, authn.PortProtocol(s, p, port))
				for _, x := range f {
					fs = append(fs, a.locate(p, port, x))
				}
				out := make([]translate.ChainSecurity, 0, len(vs))
				for _, v := range vs {
					out = append(out, translate.ChainSecurity{Name: v.Kind, Match: v.Match, TransportSocket: v.TransportSocket})
				}
				return out
			},
			UpstreamTLS: func(s *mesh.Snapshot, p *mesh.Proxy, svc *mesh.Service, port mesh.Port, subset string) *core.TransportSocket {
				u := authn.OutboundTLS(s, p, svc, port, subset, nil)
				fs = append(fs, u.Findings...)
				return u.TransportSocket
			},
		}
		translate.Generate(a.ix, a.ix.Scope(p), hooks)
		a.addAuthn(fs)
	}
}

// locate names the object and field behind a per-port inbound finding:
// the PeerAuthentication's mtls mode, or the workload when no policy
// applies and the mesh default (PERMISSIVE) decided.
func (a *analyzer) locate(p *mesh.Proxy, port uint32, f authn.Finding) authn.Finding {
	field := "spec.mtls.mode"
	if c, ok := a.snap.Get(f.Object); ok {
		if pa, _ := c.Spec.(*security.PeerAuthentication); pa.GetPortLevelMtls()[port] != nil {
			field = fmt.Sprintf("spec.portLevelMtls[%d].mode", port)
		}
	} else {
		f.Object = a.workloadKey(p)
		field = "no PeerAuthentication applies (mesh default PERMISSIVE)"
	}
	if f.Reason == authn.ReasonGRPCProfile {
		field = "MeshConfig spec.tlsProfile"
	}
	f.Message = fmt.Sprintf("%s, for proxyless gRPC workload %s/%s: %s", field, p.Namespace, proxyName(p), f.Message)
	return f
}

// workloadKey names the object behind proxy p: the source of the
// workload at one of its IPs in its namespace, else the proxy itself.
func (a *analyzer) workloadKey(p *mesh.Proxy) mesh.Key {
	for _, w := range a.snap.WorkloadsInNamespace(p.Namespace) {
		if slices.Contains(p.IPs, w.Address) && w.Source.Kind != "" {
			return w.Source
		}
	}
	return mesh.Key{Kind: "Proxy", Namespace: p.Namespace, Name: p.ID}
}

// proxyName is the workload part of a proxy id ("<type>~<ip>~<name>.<ns>~…").
func proxyName(p *mesh.Proxy) string {
	if parts := strings.Split(p.ID, "~"); len(parts) == 4 {
		name, _, _ := strings.Cut(parts[2], ".")
		return name
	}
	return p.ID
}

// DeclaredProxies returns a proxyless gRPC proxy for every workload whose
// source object carries the grpc-agent injection template: offline, the
// config is the only place that says which workloads are proxyless.
func DeclaredProxies(snap *mesh.Snapshot) []*mesh.Proxy {
	var out []*mesh.Proxy
	for _, w := range snap.Workloads() {
		c, ok := snap.Get(w.Source)
		if !ok || !hasTemplate(c.Annotations[AnnotationTemplates], TemplateGRPCAgent) {
			continue
		}
		name := w.Name
		if name == "" {
			name = w.Source.Name
		}
		p := &mesh.Proxy{
			ID:   fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", mesh.ProxyGRPC, w.Address, name, w.Namespace, w.Namespace),
			Type: mesh.ProxyGRPC, Namespace: w.Namespace, Labels: w.Labels, ServiceAccount: w.ServiceAccount,
		}
		if w.Address != "" {
			p.IPs = []string{w.Address}
		}
		out = append(out, p)
	}
	return out
}

// hasTemplate reports whether the comma-separated template list names t.
func hasTemplate(list, t string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == t {
			return true
		}
	}
	return false
}
