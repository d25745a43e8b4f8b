package authn

import (
	"fmt"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wardmesh/ward/mesh"
)

// Transport protocols as Envoy's tls_inspector reports them.
const (
	TransportTLS = "tls"
	TransportRaw = "raw_buffer"
)

// httpALPN are the values http_inspector reports for plaintext HTTP.
var httpALPN = []string{"http/1.0", "http/1.1", "h2c"}

// InboundPort is one inbound workload port to protect, with the plaintext
// network filters the xDS core built for it; authn wraps them in the
// filter chains the port's mTLS mode calls for.
type InboundPort struct {
	// Port is the workload (target) port; 0 builds the passthrough chains
	// for ports no service declares.
	Port uint32
	// Protocol decides the chain shapes: HTTP family, opaque TCP family,
	// or ProtocolUnknown (sniffed: both, told apart by ALPN).
	Protocol mesh.Protocol
	// HTTP is the HTTP connection manager filter list, required for HTTP
	// and sniffed ports.
	HTTP []*listener.Filter
	// TCP is the tcp_proxy filter list, required for TCP and sniffed ports
	// (and used for TLS passthrough).
	TCP []*listener.Filter
}

type protoClass int

const (
	classHTTP protoClass = iota
	classTCP
	classAuto
)

func classOf(p mesh.Protocol) protoClass {
	switch {
	case p == mesh.ProtocolUnknown:
		return classAuto
	case p.IsHTTP():
		return classHTTP
	}
	return classTCP
}

// chainSpec is one filter chain to build: its kind, match and whether it
// terminates mTLS.
type chainSpec struct {
	kind string
	tp   string
	alpn []string
	http bool // HTTP filters (else TCP)
	mtls bool
}

// chainSpecs is the table of (mode × protocol) → filter chains. HTTP mTLS
// chains on declared-HTTP ports match any TLS (no ALPN): nothing else can
// arrive there, and it admits proxyless gRPC clients, which offer "h2".
var chainSpecs = map[Mode]map[protoClass][]chainSpec{
	ModeStrict: {
		classHTTP: {{kind: "mtls-http", tp: TransportTLS, http: true, mtls: true}},
		classTCP:  {{kind: "mtls-tcp", tp: TransportTLS, mtls: true}},
		classAuto: {
			{kind: "mtls-http", tp: TransportTLS, alpn: MTLSHTTPALPN, http: true, mtls: true},
			{kind: "mtls-tcp", tp: TransportTLS, mtls: true},
		},
	},
	ModePermissive: {
		classHTTP: {
			{kind: "mtls-http", tp: TransportTLS, http: true, mtls: true},
			{kind: "plaintext-http", tp: TransportRaw, http: true},
		},
		classTCP: {
			{kind: "mtls-tcp", tp: TransportTLS, alpn: allMTLSALPN, mtls: true},
			{kind: "tls-passthrough", tp: TransportTLS},
			{kind: "plaintext-tcp", tp: TransportRaw},
		},
		classAuto: {
			{kind: "mtls-http", tp: TransportTLS, alpn: MTLSHTTPALPN, http: true, mtls: true},
			{kind: "mtls-tcp", tp: TransportTLS, alpn: MTLSALPN, mtls: true},
			{kind: "tls-passthrough", tp: TransportTLS},
			{kind: "plaintext-http", tp: TransportRaw, alpn: httpALPN, http: true},
			{kind: "plaintext-tcp", tp: TransportRaw},
		},
	},
	ModeDisable: {
		classHTTP: {{kind: "plaintext-http", http: true}},
		classTCP:  {{kind: "plaintext-tcp"}},
		classAuto: {
			{kind: "plaintext-http", alpn: httpALPN, http: true},
			{kind: "plaintext-tcp"},
		},
	},
}

// InboundChains returns the Envoy virtualInbound filter chains for one
// port in mode: STRICT → mTLS chains only; PERMISSIVE → mTLS chains plus
// plaintext (raw_buffer) chains, and for TCP a TLS passthrough chain for
// the application's own TLS; DISABLE → plaintext only. mTLS chains carry
// EnvoyServerTLS(tls). Chains are named inbound|<port>|<kind>. Derive the
// listener filters from the result with ListenerFilters.
func InboundChains(p InboundPort, mode Mode, tls ServerOptions) ([]*listener.FilterChain, error) {
	specs, ok := chainSpecs[mode]
	if !ok {
		return nil, fmt.Errorf("inbound chains for port %d: invalid mTLS mode %q", p.Port, mode)
	}
	class := classOf(p.Protocol)
	if (class != classTCP && len(p.HTTP) == 0) || (class != classHTTP && len(p.TCP) == 0) {
		return nil, fmt.Errorf("inbound chains for port %d (%s): missing the plaintext %s filters", p.Port, protoName(p.Protocol), missing(class, p))
	}
	out := make([]*listener.FilterChain, 0, len(specs[class]))
	for _, s := range specs[class] {
		out = append(out, buildChain(p, s, tls))
	}
	return out, nil
}

