package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/extauthz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/hooks"
	"github.com/wardmesh/ward/xds/simulate"
	"github.com/wardmesh/ward/xds/translate"
)

// errDisagree makes `ward authz check` exit 1 when the proxy and the
// policy engine disagree: one of them is wrong, which is a Ward bug.
var errDisagree = errors.New("the proxy and the policy engine disagree")

func (o *authzCheckOptions) addProxyFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.proxyType, "proxy-type", "", "also run the request through this proxy's generated Envoy config: sidecar, gateway or grpc (offline, with --config)")
	f.StringVar(&o.extAuthz, "ext-authz-target", "", "offline: generate the config as ward serve --ext-authz-target IP:port does (Envoy proxies call ext_authz, answered here by Ward's engine in process)")
	f.StringVar(&o.server, "server", "", "debug address of a running ward serve, e.g. http://127.0.0.1:15014 (connected mode, with --proxy)")
	f.StringVar(&o.proxyID, "proxy", "", "node id of a connected proxy: run the request through the config it ACKed (with --server)")
	f.BoolVar(&o.http2, "http2", false, "the client speaks HTTP/2 (default: the port's protocol)")
	f.BoolVar(&o.grpc, "grpc", false, "the client speaks gRPC (default: the port's protocol)")
	f.BoolVarP(&o.trace, "trace", "v", false, "print the proxy's step-by-step trace")
	_ = cmd.RegisterFlagCompletionFunc("proxy-type", cobra.FixedCompletions([]string{"sidecar", "gateway", "grpc"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("proxy", completeProxyIDs("server"))
}

func (o authzCheckOptions) connected() bool { return o.server != "" && o.proxyID != "" }

// proxyTypeOf maps --proxy-type to the mesh's proxy type.
func proxyTypeOf(s string) (mesh.ProxyType, error) {
	switch s {
	case "sidecar":
		return mesh.ProxySidecar, nil
	case "gateway", "router":
		return mesh.ProxyRouter, nil
	case "grpc":
		return mesh.ProxyGRPC, nil
	}
	return "", fmt.Errorf("authz check: --proxy-type %q: want sidecar, gateway or grpc", s)
}

// proxyRun is one request run through one proxy's resources.
type proxyRun struct {
	Mode        string         `json:"mode"` // offline or connected
	Proxy       string         `json:"proxy"`
	Type        mesh.ProxyType `json:"type"`
	Enforcement string         `json:"enforcement"`
	Request     string         `json:"request"`
	Allowed     bool           `json:"allowed"`
	Explanation string         `json:"explanation"`
	// authorization: the verdict came from an authorization filter (RBAC,
	// ext_authz) or from forwarding, so it is comparable with Rego's.
	authorization bool
	Result        *simulate.Result `json:"-"`
	Facts         proxyFacts       `json:"facts"`
	ExtAuthz      []checkCall      `json:"extAuthz,omitempty"`
	Warnings      []string         `json:"warnings,omitempty"`
	// Lagging: the proxy has not ACKed the latest config of some type, so
	// a disagreement with the (current) policy may be that lag.
	Lagging bool `json:"lagging,omitempty"`
}

// proxyFacts are the simulator's findings, for JSON and YAML output.
type proxyFacts struct {
	Verdict     simulate.Verdict           `json:"verdict"`
	Status      int                        `json:"status,omitempty"`
	Reason      string                     `json:"reason,omitempty"`
	Listener    string                     `json:"listener,omitempty"`
	Chain       string                     `json:"chain,omitempty"`
	Filter      string                     `json:"filter,omitempty"`
	FilterType  string                     `json:"filterType,omitempty"`
	Policy      string                     `json:"policy,omitempty"`
	Hits        []simulate.PolicyHit       `json:"hits,omitempty"`
	Path        string                     `json:"path,omitempty"`
	RouteConfig string                     `json:"routeConfig,omitempty"`
	VirtualHost string                     `json:"virtualHost,omitempty"`
	Route       string                     `json:"route,omitempty"`
	Cluster     string                     `json:"cluster,omitempty"`
	Weighted    []simulate.WeightedCluster `json:"weighted,omitempty"`
	Trace       []string                   `json:"trace,omitempty"`
}

func factsOf(r *simulate.Result) proxyFacts {
	return proxyFacts{Verdict: r.Verdict, Status: r.Status, Reason: r.Reason, Listener: r.Listener, Chain: r.Chain, Filter: r.Filter,
		FilterType: filterType(r), Policy: r.Policy, Hits: r.Hits, Path: r.Path, RouteConfig: r.RouteConfig, VirtualHost: r.VirtualHost, Route: r.Route,
		Cluster: r.Cluster, Weighted: r.Weighted, Trace: r.Trace}
}

// runOfflineProxyCheck generates the described proxy's resources as
// ward serve would and runs the request through them.
func runOfflineProxyCheck(cmd *cobra.Command, o authzCheckOptions, pc *policyCheck) error {
	pt, err := proxyTypeOf(o.proxyType)
	if err != nil {
		return err
	}
	hc := hooks.Config{}
	if o.extAuthz != "" {
		if hc.ExtAuthz, err = hooks.ParseExtAuthzTarget(o.extAuthz); err != nil {
			return fmt.Errorf("authz check: --ext-authz-target: %w", err)
		}
	}
	p := offlineProxyFor(pc, pt)
	res := generateProxy(pc.snap, p, hc)
	run := &proxyRun{Mode: "offline", Proxy: fmt.Sprintf("%s %s (generated from %s)", pt, pc.workloadName(), o.configDir), Type: pt}
	if err := res.Validate(); err != nil {
		run.Warnings = append(run.Warnings, fmt.Sprintf("the generated config does not validate (ward serve would not push it): %v", err))
	}
	checker, err := newEngineChecker(pc.snap)
	if err != nil {
		return err
	}
	req, err := o.simRequest(pt, workloadIP(pc.we), o.hostFor(pc.w.Name), pc.port.Protocol)
	if err != nil {
		return err
	}
	run.simulate(res, checker, req)
	if err := pc.alignWith(cmd, run); err != nil {
		return err
	}
	return finish(cmd, o, run, pc)
}

// alignWith makes the policy engine judge the request as the proxy
// handled it: a connection the proxy's filter chain serves without an
// HTTP connection manager (a sidecar's catch-all for a port no service
// declares) is TCP to every filter on it, so the engine judges it as TCP
// too (no HTTP attributes, no jwt_authn), else the two would differ by
// construction.
func (pc *policyCheck) alignWith(cmd *cobra.Command, run *proxyRun) error {
	fc := run.Result.FilterChain
	if fc == nil || pc.req.HTTP == nil || hasHCM(fc) {
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "note: the proxy serves the connection without HTTP (filter chain %s has no HTTP connection manager): the policy engine judges it as TCP too\n", fc.GetName())
	pc.req.HTTP, pc.req.Auth, pc.authnReject = nil, nil, ""
	return pc.decide(cmd)
}

func hasHCM(fc *listener.FilterChain) bool {
	for _, f := range fc.GetFilters() {
		if f.GetTypedConfig().MessageIs(&hcm.HttpConnectionManager{}) {
			return true
		}
	}
	return false
}

// offlineProxyFor is the proxy of pc's workload: its namespace, labels,
// service account and address.
func offlineProxyFor(pc *policyCheck, pt mesh.ProxyType) *mesh.Proxy {
	p := &mesh.Proxy{ID: "offline~" + pc.w.Namespace + "/" + pc.w.Name, Type: pt, Namespace: pc.w.Namespace, Labels: pc.w.Labels,
		IPs: []string{workloadIP(pc.we)}}
	if pc.we != nil {
		p.ServiceAccount = pc.we.ServiceAccount
	}
	return p
}

// newEngineChecker is Ward's ext_authz server over snap, in process.
func newEngineChecker(snap *mesh.Snapshot) (*engineChecker, error) {
	srv := extauthz.New(extauthz.Config{Timeout: 30 * time.Second})
	if err := srv.Update(snap); err != nil {
		return nil, fmt.Errorf("authz check: %w", err)
	}
	return newChecker(srv), nil
}

// simulate runs req through res and fills the verdict. A nil checker
// answers no ext_authz check (the filters' failure mode decides).
func (run *proxyRun) simulate(res *translate.Resources, checker *engineChecker, req simulate.Request) {
	cfg := simulate.Config{Resources: simulate.Resources{Listeners: res.Listeners, Routes: res.Routes, Clusters: res.Clusters}}
	if checker != nil {
		cfg.Checker = checker
	}
	run.Enforcement = enforcementOf(res)
	run.Request = describeRequest(req)
	r := simulate.New(cfg).Run(req)
	run.Result, run.Facts = r, factsOf(r)
	if checker != nil {
		run.ExtAuthz = checker.calls
	}
	run.Allowed, run.Explanation, run.authorization = explainProxy(r, run.ExtAuthz)
}

// filterType names the deciding filter's kind and config type: a network
// filter of the chain, else an HTTP filter of its connection manager.
func filterType(r *simulate.Result) string {
	if r.Filter == "" {
		return ""
	}
	for _, f := range r.FilterChain.GetFilters() {
		if f.GetName() == r.Filter {
			return "network filter " + typeName(f.GetTypedConfig().GetTypeUrl())
		}
		m := &hcm.HttpConnectionManager{}
		if f.GetTypedConfig().MessageIs(m) && f.GetTypedConfig().UnmarshalTo(m) == nil {
			for _, hf := range m.GetHttpFilters() {
				if hf.GetName() == r.Filter {
					return "HTTP filter " + typeName(hf.GetTypedConfig().GetTypeUrl())
				}
			}
		}
	}
	return ""
}

func typeName(url string) string { return url[strings.LastIndex(url, "/")+1:] }

// wardExtAuthzHost is the host of the cluster through which Envoy
// proxies reach Ward's ext_authz server (hooks.ExtAuthzTarget.ClusterName).
const wardExtAuthzHost = "ward-ext-authz"

// enforcementOf says how the config enforces authorization.
func enforcementOf(res *translate.Resources) string {
	for _, c := range res.Clusters {
		if strings.HasSuffix(c.GetName(), "||"+wardExtAuthzHost) {
			return "ext_authz (Ward's engine, in process)"
		}
	}
	return "native RBAC"
}

func (o authzCheckOptions) hostFor(name string) string {
	if o.host != "" {
		return o.host
	}
	if name != "" {
		return name
	}
	return "localhost"
}

// simRequest maps the request flags to what the simulator sends: the
// source identity as the client certificate's URI SAN over mTLS (with
// Istio's ALPN), plaintext without --from; the protocol from --tcp,
// --grpc, --http2, else the port's; --remote-ip as X-Forwarded-For;
// --jwt-claims as a token jwt_authn verified for its issuer.
func (o authzCheckOptions) simRequest(pt mesh.ProxyType, dstIP, host string, portProto mesh.Protocol) (simulate.Request, error) {
	r := simulate.Request{Capture: simulate.Inbound, SrcIP: o.sourceIP, SrcPort: 40000, DstIP: dstIP, DstPort: o.port,
		TLS: o.from != "", SNI: o.sni, PeerURISAN: spiffeURI(o.from), Protocol: o.simProtocol(pt, portProto)}
	if pt != mesh.ProxySidecar {
		r.Capture = simulate.Direct // gateways and proxyless servers own their listeners' addresses
	}
	r.ALPN = istioALPN(r.TLS, r.Protocol)
	if r.Protocol == simulate.TCP {
		return r, nil
	}
	r.Method, r.Path, r.Host, r.Headers = o.method, o.path, host, map[string]string{}
	for _, h := range o.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return r, fmt.Errorf("authz check: --header %q: want k=v", h)
		}
		r.Headers[strings.ToLower(k)] = v
	}
	if o.remoteIP != "" {
		r.Headers["x-forwarded-for"] = o.remoteIP
	}
	if o.claims != "" {
		req, err := o.request(authz.Workload{}, dstIP)
		if err != nil {
			return r, err
		}
		iss, _ := req.Auth.Claims["iss"].(string)
		r.JWT = simulate.JWT{State: simulate.VerifiedToken, Issuer: iss, Claims: req.Auth.Claims}
	}
	return r, nil
}

