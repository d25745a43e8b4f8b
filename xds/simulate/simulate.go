package simulate

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Resources are a proxy's resources as the control plane serves them.
type Resources struct {
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
}

// Capture says how a connection reaches the proxy.
type Capture int

const (
	// Direct: the client connects to a listener's own address (gateways,
	// proxyless servers, tests naming the listener address).
	Direct Capture = iota
	// Inbound: iptables redirected inbound traffic to virtualInbound
	// (port 15006); chains match on the original destination.
	Inbound
	// Outbound: iptables redirected the application's outbound traffic
	// to virtualOutbound (port 15001), which hands it to the listener of
	// the original destination.
	Outbound
	// API: a proxyless gRPC client resolving xds:///<Target> through the
	// API listener named Target (no sockets, no filter chains).
	API
)

// Protocol is what the client speaks over the connection.
type Protocol string

// Protocols. TCP is opaque bytes: no HTTP connection manager runs.
const (
	TCP   Protocol = ""
	HTTP1 Protocol = "HTTP/1.1"
	HTTP2 Protocol = "HTTP/2"
	GRPC  Protocol = "gRPC"
)

// JWTState is what the request carries for jwt_authn.
type JWTState int

// JWT states.
const (
	// NoToken: no token in any location.
	NoToken JWTState = iota
	// InvalidToken: a token that fails verification (bad signature,
	// expired, unknown key).
	InvalidToken
	// VerifiedToken: a token whose signature verifies for a provider
	// whose issuer equals Issuer.
	VerifiedToken
)

// JWT is the token the request carries, as jwt_authn would judge it.
// The simulator assumes the token sits where every provider looks.
type JWT struct {
	State  JWTState
	Issuer string
	// Claims is the verified payload (iss is filled from Issuer when
	// missing).
	Claims map[string]any
}

// Request describes one connection and, when Protocol is not TCP, one
// HTTP request on it.
type Request struct {
	Capture Capture
	// Target names the API listener (Capture API), e.g. "echo.ns.svc.cluster.local:7070".
	Target  string
	SrcIP   string
	SrcPort uint32
	DstIP   string
	DstPort uint32
	// RemoteIP is the client address after XFF processing (remote_ip);
	// empty means SrcIP.
	RemoteIP string

	TLS  bool
	SNI  string
	ALPN []string
	// TLSVersion is the one TLS version the client speaks, a crypto/tls
	// constant (tls.VersionTLS12); 0 means TLS 1.3. CipherSuites are the
	// OpenSSL names it offers for TLS 1.2 and below; empty means any.
	TLSVersion   uint16
	CipherSuites []string
	// PeerURISAN is the client certificate's URI SAN (e.g.
	// spiffe://cluster.local/ns/a/sa/b); empty means no client
	// certificate. PeerDNSSANs and PeerSubject are tried after it.
	PeerURISAN  string
	PeerDNSSANs []string
	PeerSubject string

	Protocol Protocol
	Method   string
	// Path is the :path as sent, query included.
	Path    string
	Host    string
	Headers map[string]string
	JWT     JWT
}

func (r *Request) hasPeerCert() bool {
	return r.TLS && (r.PeerURISAN != "" || len(r.PeerDNSSANs) > 0 || r.PeerSubject != "")
}

// Verdict is the outcome of a simulation.
type Verdict string

// Verdicts.
const (
	Allowed        Verdict = "Allowed"    // forwarded upstream (Cluster set)
	Denied         Verdict = "Denied"     // a filter refused (Filter, Status)
	NoListener     Verdict = "NoListener" // nothing listens: connection refused
	NoChain        Verdict = "NoChain"    // no filter chain: connection closed
	TLSFailed      Verdict = "TLSFailed"  // the handshake fails
	Rejected       Verdict = "Rejected"   // the HCM rejects the request (400)
	Redirected     Verdict = "Redirected" // a redirect is returned
	DirectResponse Verdict = "DirectResponse"
	NoRoute        Verdict = "NoRoute" // 404: no virtual host or route
	NoCluster      Verdict = "NoCluster"
)

// PolicyHit is an RBAC policy that matched in a filter.
type PolicyHit struct {
	Filter string
	Policy string
	// Shadow is true for shadow_rules, false for an enforced LOG rule.
	Shadow bool
	// Action is the RBAC action of the rules (ALLOW, DENY, LOG).
	Action string
}

// WeightedCluster is one weighted choice.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

// Result is what Envoy would do with a request.
type Result struct {
	Verdict Verdict
	// Status is the HTTP status returned or forwarded (0 for TCP).
	Status int
	// Reason is a short machine-friendly cause (e.g. "rbac_access_denied").
	Reason   string
	Listener string
	Chain    string
	// Filter and Policy name what decided a denial (or, for an allow by
	// an ALLOW RBAC filter, the policy that allowed).
	Filter string
	Policy string
	// Hits are shadow and LOG matches, in filter order.
	Hits []PolicyHit
	// Path is the path after normalisation.
	Path        string
	RouteConfig string
	VirtualHost string
	Route       string
	Cluster     string
	Weighted    []WeightedCluster
	Location    string // redirect target
	// FilterChain and RouteEntry are the matched config, for callers that
	// inspect more than names (TLS settings, rewrites, timeouts).
	FilterChain *listener.FilterChain
	RouteEntry  *route.Route
	// UpstreamHeaders are the request headers as the router forwards
	// them (after jwt_authn and header_mutation filters), for requests
	// that reach the router.
	UpstreamHeaders map[string]string
	Trace           []string
}

func (r *Result) tracef(format string, args ...any) {
	r.Trace = append(r.Trace, fmt.Sprintf(format, args...))
}

// String summarises the result on one line.
func (r *Result) String() string {
	s := fmt.Sprintf("%s status=%d listener=%s chain=%s", r.Verdict, r.Status, r.Listener, r.Chain)
	if r.Filter != "" {
		s += " filter=" + r.Filter
	}
	if r.Policy != "" {
		s += " policy=" + r.Policy
	}
	if r.Cluster != "" {
		s += " cluster=" + r.Cluster
	}
	return s
}

// Config holds the simulator's collaborators.
type Config struct {
	Resources Resources
	// Checker answers ext_authz checks; nil makes every check fail (the
	// filter's failure_mode_allow then decides).
	Checker Checker
}

// Simulator runs requests through one proxy's resources.
type Simulator struct {
	res     Resources
	checker Checker
	routes  map[string]*route.RouteConfiguration
}

// New returns a simulator over cfg.Resources.
func New(cfg Config) *Simulator {
	s := &Simulator{res: cfg.Resources, checker: cfg.Checker, routes: map[string]*route.RouteConfiguration{}}
	for _, rc := range cfg.Resources.Routes {
		s.routes[rc.GetName()] = rc
	}
	return s
}

// Run simulates one request.
func (s *Simulator) Run(req Request) *Result {
	res := &Result{}
	l := s.selectListener(&req, res)
	if l == nil {
		return res
	}
	if l.GetApiListener() != nil {
		s.runAPIListener(l, newConnAttrs(&req), res)
		return res
	}
	fc := s.selectChain(l, &req, res)
	if fc == nil {
		return res
	}
	a := newConnAttrs(&req)
	if !handshake(fc, &req, a, res) {
		return res
	}
	s.runNetworkFilters(fc, a, res)
	return res
}

func (r *Result) finish(v Verdict, status int, reason string) {
	r.Verdict, r.Status, r.Reason = v, status, reason
	r.tracef("verdict %s (status %d, %s)", v, status, reason)
}
