package webhook_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/webhook"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The webhook's serving certificate comes from Ward's CA, carries the
// webhook Service's names, is renewed at half its life and follows a root
// rotation without a restart.
func TestServingCertificateFromCARotates(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	c, err := ca.New(ca.Config{StateDir: t.TempDir(), TrustDomain: "cluster.local", Clock: clk,
		ServerNames: []string{"ward.ward-system.svc"}, DefaultTTL: time.Hour, RotationOverlap: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	get := webhook.FromCA(c)
	cert := func() *x509.Certificate {
		t.Helper()
		tc, err := get(&tls.ClientHelloInfo{ServerName: "ward.ward-system.svc"})
		if err != nil {
			t.Fatal(err)
		}
		l, err := x509.ParseCertificate(tc.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	verify := func(l *x509.Certificate) error {
		pool := x509.NewCertPool()
		for _, r := range c.Roots() {
			pool.AddCert(r)
		}
		_, err := l.Verify(x509.VerifyOptions{Roots: pool, DNSName: "ward.ward-system.svc", CurrentTime: clk.Now()})
		return err
	}
	first := cert()
	if err := verify(first); err != nil {
		t.Fatalf("serving certificate does not verify for the Service name: %v", err)
	}
	if again := cert(); !again.Equal(first) {
		t.Error("certificate reissued before half its life")
	}
	clk.add(first.NotAfter.Sub(first.NotBefore)/2 + time.Second)
	renewed := cert()
	if renewed.Equal(first) {
		t.Error("certificate not renewed after half its life")
	}
	if err := c.Rotate(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Minute)
	if err := c.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	rotated := cert()
	if rotated.Equal(renewed) || string(rotated.AuthorityKeyId) == string(renewed.AuthorityKeyId) {
		t.Error("certificate not reissued by the new signing root")
	}
	if err := verify(rotated); err != nil {
		t.Fatalf("rotated certificate does not verify: %v", err)
	}
}
