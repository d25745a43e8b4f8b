package grpcauthz

import (
	"context"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// verdict turns the server's answer into the RPC's fate. OK: the handler
// runs, with the request headers the server adds or removes applied to
// the incoming metadata, and the response headers it adds (among them the
// deciding rule) sent to the caller. Anything else denies: Unauthenticated
// for an HTTP 401 (a rejected token), PermissionDenied otherwise, with the
// server's reason in the message and the reason header as a trailer.
func (a *Authorizer) verdict(ctx context.Context, method string, resp *authv3.CheckResponse) (context.Context, metadata.MD, error) {
	if code.Code(resp.GetStatus().GetCode()) == code.Code_OK {
		ok := resp.GetOkResponse()
		a.cfg.Log.Debug("rpc allowed", "method", method, "reason", headerValue(ok.GetResponseHeadersToAdd(), a.cfg.ReasonHeader))
		return withRequestHeaders(ctx, ok), toMetadata(ok.GetResponseHeadersToAdd()), nil
	}
	denied := resp.GetDeniedResponse()
	reason := headerValue(denied.GetHeaders(), a.cfg.ReasonHeader)
	msg := resp.GetStatus().GetMessage()
	if msg == "" {
		msg = "ward_authz_denied: " + reason
	}
	c := codes.PermissionDenied
	if denied.GetStatus().GetCode() == 401 {
		c = codes.Unauthenticated
	}
	a.cfg.Log.Debug("rpc denied", "method", method, "code", c.String(), "reason", reason)
	if reason != "" {
		if err := grpc.SetTrailer(ctx, metadata.Pairs(a.cfg.ReasonHeader, reason)); err != nil {
			a.cfg.Log.Debug("authorization trailer not set", "method", method, "error", err)
		}
	}
	return nil, nil, status.Error(c, msg)
}

func headerValue(hs []*corev3.HeaderValueOption, key string) string {
	for _, h := range hs {
		if strings.EqualFold(h.GetHeader().GetKey(), key) {
			return value(h.GetHeader())
		}
	}
	return ""
}

func value(h *corev3.HeaderValue) string {
	if v := h.GetValue(); v != "" {
		return v
	}
	return string(h.GetRawValue())
}

// toMetadata renders headers to add to the response; pseudo-headers and
// reserved grpc- headers are dropped.
func toMetadata(hs []*corev3.HeaderValueOption) metadata.MD {
	md := metadata.MD{}
	for _, h := range hs {
		k := strings.ToLower(h.GetHeader().GetKey())
		if settable(k) {
			md.Append(k, value(h.GetHeader()))
		}
	}
	return md
}

func settable(k string) bool {
	return k != "" && !strings.HasPrefix(k, ":") && !strings.HasPrefix(k, "grpc-")
}

// withRequestHeaders applies the OK response's request header mutations
// to the incoming metadata the handler sees, with Envoy's append actions.
func withRequestHeaders(ctx context.Context, ok *authv3.OkHttpResponse) context.Context {
	if len(ok.GetHeaders()) == 0 && len(ok.GetHeadersToRemove()) == 0 {
		return ctx
	}
	in, _ := metadata.FromIncomingContext(ctx)
	md := in.Copy()
	for _, h := range ok.GetHeaders() {
		k := strings.ToLower(h.GetHeader().GetKey())
		if !settable(k) {
			continue
		}
		v := value(h.GetHeader())
		_, present := md[k]
		switch h.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			md.Append(k, v)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !present {
				md.Set(k, v)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if present {
				md.Set(k, v)
			}
		default: // OVERWRITE_IF_EXISTS_OR_ADD
			md.Set(k, v)
		}
	}
	for _, k := range ok.GetHeadersToRemove() {
		if k = strings.ToLower(k); settable(k) {
			delete(md, k)
		}
	}
	return metadata.NewIncomingContext(ctx, md)
}