// simProtocol is what the client speaks.
func (o authzCheckOptions) simProtocol(pt mesh.ProxyType, p mesh.Protocol) simulate.Protocol {
	switch {
	case o.tcp:
		return simulate.TCP
	case o.grpc:
		return simulate.GRPC
	case o.http2:
		return simulate.HTTP2
	}
	switch p {
	case mesh.ProtocolGRPC:
		return simulate.GRPC
	case mesh.ProtocolHTTP2:
		return simulate.HTTP2
	}
	if pt == mesh.ProxyGRPC {
		return simulate.GRPC
	}
	return simulate.HTTP1
}

func spiffeURI(id string) string {
	if id == "" || strings.HasPrefix(id, "spiffe://") {
		return id
	}
	return "spiffe://" + id
}

// istioALPN is what an Istio client offers over mTLS (nothing over
// plaintext: http_inspector detects HTTP).
func istioALPN(tls bool, p simulate.Protocol) []string {
	switch {
	case !tls:
		return nil
	case p == simulate.TCP:
		return []string{"istio-peer-exchange", "istio"}
	case p == simulate.HTTP1:
		return []string{"istio-http/1.1", "istio"}
	}
	return []string{"istio-h2", "istio"}
}

func describeRequest(r simulate.Request) string {
	conn := "plaintext"
	if r.TLS {
		conn = "mTLS as " + r.PeerURISAN
	}
	s := fmt.Sprintf("%s %s:%d -> %s:%d", conn, r.SrcIP, r.SrcPort, r.DstIP, r.DstPort)
	if r.Protocol == simulate.TCP {
		return s + " TCP"
	}
	return fmt.Sprintf("%s %s %s %s host %s", s, r.Protocol, r.Method, r.Path, r.Host)
}

