package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/file"
)

func newAuthzCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "authz",
		Short: "Inspect and test authorization policies offline",
	}
	cmd.AddCommand(newAuthzCheckCmd(), newAuthzRecommendCmd())
	return cmd
}

type authzCheckOptions struct {
	configDir string
	to        string
	labels    []string
	from      string
	sourceIP  string
	remoteIP  string
	port      uint32
	sni       string
	tcp       bool
	method    string
	path      string
	host      string
	headers   []string
	claims    string
	output    string
	showRego  bool

	// Proxy mode: what a proxy does with the request (authz_proxy.go).
	proxyType string // offline: sidecar, gateway or grpc
	extAuthz  string // offline: as ward serve --ext-authz-target
	server    string // connected: debug URL of ward serve
	proxyID   string // connected: node id
	http2     bool
	grpc      bool
	trace     bool
}

// errDenied makes `ward authz check` exit 2 on a denial, for scripts.
var errDenied = errors.New("request denied")

func newAuthzCheckCmd() *cobra.Command {
	o := authzCheckOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Decide one request against a config directory or a proxy's config, with the deciding policy and rule",
		Long: "Decide one request offline with the same matching and Rego evaluation the ext_authz\n" +
			"server uses. With --proxy-type, also generate that proxy's Envoy config as ward serve\n" +
			"would and run the request through it (xds/simulate); with --server and --proxy, run it\n" +
			"through the config a connected proxy ACKed. The proxy's verdict leads; a disagreement\n" +
			"with the policy engine is a Ward bug and exits 1.\n" +
			"Exit status: 0 allowed, 2 denied, 1 error or disagreement.\n\n" +
			"  ward authz check --config DIR --to bookinfo/reviews-v1 --from spiffe://cluster.local/ns/bookinfo/sa/productpage \\\n" +
			"      --method POST --path /reviews.Reviews/Get --header x-tenant=acme --jwt-claims '{\"iss\":\"i\",\"sub\":\"s\"}'\n" +
			"  ward authz check --config DIR --to app/api-1 --proxy-type sidecar --path /public/../admin -v\n" +
			"  ward authz check --server http://127.0.0.1:15014 --proxy ID --port 9080 --path /admin",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuthzCheck(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configDir, "config", "", "config directory of Istio YAML (required unless --server and --proxy)")
	f.StringVar(&o.to, "to", "", "destination workload: <namespace>/<WorkloadEntry name>, or <namespace> with --label (required with --config; with --proxy default the proxy's own)")
	f.StringArrayVar(&o.labels, "label", nil, "destination workload label k=v (repeatable; instead of a WorkloadEntry name)")
	f.StringVar(&o.from, "from", "", "source identity (SPIFFE ID); empty = plaintext")
	f.StringVar(&o.sourceIP, "source-ip", "10.0.0.1", "source (direct peer) IP")
	f.StringVar(&o.remoteIP, "remote-ip", "", "original client IP (remote.ip); default the source IP")
	f.Uint32Var(&o.port, "port", defaultCheckPort, "destination port (default: the workload's only port; its protocol comes from the workload's services)")
	f.StringVar(&o.sni, "sni", "", "TLS server name (connection.sni)")
	f.BoolVar(&o.tcp, "tcp", false, "a TCP connection: no HTTP attributes")
	f.StringVar(&o.method, "method", "GET", "HTTP method")
	f.StringVar(&o.path, "path", "/", "HTTP path (with query)")
	f.StringVar(&o.host, "host", "", "HTTP host (:authority); default the workload's name (localhost for a workload given by labels)")
	f.StringArrayVar(&o.headers, "header", nil, "HTTP header k=v (repeatable)")
	f.StringVar(&o.claims, "jwt-claims", "", "verified JWT claims as a JSON object")
	addOutputFlag(cmd, &o.output, stdFormats...).alias("text", outTable)
	f.BoolVar(&o.showRego, "show-rego", false, "also print the compiled Rego of the applicable policies")
	o.addProxyFlags(cmd)
	return cmd
}

func runAuthzCheck(cmd *cobra.Command, o authzCheckOptions) error {
	switch {
	case o.connected() && (o.proxyType != "" || o.extAuthz != ""):
		return errors.New("authz check: --proxy-type and --ext-authz-target describe an offline proxy; a connected proxy's type and config come from --server")
	case o.connected():
		return runConnectedCheck(cmd, o)
	case o.server != "" || o.proxyID != "":
		return errors.New("authz check: --server and --proxy go together")
	case o.configDir == "" || o.to == "":
		return errors.New("authz check: give --config DIR and --to (or --server URL --proxy ID for a connected proxy)")
	case o.extAuthz != "" && o.proxyType == "":
		return errors.New("authz check: --ext-authz-target describes the proxy of --proxy-type")
	}
	pc, err := o.evalPolicy(cmd)
	if err != nil {
		return err
	}
	if o.proxyType != "" {
		return runOfflineProxyCheck(cmd, o, pc)
	}
	return pc.print(cmd, o)
}

