package als

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds"
)

// Authenticator returns the identity in a caller's verified certificate
// (ca.CA.PeerIdentity).
type Authenticator interface {
	Authenticate(ctx context.Context) (mesh.Identity, error)
}

var _ Authenticator = xds.AuthenticatorFunc(nil)

// DefaultMaxEntries bounds the log entries of one message.
const DefaultMaxEntries = 1000

// Config configures a Server.
type Config struct {
	// Auth authenticates every stream; required (nil refuses all).
	Auth Authenticator
	// Store receives the records; required.
	Store *Store
	// MaxEntries bounds the entries of one message (default
	// DefaultMaxEntries); a larger message ends the stream.
	MaxEntries int
	Log        *slog.Logger
	// Now is the clock for entries without a start time (default
	// time.Now).
	Now func() time.Time
}

// Server is the Access Log Service.
type Server struct {
	alsv3.UnimplementedAccessLogServiceServer
	cfg Config
}

var _ alsv3.AccessLogServiceServer = (*Server)(nil)

// New returns a server with cfg's defaults filled.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Store == nil {
		cfg.Store = NewStore(StoreConfig{})
	}
	return &Server{cfg: cfg}
}

// Register adds the service to g, which must be the secure port's server
// (its TLS verifies client certificates against the mesh roots).
func (s *Server) Register(g grpc.ServiceRegistrar) { alsv3.RegisterAccessLogServiceServer(g, s) }

// Errors of refused streams; the caller gets only the status code and a
// fixed message, the log gets the error.
var (
	errUnauthenticated = errors.New("caller not authenticated")
	errForeign         = errors.New("node outside the caller's namespace")
	errMalformed       = errors.New("malformed message")
)

// StreamAccessLogs authenticates the caller, checks that the stream's
// node belongs to the caller's namespace, and stores every entry with the
// caller as reporter. It answers when the proxy closes the stream.
func (s *Server) StreamAccessLogs(stream alsv3.AccessLogService_StreamAccessLogsServer) error {
	id, err := s.authenticate(stream.Context())
	if err != nil {
		return s.refuse(err, id)
	}
	reporter, _ := id.SPIFFEID()
	bound := false
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&alsv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		if err := s.bind(msg, id, &bound); err != nil {
			return s.refuse(err, id)
		}
		err = s.store(msg, reporter.String())
		s.cfg.Store.Flush()
		if err != nil {
			return s.refuse(err, id)
		}
	}
}

func (s *Server) authenticate(ctx context.Context) (mesh.Identity, error) {
	if s.cfg.Auth == nil {
		return mesh.Identity{}, fmt.Errorf("%w: no authenticator configured", errUnauthenticated)
	}
	id, err := s.cfg.Auth.Authenticate(ctx)
	if err != nil {
		return mesh.Identity{}, fmt.Errorf("%w: %w", errUnauthenticated, err)
	}
	return id, nil
}

// bind checks the stream's identifier: the first message must carry one,
// and every identifier's node must be in the caller's namespace.
func (s *Server) bind(msg *alsv3.StreamAccessLogsMessage, id mesh.Identity, bound *bool) error {
	ident := msg.GetIdentifier()
	if ident == nil {
		if !*bound {
			return fmt.Errorf("%w: the first message has no identifier", errMalformed)
		}
		return nil
	}
	if ident.GetNode() == nil {
		return fmt.Errorf("%w: identifier without node", errMalformed)
	}
	p := xds.ProxyFromNode(ident.GetNode())
	if p.Namespace != id.Namespace {
		return fmt.Errorf("%w: node %q claims namespace %q", errForeign, clip(p.ID, maxField), clip(p.Namespace, maxField))
	}
	*bound = true
	return nil
}

func (s *Server) store(msg *alsv3.StreamAccessLogsMessage, reporter string) error {
	now := s.cfg.Now()
	switch e := msg.GetLogEntries().(type) {
	case *alsv3.StreamAccessLogsMessage_HttpLogs:
		entries := e.HttpLogs.GetLogEntry()
		if len(entries) > s.cfg.MaxEntries {
			return fmt.Errorf("%w: %d entries, at most %d", errMalformed, len(entries), s.cfg.MaxEntries)
		}
		for _, le := range entries {
			if le.GetCommonProperties() != nil { // an empty entry says nothing
				s.cfg.Store.Add(fromHTTP(le, reporter, now))
			}
		}
	case *alsv3.StreamAccessLogsMessage_TcpLogs:
		entries := e.TcpLogs.GetLogEntry()
		if len(entries) > s.cfg.MaxEntries {
			return fmt.Errorf("%w: %d entries, at most %d", errMalformed, len(entries), s.cfg.MaxEntries)
		}
		for _, le := range entries {
			if le.GetCommonProperties() != nil {
				s.cfg.Store.Add(fromTCP(le, reporter, now))
			}
		}
	case nil:
		// An identifier-only message.
	}
	return nil
}

// refuse logs why a stream ends and returns the status the caller sees:
// its code and a fixed message, never the detail.
func (s *Server) refuse(err error, id mesh.Identity) error {
	s.cfg.Log.Warn("access log stream refused", "spiffe_id", id.String(), "err", err)
	switch {
	case errors.Is(err, errUnauthenticated):
		return status.Error(codes.Unauthenticated, "access logs on the secure port require a verified Ward workload certificate")
	case errors.Is(err, errForeign):
		return status.Error(codes.PermissionDenied, "a proxy may report access logs only for its own namespace")
	default:
		return status.Error(codes.InvalidArgument, "malformed access log message")
	}
}
