package extauthz

import (
	"encoding/json"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/authz"
)

// response renders a decision as Envoy expects it, the way
// opa-envoy-plugin does: OK with headers to add/remove on allow;
// PERMISSION_DENIED with a 403 (or the provider's status, body and
// headers) on deny; INVALID_ARGUMENT with 400 for a malformed request.
// Dynamic metadata carries the decision id, policy and rule. A proxyless
// check (which has no jwt_authn in front) that failed authentication gets
// jwt_authn's 401 and UNAUTHENTICATED; an allowed proxyless check gets the
// explanation as a response header to add, so the interceptor can tell
// its caller which rule allowed it (Envoy's checks do not: their allow
// responses are as before).
func response(id string, d *authz.Decision, r *authz.Request, reasonHeader string, proxyless bool) *authv3.CheckResponse {
	md := dynamicMetadata(id, d)
	if d.Allowed {
		ok := okResponse(d, r)
		if proxyless && reasonHeader != "-" && ok != nil {
			ok.OkResponse.ResponseHeadersToAdd = append(ok.OkResponse.ResponseHeadersToAdd,
				header(reasonHeader, explain(d), corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
		}
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(code.Code_OK)},
			DynamicMetadata: md,
			HttpResponse:    ok,
		}
	}
	status, grpcCode := typev3.StatusCode_Forbidden, code.Code_PERMISSION_DENIED
	switch d.Reason {
	case authz.ReasonBadRequest:
		status, grpcCode = typev3.StatusCode_BadRequest, code.Code_INVALID_ARGUMENT
	case ReasonUnauthenticated:
		status, grpcCode = typev3.StatusCode_Unauthorized, code.Code_UNAUTHENTICATED
	}
	denied := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: status}}
	if p := d.Provider; p != nil && !p.Allowed {
		if p.HTTPStatus != 0 {
			denied.Status = &typev3.HttpStatus{Code: typev3.StatusCode(p.HTTPStatus)}
		}
		denied.Body = p.Body
		denied.Headers = headerOptions(p.Headers, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
	}
	if d.Reason == ReasonUnauthenticated {
		denied.Headers = append(denied.Headers, header("www-authenticate", `Bearer error="invalid_token"`, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
	}
	if reasonHeader != "-" {
		denied.Headers = append(denied.Headers, header(reasonHeader, explain(d), corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
	}
	out := &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(grpcCode), Message: "ward_authz_denied: " + explain(d)},
		DynamicMetadata: md,
	}
	if r == nil || r.HTTP != nil {
		out.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied}
	}
	return out
}

func okResponse(d *authz.Decision, r *authz.Request) *authv3.CheckResponse_OkResponse {
	if r == nil || r.HTTP == nil {
		return nil
	}
	ok := &authv3.OkHttpResponse{}
	if p := d.Provider; p != nil {
		ok.Headers = headerOptions(p.Headers, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)
		ok.ResponseHeadersToAdd = headerOptions(p.ResponseHeadersToAdd, corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)
		ok.HeadersToRemove = p.RequestHeadersToRemove
	}
	return &authv3.CheckResponse_OkResponse{OkResponse: ok}
}

func headerOptions(hs []authz.HeaderValue, a corev3.HeaderValueOption_HeaderAppendAction) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(hs))
	for _, h := range hs {
		out = append(out, header(h.Key, h.Value, a))
	}
	return out
}

func header(k, v string, a corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: a}
}

// dynamicMetadata exposes the decision to access logs and later filters:
// the provider's dynamic_metadata merged with Ward's own keys.
func dynamicMetadata(id string, d *authz.Decision) *structpb.Struct {
	if d.Provider == nil && utf8.ValidString(d.Policy) && utf8.ValidString(d.Rule) {
		return wardMetadata(id, d)
	}
	m := map[string]any{}
	if d.Provider != nil {
		for k, v := range d.Provider.DynamicMetadata {
			m[k] = v
		}
	}
	m["ward_decision_id"] = id
	m["ward_allowed"] = d.Allowed
	m["ward_reason"] = string(d.Reason)
	if d.Rule != "" {
		m["ward_policy"] = d.Policy
		m["ward_rule"] = d.Rule
	}
	if d.Audited() {
		m["ward_audit"] = true
	}
	if len(d.DryRun) > 0 {
		m["ward_dry_run"] = true
	}
	st, err := structpb.NewStruct(jsonSafe(m).(map[string]any))
	if err != nil {
		st, _ = structpb.NewStruct(map[string]any{"ward_decision_id": id})
	}
	return st
}

// wardMetadata is dynamicMetadata without a provider's keys, built
// directly (no map[string]any, no conversion): it is on every check.
func wardMetadata(id string, d *authz.Decision) *structpb.Struct {
	f := make(map[string]*structpb.Value, 7)
	f["ward_decision_id"] = structpb.NewStringValue(id)
	f["ward_allowed"] = structpb.NewBoolValue(d.Allowed)
	f["ward_reason"] = structpb.NewStringValue(string(d.Reason))
	if d.Rule != "" {
		f["ward_policy"] = structpb.NewStringValue(d.Policy)
		f["ward_rule"] = structpb.NewStringValue(d.Rule)
	}
	if d.Audited() {
		f["ward_audit"] = structpb.NewBoolValue(true)
	}
	if len(d.DryRun) > 0 {
		f["ward_dry_run"] = structpb.NewBoolValue(true)
	}
	return &structpb.Struct{Fields: f}
}

// jsonSafe converts OPA's json.Number values (and nested ones) into
// float64 so structpb accepts them.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonSafe(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return v
}
