package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/wardmesh/ward/agent"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Config configures a demo run.
type Config struct {
	// Ward is the ward binary the demo runs (serve, ca, agent and the
	// workloads); `ward demo` passes itself.
	Ward string
	// Dir is the work directory (config, CA state, agents' files, logs).
	// Empty: a temporary directory, removed afterwards unless Keep.
	Dir  string
	Keep bool
	// Duration is the least time traffic runs (default 10s); each canary
	// phase lasts half of it and until its new subset has answered.
	Duration time.Duration
	// Interval paces the frontend's rounds of calls (default 150ms).
	Interval time.Duration
	// StartTimeout bounds each start-up step (default 60s).
	StartTimeout time.Duration
	// NoAudit skips the closing `ward audit` report.
	NoAudit bool
	Out     io.Writer
}

// Result is what a run observed.
type Result struct {
	Allowed, Denied, Refused, Failed int
	// Split counts reviews answers per subset in each canary phase.
	Split []map[string]int
}

// ports the demo allocates on 127.0.0.1.
type ports struct {
	debug, xds, secure int
}

func (c *Config) defaults() error {
	if c.Ward == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("demo: find the ward binary: %w", err)
		}
		c.Ward = exe
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = 150 * time.Millisecond
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return nil
}

// freePorts finds n loopback ports the processes can bind. They are taken
// from below the kernel's ephemeral range, so the outgoing connections the
// demo (and anything beside it) makes cannot take one between this check
// and the bind; a collision would still fail that process clearly with
// "address already in use".
func freePorts(n int) ([]int, error) {
	low := ephemeralLow()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]int, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("demo: no free loopback port below %d", low)
		}
		p := 10000 + rand.IntN(low-10000)
		l, err := net.Listen("tcp", loop(p))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		out = append(out, p)
	}
	return out, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 12000 {
				return v
			}
		}
	}
	return 32768
}

func loop(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }

