package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTTLClamping(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := newTestCA(t, clk, func(c *Config) { c.MaxTTL = 48 * time.Hour })
	id := mustID(t, "spiffe://example.org/ns/a/sa/b")
	for _, tc := range []struct {
		ask, want time.Duration
	}{
		{0, 24 * time.Hour},
		{-time.Hour, 24 * time.Hour},
		{time.Hour, time.Hour},
		{48 * time.Hour, 48 * time.Hour},
		{1000 * time.Hour, 48 * time.Hour},
	} {
		iss, err := c.Sign(Params{ID: id, PublicKey: ecKey(t).Public(), TTL: tc.ask})
		if err != nil {
			t.Fatalf("Sign(ttl %v): %v", tc.ask, err)
		}
		if got := iss.Leaf.NotAfter.Sub(t0); got != tc.want {
			t.Errorf("ttl %v: leaf lives %v, want %v", tc.ask, got, tc.want)
		}
	}
}

func TestLeafShape(t *testing.T) {
	c := newTestCA(t, &fakeClock{now: t0}, nil)
	id := mustID(t, "spiffe://example.org/ns/a/sa/b")
	iss, err := c.Sign(Params{ID: id, PublicKey: ecKey(t).Public()})
	if err != nil {
		t.Fatal(err)
	}
	l := iss.Leaf
	if len(l.URIs) != 1 || l.URIs[0].String() != id.String() || len(l.DNSNames) != 0 || len(l.IPAddresses) != 0 {
		t.Errorf("SANs: uris %v dns %v ips %v, want only %s", l.URIs, l.DNSNames, l.IPAddresses, id)
	}
	if len(l.ExtKeyUsage) != 2 || l.IsCA {
		t.Errorf("EKU %v isCA %v, want server+client, not CA", l.ExtKeyUsage, l.IsCA)
	}
	if len(iss.Chain) != 2 || !strings.Contains(iss.Chain[1], "CERTIFICATE") {
		t.Fatalf("chain has %d elements, want leaf and bundle", len(iss.Chain))
	}
	certs, roots, err := SplitChain(iss.Chain)
	if err != nil || len(certs) != 1 || !certs[0].Equal(l) || len(roots) != 1 || !roots[0].Equal(c.Roots()[0]) {
		t.Errorf("SplitChain: %v, %d certs, %d roots", err, len(certs), len(roots))
	}
	if _, err := c.Sign(Params{ID: mustID(t, "spiffe://other.org/ns/a/sa/b"), PublicKey: ecKey(t).Public()}); err == nil {
		t.Error("signed an identity in another trust domain")
	}
}

func TestChainLifetimeCap(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := newTestCA(t, clk, func(c *Config) { c.RootTTL = 30 * 24 * time.Hour })
	rootEnd := c.Roots()[0].NotAfter
	clk.Advance(29 * 24 * time.Hour)
	iss, err := c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/a/sa/b"), PublicKey: ecKey(t).Public(), TTL: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !iss.Leaf.NotAfter.Equal(rootEnd) {
		t.Errorf("leaf NotAfter %v, want capped at root expiry %v", iss.Leaf.NotAfter, rootEnd)
	}
	clk.Advance(2 * 24 * time.Hour)
	if _, err := c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/a/sa/b"), PublicKey: ecKey(t).Public()}); err == nil {
		t.Error("signed under an expired root")
	}
}