func protoName(p mesh.Protocol) string {
	if p == mesh.ProtocolUnknown {
		return "sniffed"
	}
	return string(p)
}

func missing(class protoClass, p InboundPort) string {
	if class != classTCP && len(p.HTTP) == 0 {
		return "HTTP"
	}
	return "TCP"
}

func buildChain(p InboundPort, s chainSpec, tls ServerOptions) *listener.FilterChain {
	filters := p.TCP
	if s.http {
		filters = p.HTTP
	}
	fc := &listener.FilterChain{
		Name:             fmt.Sprintf("inbound|%d|%s", p.Port, s.kind),
		FilterChainMatch: chainMatch(p.Port, s.tp, s.alpn),
		Filters:          cloneFilters(filters),
	}
	if s.mtls {
		o := tls
		o.HTTP = s.http
		fc.TransportSocket = TLSSocket(EnvoyServerTLS(o))
	}
	return fc
}

func chainMatch(port uint32, tp string, alpn []string) *listener.FilterChainMatch {
	m := &listener.FilterChainMatch{TransportProtocol: tp, ApplicationProtocols: append([]string(nil), alpn...)}
	if port != 0 {
		m.DestinationPort = wrapperspb.UInt32(port)
	}
	return m
}

func cloneFilters(in []*listener.Filter) []*listener.Filter {
	out := make([]*listener.Filter, len(in))
	for i, f := range in {
		out[i] = proto.Clone(f).(*listener.Filter)
	}
	return out
}

// GRPCInbound is what a proxyless gRPC server listener gets for one port.
type GRPCInbound struct {
	// Chain is the single filter chain (grpc-go drops chains that match on
	// port, transport protocol or ALPN, so there is exactly one).
	Chain *listener.FilterChain
	// Mode is the mode enforced, which differs from the policy's for
	// PERMISSIVE (enforced as STRICT).
	Mode     Mode
	Findings []Finding
}

// GRPCInboundChain builds a proxyless gRPC server's filter chain for a
// workload port under pol. STRICT → GRPCServerTLS (client certificate
// required); DISABLE → plaintext. PERMISSIVE cannot be expressed: gRPC
// cannot tell TLS from plaintext on one port, so Ward enforces STRICT
// (fail closed, and what auto-mTLS clients send to a workload with an
// identity) and reports it; set DISABLE to accept plaintext. Istio maps
// it to DISABLE instead. A non-default TLS profile is reported too:
// grpc-go rejects tls_params, so the Go runtime's TLS settings apply.
func GRPCInboundChain(pol PeerPolicy, port uint32, filters []*listener.Filter, profile Profile) GRPCInbound {
	mode := pol.ModeFor(port)
	out := GRPCInbound{Mode: mode}
	if mode == ModePermissive {
		out.Mode = ModeStrict
		out.Findings = append(out.Findings, Finding{Object: pol.decidingKey(port), Severity: SeverityWarning, Reason: ReasonGRPCPermissive,
			Message: fmt.Sprintf("port %d is PERMISSIVE, which proxyless gRPC cannot express (it cannot tell TLS from plaintext); Ward enforces STRICT there: set DISABLE to accept plaintext", port)})
	}
	out.Chain = &listener.FilterChain{Name: fmt.Sprintf("inbound|%d|%s", port, grpcKind(out.Mode)), Filters: cloneFilters(filters)}
	if out.Mode == ModeStrict {
		out.Chain.TransportSocket = TLSSocket(GRPCServerTLS())
		if profile != ProfileDefault {
			out.Findings = append(out.Findings, Finding{Object: pol.decidingKey(port), Severity: SeverityWarning, Reason: ReasonGRPCProfile,
				Message: fmt.Sprintf("TLS profile %q cannot be sent to proxyless gRPC (grpc-go rejects tls_params); build the workload with GODEBUG=fips140=only to enforce it", profile)})
		}
	}
	return out
}

func grpcKind(m Mode) string {
	if m == ModeStrict {
		return "mtls"
	}
	return "plaintext"
}

// decidingKey names the policy that decided the mode on port, or the zero
// key when the default (PERMISSIVE) applies.
func (p PeerPolicy) decidingKey(port uint32) mesh.Key {
	for _, c := range []*mesh.Config{p.Workload, p.Namespace, p.Mesh} {
		if c == nil {
			continue
		}
		if _, ok := p.PerPort[port]; ok && c == p.Workload {
			return c.Key()
		}
		if modeOf(peerSpec(c).GetMtls()) != ModeUnset {
			return c.Key()
		}
	}
	return mesh.Key{}
}