// Run builds the demo mesh, drives traffic, prints the live table and the
// audit, and tears everything down. It fails when an expected outcome
// (an allowed and a denied call of each kind, both canary phases, strict
// mTLS refusing plaintext) was not observed.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ward-demo-")
		if err != nil {
			return nil, err
		}
		dir = d
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var procs []*proc
	defer func() {
		cancel()
		for _, p := range procs {
			<-p.done
		}
	}()
	out := cfg.Out
	w := newTable(out)

	ws := []workload{
		{Name: "frontend", App: "frontend", ServiceAccount: "frontend"},
		{Name: "reviews-v1", App: "reviews", Version: "v1", ServiceAccount: "reviews"},
		{Name: "reviews-v2", App: "reviews", Version: "v2", ServiceAccount: "reviews"},
		{Name: "reviews-v3", App: "reviews", Version: "v3", ServiceAccount: "reviews"},
		{Name: "ratings", App: "ratings", ServiceAccount: "ratings"},
		// details has no ALLOW policy yet: the recommendation proposes one.
		{Name: "details", App: "details", ServiceAccount: "details"},
	}
	pp, err := freePorts(3 + len(ws) - 1)
	if err != nil {
		return nil, err
	}
	pt := ports{debug: pp[0], xds: pp[1], secure: pp[2]}
	for i := 1; i < len(ws); i++ {
		ws[i].Port = pp[2+i]
	}
	cfgDir, stateDir := filepath.Join(dir, "config"), filepath.Join(dir, "state")
	for _, d := range []string{cfgDir, stateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	jwks, token, err := identityProvider(time.Now())
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "ops.jwt")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return nil, err
	}
	if err := writeConfig(cfgDir, ws, jwks); err != nil {
		return nil, fmt.Errorf("demo: write config: %w", err)
	}
	fmt.Fprintf(out, "Ward demo: a proxyless gRPC mesh on loopback (work dir %s)\n\n", dir)

	// The control plane.
	serve, err := start(ctx, dir, "ward-serve", cfg.Ward, nil, "serve", "--config", cfgDir, "--state", stateDir,
		"--debug-addr", loop(pt.debug), "--xds-addr", loop(pt.xds), "--secure-addr", loop(pt.secure), "--authz-addr", "",
		"--server-name", "127.0.0.1", "--debounce", "20ms")
	if err != nil {
		return nil, err
	}
	procs = append(procs, serve)
	debugURL := "http://" + loop(pt.debug)
	if err := waitReady(ctx, serve, debugURL+"/readyz", cfg.StartTimeout); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "  ward serve     config %s; CA, xDS and ext_authz on %s (TLS), debug %s\n", cfgDir, loop(pt.secure), debugURL)
	bundle, err := output(ctx, cfg.Ward, "ca", "bundle", "--state", stateDir)
	if err != nil {
		return nil, err
	}
	bundleFile := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(bundleFile, bundle, 0o600); err != nil {
		return nil, err
	}

	// One agent per workload, enrolled with a one-time join token.
	boots := map[string]string{}
	for _, wl := range ws {
		wdir := filepath.Join(dir, wl.Name)
		if err := os.MkdirAll(wdir, 0o700); err != nil {
			return nil, err
		}
		tok, err := output(ctx, cfg.Ward, "ca", "token", "create", "--state", stateDir, "--ns", "bookinfo", "--sa", wl.ServiceAccount, "--ttl", "5m")
		if err != nil {
			return nil, err
		}
		tokFile := filepath.Join(wdir, "join-token")
		if err := os.WriteFile(tokFile, tok, 0o600); err != nil {
			return nil, err
		}
		a, err := start(ctx, dir, "agent-"+wl.Name, cfg.Ward, nil, "agent", "--join-token-file", tokFile,
			"--ca-addr", loop(pt.secure), "--ca-root", bundleFile, "--xds-addr", loop(pt.secure),
			"--output-dir", wdir, "--no-sds", "--state", wdir, "--name", wl.Name, "--ip", "127.0.0.1",
			"--labels", wl.labels(), "--authz", "ext-authz")
		if err != nil {
			return nil, err
		}
		procs = append(procs, a)
		boots[wl.Name] = filepath.Join(wdir, agent.FileBootstrap)
	}
	for _, p := range procs[1:] {
		if err := p.waitStderr(regexp.MustCompile(`certificate installed`), cfg.StartTimeout); err != nil {
			return nil, err
		}
	}
	for _, wl := range ws {
		fmt.Fprintf(out, "  ward agent     %-10s spiffe://%s/ns/bookinfo/sa/%s (join token; key made locally)\n", wl.Name, TrustDomain, wl.ServiceAccount)
	}

	// The servers; each is ready when Ward's listener for it arrived.
	servers := map[string]*proc{}
	for _, wl := range ws[1:] {
		p, err := startWorkload(ctx, cfg, dir, wl, boots[wl.Name], pt, "")
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		servers[wl.Name] = p
	}
	for _, wl := range ws[1:] {
		if err := waitServing(servers[wl.Name], cfg.StartTimeout); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "  workload       %-10s grpc-go xDS server on %s (listener, mTLS and authz from Ward)\n", wl.Name, loop(wl.Port))
	}
	front, err := startWorkload(ctx, cfg, dir, ws[0], boots["frontend"], pt, tokenFile)
	if err != nil {
		return nil, err
	}
	procs = append(procs, front)

	res, err := drive(ctx, cfg, w, front, cfgDir, ws[1].Port)
	w.summary(res)
	if err != nil {
		return res, err
	}
	if !cfg.NoAudit {
		calls := filepath.Join(stateDir, "calls.log")
		fmt.Fprintf(out, "\nAudit of the running mesh (ward audit --config %s --server %s --decisions %s --calls %s)\n\n", cfgDir, debugURL, filepath.Join(stateDir, "decisions.log"), calls)
		rep, err := output(ctx, cfg.Ward, "audit", "--config", cfgDir, "--server", debugURL, "--decisions", filepath.Join(stateDir, "decisions.log"), "--calls", calls)
		if err != nil {
			return res, err
		}
		out.Write(rep)
		fmt.Fprintf(out, "\nPolicies recommended from the observed calls (ward authz recommend --config %s --state %s)\n\n", cfgDir, stateDir)
		rec, err := outputAll(ctx, cfg.Ward, "authz", "recommend", "--config", cfgDir, "--state", stateDir)
		if err != nil {
			return res, err
		}
		out.Write(rec)
	}
	return res, nil
}

