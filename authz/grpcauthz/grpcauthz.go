package grpcauthz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Context extension keys of a check. They are authz.ContextNamespace,
// authz.ContextWorkload, authz.ContextLabels and
// extauthz.ContextProxyless (a test holds them equal); they are repeated
// here so an application linking this package does not link OPA.
const (
	contextNamespace = "ward.namespace"
	contextWorkload  = "ward.workload"
	contextLabels    = "ward.labels"
	contextProxyless = "ward.proxyless"
)

// DefaultReasonHeader carries the server's explanation of a decision.
const DefaultReasonHeader = "x-ward-authz-reason"

// Config configures an Authorizer.
type Config struct {
	// Client calls Ward's ext_authz server. When nil, New dials Target
	// with DialOptions (grpc.NewClient: no I/O until the first check).
	Client      authv3.AuthorizationClient
	Target      string
	DialOptions []grpc.DialOption
	// Namespace (required), Name (optional: the WorkloadEntry, whose
	// labels the server uses when Labels is empty) and Labels identify the
	// protected workload; ReadBootstrap gives them from the grpc xDS
	// bootstrap.
	Namespace string
	Name      string
	Labels    map[string]string
	// Timeout bounds one check (default 1s); on expiry the RPC is denied.
	Timeout time.Duration
	// ReasonHeader is the header the server explains its decision in
	// (default DefaultReasonHeader). The interceptor returns it to the
	// caller: as a response header on allow, a trailer on deny.
	ReasonHeader string
	// CallLog, when set, receives an access-log entry per RPC (peer
	// identity, method, status, latency, the deciding policy and rule).
	CallLog CallLog
	// Now is the clock of call latencies (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Authorizer holds the interceptors' state.
type Authorizer struct {
	cfg    Config
	client authv3.AuthorizationClient
	conn   *grpc.ClientConn
	ext    map[string]string
}

// New validates cfg, fills defaults and, without a Client, creates the
// channel to Target. Close releases that channel.
func New(cfg Config) (*Authorizer, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("grpcauthz: config: a workload namespace is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.ReasonHeader == "" {
		cfg.ReasonHeader = DefaultReasonHeader
	}
	labels := cfg.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	lj, err := json.Marshal(labels)
	if err != nil {
		return nil, fmt.Errorf("grpcauthz: config: labels: %w", err)
	}
	a := &Authorizer{cfg: cfg, client: cfg.Client, ext: map[string]string{
		contextNamespace: cfg.Namespace, contextLabels: string(lj), contextProxyless: "grpc",
	}}
	if cfg.Name != "" {
		a.ext[contextWorkload] = cfg.Name
	}
	if a.client == nil {
		if cfg.Target == "" {
			return nil, errors.New("grpcauthz: config: an ext_authz Client or Target is required")
		}
		conn, err := grpc.NewClient(cfg.Target, cfg.DialOptions...)
		if err != nil {
			return nil, fmt.Errorf("grpcauthz: dial ext_authz %s: %w", cfg.Target, err)
		}
		a.conn, a.client = conn, authv3.NewAuthorizationClient(conn)
	}
	return a, nil
}

// Close closes the channel New dialled, if any.
func (a *Authorizer) Close() error {
	if a.conn == nil {
		return nil
	}
	return a.conn.Close()
}

// UnaryServerInterceptor authorises each unary RPC before its handler.
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		ctx, hdr, c, err := a.authorize(ctx, info.FullMethod)
		defer func() { a.logCall(c, status.Code(err)) }()
		if err != nil {
			return nil, err
		}
		if len(hdr) > 0 {
			if err := grpc.SetHeader(ctx, hdr); err != nil {
				a.cfg.Log.Debug("authorization response headers not set", "method", info.FullMethod, "error", err)
			}
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor authorises each stream once, when it opens
// (Envoy checks an HTTP/2 stream once too).
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		ctx, hdr, c, err := a.authorize(ss.Context(), info.FullMethod)
		defer func() { a.logCall(c, status.Code(err)) }()
		if err != nil {
			return err
		}
		if len(hdr) > 0 {
			if err := ss.SetHeader(hdr); err != nil {
				a.cfg.Log.Debug("authorization response headers not set", "method", info.FullMethod, "error", err)
			}
		}
		return handler(srv, &authorizedStream{ServerStream: ss, ctx: ctx})
	}
}

type authorizedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authorizedStream) Context() context.Context { return s.ctx }

// authorize asks the server about one RPC. On allow it returns the
// context the handler runs with (incoming metadata as the server's
// headers-to-add/remove leave it) and the response headers to send; on
// deny, or when no verdict arrives, a status error (fail closed). The
// call describes the RPC for its access-log entry.
func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, metadata.MD, *call, error) {
	req := a.checkRequest(ctx, method)
	c := &call{start: a.cfg.Now(), check: req}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	resp, err := a.client.Check(cctx, req)
	if err != nil {
		a.cfg.Log.Warn("authorization failed closed: ext_authz unavailable", "method", method, "error", err)
		c.denied = codes.PermissionDenied
		return nil, nil, c, status.Error(codes.PermissionDenied, "ext_authz unavailable: "+status.Code(err).String())
	}
	c.metadata = resp.GetDynamicMetadata()
	vctx, hdr, err := a.verdict(ctx, method, resp)
	c.denied = status.Code(err)
	return vctx, hdr, c, err
}
