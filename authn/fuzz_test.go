package authn

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

func FuzzNormalizeJWKS(f *testing.F) {
	f.Add([]byte(FailClosedJWKS))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AA"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		n, err := NormalizeJWKS(raw)
		if err != nil {
			return
		}
		again, err := NormalizeJWKS([]byte(n.JSON))
		if err != nil {
			t.Fatalf("normalized output does not normalize again: %v\n%s", err, n.JSON)
		}
		if again.JSON != n.JSON {
			t.Fatalf("normalization is not idempotent:\n%s\n%s", n.JSON, again.JSON)
		}
		if strings.Contains(n.JSON, `"d":`) || strings.Contains(n.JSON, `"k":`) {
			t.Fatalf("secret key material in output: %s", n.JSON)
		}
	})
}

// FuzzComposePeer builds random policy sets and checks the invariants of
// the effective-mode computation: a concrete mode always, independence
// from input order, oldest-wins per level, and root selectors never used.
func FuzzComposePeer(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, seed []byte) {
		if len(seed) > 64 {
			seed = seed[:64]
		}
		cands := randomPolicies(seed)
		labels := mesh.Labels{"app": "a"}
		got := ComposePeer(rootNS, "ns", labels, cands)
		if got.Mode == ModeUnset {
			t.Fatal("effective mode is UNSET")
		}
		for p, m := range got.PerPort {
			if m == ModeUnset {
				t.Fatalf("port %d mode is UNSET", p)
			}
		}
		for _, w := range []*mesh.Config{got.Mesh, got.Namespace, got.Workload} {
			if w == nil {
				continue
			}
			if _, has := peerSelector(w); has && w.Namespace == rootNS {
				t.Fatalf("root-namespace selector policy %s was applied", w.Key())
			}
		}
		rev := append([]*mesh.Config(nil), cands...)
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		other := ComposePeer(rootNS, "ns", labels, rev)
		if other.Mode != got.Mode || other.Mesh != got.Mesh || other.Namespace != got.Namespace || other.Workload != got.Workload || len(other.PerPort) != len(got.PerPort) {
			t.Fatal("result depends on candidate order")
		}
		for p, m := range got.PerPort {
			if other.PerPort[p] != m {
				t.Fatal("port modes depend on candidate order")
			}
		}
		if got.Workload != nil {
			for _, c := range cands {
				if sel, has := peerSelector(c); has && c.Namespace == "ns" && sel.Matches(labels) && mesh.Older(c, got.Workload) {
					t.Fatalf("%s is older than the chosen workload policy %s", c.Key(), got.Workload.Key())
				}
			}
		}
	})
}

func randomPolicies(seed []byte) []*mesh.Config {
	var s [32]byte
	copy(s[:], seed)
	rng := rand.New(rand.NewChaCha8(s))
	namespaces := []string{rootNS, "ns", "other"}
	selectors := []map[string]string{nil, {}, {"app": "a"}, {"app": "b"}}
	modes := []security.PeerAuthentication_MutualTLS_Mode{unset, permissive, strict, disable}
	n := int(rng.IntN(8))
	out := make([]*mesh.Config, 0, n)
	for i := range n {
		ports := map[uint32]security.PeerAuthentication_MutualTLS_Mode{}
		for range rng.IntN(3) {
			ports[uint32(8080+rng.IntN(3))] = modes[rng.IntN(4)]
		}
		c := pa(namespaces[rng.IntN(3)], "p"+string(rune('a'+i)), rng.IntN(4), selectors[rng.IntN(4)], modes[rng.IntN(4)], ports)
		out = append(out, c)
	}
	return out
}

func FuzzAuthenticateToken(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJpIn0.AAAA")
	f.Add("")
	f.Add("a.b.c")
	cfg, _ := JWTAuthn([]*mesh.Config{ra("ns", "x", nil, &security.JWTRule{Issuer: "i", Jwks: FailClosedJWKS})}, nil)
	f.Fuzz(func(t *testing.T, tok string) {
		a, err := Authenticate(cfg, bearer(tok), time.Unix(1_800_000_000, 0))
		if err == nil && a.Principal != "" {
			t.Fatalf("a fuzzed token authenticated as %q", a.Principal)
		}
	})
}