func startWorkload(ctx context.Context, cfg Config, dir string, wl workload, boot string, pt ports, tokenFile string) (*proc, error) {
	role := wl.App
	args := []string{"demo", "workload", "--role", role, "--bootstrap", boot, "--ext-authz", loop(pt.secure), "--interval", cfg.Interval.String()}
	if wl.Version != "" {
		args = append(args, "--version", wl.Version)
	}
	if wl.Port != 0 {
		args = append(args, "--listen", loop(wl.Port))
	}
	if tokenFile != "" {
		args = append(args, "--token-file", tokenFile)
	}
	return start(ctx, dir, wl.Name, cfg.Ward, []string{"GRPC_XDS_BOOTSTRAP=" + boot}, args...)
}

// waitReady polls url until it answers 200 (the process has no event to
// wait on), bounded by timeout and the process's exit.
func waitReady(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return p.failed(fmt.Sprintf("not ready at %s within %s", url, timeout))
		}
		select {
		case <-p.done:
			return p.failed("exited during start-up")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func waitServing(p *proc, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				return p.failed("exited before serving")
			}
			var ev Event
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Kind == "serving" {
				return nil
			}
		case <-deadline.C:
			return p.failed(fmt.Sprintf("got no listener from Ward within %s", timeout))
		}
	}
}

// plaintextProbe calls reviews-v1 without TLS: STRICT mTLS must refuse it.
func plaintextProbe(ctx context.Context, port int) Event {
	ev := Event{Kind: "call", From: "outsider", To: "reviews-v1", Method: MethodReviewsList, Caller: "plaintext, no identity"}
	cc, err := grpc.NewClient(loop(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		ev.Code, ev.Rule = "Internal", err.Error()
		return ev
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = call(cctx, cc, MethodReviewsList, map[string]any{})
	ev.Code = status.Code(err).String()
	if err != nil {
		ev.Rule = "PeerAuthentication bookinfo/default STRICT: no client certificate, connection refused"
	}
	return ev
}

// drive runs the canary phases while printing calls, then checks that every
// expected outcome was seen.
func drive(ctx context.Context, cfg Config, w *table, front *proc, cfgDir string, v1Port int) (*Result, error) {
	res := &Result{Split: make([]map[string]int, len(phases))}
	for i := range res.Split {
		res.Split[i] = map[string]int{}
	}
	w.header()
	phase := 0
	w.phase(phases[0].name)
	w.row(plaintextProbe(ctx, v1Port), res)
	phaseEnd := time.Now().Add(cfg.Duration / time.Duration(len(phases)))
	hardStop := time.NewTimer(cfg.Duration + 60*time.Second)
	defer hardStop.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case l, ok := <-front.lines:
			if !ok {
				<-front.done
				return res, front.failed("exited during the run")
			}
			var ev Event
			if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Kind != "call" {
				continue
			}
			if ev.To == "reviews" && ev.Code == "OK" {
				res.Split[phase][ev.Served]++
			}
			w.row(ev, res)
			if ev.Nested != nil {
				w.row(*ev.Nested, res)
			}
		case <-tick.C:
			if time.Now().Before(phaseEnd) || res.Split[phase][phases[phase].want] == 0 {
				continue
			}
			if phase+1 == len(phases) {
				front.stop()
				return res, w.check(res)
			}
			phase++
			if err := writeCanary(cfgDir, phase); err != nil {
				return res, err
			}
			w.phase(phases[phase].name + " (VirtualService rewritten; no restart)")
			phaseEnd = time.Now().Add(cfg.Duration / time.Duration(len(phases)))
		case <-hardStop.C:
			front.stop()
			return res, errors.Join(fmt.Errorf("demo: the canary did not reach %q within %s", phases[phase].want, cfg.Duration+60*time.Second), w.check(res))
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}
