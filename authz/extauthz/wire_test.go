package extauthz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/wardmesh/ward/authz"
)

// TestWireResponseDecodesLikeResponse: a pre-encoded response decodes
// (with the standard decoder, as Envoy's would) to exactly what
// response() builds, for every decision shape it takes, on the first
// (template built) and later (template reused) checks; the shapes it
// declines take the ordinary path.
func TestWireResponseDecodesLikeResponse(t *testing.T) {
	http := &authz.Request{HTTP: &authz.HTTPRequest{Method: "GET", Path: "/"}}
	tcp := &authz.Request{}
	verdicts := []authz.Verdict{
		{Allowed: true, Reason: authz.ReasonAllow, Policy: "shop/allow", Rule: "ns[shop]-policy[allow]-rule[0]", Action: "ALLOW"},
		{Allowed: true, Reason: authz.ReasonNoAllowPolicy},
		{Reason: authz.ReasonDeny, Policy: "istio-system/deny", Rule: "ns[istio-system]-policy[deny]-rule[0]", Action: "DENY"},
		{Reason: authz.ReasonNoAllowMatch, Candidates: 7},
		{Reason: authz.ReasonBadRequest},
		{Reason: ReasonUnauthenticated},
		{Allowed: true, Reason: authz.ReasonAllow, Policy: "a/ü", Rule: "ns[a]-policy[ü]-rule[0]"},
	}
	declined := []*authz.Decision{
		{Verdict: verdicts[0], Provider: &authz.ProviderResult{Allowed: true}},
		{Verdict: verdicts[2], Detail: "why"},
		{Verdict: verdicts[0], Audit: []authz.Hit{{Rule: "r"}}},
		{Verdict: verdicts[0], DryRun: []authz.Hit{{Rule: "r"}}, Shadow: &authz.Verdict{}},
		{Verdict: authz.Verdict{Allowed: true, Reason: authz.ReasonAllow, Policy: "bad\xff", Rule: "r"}},
	}
	var wt wireTemplates
	for _, v := range verdicts {
		for _, r := range []*authz.Request{http, tcp, nil} {
			for _, pxl := range []bool{false, true} {
				for _, rh := range []string{"x-ward-authz-reason", "-"} {
					d := &authz.Decision{Verdict: v}
					for _, id := range []string{"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"} {
						w := wt.response(id, d, r, rh, pxl)
						if w == nil {
							t.Fatalf("%+v: no wire response", v)
						}
						got := new(authv3.CheckResponse)
						if err := proto.Unmarshal(w.b.Materialize(), got); err != nil {
							t.Fatal(err)
						}
						want := response(id, d, r, rh, pxl)
						if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
							t.Errorf("%+v http=%t proxyless=%t header=%q (-response() +wire):\n%s", v, r != nil && r.HTTP != nil, pxl, rh, diff)
						}
						w.b.Free()
					}
				}
			}
		}
	}
	for _, d := range declined {
		if w := wt.response("0123456789abcdef0123456789abcdef", d, http, "x-ward-authz-reason", false); w != nil {
			t.Errorf("%+v: pre-encoded, want the ordinary path", d)
		}
	}
}

// TestServeAnswersLikeCheck: over Serve's server (pre-encoded responses)
// every check gets what Check returns, decision id aside.
func TestServeAnswersLikeCheck(t *testing.T) {
	s := newServer(t, Config{}, "", policies)
	c := start(t, s)
	reqs := []*authv3.CheckRequest{
		check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/items"),
		check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/secret"), // dry-run: ordinary path
		check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/other", "GET", "/items"),
		check("", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/items"),
		check("shop", `{"app":"cart"}`, "spiffe://cluster.local/ns/shop/sa/web", "GET", "/a/../../b"),
	}
	noID := func(r *authv3.CheckResponse) *authv3.CheckResponse {
		id := r.GetDynamicMetadata().GetFields()["ward_decision_id"].GetStringValue()
		if len(id) != 32 {
			t.Errorf("decision id %q", id)
		}
		delete(r.GetDynamicMetadata().GetFields(), "ward_decision_id")
		return r
	}
	for i, req := range reqs {
		for range 2 {
			got, err := c.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := s.Check(context.Background(), req)
			if diff := cmp.Diff(noID(want), noID(got), protocmp.Transform()); diff != "" {
				t.Errorf("request %d (-Check +Serve):\n%s", i, diff)
			}
		}
	}
}
