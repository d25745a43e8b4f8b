package als

import (
	"strings"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Field bounds: a record never holds more than this of what a proxy
// sent, however large the entry.
const (
	maxField = 256
	maxPath  = 1024
)

// Metadata namespaces Envoy's ext_authz filters write Ward's decision to.
const (
	nsHTTPExtAuthz = "envoy.filters.http.ext_authz"
	nsNetExtAuthz  = "envoy.filters.network.ext_authz"
)

const rbacDenied = "rbac_access_denied_matched_policy["

// fromHTTP turns an HTTP entry into a record reported by reporter (a
// SPIFFE ID). Of the headers, only method, path, authority, the request's
// content-type and the response's grpc-status are read.
func fromHTTP(e *datav3.HTTPAccessLogEntry, reporter string, now time.Time) Record {
	req := e.GetRequest()
	protocol := "http"
	if isGRPC(req.GetRequestHeaders()["content-type"]) {
		protocol = "grpc"
	}
	r := fromCommon(e.GetCommonProperties(), reporter, protocol, nsHTTPExtAuthz, now)
	r.Method = clip(req.GetRequestMethod().String(), maxField)
	if req.GetRequestMethod() == corev3.RequestMethod_METHOD_UNSPECIFIED {
		r.Method = ""
	}
	r.Path = clip(stripQuery(req.GetPath()), maxPath)
	r.Authority = clip(req.GetAuthority(), maxField)
	r.ResponseCode = e.GetResponse().GetResponseCode().GetValue()
	r.Details = clip(e.GetResponse().GetResponseCodeDetails(), maxField)
	if protocol == "grpc" {
		r.GRPCStatus = grpcStatus(e.GetResponse())
	}
	if strings.HasPrefix(r.Details, rbacDenied) || r.Details == "ext_authz_denied" {
		r.Denied = true
		if r.Policy == "" {
			r.Policy = rbacPolicy(r.Details)
		}
	}
	return r
}

// fromTCP turns a TCP entry into a record.
func fromTCP(e *datav3.TCPAccessLogEntry, reporter string, now time.Time) Record {
	r := fromCommon(e.GetCommonProperties(), reporter, "tcp", nsNetExtAuthz, now)
	r.ReceivedBytes, r.SentBytes = e.GetConnectionProperties().GetReceivedBytes(), e.GetConnectionProperties().GetSentBytes()
	return r
}

func fromCommon(c *datav3.AccessLogCommon, reporter, protocol, authzNS string, now time.Time) Record {
	r := Record{Time: now, Reporter: reporter, Protocol: protocol, Side: "client"}
	if t := c.GetStartTime(); t != nil && t.CheckValid() == nil {
		r.Time = t.AsTime()
	}
	r.Cluster = clip(c.GetUpstreamCluster(), maxField)
	if strings.HasPrefix(r.Cluster, "inbound|") {
		r.Side = "server"
	}
	peer := uriSAN(c.GetTlsProperties().GetPeerCertificateProperties())
	r.MTLS = peer != ""
	if r.Side == "server" {
		r.Source, r.Destination = peer, reporter
	} else {
		r.Source = reporter
	}
	r.SourceAddress = clip(address(c.GetDownstreamRemoteAddress()), maxField)
	if d := c.GetDuration(); d != nil && d.CheckValid() == nil {
		r.DurationUS = d.AsDuration().Microseconds()
	}
	md := c.GetMetadata().GetFilterMetadata()[authzNS].GetFields()
	r.Policy, r.Rule, r.DecisionID = str(md, "ward_policy"), str(md, "ward_rule"), str(md, "ward_decision_id")
	if v, ok := md["ward_allowed"].GetKind().(*structpb.Value_BoolValue); ok && !v.BoolValue {
		r.Denied = true
	}
	r.ResponseFlags = flagCodes(c.GetResponseFlags())
	if c.GetResponseFlags().GetUnauthorizedDetails() != nil {
		r.Denied = true
	}
	if ctd := c.GetConnectionTerminationDetails(); strings.HasPrefix(ctd, rbacDenied) {
		r.Denied = true
		if r.Policy == "" {
			r.Policy = rbacPolicy(clip(ctd, maxField))
		}
	}
	return r
}

func uriSAN(p *datav3.TLSProperties_CertificateProperties) string {
	for _, san := range p.GetSubjectAltName() {
		if u := san.GetUri(); u != "" {
			return clip(u, maxField)
		}
	}
	return ""
}

func address(a *corev3.Address) string {
	sa := a.GetSocketAddress()
	if sa == nil {
		return ""
	}
	return sa.GetAddress()
}

func str(fields map[string]*structpb.Value, k string) string {
	return clip(fields[k].GetStringValue(), maxField)
}

// rbacPolicy extracts <policy> from rbac_access_denied_matched_policy[<policy>].
func rbacPolicy(details string) string {
	p := strings.TrimPrefix(details, rbacDenied)
	return strings.TrimSuffix(p, "]")
}

// stripQuery drops the query and fragment: they may carry tokens.
func stripQuery(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// clip bounds s to n bytes on a rune boundary and drops invalid UTF-8.
func clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
