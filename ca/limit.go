package ca

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults for Limits. Consul's CA is the reference: it rate-limits CSRs
// globally (csr_max_per_second, default 50) or by concurrency
// (csr_max_concurrent) and answers callers over the limit with a retryable
// error. Ward applies both, plus per-identity and per-source buckets, and
// keeps a share of the global rate for renewals over mTLS so a flood of
// unauthenticated requests cannot starve existing workloads.
const (
	DefaultCSRMaxPerSecond      = 100
	DefaultCSRMaxConcurrent     = 32
	DefaultUnauthenticatedShare = 0.5
	DefaultIdentityPerSecond    = 5
	DefaultIdentityBurst        = 50
	DefaultNodePerSecond        = 20
	DefaultNodeBurst            = 250
	DefaultFailuresPerSecond    = 1
	DefaultFailureBurst         = 10
	DefaultMaxLimitKeys         = 10000
	DefaultLogEvery             = 10 * time.Second
)

// Limits bounds the work the certificate service does for callers. A
// zero field takes its default; a negative rate or concurrency disables
// that limit.
type Limits struct {
	// CSRMaxPerSecond is the global rate of CSRs admitted for processing
	// (a token bucket holding one second of burst). It is checked before
	// the CSR is parsed or the caller authenticated.
	CSRMaxPerSecond float64
	// CSRMaxConcurrent bounds CSRs in flight; beyond it callers get
	// RESOURCE_EXHAUSTED at once rather than queueing.
	CSRMaxConcurrent int
	// UnauthenticatedShare is the fraction of CSRMaxPerSecond open to
	// callers without a mesh client certificate (enrolment by join token or
	// Kubernetes token, and anyone else); the rest is reserved for
	// renewals over mTLS.
	UnauthenticatedShare float64
	// IdentityPerSecond and IdentityBurst bound the certificates issued
	// to one SPIFFE ID (all replicas of a service account share them).
	IdentityPerSecond float64
	IdentityBurst     int
	// NodePerSecond and NodeBurst bound the certificates one node proxy
	// obtains (its own and its workloads'), charged to its node identity.
	// The burst covers a full node (Kubernetes' default 110 pods) enrolling
	// at start.
	NodePerSecond float64
	NodeBurst     int
	// FailuresPerSecond and FailureBurst bound failed authentications per
	// source address and per join-token id; a source over its budget is
	// refused before any work is done for it.
	FailuresPerSecond float64
	FailureBurst      int
	// MaxKeys bounds the per-identity and per-source tables (memory).
	MaxKeys int
	// LogEvery is how often at most a failed authentication or rejected
	// CSR is logged per kind; the next line counts the ones suppressed.
	LogEvery time.Duration
}

func (l *Limits) setDefaults() {
	setFloat(&l.CSRMaxPerSecond, DefaultCSRMaxPerSecond)
	setFloat(&l.UnauthenticatedShare, DefaultUnauthenticatedShare)
	setFloat(&l.IdentityPerSecond, DefaultIdentityPerSecond)
	setFloat(&l.FailuresPerSecond, DefaultFailuresPerSecond)
	setFloat(&l.NodePerSecond, DefaultNodePerSecond)
	setInt(&l.NodeBurst, DefaultNodeBurst)
	setInt(&l.CSRMaxConcurrent, DefaultCSRMaxConcurrent)
	setInt(&l.IdentityBurst, DefaultIdentityBurst)
	setInt(&l.FailureBurst, DefaultFailureBurst)
	setInt(&l.MaxKeys, DefaultMaxLimitKeys)
	setDur(&l.LogEvery, DefaultLogEvery)
	l.UnauthenticatedShare = min(l.UnauthenticatedShare, 1)
}

func setFloat(f *float64, def float64) {
	if *f == 0 {
		*f = def
	}
}

func setInt(i *int, def int) {
	if *i == 0 {
		*i = def
	}
}

// Names of the limits, as used in the ward_ca_rate_limited_total metric.
const (
	limitGlobal          = "global"
	limitUnauthenticated = "unauthenticated"
	limitConcurrency     = "concurrency"
	limitIdentity        = "identity"
	limitSource          = "source"
	limitNode            = "node"
)

// bucket returns a limiter of r per second holding burst, or an unlimited
// one when r is negative.
func bucket(r float64, burst int) *rate.Limiter {
	if r < 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(r), max(burst, 1))
}

// limiter enforces Limits on the CA clock (x/time/rate takes explicit
// times, so tests drive it with a fake clock).
type limiter struct {
	clock    Clock
	all      *rate.Limiter
	unauth   *rate.Limiter
	slots    chan struct{} // nil: no concurrency limit
	identity *keyedLimiter
	nodes    *keyedLimiter
	failures *keyedLimiter
}