// explainProxy turns a simulation into the verdict line's explanation,
// in the format of the policy engine's (allowed by / denied by <rule>),
// and says whether it is an authorization outcome (comparable with the
// engine's).
func explainProxy(r *simulate.Result, calls []checkCall) (allowed bool, expl string, authorization bool) {
	switch r.Verdict {
	case simulate.Allowed:
		return true, allowedBy(r, calls), true
	case simulate.Denied:
		return false, deniedBy(r, calls), isAuthzFilter(r.Filter)
	case simulate.NoListener:
		return false, "no listener takes the connection: refused (" + r.Reason + ")", false
	case simulate.NoChain:
		return false, "no filter chain matches: the proxy closes the connection (" + r.Reason + ")", false
	case simulate.TLSFailed:
		return false, "the TLS handshake fails (" + r.Reason + ")", false
	case simulate.Rejected:
		return false, fmt.Sprintf("rejected by the HTTP connection manager (%d, %s)", r.Status, r.Reason), false
	case simulate.NoRoute:
		return false, fmt.Sprintf("no route (%d, %s)", r.Status, r.Reason), false
	case simulate.NoCluster:
		return false, fmt.Sprintf("no upstream cluster (%d, %s)", r.Status, r.Reason), false
	case simulate.Redirected:
		return false, fmt.Sprintf("redirected (%d) to %s", r.Status, r.Location), false
	}
	return false, fmt.Sprintf("%s (%d, %s)", r.Verdict, r.Status, r.Reason), false
}

