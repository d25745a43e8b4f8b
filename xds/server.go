package xds

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// Defaults of Config.
const (
	DefaultDebounce    = 100 * time.Millisecond
	DefaultMaxDebounce = time.Second
	// DefaultMaxInflight and DefaultMaxInflightWait are Config's
	// per-stream back-pressure.
	DefaultMaxInflight     = 4
	DefaultMaxInflightWait = time.Second
)

// Config holds the server's collaborators and tunables.
type Config struct {
	Log   *slog.Logger
	Clock Clock
	// Registry receives the Prometheus collectors; nil registers nothing.
	Registry prometheus.Registerer
	// Debounce is the quiet period before a push; MaxDebounce caps how long
	// a stream of updates can delay one.
	Debounce, MaxDebounce time.Duration
	// PushConcurrency bounds concurrent per-proxy generation and pushes
	// (default GOMAXPROCS).
	PushConcurrency int
	// MaxInflight bounds the state-of-the-world responses one stream has
	// sent but not yet answered (default DefaultMaxInflight: one per
	// resource type); MaxInflightWait is how long a response over it waits
	// for that stream's answers before going anyway (default
	// DefaultMaxInflightWait). The bound is per stream: a proxy that never
	// ACKs delays only itself.
	MaxInflight     int
	MaxInflightWait time.Duration
	// Limits bound node sizes and open streams (zero: the defaults).
	Limits Limits
	// Nodes serves ambient node proxies on the secure port (nil: node
	// certificates are refused like any non-workload identity).
	Nodes NodeStreams
	// Hooks plug authn/authz into the translators (default: plaintext, no
	// filters).
	Hooks translate.Hooks
}

// Server serves per-proxy xDS resources computed from the latest snapshot.
type Server struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics
	cache cachev3.SnapshotCache
	watch *watcher
	xds   serverv3.Server
	enc   *encoder // the codec of ServerOptions

	mu       sync.Mutex
	ix       *translate.Index
	seq      uint64                 // increments with every pushed index
	updateAt time.Time              // when the current snapshot reached Update
	conns    map[string]*conn       // by connection key (nodeID-counter)
	streams  map[int64]*streamState // by go-control-plane stream id
	sources  map[string]int         // open streams by source IP
	connSeq  uint64                 // numbers connection keys
	// nodeStreamSeq numbers node proxy streams (as negative stream ids).
	nodeStreamSeq atomic.Int64
	gens          map[string]*genEntry
	// partsOf lists, per endpoint side key, the cache keys of the
	// per-service parts it was assembled from (kept while it is).
	partsOf map[string][]string

	deb      debouncer
	throttle *throttle
	// refusals rate-limits the log lines of refused streams and
	// connections (10 per second, then a count of the dropped ones).
	refusals logLimiter
	// pushMu serialises pushes so snapshots are applied in order.
	pushMu sync.Mutex
	// lastWarnings is the config warnings last logged (under pushMu).
	lastWarnings string
}

// NewServer builds a server; it serves nothing until Register and Update.
func NewServer(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.MaxDebounce <= 0 {
		cfg.MaxDebounce = DefaultMaxDebounce
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.MaxInflightWait <= 0 {
		cfg.MaxInflightWait = DefaultMaxInflightWait
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.PushConcurrency <= 0 {
		cfg.PushConcurrency = runtime.GOMAXPROCS(0)
	}
	s := &Server{
		cfg: cfg, log: cfg.Log, m: newMetrics(cfg.Registry),
		cache: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil), enc: newEncoder(),
		conns: map[string]*conn{}, streams: map[int64]*streamState{}, sources: map[string]int{}, gens: map[string]*genEntry{}, partsOf: map[string][]string{},
	}
	s.refusals = logLimiter{burst: 10, interval: time.Second}
	s.throttle = newThrottle(cfg.MaxInflight, cfg.MaxInflightWait, s.m.inflightWaits.Inc)
	s.deb = debouncer{clock: cfg.Clock, quiet: cfg.Debounce, max: cfg.MaxDebounce, fire: s.push}
	s.watch = newWatcher(s)
	s.xds = serverv3.NewServer(context.Background(), s.watch, &callbacks{s: s})
	return s
}

// Update hands the server a new snapshot. Pushes are debounced: the
// snapshot is applied after Debounce without further updates, or after
// MaxDebounce since the first pending one, whichever comes first.
func (s *Server) Update(snap *mesh.Snapshot) { s.deb.add(snap) }

// UpdateNow applies a snapshot immediately, bypassing the debouncer
// (startup and tests).
func (s *Server) UpdateNow(snap *mesh.Snapshot) { s.push(snap, s.cfg.Clock.Now()) }

// Close stops a pending debounced push.
func (s *Server) Close() { s.deb.stop() }

// debouncer coalesces updates: quiet period, capped by a max wait.
type debouncer struct {
	clock      Clock
	quiet, max time.Duration
	fire       func(*mesh.Snapshot, time.Time)

	mu      sync.Mutex
	pending *mesh.Snapshot
	first   time.Time // arrival of the first pending update
	timer   Timer
	gen     uint64
}

func (d *debouncer) add(snap *mesh.Snapshot) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	if d.pending == nil {
		d.first = now
	}
	d.pending = snap
	wait := min(d.quiet, d.first.Add(d.max).Sub(now))
	if d.timer != nil {
		d.timer.Stop()
	}
	d.gen++
	gen := d.gen
	d.timer = d.clock.AfterFunc(max(wait, 0), func() { d.flush(gen) })
}

func (d *debouncer) flush(gen uint64) {
	d.mu.Lock()
	if gen != d.gen || d.pending == nil {
		d.mu.Unlock()
		return
	}
	snap, first := d.pending, d.first
	d.pending, d.timer = nil, nil
	d.mu.Unlock()
	d.fire(snap, first)
}

func (d *debouncer) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.pending, d.timer = nil, nil
	d.gen++
}