// policyCheck is the policy-level (Rego) answer to one request: the
// workload, the port it reaches and the decision of Ward's engine, or the
// authentication rejection that stops the request before it.
type policyCheck struct {
	snap *mesh.Snapshot
	w    authz.Workload
	we   *mesh.Workload
	port workloadPort
	req  *authz.Request
	// authnReject is why jwt_authn rejects the request (401) before any
	// authorization runs; dec is nil then.
	authnReject string
	eng         *authz.Engine
	prep        *authz.Prepared
	dec         *authz.Decision
	decErr      error
}

// evalPolicy loads --config, resolves --to and --port and decides the
// request with the same matching and Rego evaluation the ext_authz
// server uses. It may set o.tcp (a non-HTTP port) and o.port.
func (o *authzCheckOptions) evalPolicy(cmd *cobra.Command) (*policyCheck, error) {
	res, err := file.Load(o.configDir)
	if err != nil {
		return nil, fmt.Errorf("authz check: load %s: %w", o.configDir, err)
	}
	for _, rj := range res.Rejected {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: skipped rejected object: %v\n", rj.Err)
	}
	pc := &policyCheck{snap: res.Snapshot}
	if pc.w, pc.we, err = resolveWorkload(res.Snapshot, o.to, o.labels); err != nil {
		return nil, err
	}
	if pc.port, err = choosePort(workloadPorts(res.Snapshot, pc.w, pc.we), o.port, cmd.Flags().Changed("port")); err != nil {
		return nil, err
	}
	o.port = pc.port.Port
	var notes []string
	switch {
	case pc.port.Service == "":
		notes = append(notes, fmt.Sprintf("port %d is declared by no service selecting the workload: judged as %s", pc.port.Port, map[bool]string{true: "TCP", false: "HTTP (--tcp for a TCP connection)"}[o.tcp]))
	case !o.tcp && !pc.port.Protocol.IsHTTP():
		o.tcp = true
		notes = append(notes, fmt.Sprintf("port %d is %s: judged as a TCP connection, HTTP attributes ignored", pc.port.Port, protoName(pc.port.Protocol)))
	}
	if pc.req, err = o.request(pc.w, workloadIP(pc.we)); err != nil {
		return nil, err
	}
	if pc.req.Auth != nil {
		verdict, why := judgeClaims(trustedIssuers(res.Snapshot, pc.w), pc.req.Auth.Claims)
		switch verdict {
		case claimsIgnored:
			pc.req.Auth = nil
			notes = append(notes, "--jwt-claims: "+why)
		case claimsRejected:
			pc.authnReject = why
		}
	}
	for _, n := range notes {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: %s\n", n)
	}
	if pc.authnReject != "" {
		return pc, nil
	}
	return pc, pc.decide(cmd)
}

// decide runs Ward's engine. Offline no request is waiting, so there is
// no tight evaluation deadline.
func (pc *policyCheck) decide(cmd *cobra.Command) error {
	var err error
	if pc.eng, err = authz.NewEngine(pc.snap, authz.EngineConfig{Timeout: 30 * time.Second}); err != nil {
		return fmt.Errorf("authz check: %w", err)
	}
	if pc.prep, err = pc.eng.For(cmd.Context(), pc.w.Namespace, pc.w.Labels); err != nil {
		return fmt.Errorf("authz check: %w", err)
	}
	pc.dec, pc.decErr = pc.prep.Decide(cmd.Context(), pc.req)
	return nil
}

// allowed is the policy-level verdict.
func (pc *policyCheck) allowed() bool { return pc.authnReject == "" && pc.dec.Allowed }

// explain is the policy-level explanation, in the format of the verdict
// line.
func (pc *policyCheck) explain() string {
	if pc.authnReject != "" {
		return "rejected by authentication: " + pc.authnReject
	}
	return pc.dec.Explain()
}

// print writes the policy-level answer (the whole output without
// --proxy-type) and returns the exit status as an error.
func (pc *policyCheck) print(cmd *cobra.Command, o authzCheckOptions) error {
	if pc.authnReject != "" {
		return printAuthnReject(cmd.OutOrStdout(), o, pc.w, pc.authnReject)
	}
	if err := printDecision(cmd.OutOrStdout(), o, pc.w, pc.prep, pc.dec, pc.eng); err != nil {
		return err
	}
	if pc.decErr != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: failed closed: %v\n", pc.decErr)
	}
	if !pc.dec.Allowed {
		return &ExitError{Code: 2, Err: errDenied}
	}
	return nil
}

// workloadIP is the workload's address: its WorkloadEntry's, else a
// placeholder the offline proxy is given too.
func workloadIP(we *mesh.Workload) string {
	if we != nil && we.Address != "" {
		if _, err := netip.ParseAddr(we.Address); err == nil {
			return we.Address
		}
	}
	return defaultWorkloadIP
}

const defaultWorkloadIP = "10.0.0.2"

