package xds

import (
	"context"
	"errors"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/mesh"
)

// Authenticator authenticates the peer of an RPC on the secure port by its
// verified Ward workload certificate (ca.CA.PeerIdentity). It returns
// ErrNoPeerCertificate when the caller presented none.
type Authenticator interface {
	Authenticate(ctx context.Context) (mesh.Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context) (mesh.Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context) (mesh.Identity, error) { return f(ctx) }

// ErrNoPeerCertificate is what an Authenticator returns for a caller
// without a client certificate.
var ErrNoPeerCertificate = errors.New("no client certificate")

// streamPeer is who opened a stream, as the registrar saw it before the
// stream reached go-control-plane.
type streamPeer struct {
	secure   bool
	identity mesh.Identity // verified; zero unless secure or a node
	node     string        // a node proxy's node, from its node certificate
	source   string        // the peer's IP ("" when unknown)
}

type peerKey struct{}

func peerOf(ctx context.Context) streamPeer {
	p, _ := ctx.Value(peerKey{}).(streamPeer)
	return p
}

// Register adds the ADS service (SotW and delta) and the per-type
// discovery services to g as a plaintext server (15010): streams are not
// authenticated, so metadata that widens what a proxy may skip
// (MetaAuthz) is ignored.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	s.register(g, func(ctx context.Context) (streamPeer, error) {
		return streamPeer{source: sourceIP(ctx)}, nil
	})
}

// RegisterSecure adds the same services to g, the mTLS server (15012,
// whose TLS config verifies client certificates if given, because the
// certificate service shares it). Every xDS call must present a verified
// Ward workload certificate (else codes.Unauthenticated), and a stream
// then serves only the identity in it: a node claiming another namespace
// or service account is refused (codes.PermissionDenied).
func (s *Server) RegisterSecure(g grpc.ServiceRegistrar, auth Authenticator) {
	s.register(g, func(ctx context.Context) (streamPeer, error) {
		id, err := auth.Authenticate(ctx)
		if err != nil && s.cfg.Nodes != nil && !errors.Is(err, ErrNoPeerCertificate) {
			if node, nerr := s.cfg.Nodes.AuthenticateNode(ctx); nerr == nil {
				return streamPeer{secure: true, node: node, source: sourceIP(ctx)}, nil
			}
		}
		if err != nil {
			s.m.rejectedStreams.WithLabelValues(rejectUnauthenticated).Inc()
			s.warnRefusal("xds stream refused: caller not authenticated", "source", sourceIP(ctx), "err", err)
			return streamPeer{}, status.Error(codes.Unauthenticated, "xDS on the secure port requires a verified Ward workload certificate")
		}
		return streamPeer{secure: true, identity: id, source: sourceIP(ctx)}, nil
	})
}

func (s *Server) register(g grpc.ServiceRegistrar, admit func(context.Context) (streamPeer, error)) {
	r := admitting{g: g, admit: admit}
	discovery.RegisterAggregatedDiscoveryServiceServer(r, ads{AggregatedDiscoveryServiceServer: s.xds, s: s})
	listenerservice.RegisterListenerDiscoveryServiceServer(r, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(r, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(r, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(r, s.xds)
}

// admitting wraps every handler of the services registered through it:
// the call is admitted (authenticated) first and its context carries the
// streamPeer the callbacks read. This is a per-service interceptor: the
// certificate service on the same gRPC server is not affected.
type admitting struct {
	g     grpc.ServiceRegistrar
	admit func(context.Context) (streamPeer, error)
}

func (a admitting) RegisterService(desc *grpc.ServiceDesc, impl any) {
	d := *desc
	d.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, sd := range desc.Streams {
		h := sd.Handler
		sd.Handler = func(srv any, ss grpc.ServerStream) error {
			p, err := a.admit(ss.Context())
			if err != nil {
				return err
			}
			return h(srv, peerStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), peerKey{}, p)})
		}
		d.Streams[i] = sd
	}
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, md := range desc.Methods {
		h := md.Handler
		md.Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			p, err := a.admit(ctx)
			if err != nil {
				return nil, err
			}
			return h(srv, context.WithValue(ctx, peerKey{}, p), dec, in)
		}
		d.Methods[i] = md
	}
	a.g.RegisterService(&d, impl)
}

type peerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (p peerStream) Context() context.Context { return p.ctx }

func sourceIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	return hostOf(p.Addr)
}

// NodeStreams serves ambient node proxies (xds/ambient) on the secure
// port's ADS service: a caller whose certificate is a node identity, not
// a workload identity, is handed over with the node named in it.
type NodeStreams interface {
	// AuthenticateNode returns the node named in the caller's verified
	// node certificate (ca.CA.PeerNode).
	AuthenticateNode(ctx context.Context) (string, error)
	// ServeNode serves one delta ADS stream of node.
	ServeNode(node string, stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error
}

// ads routes delta streams of node proxies to Config.Nodes; everything
// else goes to go-control-plane. A node identity may open nothing but
// delta ADS (openStream refuses it elsewhere), and a workload identity
// is never served node config (OnStreamDeltaRequest refuses the types).
type ads struct {
	discovery.AggregatedDiscoveryServiceServer
	s *Server
}

func (a ads) DeltaAggregatedResources(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	if p := peerOf(stream.Context()); p.node != "" {
		id, err := a.s.openNodeStream(p)
		if err != nil {
			return err
		}
		defer a.s.closeStream(id)
		return a.s.cfg.Nodes.ServeNode(p.node, stream)
	}
	return a.AggregatedDiscoveryServiceServer.DeltaAggregatedResources(stream)
}
