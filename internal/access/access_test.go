package access

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

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