// resolveWorkload turns --to (and --label) into a workload: a
// WorkloadEntry by name, or a namespace plus explicit labels.
func resolveWorkload(snap *mesh.Snapshot, to string, labels []string) (authz.Workload, *mesh.Workload, error) {
	ns, name, _ := strings.Cut(to, "/")
	w := authz.Workload{Namespace: ns, Name: name, Labels: mesh.Labels{}}
	if ns == "" {
		return w, nil, fmt.Errorf("authz check: --to %q: want <namespace>/<workload>", to)
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return w, nil, fmt.Errorf("authz check: --label %q: want k=v", l)
		}
		w.Labels[k] = v
	}
	if name == "" || len(labels) > 0 {
		return w, nil, nil
	}
	for _, we := range snap.WorkloadsInNamespace(ns) {
		if we.Name == name {
			w.Labels = we.Labels
			return w, we, nil
		}
	}
	return w, nil, fmt.Errorf("authz check: no WorkloadEntry %s/%s (use --label to give labels directly)", ns, name)
}

// printAuthnReject reports a request that authentication rejects before
// any authorization policy runs.
func printAuthnReject(out io.Writer, o authzCheckOptions, w authz.Workload, why string) error {
	co := checkOutput{Workload: w.Namespace + "/" + w.Name, Explanation: "rejected by authentication: " + why}
	if o.output != outTable {
		if err := writeData(out, o.output, co, nil); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "DENY  %s\nworkload: %s %v\n", co.Explanation, co.Workload, map[string]string(w.Labels))
	}
	return &ExitError{Code: 2, Err: errDenied}
}

func (o authzCheckOptions) request(w authz.Workload, dstIP string) (*authz.Request, error) {
	r := &authz.Request{
		Source:      authz.Peer{IP: o.sourceIP, Port: 40000, Principal: o.from},
		Destination: authz.Peer{IP: dstIP, Port: o.port},
		RemoteIP:    o.remoteIP, SNI: o.sni,
	}
	if !o.tcp {
		r.HTTP = &authz.HTTPRequest{Method: o.method, Path: o.path, Host: o.hostFor(w.Name), Headers: map[string]string{}}
		for _, h := range o.headers {
			k, v, ok := strings.Cut(h, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("authz check: --header %q: want k=v", h)
			}
			r.HTTP.Headers[strings.ToLower(k)] = v
		}
	}
	if o.claims != "" {
		var claims map[string]any
		if err := json.Unmarshal([]byte(o.claims), &claims); err != nil {
			return nil, fmt.Errorf("authz check: --jwt-claims: %w", err)
		}
		r.Auth = authz.AuthFromClaims(claims)
	}
	return r, nil
}

type checkOutput struct {
	Workload    string          `json:"workload"`
	Allowed     bool            `json:"allowed"`
	Explanation string          `json:"explanation"`
	Decision    *authz.Decision `json:"decision"`
	Policies    []string        `json:"policies"`
	Warnings    []string        `json:"warnings,omitempty"`
}

func printDecision(out io.Writer, o authzCheckOptions, w authz.Workload, p *authz.Prepared, d *authz.Decision, eng *authz.Engine) error {
	co := checkOutput{Workload: w.Namespace + "/" + w.Name, Allowed: d.Allowed, Explanation: d.Explain(), Decision: d}
	for _, pol := range p.Policies() {
		co.Policies = append(co.Policies, fmt.Sprintf("%s (%s%s)", pol.ID(), pol.Action, dryRunNote(pol)))
		co.Warnings = append(co.Warnings, pol.Warnings...)
	}
	for k, err := range eng.Invalid() {
		co.Warnings = append(co.Warnings, fmt.Sprintf("%s: invalid: %v", k, err))
	}
	if o.output != outTable {
		return writeData(out, o.output, co, nil)
	}
	verdict := "DENY"
	if d.Allowed {
		verdict = "ALLOW"
	}
	fmt.Fprintf(out, "%s  %s\n", verdict, co.Explanation)
	fmt.Fprintf(out, "workload: %s %v\n", co.Workload, map[string]string(w.Labels))
	fmt.Fprintf(out, "applicable policies (%d):\n", len(co.Policies))
	for _, s := range co.Policies {
		fmt.Fprintf(out, "  %s\n", s)
	}
	for _, h := range d.Audit {
		fmt.Fprintf(out, "audit: %s\n", h.Rule)
	}
	for _, h := range d.DryRun {
		fmt.Fprintf(out, "dry-run match: %s (%s)\n", h.Rule, h.Action)
	}
	for _, s := range d.Delegated {
		fmt.Fprintf(out, "delegated to external provider %q (decided by its own ext_authz filter)\n", s)
	}
	for _, s := range co.Warnings {
		fmt.Fprintf(out, "warning: %s\n", s)
	}
	if o.showRego {
		for _, pol := range p.Policies() {
			fmt.Fprintf(out, "\n%s", authz.CompileRego(pol).Source)
		}
	}
	return nil
}

func dryRunNote(p *authz.Policy) string {
	if p.DryRun {
		return ", dry-run"
	}
	return ""
}
