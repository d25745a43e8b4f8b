package grpcauthz

import (
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/metadata"
)

// TestRequestHeaderMutations: an OK response's headers and
// headers_to_remove change what the handler sees, with Envoy's append
// actions; pseudo and grpc- headers are never touched.
func TestRequestHeaderMutations(t *testing.T) {
	in := metadata.Pairs("x-a", "1", "x-b", "2", "x-c", "3", "x-gone", "4", ":authority", "cart")
	ctx := metadata.NewIncomingContext(context.Background(), in)
	h := func(k, v string, a corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: a}
	}
	ok := &authv3.OkHttpResponse{
		Headers: []*corev3.HeaderValueOption{
			h("X-A", "a", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
			h("x-b", "b", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
			h("x-c", "c", corev3.HeaderValueOption_ADD_IF_ABSENT),
			h("x-d", "d", corev3.HeaderValueOption_ADD_IF_ABSENT),
			h("x-e", "e", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
			h(":authority", "evil", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
			h("grpc-timeout", "1S", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		},
		HeadersToRemove: []string{"X-Gone", ":authority"},
	}
	got, _ := metadata.FromIncomingContext(withRequestHeaders(ctx, ok))
	want := metadata.MD{"x-a": {"1", "a"}, "x-b": {"b"}, "x-c": {"3"}, "x-d": {"d"}, ":authority": {"cart"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("metadata (-want +got):\n%s", d)
	}
	if orig, _ := metadata.FromIncomingContext(ctx); len(orig["x-gone"]) != 1 {
		t.Error("the original metadata was modified")
	}
}
