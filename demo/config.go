package demo

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/wardmesh/ward/mesh"
)

//go:embed config/*.tmpl
var configFS embed.FS

var templates = template.Must(template.ParseFS(configFS, "config/*.tmpl"))

// TrustDomain is the mesh's (Ward's default).
const TrustDomain = "cluster.local"

// Issuer is the demo identity provider's issuer; its key is made per run.
const Issuer = "https://idp.demo.ward.example"

// workload is one member of the demo mesh.
type workload struct {
	Name, App, Version, ServiceAccount string
	Port                               int // 0: a client only
}

// labels are the workload's labels as `ward agent --labels` takes them:
// the same as its WorkloadEntry's, so Ward matches the proxy to it.
func (w workload) labels() string {
	l := "app=" + w.App + "," + mesh.LabelTLSMode + "=" + string(mesh.TLSModeIstio)
	if w.Version != "" {
		l += ",version=" + w.Version
	}
	return l
}

// route is one weighted destination of the reviews canary.
type route struct {
	Subset string
	Weight int
}

// The canary's two phases: a small share to v2, then half to v3.
var phases = []struct {
	name   string
	routes []route
	want   string // the subset that must be seen before the phase may end
}{
	{"canary 80% v1 / 20% v2", []route{{"v1", 80}, {"v2", 20}}, "v2"},
	{"canary 50% v1 / 50% v3", []route{{"v1", 50}, {"v3", 50}}, "v3"},
}

// writeConfig renders the mesh config into dir.
func writeConfig(dir string, ws []workload, jwks string) error {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "bookinfo.yaml.tmpl", map[string]any{"Workloads": ws, "Issuer": Issuer, "JWKS": jwks}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bookinfo.yaml"), b.Bytes(), 0o600); err != nil {
		return err
	}
	return writeCanary(dir, 0)
}

// writeCanary installs phase i of the canary. The file is replaced by a
// rename so Ward's watcher never reads half of it.
func writeCanary(dir string, i int) error {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "canary.yaml.tmpl", map[string]any{"Routes": phases[i].routes}); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".canary.yaml.tmp")
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "canary.yaml"))
}

// identityProvider makes a fresh ES256 key, returns its public JWKS (for
// the RequestAuthentication) and a token for the "ops" subject.
func identityProvider(now time.Time) (jwks, token string, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	k, err := jwk.Import(priv)
	if err != nil {
		return "", "", err
	}
	if err := k.Set(jwk.KeyIDKey, "demo-1"); err != nil {
		return "", "", err
	}
	if err := k.Set(jwk.AlgorithmKey, jwa.ES256()); err != nil {
		return "", "", err
	}
	pub, err := k.PublicKey()
	if err != nil {
		return "", "", err
	}
	set, err := json.Marshal(map[string]any{"keys": []jwk.Key{pub}})
	if err != nil {
		return "", "", err
	}
	tok, err := jwt.NewBuilder().Issuer(Issuer).Subject("ops").IssuedAt(now).Expiration(now.Add(time.Hour)).Build()
	if err != nil {
		return "", "", err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), k))
	if err != nil {
		return "", "", fmt.Errorf("sign demo token: %w", err)
	}
	return string(set), string(signed), nil
}
