package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/credentials/tls/certprovider/pemfile" // file_watcher certificate provider in the agent's bootstrap
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/structpb"
)

// Hosts of the demo's services (the ServiceEntries in config/).
const (
	reviewsTarget = "xds:///reviews.bookinfo.svc.cluster.local:9080"
	ratingsTarget = "xds:///ratings.bookinfo.svc.cluster.local:9080"
	detailsTarget = "xds:///details.bookinfo.svc.cluster.local:9080"
)

// Roles a workload can play.
const (
	RoleFrontend = "frontend"
	RoleReviews  = "reviews"
	RoleRatings  = "ratings"
	RoleDetails  = "details"
)

// WorkloadConfig configures one demo workload process (`ward demo
// workload`). The process finds Ward through the grpc xDS bootstrap the
// agent wrote (GRPC_XDS_BOOTSTRAP).
type WorkloadConfig struct {
	Role      string
	Version   string // reviews only
	Listen    string // servers: the address in the WorkloadEntry
	Bootstrap string // the agent's grpc bootstrap (namespace and labels for ext_authz)
	ExtAuthz  string // Ward's ext_authz server; empty: xDS RBAC only
	TokenFile string // frontend: the JWT it presents to ratings' admin method
	Interval  time.Duration
	Out       io.Writer // JSON events, one per line
	Log       *slog.Logger
}

// Event is one line a workload prints: it is serving, or a call finished.
type Event struct {
	Kind   string `json:"kind"` // "serving" or "call"
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Method string `json:"method,omitempty"`
	Caller string `json:"caller,omitempty"` // how the caller presented itself
	Code   string `json:"code,omitempty"`   // gRPC status code
	Served string `json:"served,omitempty"` // the instance that answered
	Rule   string `json:"rule,omitempty"`   // deciding rule or reason
	Nested *Event `json:"nested,omitempty"` // the call the server made on our behalf
}

type emitter struct {
	mu sync.Mutex
	w  io.Writer
}

func (e *emitter) emit(ev Event) {
	b, _ := json.Marshal(ev)
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.w, "%s\n", b)
}

// RunWorkload runs a demo workload until ctx ends.
func RunWorkload(ctx context.Context, c WorkloadConfig) error {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Interval == 0 {
		c.Interval = 200 * time.Millisecond
	}
	if os.Getenv("GRPC_XDS_BOOTSTRAP") == "" && os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		return fmt.Errorf("demo workload %s: GRPC_XDS_BOOTSTRAP is not set (point it at the bootstrap `ward agent --output-dir` wrote)", c.Role)
	}
	out := &emitter{w: c.Out}
	switch c.Role {
	case RoleFrontend:
		return runFrontend(ctx, c, out)
	case RoleReviews, RoleRatings, RoleDetails:
		return runServer(ctx, c, out)
	}
	return fmt.Errorf("demo workload: unknown role %q (frontend, reviews, ratings or details)", c.Role)
}

func xdsClient(target string) (*grpc.ClientConn, error) {
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, grpc.WithTransportCredentials(creds))
}

func runServer(ctx context.Context, c WorkloadConfig, out *emitter) error {
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return err
	}
	var once sync.Once
	opts := []grpc.ServerOption{grpc.Creds(creds),
		xds.ServingModeCallback(func(addr net.Addr, a xds.ServingModeChangeArgs) {
			c.Log.Info("serving mode", "addr", addr, "mode", a.Mode, "error", a.Err)
			if a.Mode == connectivity.ServingModeServing {
				once.Do(func() { out.emit(Event{Kind: "serving"}) })
			}
		})}
	if c.ExtAuthz != "" {
		ic, closeAuthz, err := extAuthzInterceptor(c)
		if err != nil {
			return err
		}
		defer closeAuthz()
		opts = append(opts, grpc.ChainUnaryInterceptor(ic))
	}
	s, err := xds.NewGRPCServer(opts...)
	if err != nil {
		return err
	}
	switch c.Role {
	case RoleReviews:
		ratings, err := xdsClient(ratingsTarget)
		if err != nil {
			return err
		}
		defer ratings.Close()
		s.RegisterService(serviceDesc("bookinfo.Reviews", map[string]handler{"List": reviewsList(c.Version, ratings)}), nil)
	case RoleRatings:
		s.RegisterService(serviceDesc("bookinfo.Ratings", map[string]handler{
			"Get": func(context.Context, *structpb.Struct) (*structpb.Struct, error) {
				return structpb.NewStruct(map[string]any{"stars": 4})
			},
			"Admin": func(context.Context, *structpb.Struct) (*structpb.Struct, error) {
				return structpb.NewStruct(map[string]any{"reset": true})
			},
		}), nil)
	case RoleDetails:
		s.RegisterService(serviceDesc("bookinfo.Details", map[string]handler{
			"Get": func(context.Context, *structpb.Struct) (*structpb.Struct, error) {
				return structpb.NewStruct(map[string]any{"pages": 200})
			},
		}), nil)
	}
	lis, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("demo %s: %w", c.Role, err)
	}
	context.AfterFunc(ctx, s.GracefulStop)
	return s.Serve(lis)
}

