package grpcauthz

import (
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// CallLog receives one access-log entry per RPC the interceptors
// decided, shaped as Envoy's HTTP access log would record it behind
// ext_authz (ALSClient streams them to Ward's access-log service). It
// must not block: the RPC waits for it.
type CallLog interface {
	LogCall(*datav3.HTTPAccessLogEntry)
}

// call is what the interceptors know of one RPC for its log entry.
type call struct {
	start    time.Time
	check    *authv3.CheckRequest
	metadata *structpb.Struct // the ext_authz server's dynamic metadata
	denied   codes.Code       // PermissionDenied/Unauthenticated when authz denied; OK otherwise
}

// logCall reports c, which ended with the handler's (or authorisation's)
// status code, to the configured CallLog.
func (a *Authorizer) logCall(c *call, result codes.Code) {
	if a.cfg.CallLog == nil || c == nil {
		return
	}
	a.cfg.CallLog.LogCall(a.entry(c, result))
}

// entry renders c as Envoy's inbound HTTP entry: the server side of
// inbound|<port>||, the peer's certificate SAN, the decision metadata
// under envoy.filters.http.ext_authz (as Envoy's filter stores it), and
// the HTTP status a proxy would answer: 200 (grpc status in the details
// when not OK), or 403/401 with ext_authz_denied; the gRPC content-type
// and the grpc-status a proxy would log (a trailer, or a header on the
// trailers-only denial), which Istio's request_protocol and
// grpc_response_status are read from.
func (a *Authorizer) entry(c *call, result codes.Code) *datav3.HTTPAccessLogEntry {
	attrs := c.check.GetAttributes()
	took := durationpb.New(a.cfg.Now().Sub(c.start))
	common := &datav3.AccessLogCommon{
		StartTime:                  timestamppb.New(c.start),
		TimeToLastDownstreamTxByte: took,
		Duration:                   took,
		DownstreamRemoteAddress:    attrs.GetSource().GetAddress(),
		DownstreamLocalAddress:     attrs.GetDestination().GetAddress(),
		UpstreamCluster:            "inbound|" + portOf(attrs.GetDestination().GetAddress()) + "||",
	}
	if p := attrs.GetSource().GetPrincipal(); p != "" {
		common.TlsProperties = &datav3.TLSProperties{PeerCertificateProperties: &datav3.TLSProperties_CertificateProperties{
			SubjectAltName: []*datav3.TLSProperties_CertificateProperties_SubjectAltName{{San: &datav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: p}}},
		}}
	}
	if c.metadata != nil {
		common.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.ext_authz": c.metadata}}
	}
	http := attrs.GetRequest().GetHttp()
	e := &datav3.HTTPAccessLogEntry{
		CommonProperties: common,
		ProtocolVersion:  datav3.HTTPAccessLogEntry_HTTP2,
		Request: &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_POST, Path: http.GetPath(), Authority: http.GetHost(), Scheme: http.GetScheme(),
			RequestHeaders: map[string]string{"content-type": "application/grpc"}},
		Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200),
			ResponseTrailers: map[string]string{"grpc-status": grpcStatus(result)}},
	}
	switch {
	case c.denied == codes.Unauthenticated:
		e.Response.ResponseCode, e.Response.ResponseCodeDetails = wrapperspb.UInt32(401), "ext_authz_denied"
		e.Response.ResponseHeaders, e.Response.ResponseTrailers = map[string]string{"grpc-status": grpcStatus(c.denied)}, nil
	case c.denied != codes.OK:
		e.Response.ResponseCode, e.Response.ResponseCodeDetails = wrapperspb.UInt32(403), "ext_authz_denied"
		e.Response.ResponseHeaders, e.Response.ResponseTrailers = map[string]string{"grpc-status": grpcStatus(c.denied)}, nil
	case result != codes.OK:
		e.Response.ResponseCodeDetails = "grpc_status:" + result.String()
	}
	return e
}

func grpcStatus(c codes.Code) string { return strconv.FormatUint(uint64(c), 10) }

func portOf(a *corev3.Address) string {
	p := a.GetSocketAddress().GetPortValue()
	if p == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(p), 10)
}
