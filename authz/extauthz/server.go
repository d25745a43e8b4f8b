package extauthz

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/mesh"
)

// Clock tells time; tests inject a fake.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// DecisionLogger receives every decision. *decisionlog.Logger implements it.
type DecisionLogger interface {
	Log(*decisionlog.Entry) bool
	HeaderFilter(map[string]string) map[string]string
}

var _ DecisionLogger = (*decisionlog.Logger)(nil)

// Config configures a Server.
type Config struct {
	Log *slog.Logger
	// Workload pins the server to one workload (the agent's local
	// authorizer); nil means each check names its workload in context
	// extensions (ward.namespace, ward.workload, ward.labels) or gRPC
	// metadata (x-ward-namespace, x-ward-workload, x-ward-labels).
	Workload *authz.Workload
	// JWTPayloadKey is jwt_authn's payload_in_metadata key (default
	// "payload").
	JWTPayloadKey string
	// XFFTrustedHops is the number of trusted proxies appending to
	// X-Forwarded-For, which remote.ip is read through (default 0: the
	// direct peer).
	XFFTrustedHops int
	// ReasonHeader carries the one-line explanation on denials (default
	// "x-ward-authz-reason"); "-" disables it.
	ReasonHeader string
	// Timeout bounds one evaluation (default 50ms): on expiry, deny.
	Timeout time.Duration
	// DecisionCache bounds memoised decisions per workload policy set
	// (authz.EngineConfig.DecisionCache: 0 default, negative disables).
	DecisionCache int
	// Decisions, when set, receives every decision.
	Decisions DecisionLogger
	// Registry, when set, receives the server's metrics.
	Registry prometheus.Registerer
	// Keys serves the key sets of RequestAuthentication rules that fetch
	// theirs (authn/jwks.Resolver, the one ward serve gives xds/hooks), for
	// checks from proxyless gRPC interceptors (ContextProxyless), which the
	// server authenticates itself. nil: only inline jwks verify; tokens of
	// other issuers are rejected (fail closed).
	Keys authn.KeySets
	// PreviousPolicyBound is how long, at most, the previous snapshot's
	// engine may keep deciding checks for workloads the new one has not
	// prepared yet, while every known workload is prepared in the
	// background (warm.go). 0: a new snapshot decides at once, nothing is
	// prepared in the background and each workload prepares on its first
	// check (ward authz check, tests). ward serve sets 10s.
	PreviousPolicyBound time.Duration
	// PrepareConcurrency is how many workloads a new snapshot prepares at
	// once in the background (default 1, at most 2: it shares the cores
	// with the checks).
	PrepareConcurrency int
	Clock              Clock
}

// Server is the ext_authz server. Update installs a snapshot; until the
// first one every check is denied.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	cfg     Config
	metrics *metrics
	engine  atomic.Pointer[authz.Engine]
	jwt     jwtCache
	labels  labelMemo
	warm    warmer
	wire    wireTemplates
}

// labelMemo memoises parsed workload labels by their JSON text (a check
// names its workload's labels in every request; parsing them was a tenth
// of a check). Bounded: past maxLabelMemo texts, labels are parsed per
// check. Parsed labels are shared and never modified.
type labelMemo struct {
	m sync.Map // string → mesh.Labels
	n atomic.Int64
}

const maxLabelMemo = 4096

func (lm *labelMemo) parse(s string) (mesh.Labels, error) {
	if l, ok := lm.m.Load(s); ok {
		return l.(mesh.Labels), nil
	}
	l, err := authz.ParseLabels(s)
	if err == nil && lm.n.Add(1) <= maxLabelMemo {
		lm.m.Store(s, l)
	}
	return l, err
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New returns a server with defaults filled in. Metrics that cannot be
// registered (a second server on one registry) are logged and kept
// unregistered.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.JWTPayloadKey == "" {
		cfg.JWTPayloadKey = authz.DefaultJWTPayloadKey
	}
	if cfg.ReasonHeader == "" {
		cfg.ReasonHeader = "x-ward-authz-reason"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	cfg.PrepareConcurrency = min(max(cfg.PrepareConcurrency, 1), 2)
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		cfg.Log.Error("ext_authz metrics not registered", "error", err)
	}
	return &Server{cfg: cfg, metrics: m}
}

