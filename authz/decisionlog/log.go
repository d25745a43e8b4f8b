package decisionlog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wardmesh/ward/internal/rotate"
)

// Entry is one decision.
type Entry struct {
	DecisionID       string            `json:"decision_id"`
	Time             time.Time         `json:"time"`
	Workload         string            `json:"workload"`
	SourcePrincipal  string            `json:"source_principal,omitempty"`
	RequestPrincipal string            `json:"request_principal,omitempty"`
	Method           string            `json:"method,omitempty"`
	Path             string            `json:"path,omitempty"`
	Host             string            `json:"host,omitempty"`
	Allowed          bool              `json:"allowed"`
	Reason           string            `json:"reason"`
	Action           string            `json:"action,omitempty"`
	Policy           string            `json:"policy,omitempty"`
	Rule             string            `json:"rule,omitempty"`
	Explanation      string            `json:"explanation"`
	DryRun           bool              `json:"dry_run"`
	DryRunRules      []string          `json:"dry_run_rules,omitempty"`
	ShadowAllowed    *bool             `json:"shadow_allowed,omitempty"`
	Audit            bool              `json:"audit"`
	AuditRules       []string          `json:"audit_rules,omitempty"`
	LatencyMicros    int64             `json:"latency_us"`
	Headers          map[string]string `json:"headers,omitempty"`
	Error            string            `json:"error,omitempty"`
}

// Clock tells time; tests inject a fake.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// DefaultMasked are headers never written in clear.
var DefaultMasked = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}

// Config configures a Logger. Exactly one of Path and Writer is set.
type Config struct {
	// Path is the log file, created 0600; it is rotated to Path.1 …
	// Path.<MaxFiles> when it would exceed MaxBytes (internal/rotate;
	// MaxBytes ≤ 0 means 64 MiB, MaxFiles ≤ 0 means 3).
	Path     string
	MaxBytes int64
	MaxFiles int
	// Writer receives entries instead of a file (no rotation).
	Writer io.Writer
	// Rate and Burst bound entries per second (defaults 1000 and 2000);
	// entries over the limit are counted as dropped, never block.
	Rate  float64
	Burst int
	// Headers to log (lower case); values of Masked ones are replaced by a
	// short SHA-256 prefix. Default: no headers, DefaultMasked.
	Headers []string
	Masked  []string
	Clock   Clock
	Log     *slog.Logger
	// Queue, when positive, takes writes off the caller's path: Log only
	// applies the rate limit and queues the entry (at most Queue waiting;
	// more are dropped and counted), and one goroutine masks, encodes and
	// writes them in order. Close writes what is queued and stops it.
	// Zero: Log writes before it returns.
	Queue int
}

// Logger writes decision entries. It is safe for concurrent use.
type Logger struct {
	cfg    Config
	masked map[string]bool
	// wmu guards the output (a queued write never holds mu, so a slow
	// disk does not stall Log); mu guards the rest.
	wmu     sync.Mutex
	w       io.Writer
	f       *rotate.File // nil: Writer
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped uint64
	queue   chan *Entry   // nil: synchronous
	closed  bool          // no more entries are queued
	written chan struct{} // closed when the writer has drained the queue
}

// New opens the log.
func New(cfg Config) (*Logger, error) {
	if (cfg.Path == "") == (cfg.Writer == nil) {
		return nil, errors.New("decision log: exactly one of Path and Writer must be set")
	}
	if cfg.Rate == 0 {
		cfg.Rate = 1000
	}
	if cfg.Burst == 0 {
		cfg.Burst = 2000
	}
	if cfg.Masked == nil {
		cfg.Masked = DefaultMasked
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := &Logger{cfg: cfg, masked: map[string]bool{}, w: cfg.Writer, tokens: float64(cfg.Burst), last: cfg.Clock.Now()}
	for _, h := range cfg.Masked {
		l.masked[strings.ToLower(h)] = true
	}
	if cfg.Path != "" {
		f, err := rotate.Open(cfg.Path, cfg.MaxBytes, cfg.MaxFiles)
		if err != nil {
			return nil, fmt.Errorf("decision log: %w", err)
		}
		l.f, l.w = f, f
	}
	if cfg.Queue > 0 {
		l.queue, l.written = make(chan *Entry, cfg.Queue), make(chan struct{})
		go l.writer()
	}
	return l, nil
}

// writer writes queued entries until Close closes the queue.
func (l *Logger) writer() {
	defer close(l.written)
	for e := range l.queue {
		l.write(e)
	}
}

// HeaderFilter returns the headers to log from hs, masked.
func (l *Logger) HeaderFilter(hs map[string]string) map[string]string {
	if len(l.cfg.Headers) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, h := range l.cfg.Headers {
		v, ok := hs[h]
		if !ok {
			continue
		}
		if l.masked[h] {
			sum := sha256.Sum256([]byte(v))
			v = "sha256:" + hex.EncodeToString(sum[:6])
		}
		out[h] = v
	}
	return out
}

// Mask replaces the value of every masked header in hs.
func (l *Logger) Mask(hs map[string]string) map[string]string {
	out := make(map[string]string, len(hs))
	for k, v := range hs {
		if l.masked[strings.ToLower(k)] {
			sum := sha256.Sum256([]byte(v))
			v = "sha256:" + hex.EncodeToString(sum[:6])
		}
		out[k] = v
	}
	return out
}

// Log writes e unless the rate limit is exhausted (or, with a Queue,
// queues it for writing unless the queue is full). It reports whether the
// entry was taken.
func (l *Logger) Log(e *Entry) bool {
	if l.queue == nil {
		b, ok := l.encode(e)
		if !ok {
			return false
		}
		l.mu.Lock()
		ok = l.allow() && !l.closed
		if !ok {
			l.dropped++
		}
		l.mu.Unlock()
		return ok && l.writeOut(e.DecisionID, b)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.allow() || l.closed {
		l.dropped++
		return false
	}
	select {
	case l.queue <- e:
		return true
	default:
		l.dropped++
		return false
	}
}

// write encodes and writes one queued entry.
func (l *Logger) write(e *Entry) {
	b, ok := l.encode(e)
	if !ok {
		return
	}
	l.writeOut(e.DecisionID, b)
}

// encode masks the entry's headers and renders it as one JSON line.
func (l *Logger) encode(e *Entry) ([]byte, bool) {
	if len(e.Headers) > 0 {
		e.Headers = l.Mask(e.Headers)
	}
	b, err := json.Marshal(e)
	if err != nil {
		l.cfg.Log.Error("decision log: marshal", "decision_id", e.DecisionID, "error", err)
		return nil, false
	}
	return append(b, '\n'), true
}

// writeOut writes one encoded entry (a file rotates first when due).
func (l *Logger) writeOut(id string, b []byte) bool {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		l.cfg.Log.Error("decision log: write", "decision_id", id, "error", err)
		return false
	}
	return true
}

// allow takes a token from the bucket (refilled at Rate per second).
func (l *Logger) allow() bool {
	now := l.cfg.Clock.Now()
	l.tokens = min(float64(l.cfg.Burst), l.tokens+now.Sub(l.last).Seconds()*l.cfg.Rate)
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// Dropped returns how many entries the rate limit discarded.
func (l *Logger) Dropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// Close writes the queued entries, if any, and closes the file, if any.
func (l *Logger) Close() error {
	l.mu.Lock()
	if l.queue != nil && !l.closed {
		close(l.queue)
	}
	l.closed = true
	l.mu.Unlock()
	if l.written != nil {
		<-l.written
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
