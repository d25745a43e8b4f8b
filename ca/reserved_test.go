package ca

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	authnv1 "k8s.io/api/authentication/v1"

	"github.com/wardmesh/ward/mesh"
)

// TestReservedTokenCreation: `ward ca token create --ns ward-system --sa
// ward` is refused with a clear message, as is any identity in the
// control plane's namespace unless allowed.
func TestReservedTokenCreation(t *testing.T) {
	c := newTestCA(t, &fakeClock{now: t0}, func(cfg *Config) { cfg.AllowReserved = []string{"ward-system/gateway"} })
	_, err := c.Tokens().Create("ward-system", "ward", time.Hour)
	if !IsReserved(err) || !strings.Contains(err.Error(), "control plane's own") {
		t.Errorf("token for the control plane's identity: %v", err)
	}
	_, err = c.Tokens().Create("ward-system", "debug", time.Hour)
	if !IsReserved(err) || !strings.Contains(err.Error(), "--ca-allow-reserved ward-system/debug") {
		t.Errorf("token in the reserved namespace: %v", err)
	}
	if _, err := c.Tokens().Create("ward-system", "gateway", time.Hour); err != nil {
		t.Errorf("explicitly allowed identity: %v", err)
	}
	// The CLI's store (no CA) reserves the default identity too.
	if _, err := NewTokenStore(t.TempDir(), nil).Create("ward-system", "ward", time.Hour); !IsReserved(err) {
		t.Errorf("default token store minted the control plane's identity: %v", err)
	}
	if _, err := NewReservation(mesh.ControlPlaneIdentity(""), []string{"ward-system/ward"}); err == nil {
		t.Error("the control plane's own identity was accepted as allowed")
	}
}

// TestReservedIdentityNeverSigned performs the impersonation attack by
// every path: a hand-written token record, a Kubernetes token of the
// control plane's service account, and a direct Sign on behalf of a
// caller. Only the control plane's in-process serving certificate gets it.
func TestReservedIdentityNeverSigned(t *testing.T) {
	rev := fakeReviewer{"ward-sa": {Authenticated: true, Audiences: []string{"ward-ca"}, User: authnv1.UserInfo{Username: "system:serviceaccount:ward-system:ward"}}}
	c := newTestCA(t, &fakeClock{now: time.Now().Truncate(time.Second)}, func(cfg *Config) { cfg.TokenReviewer = rev })
	addr := serve(t, c)

	tok, err := c.Tokens().Create("shop", "cart", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(tokenRecord{Hash: hashSecret(tok.Secret), Namespace: "ward-system", Account: "ward", Expires: time.Now().Add(time.Hour)})
	if err := os.WriteFile(c.tokens.path(tok.ID), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = dial(t, c, addr, withToken(tok.String())).CreateCertificate(t.Context(), makeCSR(t, ecKey(t)), 0)
	wantCode(t, "hand-crafted token record for ward-system/ward", err, codes.Unauthenticated)

	_, err = dial(t, c, addr, withToken("ward-sa")).CreateCertificate(t.Context(), makeCSR(t, ecKey(t)), 0)
	wantCode(t, "kubernetes token of ward-system/ward", err, codes.Unauthenticated)

	for _, m := range []string{MethodJoinToken, MethodK8sJWT, MethodMTLS, ""} {
		if _, err := c.Sign(Params{ID: c.ServerID(), PublicKey: ecKey(t).Public(), Method: m}); !IsReserved(err) {
			t.Errorf("Sign(%s, method %q): %v, want a reserved-identity refusal", c.ServerID(), m, err)
		}
	}
	if got := counterValue(c.metrics.csrs.WithLabelValues(resultIssued)); got != 0 {
		t.Errorf("%v certificates issued", got)
	}
	if _, err := c.Sign(Params{ID: c.ServerID(), PublicKey: ecKey(t).Public(), Method: MethodControlPlane}); err != nil {
		t.Errorf("the control plane's own serving certificate: %v", err)
	}
}