func allowedBy(r *simulate.Result, calls []checkCall) string {
	if r.Policy != "" {
		return "allowed by " + r.Policy
	}
	for i := len(calls) - 1; i >= 0; i-- {
		if c := calls[i]; c.Allowed && c.Rule != "" {
			return "allowed by " + c.Rule
		}
	}
	if r.Cluster != "" {
		return "allowed: no filter denied (forwarded to " + r.Cluster + ")"
	}
	return "allowed: no filter denied"
}

func deniedBy(r *simulate.Result, calls []checkCall) string {
	via := " (" + r.Filter + ")"
	switch {
	case strings.Contains(r.Filter, "jwt_authn"):
		return fmt.Sprintf("rejected by authentication: %s (%d)", r.Reason, r.Status)
	case r.Policy != "":
		return "denied by " + r.Policy + via
	case strings.Contains(r.Filter, "ext_authz"):
		for i := len(calls) - 1; i >= 0; i-- {
			if c := calls[i]; c.Filter == r.Filter && !c.Allowed {
				if c.Rule != "" {
					return "denied by " + c.Rule + via
				}
				if strings.HasPrefix(c.Reason, "denied") {
					return c.Reason + via
				}
				return "denied: " + c.Reason + via
			}
		}
		return "denied: the ext_authz check failed closed" + via
	case strings.Contains(r.Filter, "rbac"):
		return "denied: no ALLOW policy matched" + via
	}
	return "denied: " + r.Reason + via
}

