package ca

import (
	"cmp"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxIssuedRecords bounds the default issuance logs: the newest
// this many unexpired records are kept.
const DefaultMaxIssuedRecords = 100_000

// IssuedCert is the issuance record of one certificate: to whom, by whom
// and for how long. It never holds a key or the certificate itself.
type IssuedCert struct {
	Serial    string    `json:"serial"` // hex, as in /debug/ca
	SPIFFEID  string    `json:"spiffeId"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	IssuedAt  time.Time `json:"issuedAt"`
	// Signer and Root are the serials of the signing certificate and of
	// the root it chains to (equal in self-signed mode).
	Signer string `json:"signer"`
	Root   string `json:"root"`
	// Method is how the caller authenticated (mtls, k8s-jwt, join-token;
	// control-plane for the CA's own serving certificate); empty when
	// Sign was called without one.
	Method string `json:"method,omitempty"`
	// Node is the node proxy the certificate was issued to on behalf of
	// the workload (method node-proxy); `ward proxy-config secrets` of a
	// node proxy lists its workloads' certificates by it.
	Node string `json:"node,omitempty"`
}

// IssuanceLog keeps the records of issued certificates. Record is called
// once per successful Sign, concurrently; Issued returns the unexpired
// records at now, one per serial (the newest), ordered by expiry.
type IssuanceLog interface {
	Record(IssuedCert) error
	Issued(now time.Time) []IssuedCert
}

// Issuance log scopes, as reported by /debug/ca/issued.
const (
	// ScopeState: the log is kept with the CA state and lists every
	// certificate issued with it (file mode).
	ScopeState = "state"
	// ScopeProcess: the log is in memory and lists only what this process
	// issued since it started (Kubernetes mode: one replica's share).
	ScopeProcess = "process"
)

// LogConfig configures the issuance logs.
type LogConfig struct {
	// MaxRecords bounds the kept records (DefaultMaxIssuedRecords).
	MaxRecords int
	Clock      Clock
	Log        *slog.Logger
	// Metrics receives ward_ca_issued_records_dropped_total.
	Metrics prometheus.Registerer
}

func (c *LogConfig) setDefaults() {
	if c.MaxRecords <= 0 {
		c.MaxRecords = DefaultMaxIssuedRecords
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Reasons records are dropped, the values of the reason label.
const (
	dropExpired = "expired"
	dropLimit   = "limit"
	dropCorrupt = "corrupt"
	// dropWriteError: the file write failed; the records stay in memory
	// until the next compaction rewrites the file.
	dropWriteError = "write_error"
)

func newDropCounter(r prometheus.Registerer) (*prometheus.CounterVec, error) {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ward_ca_issued_records_dropped_total",
		Help: "Issuance records dropped by reason: expired, limit (the newest MaxRecords unexpired are kept), corrupt (unreadable line in the file) or write_error (not written to the file).",
	}, []string{"reason"})
	if r == nil {
		return cv, nil
	}
	if err := r.Register(cv); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return cv, nil
}

// recordSet is the bounded record list both logs are built on. It is not
// safe for concurrent use.
type recordSet struct {
	max     int
	recs    []IssuedCert // in issuance order, oldest first; may hold expired ones
	limit   int          // prune when len(recs) reaches it
	dropped *prometheus.CounterVec
}

func newRecordSet(max int, dropped *prometheus.CounterVec) recordSet {
	s := recordSet{max: max, dropped: dropped}
	s.limit = s.nextLimit()
	return s
}

// nextLimit lets the list grow to twice its live size (at least by 1024)
// before the next prune, so pruning (and, for the file, rewriting) costs
// O(1) amortised per record, and never beyond a quarter over max.
func (s *recordSet) nextLimit() int {
	k := len(s.recs)
	return min(max(2*k, k+1024), s.max+s.max/4+1)
}

// add appends r and reports whether the set is due for a prune.
func (s *recordSet) add(r IssuedCert) bool {
	s.recs = append(s.recs, r)
	return len(s.recs) >= s.limit
}

// prune drops expired records, then the oldest beyond max, and reports
// whether anything was dropped.
func (s *recordSet) prune(now time.Time) bool {
	kept := s.recs[:0]
	expired := 0
	for _, r := range s.recs {
		if !now.Before(r.NotAfter) {
			expired++
			continue
		}
		kept = append(kept, r)
	}
	over := max(len(kept)-s.max, 0)
	if over > 0 {
		kept = append(kept[:0], kept[over:]...)
	}
	clear(s.recs[len(kept):])
	s.recs = kept
	s.limit = s.nextLimit()
	s.count(dropExpired, expired)
	s.count(dropLimit, over)
	return expired+over > 0
}

func (s *recordSet) count(reason string, n int) {
	if n > 0 && s.dropped != nil {
		s.dropped.WithLabelValues(reason).Add(float64(n))
	}
}

// issued returns the newest record per serial among the unexpired, at
// most max of them (the newest), ordered by expiry, then SPIFFE ID.
func (s *recordSet) issued(now time.Time) []IssuedCert {
	return newestUnexpired(s.recs, now, s.max)
}

func newestUnexpired(recs []IssuedCert, now time.Time, limit int) []IssuedCert {
	seen := make(map[string]struct{}, min(len(recs), limit))
	out := make([]IssuedCert, 0, min(len(recs), limit))
	for i := len(recs) - 1; i >= 0 && len(out) < limit; i-- {
		r := recs[i]
		if _, dup := seen[r.Serial]; dup || !now.Before(r.NotAfter) {
			continue
		}
		seen[r.Serial] = struct{}{}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b IssuedCert) int {
		return cmp.Or(a.NotAfter.Compare(b.NotAfter), cmp.Compare(a.SPIFFEID, b.SPIFFEID), cmp.Compare(a.Serial, b.Serial))
	})
	return out
}

// MemoryLog is an in-memory IssuanceLog. It lists only what this process
// issued since it started; in Kubernetes mode, where every replica signs,
// each replica's log holds its own share.
type MemoryLog struct {
	clock Clock
	mu    sync.Mutex
	set   recordSet
}

var _ IssuanceLog = (*MemoryLog)(nil)

// NewMemoryLog returns an empty in-memory log.
func NewMemoryLog(cfg LogConfig) (*MemoryLog, error) {
	cfg.setDefaults()
	dropped, err := newDropCounter(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	return &MemoryLog{clock: cfg.Clock, set: newRecordSet(cfg.MaxRecords, dropped)}, nil
}

// Record keeps r.
func (l *MemoryLog) Record(r IssuedCert) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set.add(r) {
		l.set.prune(l.clock.Now())
	}
	return nil
}

// Issued returns the unexpired records.
func (l *MemoryLog) Issued(now time.Time) []IssuedCert {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.set.issued(now)
}

// Scope is ScopeProcess.
func (l *MemoryLog) Scope() string { return ScopeProcess }
