package authn

import (
	"crypto/sha256"
	"encoding/hex"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

// This file holds the entry points the xDS core's translate.Hooks call.

// ChainVariant is one inbound filter chain for a port, for callers that
// build the chain themselves: the match to add (no destination port; the
// caller sets it), the transport socket (nil = plaintext) and a kind to
// suffix the chain name with, since names must be unique per listener.
type ChainVariant struct {
	Kind            string
	Match           *listener.FilterChainMatch
	TransportSocket *core.TransportSocket
}

// InboundVariants returns the chain variants for a workload port of proxy
// under its effective PeerAuthentication: the InboundChains table for
// Envoy sidecars (a sniffed port is treated as opaque TCP, as the xDS core
// builds tcp_proxy there), the single GRPCInboundChain variant for
// proxyless gRPC. Findings explain modes that could not be expressed.
func InboundVariants(snap *mesh.Snapshot, proxy *mesh.Proxy, port uint32, protocol mesh.Protocol) ([]ChainVariant, []Finding) {
	pol := PeerPolicyFor(snap, proxy.Namespace, proxy.Labels)
	m := snap.Mesh()
	if proxy.Type == mesh.ProxyGRPC {
		g := GRPCInboundChain(pol, port, nil, Profile(m.TLSProfile))
		return []ChainVariant{{Kind: grpcKind(g.Mode), TransportSocket: g.Chain.GetTransportSocket()}}, g.Findings
	}
	class := classOf(protocol)
	if class == classAuto {
		class = classTCP
	}
	tls := ServerOptions{Profile: Profile(m.TLSProfile), TrustDomains: []string{m.TrustDomain}}
	var out []ChainVariant
	for _, s := range chainSpecs[pol.ModeFor(port)][class] {
		v := ChainVariant{Kind: s.kind, Match: chainMatch(0, s.tp, s.alpn)}
		if s.mtls {
			o := tls
			o.HTTP = s.http
			v.TransportSocket = TLSSocket(EnvoyServerTLS(o))
		}
		out = append(out, v)
	}
	return out, nil
}

// PortProtocol is the protocol a proxy's services (mesh.Snapshot.
// ProxyServices, the services its inbound side serves) declare for a
// workload port, or ProtocolUnknown. A service port's workload port is
// its target port, or the port of the service's endpoint the proxy runs
// (an endpoint's ports map). Port 0 (the ports no service declares) is
// ProtocolUnknown.
func PortProtocol(snap *mesh.Snapshot, proxy *mesh.Proxy, port uint32) mesh.Protocol {
	if port == 0 {
		return mesh.ProtocolUnknown
	}
	svcs, _ := snap.ProxyServices(proxy)
	for _, svc := range svcs {
		for _, p := range svc.Ports {
			if p.TargetPort == port || (p.TargetPort == 0 && p.Number == port) {
				return p.Protocol
			}
		}
	}
	for _, svc := range svcs {
		for _, p := range svc.Ports {
			for _, ep := range snap.Endpoints(svc, p) {
				if ep.Port == port && proxy.Runs(ep.Workload) {
					return p.Protocol
				}
			}
		}
	}
	return mesh.ProtocolUnknown
}

// JWTFilters is the HTTP-filter hook: the jwt_authn filter for the
// RequestAuthentications applying to proxy, first in the chain (after
// SanitizeFilter when its providers write request headers). Proxyless
// gRPC gets none (grpc-go has no jwt_authn filter and would NACK it);
// Authenticate evaluates the same config in Go for it.
func JWTFilters(snap *mesh.Snapshot, proxy *mesh.Proxy, keys KeySets) []*hcm.HttpFilter {
	if proxy.Type == mesh.ProxyGRPC {
		return nil
	}
	cfg, _ := JWTAuthn(RequestAuthsFor(snap, proxy), keys)
	f := JWTFilter(cfg)
	if f == nil {
		return nil
	}
	if s := SanitizeFilter(cfg); s != nil {
		return []*hcm.HttpFilter{s, f}
	}
	return []*hcm.HttpFilter{f}
}

// Fingerprint hashes everything authn reads for proxy: every
// PeerAuthentication (auto-mTLS depends on destinations' policies), the
// RequestAuthentications that apply and the key sets they inline, and the
// mesh settings used. Equal fingerprints mean equal authn output.
func Fingerprint(snap *mesh.Snapshot, proxy *mesh.Proxy, keys KeySets) string {
	h := sha256.New()
	m := snap.Mesh()
	h.Write([]byte(m.TrustDomain + "\x00" + m.TLSProfile + "\x00" + m.RootNamespace))
	if m.AutoMTLS() {
		h.Write([]byte{1})
	}
	opts := proto.MarshalOptions{Deterministic: true}
	write := func(c *mesh.Config) {
		b, _ := opts.Marshal(c.Spec)
		ts, _ := c.CreationTimestamp.MarshalBinary()
		h.Write([]byte(c.Key().String()))
		h.Write(ts)
		h.Write(b)
	}
	for _, c := range snap.All(mesh.KindPeerAuthentication) {
		write(c)
	}
	for _, c := range RequestAuthsFor(snap, proxy) {
		write(c)
		ra, _ := c.Spec.(*security.RequestAuthentication)
		for _, r := range ra.GetJwtRules() {
			if keys != nil && r.GetJwks() == "" {
				s, _ := keys.JWKS(r.GetIssuer(), r.GetJwksUri())
				h.Write([]byte(s))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