func isAuthzFilter(name string) bool {
	return strings.Contains(name, "rbac") || strings.Contains(name, "ext_authz") || strings.Contains(name, "jwt_authn")
}

// agreement compares the proxy's verdict with the policy engine's; ok is
// false only for an authorization outcome that differs (a Ward bug).
func agreement(run *proxyRun, pc *policyCheck) (ok bool, note string) {
	proxyAuthn := run.Result.Verdict == simulate.Denied && strings.Contains(run.Result.Filter, "jwt_authn")
	switch {
	case !run.authorization:
		return true, "not compared: the proxy's outcome is not an authorization decision"
	case proxyAuthn != (pc.authnReject != ""):
		return false, fmt.Sprintf("authentication differs: the proxy %s, the policy engine %s", run.Explanation, pc.explain())
	case proxyAuthn:
		return true, "agrees"
	case run.Allowed != pc.allowed():
		return false, fmt.Sprintf("the proxy %s, but the policy engine %s", verbOf(run.Allowed), verbOf(pc.allowed()))
	}
	return true, "agrees"
}

func verbOf(allowed bool) string {
	if allowed {
		return "allows"
	}
	return "denies"
}

// proxyCheckOutput is the JSON/YAML shape of a proxy check.
type proxyCheckOutput struct {
	Allowed     bool         `json:"allowed"`
	Explanation string       `json:"explanation"`
	Proxy       *proxyRun    `json:"proxy"`
	Policy      *checkOutput `json:"policy,omitempty"`
	Agrees      *bool        `json:"agrees,omitempty"`
	Comparison  string       `json:"comparison"`
}

// finish prints a proxy run (and the policy engine's verdict when pc is
// set) and returns the exit status: 2 denied, 1 on a disagreement.
func finish(cmd *cobra.Command, o authzCheckOptions, run *proxyRun, pc *policyCheck) error {
	out := proxyCheckOutput{Allowed: run.Allowed, Explanation: run.Explanation, Proxy: run,
		Comparison: "skipped: no --config, so no policy engine to compare with"}
	if pc != nil {
		ok, note := agreement(run, pc)
		out.Agrees, out.Comparison = &ok, note
		out.Policy = pc.output()
	}
	var err error
	if o.output != outTable {
		err = writeData(cmd.OutOrStdout(), o.output, out, nil)
	} else {
		err = printProxyRun(cmd.OutOrStdout(), o, out, pc)
	}
	if err != nil {
		return err
	}
	if pc != nil && pc.decErr != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: the policy engine failed closed: %v\n", pc.decErr)
	}
	if out.Agrees != nil && !*out.Agrees {
		why := "The proxy's config and the policy engine must decide alike: this is a Ward bug, please report it with this output."
		if run.Lagging {
			why = "The proxy has not ACKed the latest config (see the warnings): it still enforces an older version than --config describes, which may explain the difference."
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "error: DISAGREEMENT: %s.\n%s\n", out.Comparison, why)
		return &ExitError{Code: 1, Err: errDisagree}
	}
	if !run.Allowed {
		return &ExitError{Code: 2, Err: errDenied}
	}
	return nil
}