func newLimiter(l Limits, clock Clock) *limiter {
	burst := int(l.CSRMaxPerSecond)
	lim := &limiter{
		clock:    clock,
		all:      bucket(l.CSRMaxPerSecond, burst),
		unauth:   bucket(l.CSRMaxPerSecond*l.UnauthenticatedShare, int(float64(burst)*l.UnauthenticatedShare)),
		identity: newKeyedLimiter(l.IdentityPerSecond, l.IdentityBurst, l.MaxKeys),
		nodes:    newKeyedLimiter(l.NodePerSecond, l.NodeBurst, l.MaxKeys),
		failures: newKeyedLimiter(l.FailuresPerSecond, l.FailureBurst, l.MaxKeys),
	}
	if l.CSRMaxConcurrent > 0 {
		lim.slots = make(chan struct{}, l.CSRMaxConcurrent)
	}
	return lim
}

// admit takes a global token (from the unauthenticated share too unless
// the caller presented a verified mesh certificate) and a concurrency slot.
// It returns the release of the slot, or the name of the limit hit.
func (l *limiter) admit(mtls bool) (release func(), hit string) {
	now := l.clock.Now()
	if !mtls && !l.unauth.AllowN(now, 1) {
		return nil, limitUnauthenticated
	}
	if !l.all.AllowN(now, 1) {
		return nil, limitGlobal
	}
	if l.slots == nil {
		return func() {}, ""
	}
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, ""
	default:
		return nil, limitConcurrency
	}
}

// allowIdentity takes one issuance from id's bucket.
func (l *limiter) allowIdentity(id string) bool {
	now := l.clock.Now()
	return l.identity.get(id, now).AllowN(now, 1)
}

// allowNode takes one issuance from a node identity's bucket.
func (l *limiter) allowNode(id string) bool {
	now := l.clock.Now()
	return l.nodes.get(id, now).AllowN(now, 1)
}

// failing reports whether any of keys has spent its failure budget.
func (l *limiter) failing(keys ...string) bool {
	now := l.clock.Now()
	for _, k := range keys {
		if b := l.failures.get(k, now); k != "" && b.Limit() != rate.Inf && b.TokensAt(now) < 1 {
			return true
		}
	}
	return false
}

// failed charges one failed authentication to each of keys.
func (l *limiter) failed(keys ...string) {
	now := l.clock.Now()
	for _, k := range keys {
		if k != "" {
			l.failures.get(k, now).AllowN(now, 1)
		}
	}
}

// keyedLimiter is a bounded table of token buckets. A bucket that has
// refilled completely is indistinguishable from a new one, so those are
// evicted when the table is full; if none can be, new keys share one
// overflow bucket (an attacker cycling keys only throttles itself).
type keyedLimiter struct {
	mu       sync.Mutex
	r        float64
	burst    int
	max      int
	m        map[string]*rate.Limiter
	overflow *rate.Limiter
}

func newKeyedLimiter(r float64, burst, maxKeys int) *keyedLimiter {
	return &keyedLimiter{r: r, burst: burst, max: maxKeys, m: map[string]*rate.Limiter{}, overflow: bucket(r, burst)}
}

func (k *keyedLimiter) get(key string, now time.Time) *rate.Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l, ok := k.m[key]; ok {
		return l
	}
	if len(k.m) >= k.max {
		k.evictFull(now)
	}
	if len(k.m) >= k.max {
		return k.overflow
	}
	l := bucket(k.r, k.burst)
	k.m[key] = l
	return l
}

// evictFull drops every bucket that has refilled completely.
func (k *keyedLimiter) evictFull(now time.Time) {
	for key, l := range k.m {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(k.m, key)
		}
	}
}

// logLimiter lets through one log line per kind per interval and counts
// the lines it suppressed in between, so a flood of bad requests costs a
// bounded amount of log.
type logLimiter struct {
	mu         sync.Mutex
	clock      Clock
	every      time.Duration
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogLimiter(clock Clock, every time.Duration) *logLimiter {
	return &logLimiter{clock: clock, every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line of kind may be logged now and, if so, how
// many lines of that kind were suppressed since the last one.
func (l *logLimiter) allow(kind string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if last, seen := l.last[kind]; seen && now.Sub(last) < l.every {
		l.suppressed[kind]++
		return false, 0
	}
	l.last[kind] = now
	n := l.suppressed[kind]
	l.suppressed[kind] = 0
	return true, n
}