// Update compiles snap and stages it: its policies are prepared for
// every known workload in the background, and it starts deciding once
// they are, or after Config.PreviousPolicyBound (at once when that is 0);
// see warm.go. In-flight checks finish on the engine they started with.
// On a compile error the previous engine stays.
func (s *Server) Update(snap *mesh.Snapshot) error {
	var e *authz.Engine
	var err error
	base := s.warm.staged.Load()
	if base == nil {
		base = s.engine.Load()
	}
	if base != nil {
		e, err = base.Update(snap) // reuses compiled policies when they did not change
	} else {
		e, err = authz.NewEngine(snap, authz.EngineConfig{Log: s.cfg.Log, Timeout: s.cfg.Timeout, DecisionCache: s.cfg.DecisionCache})
	}
	if err != nil {
		return fmt.Errorf("ext_authz: update to snapshot %s: %w", snap.Version(), err)
	}
	s.stageEngine(e)
	s.cfg.Log.Info("ext_authz policies updated", "version", snap.Version(), "invalid", len(e.Invalid()))
	return nil
}

// Register adds the Authorization service to g.
func (s *Server) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }

// Serve runs a gRPC server with only this service on lis until ctx ends.
// It serves streams from a fixed pool of worker goroutines: OPA's
// evaluation recurses deeply, and a fresh goroutine per request would grow
// (copy) its stack on every check — the pool's stacks stay grown. The
// pool is sized for the checks in flight under load (32 per core: at
// 5 000 rps, 4 per core left a third of the streams to fresh goroutines
// and doubled p99). Its Check answers with responses marshalled once
// per decision shape (wire.go); Register's servers marshal per check.
func (s *Server) Serve(ctx context.Context, lis net.Listener, opts ...grpc.ServerOption) error {
	opts = append([]grpc.ServerOption{grpc.NumStreamWorkers(uint32(32 * runtime.GOMAXPROCS(0))),
		grpc.ForceServerCodecV2(newWireCodec())}, opts...)
	g := grpc.NewServer(opts...)
	g.RegisterService(&checkMethod, s) // answers with responses marshalled once per decision (wire.go)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	defer s.Close()
	select {
	case <-ctx.Done():
		g.GracefulStop()
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("ext_authz: serve %s: %w", lis.Addr(), err)
	}
}

// Check decides one request. It never returns a gRPC error for a request
// it can read: every failure is a denial in the response, so Envoy's
// failure mode never applies.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.check(ctx, req, nil)
}

// check is Check with an optional caller authentication (RegisterMTLS).
func (s *Server) check(ctx context.Context, req *authv3.CheckRequest, auth callerCheck) (*authv3.CheckResponse, error) {
	id, d, r := s.evaluate(ctx, req, auth)
	return response(id, d, r, s.cfg.ReasonHeader, proxyless(req)), nil
}

// evaluate decides a check under a new decision id, logs a failure,
// observes the metrics and records the decision.
func (s *Server) evaluate(ctx context.Context, req *authv3.CheckRequest, auth callerCheck) (string, *authz.Decision, *authz.Request) {
	start := s.cfg.Clock.Now()
	id := newID()
	d, r, w, err := s.decide(ctx, req, auth)
	if err != nil {
		s.cfg.Log.Warn("authorization failed closed", "decision_id", id, "workload", w, "reason", d.Reason, "error", err)
	}
	s.metrics.observe(d, s.cfg.Clock.Now().Sub(start))
	s.record(id, start, w, r, d, err)
	return id, d, r
}

func (s *Server) decide(ctx context.Context, req *authv3.CheckRequest, auth callerCheck) (*authz.Decision, *authz.Request, string, error) {
	w, name, d, err := s.identify(ctx, req, auth)
	if d != nil {
		return d, nil, name, err
	}
	r, err := authz.RequestFromCheck(req, authz.CheckOptions{JWTPayloadKey: s.cfg.JWTPayloadKey, XFFTrustedHops: s.cfg.XFFTrustedHops,
		RemoteIPLastXFF: checkValue(ctx, req, authz.ContextRemoteIP, "x-ward-remote-ip") == authz.RemoteIPLastXFF})
	if err != nil {
		return authz.FailClosed(authz.ReasonBadRequest, err), nil, name, err
	}
	e, p := s.pick(w)
	if e == nil {
		err := errors.New("no policy snapshot loaded yet")
		return authz.FailClosed(authz.ReasonError, err), r, name, err
	}
	if proxyless(req) && tcpPort(e.Snapshot(), w, r.Destination) {
		// grpc-go serves every port with HTTP/2, but the port is declared
		// TCP: Istio's semantics for it are a TCP connection's, as the
		// proxyless RBAC output (translate.InboundTCP) and an Envoy
		// sidecar's network filters apply them.
		r = asTCP(r)
	} else if proxyless(req) {
		if r.Auth != nil {
			err := fmt.Errorf("%w: a proxyless check carries jwt_authn metadata; the server verifies proxyless tokens itself", authz.ErrBadCheckRequest)
			return authz.FailClosed(authz.ReasonBadRequest, err), r, name, err
		}
		if err := s.authenticate(e.Snapshot(), w, r); err != nil {
			return authz.FailClosed(ReasonUnauthenticated, err), r, name, err
		}
	}
	if p == nil {
		s.metrics.inline.Inc() // neither engine had the workload prepared
		if p, err = e.For(ctx, w.Namespace, w.Labels); err != nil {
			return authz.FailClosed(authz.ReasonError, err), r, name, err
		}
	}
	d, err = p.Decide(ctx, r)
	return d, r, name, err
}

