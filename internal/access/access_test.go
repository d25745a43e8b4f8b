package access

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/wardmesh/ward/mesh"
)

// TestGateCallers: who the gate admits and as what.
func TestGateCallers(t *testing.T) {
	g := New(Config{
		Certificate: func(chains [][]*x509.Certificate) (mesh.Identity, error) {
			if chains[0][0].Subject.CommonName == "bad" {
				return mesh.Identity{}, errors.New("untrusted root")
			}
			return mesh.Identity{Namespace: "bookinfo", ServiceAccount: "reviews"}, nil
		},
		Operators: []mesh.Identity{{Namespace: "ward-system", ServiceAccount: "ops"}},
	})
	req := func(remote string, cn string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/debug/syncz", nil)
		r.RemoteAddr = remote
		if cn != "" {
			c := &x509.Certificate{}
			c.Subject.CommonName = cn
			r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}}
		}
		return r
	}
	for _, tc := range []struct {
		name     string
		r        *http.Request
		wantErr  bool
		operator bool
		ns       string
	}{
		{"ipv4 loopback", req("127.0.0.1:1", ""), false, true, ""},
		{"ipv6 loopback", req("[::1]:1", ""), false, true, ""},
		{"remote without credential", req("10.0.0.1:1", ""), true, false, ""},
		{"remote with a Ward certificate", req("10.0.0.1:1", "good"), false, false, "bookinfo"},
		{"remote with a refused certificate", req("10.0.0.1:1", "bad"), true, false, ""},
		{"bearer token without a reviewer", func() *http.Request {
			r := req("10.0.0.1:1", "")
			r.Header.Set("Authorization", "Bearer x")
			return r
		}(), true, false, ""},
	} {
		c, err := g.Authenticate(tc.r)
		if (err != nil) != tc.wantErr || c.Operator != tc.operator || c.Namespace != tc.ns {
			t.Errorf("%s: %+v, %v; want error %v operator %v namespace %q", tc.name, c, err, tc.wantErr, tc.operator, tc.ns)
		}
	}
	if (Caller{Namespace: "a"}).Sees("b") || !(Caller{Namespace: "a"}).Sees("a") || (Caller{}).Sees("") {
		t.Error("Caller.Sees: a namespace caller must see only its namespace; an empty one nothing")
	}
}

func TestServiceAccountUser(t *testing.T) {
	for u, want := range map[string]bool{
		"system:serviceaccount:bookinfo:reviews": true,
		"system:serviceaccount:bookinfo:":        false,
		"system:serviceaccount:bookinfo:a:b":     false,
		"alice":                                  false,
	} {
		if _, _, ok := ServiceAccountUser(u); ok != want {
			t.Errorf("%s: ok %v, want %v", u, ok, want)
		}
	}
}

type fakeReviewer map[string]authnv1.TokenReviewStatus

func (f fakeReviewer) Review(_ context.Context, token string, _ []string) (*authnv1.TokenReview, error) {
	return &authnv1.TokenReview{Status: f[token]}, nil
}

// TestTokenReview: a reviewed, pod-bound service-account token is its
// service account; anything else is refused.
func TestTokenReview(t *testing.T) {
	review := TokenReview(fakeReviewer{
		"good": {Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:bookinfo:reviews"}},
		"user": {Authenticated: true, User: authnv1.UserInfo{Username: "alice"}},
		"bad":  {Authenticated: false, Error: "token is not bound to a pod"},
	})
	if id, err := review(context.Background(), "good"); err != nil || id.Namespace != "bookinfo" || id.ServiceAccount != "reviews" {
		t.Errorf("good token: %+v %v", id, err)
	}
	for _, tok := range []string{"user", "bad", "unknown"} {
		if _, err := review(context.Background(), tok); err == nil {
			t.Errorf("token %q accepted", tok)
		}
	}
}
