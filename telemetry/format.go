package telemetry

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	reqwithoutqueryv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// IstioTextFormat is Istio's default access-log format string (its
// EnvoyTextLogFormat, without the trailing newline).
const IstioTextFormat = `[%START_TIME%] "%REQ(:METHOD)% ` + istioPath + ` %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ` +
	`"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% ` +
	`%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ` +
	`%REQUESTED_SERVER_NAME% %ROUTE_NAME%`

// istioPath is the request path as Istio logs it, query string included;
// wardPath is how Ward's defaults log it: without the query string, which
// may carry tokens (Envoy's req_without_query formatter).
const (
	istioPath = `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`
	wardPath  = `%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%`
)

// Protocol says whether access logs are for an HTTP connection manager or
// a tcp_proxy.
type Protocol int

// Protocols.
const (
	HTTP Protocol = iota + 1
	TCP
)

// authzNamespace is the dynamic-metadata namespace Envoy's ext_authz
// filter writes the CheckResponse's dynamic_metadata to: Ward's server
// puts the deciding policy, rule and decision id there
// (authz/extauthz). Native RBAC reports a denying policy in
// %RESPONSE_CODE_DETAILS% (HTTP) and %CONNECTION_TERMINATION_DETAILS%
// (TCP), rbac_access_denied_matched_policy[<policy>].
func authzNamespace(p Protocol) string {
	if p == TCP {
		return "envoy.filters.network.ext_authz"
	}
	return "envoy.filters.http.ext_authz"
}

func authzField(p Protocol, key string) string {
	return "%DYNAMIC_METADATA(" + authzNamespace(p) + ":" + key + ")%"
}

// DefaultTextFormat is Ward's default text format: Istio's with the path
// logged without its query string, followed by the evidence a zero-trust
// audit needs: both peers' SPIFFE IDs and the policy, rule and decision id
// of Ward's authorisation.
func DefaultTextFormat(p Protocol) string {
	return strings.Replace(IstioTextFormat, istioPath, wardPath, 1) + ` "%DOWNSTREAM_PEER_URI_SAN%" "%UPSTREAM_PEER_URI_SAN%" ` +
		authzField(p, "ward_policy") + " " + authzField(p, "ward_rule") + " " + authzField(p, "ward_decision_id") + "\n"
}

// DefaultJSONFormat is Ward's default JSON format: Istio's labels (the
// path without its query string) plus the peers' SPIFFE IDs and Ward's
// authorisation decision.
func DefaultJSONFormat(p Protocol) *structpb.Struct {
	fields := map[string]string{
		"start_time":                        "%START_TIME%",
		"route_name":                        "%ROUTE_NAME%",
		"method":                            "%REQ(:METHOD)%",
		"path":                              wardPath,
		"protocol":                          "%PROTOCOL%",
		"response_code":                     "%RESPONSE_CODE%",
		"response_flags":                    "%RESPONSE_FLAGS%",
		"response_code_details":             "%RESPONSE_CODE_DETAILS%",
		"connection_termination_details":    "%CONNECTION_TERMINATION_DETAILS%",
		"bytes_received":                    "%BYTES_RECEIVED%",
		"bytes_sent":                        "%BYTES_SENT%",
		"duration":                          "%DURATION%",
		"upstream_service_time":             "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
		"x_forwarded_for":                   "%REQ(X-FORWARDED-FOR)%",
		"user_agent":                        "%REQ(USER-AGENT)%",
		"request_id":                        "%REQ(X-REQUEST-ID)%",
		"authority":                         "%REQ(:AUTHORITY)%",
		"upstream_host":                     "%UPSTREAM_HOST%",
		"upstream_cluster":                  "%UPSTREAM_CLUSTER_RAW%",
		"upstream_local_address":            "%UPSTREAM_LOCAL_ADDRESS%",
		"downstream_local_address":          "%DOWNSTREAM_LOCAL_ADDRESS%",
		"downstream_remote_address":         "%DOWNSTREAM_REMOTE_ADDRESS%",
		"requested_server_name":             "%REQUESTED_SERVER_NAME%",
		"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
		"downstream_peer_uri_san":           "%DOWNSTREAM_PEER_URI_SAN%",
		"upstream_peer_uri_san":             "%UPSTREAM_PEER_URI_SAN%",
		"authz_policy":                      authzField(p, "ward_policy"),
		"authz_rule":                        authzField(p, "ward_rule"),
		"authz_decision_id":                 authzField(p, "ward_decision_id"),
		"authz_reason":                      authzField(p, "ward_reason"),
	}
	st := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(fields))}
	for k, v := range fields {
		st.Fields[k] = structpb.NewStringValue(v)
	}
	return st
}

// FormatterReqWithoutQuery is Envoy's formatter extension behind
// %REQ_WITHOUT_QUERY(...)%.
const FormatterReqWithoutQuery = "envoy.formatter.req_without_query"

// formatters returns the formatter extensions a format needs: Envoy
// rejects %REQ_WITHOUT_QUERY(...)% unless its extension is configured
// (Istio adds it the same way).
func formatters(format string, labels *structpb.Struct) []*corev3.TypedExtensionConfig {
	uses := strings.Contains(format, "%REQ_WITHOUT_QUERY(")
	for _, v := range labels.GetFields() {
		uses = uses || strings.Contains(v.GetStringValue(), "%REQ_WITHOUT_QUERY(")
	}
	if !uses {
		return nil
	}
	return []*corev3.TypedExtensionConfig{{Name: FormatterReqWithoutQuery, TypedConfig: mustAny(&reqwithoutqueryv3.ReqWithoutQuery{})}}
}
