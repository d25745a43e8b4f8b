package xds_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/wardmesh/ward/internal/access"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds"
)

// Debug pages from beyond loopback: no credential is refused; a
// Kubernetes token of namespace bookinfo sees bookinfo's proxies only
// (another namespace's config_dump is as unknown as a missing proxy); an
// operator sees all; a loopback caller sees all.
func TestAttackDebugPagesNamespaceScoped(t *testing.T) {
	s := newServer(t, xds.Config{})
	cc := dial(t, serve(t, s, nil), nil)
	mine := victimNode(nil)
	other := &core.Node{Id: "sidecar~10.3.0.1~pay-1.payments~payments.svc.cluster.local"}
	for _, n := range []*core.Node{mine, other} {
		if _, err := listeners(t, cc, n); err != nil {
			t.Fatal(err)
		}
	}
	gate := access.New(access.Config{
		Token: func(_ context.Context, tok string) (mesh.Identity, error) {
			switch tok {
			case "bookinfo-token":
				return mesh.Identity{Namespace: "bookinfo", ServiceAccount: "reviews"}, nil
			case "operator-token":
				return mesh.Identity{Namespace: "ward-system", ServiceAccount: "admin"}, nil
			}
			return mesh.Identity{}, errors.New("token not authenticated")
		},
		Operators: []mesh.Identity{{Namespace: "ward-system", ServiceAccount: "admin"}},
	})
	h := gate.Scoped(s.Handler())
	get := func(path, remote, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = remote
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	proxies := func(w *httptest.ResponseRecorder) []string {
		t.Helper()
		var rows []xds.Connection
		if err := json.Unmarshal(w.Body.Bytes(), &rows); err != nil {
			t.Fatalf("%d %s: %v", w.Code, w.Body, err)
		}
		var out []string
		for _, r := range rows {
			out = append(out, r.Proxy)
		}
		return out
	}
	const remote = "10.20.30.40:5555"
	for _, tok := range []string{"", "forged"} {
		if w := get("/debug/connections", remote, tok); w.Code != http.StatusUnauthorized {
			t.Errorf("connections from %s with token %q: %d, want 401", remote, tok, w.Code)
		}
	}
	if got := proxies(get("/debug/connections", remote, "bookinfo-token")); len(got) != 1 || got[0] != victimID {
		t.Errorf("bookinfo caller sees %v, want only %s", got, victimID)
	}
	if w := get("/debug/config_dump?proxy="+other.GetId(), remote, "bookinfo-token"); w.Code != http.StatusNotFound {
		t.Errorf("bookinfo caller's config_dump of a payments proxy: %d, want 404", w.Code)
	}
	if w := get("/debug/config_dump?proxy="+victimID, remote, "bookinfo-token"); w.Code != http.StatusOK {
		t.Errorf("bookinfo caller's config_dump of its own proxy: %d", w.Code)
	}
	if got := proxies(get("/debug/connections", remote, "operator-token")); len(got) != 2 {
		t.Errorf("operator sees %v, want both proxies", got)
	}
	if got := proxies(get("/debug/connections", "127.0.0.1:4444", "")); len(got) != 2 {
		t.Errorf("loopback caller sees %v, want both proxies", got)
	}
	op := gate.Operator(http.NotFoundHandler())
	r := httptest.NewRequest(http.MethodGet, "/debug/configz", nil)
	r.RemoteAddr, r.Header = remote, http.Header{"Authorization": {"Bearer bookinfo-token"}}
	w := httptest.NewRecorder()
	op.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("non-operator on an operator page: %d, want 403", w.Code)
	}
}
