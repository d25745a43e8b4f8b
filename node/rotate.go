package node

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/wardmesh/ward/mesh"
)

// Clock is the proxy's time source: certificate checks and rotation run
// on it, so tests move time instead of sleeping.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Rotation timing: renew at half the lifetime, as the agent does; retry a
// failed renewal after retryAfter; wake at least every maxWait so newly
// enrolled workloads are seen.
const (
	renewFraction = 0.5
	retryAfter    = 10 * time.Second
	maxWait       = time.Minute
)

// renewAt is half the lifetime counted from when the certificate
// arrived (CAs backdate NotBefore for skew).
func renewAt(leaf *x509.Certificate, now time.Time) time.Time {
	start := now
	if leaf.NotBefore.After(now) {
		start = leaf.NotBefore
	}
	return start.Add(time.Duration(float64(leaf.NotAfter.Sub(start)) * renewFraction))
}

// Renew replaces every workload certificate that is due (new key, new
// CSR) and returns when the next one is due. New tunnels use the new
// certificate at once; HBONE connections made with the old one close when
// their last tunnel ends, so rotation drops no connection. A failed
// renewal keeps the old certificate and is retried.
func (p *Proxy) Renew(ctx context.Context) time.Time {
	now := p.cfg.Clock.Now()
	next := now.Add(maxWait)
	p.mu.Lock()
	pods := make([]*pod, 0, len(p.pods))
	for _, pd := range p.pods {
		pods = append(pods, pd)
	}
	p.mu.Unlock()
	for _, pd := range pods {
		at := pd.svid.Load().renewAt
		if now.Before(at) {
			next = minTime(next, at)
			continue
		}
		if err := pd.renew(ctx); err != nil {
			p.cfg.Log.Error("certificate renewal failed", "namespace", pd.w.Namespace, "name", pd.w.Name, "error", err)
			next = minTime(next, now.Add(retryAfter))
			continue
		}
		next = minTime(next, pd.svid.Load().renewAt)
	}
	return next
}

func (pd *pod) renew(ctx context.Context) error {
	old := pd.svid.Load()
	s, err := issue(ctx, pd.p.cfg.Issuer, old.id, pd.p.cfg.CertTTL, pd.p.cfg.Clock.Now())
	if err != nil {
		return err
	}
	pd.p.bundle.SetX509Authorities(s.roots)
	pd.svid.Store(s)
	pd.p.metrics.certificate(pd.w.Source, s)
	pd.client.Retire(old.cert)
	pd.p.cfg.Log.Info("certificate renewed", "namespace", pd.w.Namespace, "name", pd.w.Name, "spiffe_id", s.id.String(), "expires", s.cert.Leaf.NotAfter)
	return nil
}

// rotate runs Renew on the clock until ctx ends.
func (p *Proxy) rotate(ctx context.Context) {
	for {
		wait := p.Renew(ctx).Sub(p.cfg.Clock.Now())
		select {
		case <-ctx.Done():
			return
		case <-p.cfg.Clock.After(max(wait, time.Second)):
		}
	}
}

// Certificates returns each enrolled workload's current leaf (for
// proxy-config and tests).
func (p *Proxy) Certificates() map[mesh.Key]*x509.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[mesh.Key]*x509.Certificate, len(p.pods))
	for k, pd := range p.pods {
		out[k] = pd.svid.Load().cert.Leaf
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