func TestValidateLeafRejects(t *testing.T) {
	c := newTestCA(t, &fakeClock{now: t0}, nil)
	a := c.current()
	id := mustID(t, "spiffe://example.org/ns/a/sa/b")
	key := ecKey(t)
	p := Params{ID: id, PublicKey: key.Public()}
	sign := func(mod func(*x509.Certificate)) *x509.Certificate {
		tmpl, err := c.template(a, p, t0)
		if err != nil {
			t.Fatal(err)
		}
		mod(tmpl)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, a.signer, key.Public(), a.key)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := x509.ParseCertificate(der)
		return l
	}
	good := sign(func(*x509.Certificate) {})
	if err := validateLeaf(a, good, p, t0); err != nil {
		t.Fatalf("valid leaf rejected: %v", err)
	}
	other := ecKey(t)
	foreign, err := newTestCA(t, &fakeClock{now: t0}, nil).Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		leaf *x509.Certificate
		p    Params
	}{
		"extra URI":     {sign(func(x *x509.Certificate) { x.URIs = append(x.URIs, x.URIs[0]) }), p},
		"other ID":      {good, Params{ID: mustID(t, "spiffe://example.org/ns/a/sa/c"), PublicKey: key.Public()}},
		"other key":     {good, Params{ID: id, PublicKey: other.Public()}},
		"outlives root": {sign(func(x *x509.Certificate) { x.NotAfter = a.notAfter.Add(time.Hour) }), p},
		"is CA":         {sign(func(x *x509.Certificate) { x.IsCA = true }), p},
		"cert signer":   {sign(func(x *x509.Certificate) { x.KeyUsage |= x509.KeyUsageCertSign }), p},
		"other CA":      {foreign.Leaf, p},
		"no URI":        {sign(func(x *x509.Certificate) { x.URIs = nil; x.DNSNames = []string{"a"} }), p},
	} {
		if err := validateLeaf(a, tc.leaf, tc.p, t0); err == nil {
			t.Errorf("%s: validateLeaf accepted it", name)
		}
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	cfg := func(*Config) {}
	c1 := newTestCA(t, clk, func(c *Config) { c.StateDir = dir; cfg(c) })
	fi, err := os.Stat(filepath.Join(dir, "ca", "ca.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	clk.Advance(time.Hour)
	c2 := newTestCA(t, clk, func(c *Config) { c.StateDir = dir })
	if !c1.Roots()[0].Equal(c2.Roots()[0]) || len(c2.Roots()) != 1 {
		t.Fatal("root was regenerated on restart")
	}
	if err := os.Chmod(filepath.Join(dir, "ca", "ca.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{StateDir: dir, TrustDomain: "example.org", Clock: clk}); err == nil {
		t.Error("loaded a world-readable key file")
	}
}

func TestRSARoot(t *testing.T) {
	c := newTestCA(t, &fakeClock{now: t0}, func(c *Config) { c.RootKey = KeyRSA2048 })
	if _, err := c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/a/sa/b"), PublicKey: ecKey(t).Public()}); err != nil {
		t.Fatal(err)
	}
	if c.Roots()[0].PublicKeyAlgorithm != x509.RSA {
		t.Errorf("root key %v, want RSA", c.Roots()[0].PublicKeyAlgorithm)
	}
}

func TestRotationPhases(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	mod := func(c *Config) {
		c.StateDir = dir
		c.DefaultTTL = 10 * time.Hour
		c.RotationOverlap = 6 * time.Hour
	}
	c := newTestCA(t, clk, mod)
	ctx := context.Background()
	id := mustID(t, "spiffe://example.org/ns/a/sa/b")
	old := c.Roots()[0]
	if err := RequestRotation(dir, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Phase() != PhaseStaged || len(c.Roots()) != 2 {
		t.Fatalf("after rotate: phase %s with %d roots, want staged with 2", c.Phase(), len(c.Roots()))
	}
	if err := c.Rotate(ctx, 0); err != ErrRotationInProgress {
		t.Errorf("second Rotate: %v, want ErrRotationInProgress", err)
	}
	staged, _ := c.Sign(Params{ID: id, PublicKey: ecKey(t).Public()})
	if staged.Leaf.CheckSignatureFrom(old) != nil {
		t.Error("staged phase: leaf not signed by the old root")
	}
	lastOld := staged.Leaf.NotAfter

	clk.Advance(6 * time.Hour)
	mustReconcile(t, c)
	if c.Phase() != PhaseRetiring {
		t.Fatalf("after overlap: phase %s, want retiring", c.Phase())
	}
	newLeaf, _ := c.Sign(Params{ID: id, PublicKey: ecKey(t).Public()})
	if newLeaf.Leaf.CheckSignatureFrom(old) == nil {
		t.Error("retiring phase: leaf still signed by the old root")
	}
	st := c.Status()
	var drop time.Time
	for _, r := range st.Roots {
		if !r.DropAt.IsZero() {
			drop = r.DropAt
		}
	}
	if drop.Before(lastOld) {
		t.Errorf("old root drops at %v, before its last leaf expires at %v", drop, lastOld)
	}

	// A restart mid-rotation keeps the phase.
	c2 := newTestCA(t, clk, mod)
	if c2.Phase() != PhaseRetiring || len(c2.Roots()) != 2 {
		t.Fatalf("after restart: phase %s with %d roots", c2.Phase(), len(c2.Roots()))
	}
	clk.Advance(lastOld.Sub(clk.Now()) - time.Minute)
	mustReconcile(t, c2)
	if len(c2.Roots()) != 2 {
		t.Fatal("old root dropped while a leaf it signed is still valid")
	}
	clk.Advance(drop.Sub(clk.Now()))
	mustReconcile(t, c2)
	if c2.Phase() != PhaseStable || len(c2.Roots()) != 1 || c2.Roots()[0].Equal(old) {
		t.Fatalf("after drop: phase %s, %d roots", c2.Phase(), len(c2.Roots()))
	}
}

func mustReconcile(t *testing.T, c *CA) {
	t.Helper()
	if err := c.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestReservationSurvivesRestart: leaves signed just before a crash are
// still covered by the persisted IssuedUntil.
func TestReservationSurvivesRestart(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	c := newTestCA(t, clk, func(c *Config) { c.StateDir = dir })
	iss, err := c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/a/sa/b"), PublicKey: ecKey(t).Public()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := FileStore{Path: filepath.Join(dir, "ca", "ca.json")}.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Roots[0].IssuedUntil.Before(iss.Leaf.NotAfter) {
		t.Errorf("persisted reservation %v is before the leaf's expiry %v", s.Roots[0].IssuedUntil, iss.Leaf.NotAfter)
	}
}

// pluginFiles builds an Istio cacerts directory: a root and an intermediate.
func writePlugin(t *testing.T, dir string, roots int) *x509.Certificate {
	t.Helper()
	var rootPEM []byte
	var root *x509.Certificate
	var rootKey *ecdsa.PrivateKey
	for i := 0; i < roots; i++ {
		rs, err := newRoot("example.org", KeyECDSAP256, t0, 365*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rootPEM = append(rootPEM, rs.CertPEM...)
		if i == 0 {
			cs, _ := parseCertsPEM([]byte(rs.CertPEM))
			root = cs[0]
			k, _ := parseKeyPEM([]byte(rs.KeyPEM))
			rootKey = k.(*ecdsa.PrivateKey)
		}
	}
	ikey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := randomSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "intermediate"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SubjectKeyId: keyID(ikey.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, ikey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalPKCS8PrivateKey(ikey)
	certPEM := encodeCertPEM(inter)
	write := func(name string, b []byte) {
		if err := writeFileAtomic(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(pluginKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	write(pluginCert, certPEM)
	write(pluginChain, append(append([]byte{}, certPEM...), encodeCertPEM(root)...))
	write(pluginRoot, rootPEM)
	return inter
}

func TestPluginLoadAndHotReload(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	inter := writePlugin(t, dir, 2)
	c := newTestCA(t, clk, func(c *Config) { c.PluginDir = dir })
	if len(c.Roots()) != 2 || c.Phase() != PhasePlugin {
		t.Fatalf("plug-in CA: %d roots phase %s, want 2 roots, plugin", len(c.Roots()), c.Phase())
	}
	iss, err := c.Sign(Params{ID: mustID(t, "spiffe://example.org/ns/a/sa/b"), PublicKey: ecKey(t).Public(), TTL: 1000 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(iss.Chain) != 3 || iss.Leaf.CheckSignatureFrom(inter) != nil {
		t.Fatalf("chain %d elements, want leaf, intermediate, bundle", len(iss.Chain))
	}
	if !iss.Leaf.NotAfter.Equal(inter.NotAfter) {
		t.Errorf("leaf NotAfter %v, want capped at the intermediate's %v", iss.Leaf.NotAfter, inter.NotAfter)
	}
	if err := c.Rotate(context.Background(), 0); err != ErrRotationUnsupported {
		t.Errorf("Rotate in plug-in mode: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	changed := c.Changed()
	inter2 := writePlugin(t, dir, 1)
	deadline := time.After(10 * time.Second)
	for !c.current().signer.Equal(inter2) {
		select {
		case <-changed:
			changed = c.Changed()
		case <-deadline:
			t.Fatal("plug-in CA was not reloaded within 10s")
		}
	}
	if len(c.Roots()) != 1 {
		t.Errorf("after reload: %d roots, want 1", len(c.Roots()))
	}
	// A broken update keeps the previous authority.
	if err := os.WriteFile(filepath.Join(dir, pluginKey), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.ReloadPlugin(); err == nil {
		t.Error("reload of a broken key succeeded")
	}
	if !c.current().signer.Equal(inter2) {
		t.Error("broken reload replaced the signer")
	}
}

func TestJoinTokens(t *testing.T) {
	clk := &fakeClock{now: t0}
	s := NewTokenStore(t.TempDir(), clk)
	tok, err := s.Create("ns1", "sa1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseJoinToken(tok.String())
	if err != nil || parsed != tok {
		t.Fatalf("ParseJoinToken(%q) = %v, %v", tok, parsed, err)
	}
	b, _ := os.ReadFile(s.path(tok.ID))
	if strings.Contains(string(b), tok.Secret) {
		t.Error("token secret stored in clear")
	}
	ns, sa, err := s.Check(tok)
	if err != nil || ns != "ns1" || sa != "sa1" {
		t.Fatalf("Check = %s %s %v", ns, sa, err)
	}
	wrong := tok
	wrong.Secret = strings.Repeat("A", tokenSecretLen)
	if _, _, err := s.Check(wrong); err != ErrTokenUnknown {
		t.Errorf("wrong secret: %v", err)
	}
	if err := s.Consume(tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(tok); err != ErrTokenUnknown {
		t.Errorf("second consume: %v", err)
	}
	tok2, _ := s.Create("ns1", "sa1", time.Hour)
	clk.Advance(time.Hour)
	if _, _, err := s.Check(tok2); err != ErrTokenExpired {
		t.Errorf("expired: %v", err)
	}
	for _, bad := range []string{"", "wardjt.", "wardjt.zz.yy", tok.String() + "x", strings.ToUpper(tok.String())} {
		if _, err := ParseJoinToken(bad); err == nil {
			t.Errorf("ParseJoinToken(%q) accepted", bad)
		}
	}
	if _, err := s.Create("bad ns!", "sa", time.Hour); err == nil {
		t.Error("created a token for an invalid namespace")
	}
}

func TestRotationRequestOverlap(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	c := newTestCA(t, clk, func(c *Config) { c.StateDir = dir })
	if err := RequestRotation(dir, 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	mustReconcile(t, c)
	st := c.Status()
	if st.Phase != PhaseStaged || len(st.Roots) != 2 || !st.Roots[1].SwitchAt.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("after a 3h-overlap request: %+v", st)
	}
	if _, err := os.Stat(rotationRequestPath(dir)); !os.IsNotExist(err) {
		t.Error("rotation request was not taken")
	}
	// A second request during the rotation is dropped, not queued.
	if err := RequestRotation(dir, 0); err != nil {
		t.Fatal(err)
	}
	mustReconcile(t, c)
	if len(c.Roots()) != 2 {
		t.Errorf("a request during a rotation staged another root (%d roots)", len(c.Roots()))
	}
}

// TestRotationRequestSurvivesCrash kills the CA (a hook error stops the
// take as kill -9 would) between picking up a rotation request and saving
// the new state, restarts it on the same state dir, and checks the request
// is reported and then applied, not lost.
func TestRotationRequestSurvivesCrash(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	crash := errors.New("killed")
	c := newTestCA(t, clk, func(c *Config) { c.StateDir = dir })
	if err := RequestRotation(dir, time.Hour); err != nil {
		t.Fatal(err)
	}
	c.testHook = func(p string) error {
		if p == hookRotationPicked {
			return crash
		}
		return nil
	}
	if err := c.Reconcile(context.Background()); !errors.Is(err, crash) {
		t.Fatalf("reconcile with the crash hook: %v", err)
	}
	logs := &syncBuffer{}
	restarted := newTestCA(t, clk, func(c *Config) { c.StateDir = dir; c.Log = slog.New(slog.NewTextHandler(logs, nil)) })
	if st := restarted.Status(); st.PendingRotation == nil || st.Phase != PhaseStable {
		t.Fatalf("after the crash the request is not reported: %+v", st)
	}
	if !strings.Contains(logs.String(), "pending root rotation request found at startup") {
		t.Errorf("startup log does not report the interrupted request:\n%s", logs)
	}
	mustReconcile(t, restarted)
	st := restarted.Status()
	if st.Phase != PhaseStaged || len(st.Roots) != 2 || st.PendingRotation != nil {
		t.Fatalf("the interrupted rotation was not resumed: %+v", st)
	}
}

// TestRotationRequestNotAppliedTwice crashes after the state is saved but
// before the request is removed: the restarted CA must not stage a second
// root for the same request.
func TestRotationRequestNotAppliedTwice(t *testing.T) {
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	c := newTestCA(t, clk, func(c *Config) { c.StateDir = dir })
	if err := RequestRotation(dir, time.Hour); err != nil {
		t.Fatal(err)
	}
	c.testHook = func(p string) error {
		if p == hookRotationSaved {
			return errors.New("killed")
		}
		return nil
	}
	if err := c.Reconcile(context.Background()); err == nil {
		t.Fatal("crash hook did not stop the take")
	}
	logs := &syncBuffer{}
	restarted := newTestCA(t, clk, func(c *Config) { c.StateDir = dir; c.Log = slog.New(slog.NewTextHandler(logs, nil)) })
	mustReconcile(t, restarted)
	st := restarted.Status()
	if len(st.Roots) != 2 || st.PendingRotation != nil {
		t.Fatalf("request applied twice or left behind: %d roots, pending %+v", len(st.Roots), st.PendingRotation)
	}
	// The state's record of the request, not the rotation phase, is what
	// recognised it.
	if !strings.Contains(logs.String(), "rotation request already applied") {
		t.Errorf("the restarted CA did not recognise the applied request:\n%s", logs)
	}
}