// workloadName is <namespace>/<name>, or the namespace and labels.
func (pc *policyCheck) workloadName() string {
	if pc.w.Name != "" {
		return pc.w.Namespace + "/" + pc.w.Name
	}
	return fmt.Sprintf("%s %v", pc.w.Namespace, map[string]string(pc.w.Labels))
}

// output is the policy engine's answer in checkOutput form.
func (pc *policyCheck) output() *checkOutput {
	co := &checkOutput{Workload: pc.w.Namespace + "/" + pc.w.Name, Allowed: pc.allowed(), Explanation: pc.explain(), Decision: pc.dec}
	if pc.prep != nil {
		for _, pol := range pc.prep.Policies() {
			co.Policies = append(co.Policies, fmt.Sprintf("%s (%s%s)", pol.ID(), pol.Action, dryRunNote(pol)))
		}
	}
	return co
}

func verdictWord(allowed bool) string {
	if allowed {
		return "ALLOW"
	}
	return "DENY"
}

// printPolicyPart prints the policy engine's verdict beside the proxy's.
func printPolicyPart(w io.Writer, out proxyCheckOutput, pc *policyCheck) {
	if pc == nil {
		fmt.Fprintf(w, "%-14s%s\n", "policy:", out.Comparison)
		return
	}
	fmt.Fprintf(w, "%-14s%s  %s (Rego: %s)\n", "policy:", verdictWord(pc.allowed()), pc.explain(), out.Comparison)
	fmt.Fprintf(w, "workload:     %s\n", pc.workloadName())
	fmt.Fprintf(w, "applicable policies (%d):\n", len(out.Policy.Policies))
	for _, s := range out.Policy.Policies {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

func printProxyRun(w io.Writer, o authzCheckOptions, out proxyCheckOutput, pc *policyCheck) error {
	run, f := out.Proxy, out.Proxy.Facts
	fmt.Fprintf(w, "%s  %s\n", verdictWord(run.Allowed), run.Explanation)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-14s%s\n", k+":", v)
		}
	}
	row("proxy", run.Proxy)
	row("enforcement", run.Enforcement)
	row("request", run.Request)
	row("outcome", fmt.Sprintf("%s (status %d, %s)", f.Verdict, f.Status, f.Reason))
	row("listener", f.Listener)
	row("filter chain", f.Chain)
	if f.FilterType != "" {
		row("filter", f.Filter+" ("+f.FilterType+")")
	} else {
		row("filter", f.Filter)
	}
	row("path", f.Path)
	if f.Route != "" {
		row("route", fmt.Sprintf("%s / %s / %s", f.RouteConfig, f.VirtualHost, f.Route))
	} else {
		row("route config", f.RouteConfig)
	}
	row("cluster", f.Cluster)
	for _, h := range f.Hits {
		kind := "log"
		if h.Shadow {
			kind = "shadow"
		}
		fmt.Fprintf(w, "%-14s%s %s match: %s\n", "hit:", h.Filter, kind, h.Policy)
	}
	for _, c := range run.ExtAuthz {
		fmt.Fprintf(w, "%-14s%s: %s\n", "ext_authz:", c.Filter, c.summary())
	}
	printPolicyPart(w, out, pc)
	for _, s := range run.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	if o.trace {
		fmt.Fprintln(w, "trace:")
		for _, s := range f.Trace {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	return nil
}