// identify returns the workload a check is about and its name; with
// auth (RegisterMTLS) it authenticates the caller first, before reading
// anything it sent, and binds the workload to the caller's namespace. A
// failure comes with its denying decision.
func (s *Server) identify(ctx context.Context, req *authv3.CheckRequest, auth callerCheck) (authz.Workload, string, *authz.Decision, error) {
	var caller mesh.Identity
	if auth != nil {
		var err error
		if caller, err = auth(ctx); err != nil {
			return authz.Workload{}, "", authz.FailClosed(ReasonCallerUnauthenticated, err), err
		}
	}
	w, err := s.workload(ctx, req)
	if err != nil {
		return w, "", authz.FailClosed(authz.ReasonBadRequest, err), err
	}
	name := w.Namespace + "/" + w.Name
	if auth != nil {
		if err := bindCaller(caller, w); err != nil {
			return w, name, authz.FailClosed(ReasonCallerForbidden, err), err
		}
	}
	return w, name, nil, nil
}

// checkValue reads a Ward key from the check's context extensions, else
// from the call's gRPC metadata (the filter's initial_metadata).
func checkValue(ctx context.Context, req *authv3.CheckRequest, ext, mdKey string) string {
	if v := req.GetAttributes().GetContextExtensions()[ext]; v != "" {
		return v
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if vs := md.Get(mdKey); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// workload identifies the protected workload: the pinned one, else the
// check's context extensions, else the call's gRPC metadata. A workload
// named without labels takes the labels of its WorkloadEntry.
func (s *Server) workload(ctx context.Context, req *authv3.CheckRequest) (authz.Workload, error) {
	if s.cfg.Workload != nil {
		return *s.cfg.Workload, nil
	}
	get := func(k, mdKey string) string { return checkValue(ctx, req, k, mdKey) }
	w := authz.Workload{Namespace: get(authz.ContextNamespace, "x-ward-namespace"), Name: get(authz.ContextWorkload, "x-ward-workload")}
	if w.Namespace == "" {
		return w, fmt.Errorf("%w: no workload namespace in context extensions or metadata", authz.ErrBadCheckRequest)
	}
	labels, err := s.labels.parse(get(authz.ContextLabels, "x-ward-labels"))
	if err != nil {
		return w, fmt.Errorf("%w: %w", authz.ErrBadCheckRequest, err)
	}
	w.Labels = labels
	if len(labels) == 0 && w.Name != "" {
		if e := s.newest(); e != nil {
			w.Labels = entryLabels(e.Snapshot(), w)
		}
	}
	return w, nil
}

func entryLabels(snap *mesh.Snapshot, w authz.Workload) mesh.Labels {
	for _, we := range snap.WorkloadsInNamespace(w.Namespace) {
		if we.Name == w.Name {
			return we.Labels
		}
	}
	return mesh.Labels{}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func (s *Server) record(id string, start time.Time, w string, r *authz.Request, d *authz.Decision, err error) {
	if s.cfg.Decisions == nil {
		return
	}
	e := &decisionlog.Entry{
		DecisionID: id, Time: start, Workload: w, Allowed: d.Allowed, Reason: string(d.Reason),
		Explanation: explain(d), LatencyMicros: s.cfg.Clock.Now().Sub(start).Microseconds(),
	}
	e.SetDecision(d)
	if err != nil {
		e.Error = err.Error()
	}
	if r != nil {
		e.SourcePrincipal = r.Source.Principal
		if r.Auth != nil {
			e.RequestPrincipal = r.Auth.Principal
		}
		if h := r.HTTP; h != nil {
			e.Method, e.Path, e.Host = h.Method, s.loggedPath(h.Path), h.Host
			e.Headers = s.cfg.Decisions.HeaderFilter(h.Headers)
		}
	}
	s.cfg.Decisions.Log(e)
}

// loggedPath is the path the decision matched: normalised at the loaded
// snapshot's pathNormalization level, or as sent when it was rejected.
func (s *Server) loggedPath(p string) string {
	level := mesh.PathNormalizationBase
	if e := s.engine.Load(); e != nil {
		level = e.Snapshot().Mesh().PathNormalizationLevel()
	}
	if n, err := authz.NormalizePath(p, level); err == nil {
		return n
	}
	return p
}

// newest returns the staged engine, else the deciding one (nil before the
// first snapshot).
func (s *Server) newest() *authz.Engine {
	if e := s.warm.staged.Load(); e != nil {
		return e
	}
	return s.engine.Load()
}
