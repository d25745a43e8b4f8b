package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// Config configures a watching Source.
type Config struct {
	Dir string
	Log *slog.Logger
	// Quiet is how long the tree must be still before a reload (100 ms).
	Quiet time.Duration
	// MaxWait bounds how long a stream of changes can delay a reload (1 s).
	MaxWait time.Duration
	// OnSnapshot is called, from the Run goroutine, with every snapshot
	// whose version differs from the previous one.
	OnSnapshot func(*mesh.Snapshot)
	// OnReload, if set, is called after every reload with the new status,
	// whether or not the snapshot changed (tests and status writers use it).
	OnReload func(Status)
	// Registry receives the source's metrics; nil means none.
	Registry prometheus.Registerer
}

// Source watches a config tree and keeps the last good snapshot.
type Source struct {
	cfg     Config
	metrics *metrics

	mu       sync.RWMutex
	snap     *mesh.Snapshot
	status   Status
	lastGood map[mesh.Key]*mesh.Config
	lastMesh *mesh.MeshConfig
	meshSrc  mesh.Source
}

// New checks cfg and returns a Source; nothing is read until Run or Reload.
func New(cfg Config) (*Source, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("file source: Dir is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 100 * time.Millisecond
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = time.Second
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, metrics: m, lastGood: map[mesh.Key]*mesh.Config{}}, nil
}

// Snapshot returns the current snapshot, or nil before the first load.
func (s *Source) Snapshot() *mesh.Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap
}

// Status describes what is loaded and what was rejected.
func (s *Source) Status() Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.status
}

// Reload reads the tree once, merges it with the last good objects and
// publishes the result if it changed. It returns the new snapshot.
func (s *Source) Reload() (*mesh.Snapshot, error) {
	res, err := Load(s.cfg.Dir)
	if err != nil {
		s.metrics.reloads.WithLabelValues("error").Inc()
		return nil, err
	}
	s.mu.Lock()
	objects, kept := s.merge(res)
	mc := s.mergeMesh(res)
	snap := mesh.NewSnapshot(mc, objects)
	changed := s.snap == nil || s.snap.Version() != snap.Version()
	if changed {
		s.snap = snap
	}
	s.status = newStatus(s.snap, res, kept, time.Now())
	s.mu.Unlock()

	s.record(res, kept)
	if changed && s.cfg.OnSnapshot != nil {
		s.cfg.OnSnapshot(snap)
	}
	if s.cfg.OnReload != nil {
		s.cfg.OnReload(s.Status())
	}
	return snap, nil
}

// merge returns the objects to serve: every valid object of res, plus the
// last good version of each object that is now rejected or sits in a file
// that could not be parsed. It also updates lastGood.
func (s *Source) merge(res *Result) ([]*mesh.Config, map[mesh.Key]bool) {
	next := make(map[mesh.Key]*mesh.Config, len(res.Objects))
	for _, c := range res.Objects {
		next[c.Key()] = c
	}
	kept := map[mesh.Key]bool{}
	keep := func(k mesh.Key) {
		if prev, ok := s.lastGood[k]; ok && next[k] == nil {
			next[k] = prev
			kept[k] = true
		}
	}
	for _, rj := range res.Rejected {
		if rj.Key.Name != "" {
			keep(rj.Key)
		}
	}
	broken := map[string]bool{}
	for _, f := range res.BrokenFiles {
		broken[f] = true
	}
	for k, c := range s.lastGood {
		if broken[c.Source.File] {
			keep(k)
		}
	}
	s.lastGood = next
	out := make([]*mesh.Config, 0, len(next))
	for _, c := range next {
		out = append(out, c)
	}
	return out, kept
}

func (s *Source) mergeMesh(res *Result) mesh.MeshConfig {
	switch {
	case res.Mesh != nil:
		s.lastMesh, s.meshSrc = res.Mesh, res.MeshSource
	case s.lastMesh != nil && s.meshRejected(res):
		// keep the last good mesh config
	default:
		s.lastMesh = nil
	}
	if s.lastMesh == nil {
		return mesh.MeshConfig{}
	}
	return *s.lastMesh
}

func (s *Source) meshRejected(res *Result) bool {
	for _, rj := range res.Rejected {
		if rj.Key.Kind == "MeshConfig" || (rj.Key.Kind == "" && rj.Source.File == s.meshSrc.File) {
			return true
		}
	}
	return false
}

func (s *Source) record(res *Result, kept map[mesh.Key]bool) {
	s.metrics.rejected.Set(float64(len(res.Rejected)))
	if len(res.Rejected) == 0 {
		s.metrics.reloads.WithLabelValues("ok").Inc()
		return
	}
	s.metrics.reloads.WithLabelValues("rejected").Inc()
	for _, rj := range res.Rejected {
		s.logRejection(rj, kept[rj.Key])
	}
}

// logRejection logs one line per violation, each at its field's line, so
// an object with many errors stays readable in the log.
func (s *Source) logRejection(rj Rejection, kept bool) {
	attrs := []any{"kind", string(rj.Key.Kind), "namespace", rj.Key.Namespace, "name", rj.Key.Name, "kept_last_good", kept}
	var oe *schema.ObjectError
	if !errors.As(rj.Err, &oe) || len(oe.Errors) == 0 {
		s.cfg.Log.Warn("config rejected", append(attrs, "source", rj.Source.String(), "error", rj.Err.Error())...)
		return
	}
	for _, fe := range oe.Errors {
		s.cfg.Log.Warn("config rejected", append(attrs, "source", oe.SourceOf(fe).String(), "field", fe.Path, "error", fe.Message)...)
	}
}

// Run loads the tree, publishes the first snapshot, then watches for
// changes until ctx ends. A failing first load is returned as an error.
func (s *Source) Run(ctx context.Context) error {
	w, err := newWatcher(s.cfg.Dir)
	if err != nil {
		return err
	}
	defer w.close()
	if _, err := s.Reload(); err != nil {
		return err
	}
	return debounce(ctx, w, s.cfg.Quiet, s.cfg.MaxWait, func() {
		if _, err := s.Reload(); err != nil {
			s.cfg.Log.Error("config reload failed", "dir", s.cfg.Dir, "error", err.Error())
		}
	})
}
