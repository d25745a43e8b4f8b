package jwks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/mesh"
)

// Defaults of Config.
const (
	DefaultRefresh      = 20 * time.Minute
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 60 * time.Minute
	DefaultFetchTimeout = 5 * time.Second
)

// Config holds the resolver's collaborators and tunables.
type Config struct {
	Log   *slog.Logger
	Clock Clock
	// Client fetches discovery documents and key sets (default: a client
	// with the system roots). Per-fetch deadlines come from FetchTimeout or
	// the rule's timeout.
	Client *http.Client
	// Refresh is how often good keys are re-fetched.
	Refresh time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after failures,
	// doubling from min to max.
	MinBackoff, MaxBackoff time.Duration
	FetchTimeout           time.Duration
	// OnChange is called (from the Run goroutine) when the key set served
	// for an issuer changes: first success, rotation, recovery. The server
	// pushes in response.
	OnChange func(issuer string)
	// Registry receives the metrics; nil registers nothing.
	Registry prometheus.Registerer
}

// source is one place keys come from.
type source struct {
	Issuer string
	URI    string // jwksUri; "" = OIDC discovery
}

// entry is the fetch state of one source.
type entry struct {
	src         source
	timeout     time.Duration
	usedBy      []string
	keys        string // normalized JWKS, "" until the first success
	kids        []string
	resolvedURI string
	lastSuccess time.Time
	lastError   string
	lastErrorAt time.Time
	failures    int
	next        time.Time
}

// Resolver resolves, caches and refreshes key sets. It implements
// authn.KeySets and authn.KeyErrors.
type Resolver struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	wake chan struct{}

	mu      sync.RWMutex
	entries map[source]*entry
}

var (
	_ authn.KeySets   = (*Resolver)(nil)
	_ authn.KeyErrors = (*Resolver)(nil)
)

// New builds a resolver; it fetches nothing until Track and Run.
func New(cfg Config) *Resolver {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	return &Resolver{cfg: cfg, log: cfg.Log, m: newMetrics(cfg.Registry), wake: make(chan struct{}, 1), entries: map[source]*entry{}}
}

// JWKS returns the normalized key set for issuer/jwksURI; ok is false
// while none has been fetched (the translator then fails closed).
func (r *Resolver) JWKS(issuer, jwksURI string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.entries[source{issuer, jwksURI}]
	if e == nil || e.keys == "" {
		return "", false
	}
	return e.keys, true
}

// LastError returns the error of the last fetch of issuer/jwksURI while
// fetches are failing, or "" once the latest fetch succeeded.
func (r *Resolver) LastError(issuer, jwksURI string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.entries[source{issuer, jwksURI}]; e != nil && e.failures > 0 {
		return e.lastError
	}
	return ""
}

// Fingerprint hashes the key sets currently served, so a proxy's cached
// output can be invalidated when keys change.
func (r *Resolver) Fingerprint(issuer, jwksURI string) string {
	s, _ := r.JWKS(issuer, jwksURI)
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}

// Track makes the resolver fetch exactly the key sources snap's
// RequestAuthentications need (rules with inline jwks need none). New
// sources are fetched at once; sources no longer used are dropped.
func (r *Resolver) Track(snap *mesh.Snapshot) {
	want := map[source]*entry{}
	for _, c := range snap.All(mesh.KindRequestAuthentication) {
		ra, _ := c.Spec.(*security.RequestAuthentication)
		for _, rule := range ra.GetJwtRules() {
			if rule.GetJwks() != "" || (rule.GetIssuer() == "" && rule.GetJwksUri() == "") {
				continue
			}
			src := source{rule.GetIssuer(), rule.GetJwksUri()}
			e := want[src]
			if e == nil {
				e = &entry{src: src, timeout: r.cfg.FetchTimeout}
				want[src] = e
			}
			if t := rule.GetTimeout(); t != nil && t.AsDuration() > 0 {
				e.timeout = t.AsDuration()
			}
			e.usedBy = append(e.usedBy, c.Key().String())
		}
	}
	r.mu.Lock()
	for src := range r.entries {
		if want[src] == nil {
			delete(r.entries, src)
			r.m.forget(src)
			r.log.Info("jwks source dropped", "issuer", src.Issuer, "jwks_uri", src.URI)
		}
	}
	now := r.cfg.Clock.Now()
	for src, w := range want {
		if e := r.entries[src]; e != nil {
			e.usedBy, e.timeout = w.usedBy, w.timeout
			continue
		}
		w.next = now
		r.entries[src] = w
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run fetches due sources until ctx ends, sleeping on the clock between
// rounds. It returns nil when ctx is cancelled.
func (r *Resolver) Run(ctx context.Context) error {
	select { // the first round covers whatever Track added before Run
	case <-r.wake:
	default:
	}
	for {
		r.fetchDue(ctx)
		wait := r.untilNext()
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-r.cfg.Clock.After(wait):
		}
	}
}

// untilNext is the delay until the earliest due source (Refresh when none).
func (r *Resolver) untilNext() time.Duration {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.cfg.Clock.Now()
	wait := r.cfg.Refresh
	for _, e := range r.entries {
		if d := e.next.Sub(now); d < wait {
			wait = d
		}
	}
	if wait < 0 {
		wait = 0
	}
	return wait
}

func (r *Resolver) due() []source {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.cfg.Clock.Now()
	var out []source
	for src, e := range r.entries {
		if !e.next.After(now) {
			out = append(out, src)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Issuer+out[i].URI < out[j].Issuer+out[j].URI })
	return out
}

func (r *Resolver) fetchDue(ctx context.Context) {
	for _, src := range r.due() {
		if ctx.Err() != nil {
			return
		}
		r.mu.RLock()
		e := r.entries[src]
		timeout := r.cfg.FetchTimeout
		if e != nil {
			timeout = e.timeout
		}
		r.mu.RUnlock()
		if e == nil {
			continue
		}
		res, err := r.fetch(ctx, src, timeout)
		if changed := r.record(src, res, err); changed && r.cfg.OnChange != nil {
			r.cfg.OnChange(src.Issuer)
		}
	}
}

// record stores a fetch outcome and reports whether the served keys changed.
func (r *Resolver) record(src source, res fetched, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[src]
	if e == nil {
		return false // dropped while fetching
	}
	now := r.cfg.Clock.Now()
	if err != nil {
		e.failures++
		e.lastError, e.lastErrorAt = err.Error(), now
		e.next = now.Add(r.backoff(e.failures))
		r.m.fetched(src, resultOf(err), e)
		r.log.Warn("jwks fetch failed", "issuer", src.Issuer, "jwks_uri", src.URI, "failures", e.failures,
			"retry_in", e.next.Sub(now).String(), "keeping_last_good", e.keys != "", "err", err)
		return false
	}
	changed := e.keys != res.keys.JSON
	e.keys, e.kids, e.resolvedURI = res.keys.JSON, res.keys.KeyIDs, res.uri
	e.lastSuccess, e.failures = now, 0
	e.next = now.Add(r.cfg.Refresh)
	r.m.fetched(src, "success", e)
	if changed {
		r.log.Info("jwks updated", "issuer", src.Issuer, "jwks_uri", res.uri, "key_ids", e.kids, "dropped", len(res.keys.Dropped))
	}
	return changed
}

// backoff is MinBackoff doubled per consecutive failure, capped.
func (r *Resolver) backoff(failures int) time.Duration {
	d := r.cfg.MinBackoff
	for i := 1; i < failures && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > r.cfg.MaxBackoff {
		d = r.cfg.MaxBackoff
	}
	return d
}