// reviewsList answers with the instance's version; v2 and v3 ask ratings
// for stars (as bookinfo does) and report how that call went.
func reviewsList(version string, ratings grpc.ClientConnInterface) handler {
	return func(ctx context.Context, _ *structpb.Struct) (*structpb.Struct, error) {
		resp := map[string]any{"version": version}
		if version != "v1" {
			ev := invoke(ctx, ratings, MethodRatingsGet, "")
			ev.From, ev.To, ev.Caller = "reviews-"+version, "ratings", "mTLS as reviews"
			b, _ := json.Marshal(ev)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			resp["ratings"] = m
		}
		return structpb.NewStruct(resp)
	}
}

// invoke makes one call and reports its outcome; token, when set, is sent
// as a bearer token.
func invoke(ctx context.Context, cc grpc.ClientConnInterface, method, token string) Event {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	var hdr, trl metadata.MD
	resp, err := call(ctx, cc, method, map[string]any{}, grpc.Header(&hdr), grpc.Trailer(&trl))
	ev := Event{Kind: "call", Method: method, Code: status.Code(err).String()}
	if err != nil {
		ev.Rule = denialReason(status.Convert(err).Message())
	} else {
		ev.Rule = allowedBy(hdr, trl)
		if v := resp.GetFields()["version"]; v != nil {
			ev.Served = "v" + strings.TrimPrefix(v.GetStringValue(), "v")
		}
		if r := resp.GetFields()["ratings"]; r != nil {
			b, _ := r.GetStructValue().MarshalJSON()
			var nested Event
			if json.Unmarshal(b, &nested) == nil {
				ev.Nested = &nested
			}
		}
	}
	return ev
}

func runFrontend(ctx context.Context, c WorkloadConfig, out *emitter) error {
	token := ""
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return fmt.Errorf("demo frontend: token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	reviews, err := xdsClient(reviewsTarget)
	if err != nil {
		return err
	}
	defer reviews.Close()
	ratings, err := xdsClient(ratingsTarget)
	if err != nil {
		return err
	}
	defer ratings.Close()
	details, err := xdsClient(detailsTarget)
	if err != nil {
		return err
	}
	defer details.Close()
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		// One round: the storefront path, then what the frontend must not
		// or may only do with a token.
		for _, step := range []struct {
			cc            grpc.ClientConnInterface
			to, method    string
			token, caller string
		}{
			{reviews, "reviews", MethodReviewsList, "", "mTLS as frontend"},
			{ratings, "ratings", MethodRatingsGet, "", "mTLS as frontend"},
			{ratings, "ratings", MethodRatingsAdm, "", "mTLS as frontend, no token"},
			{ratings, "ratings", MethodRatingsAdm, token, "mTLS as frontend + ops JWT"},
			{details, "details", MethodDetailsGet, "", "mTLS as frontend"},
		} {
			ev := invoke(ctx, step.cc, step.method, step.token)
			if ctx.Err() != nil {
				return nil
			}
			ev.From, ev.To, ev.Caller = "frontend", step.to, step.caller
			out.emit(ev)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// denialReason drops the reason code ext_authz prefixes its message with
// ("ward_authz_denied: denied by …"); the rest names the rule.
func denialReason(msg string) string {
	if code, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(code, "ward_authz_") && !strings.Contains(code, " ") {
		return rest
	}
	return msg
}
