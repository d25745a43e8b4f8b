package xds

import (
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Defaults of Limits.
const (
	DefaultMaxNodeIDBytes      = 1024
	DefaultMaxNodeBytes        = 256 << 10
	DefaultMaxStreams          = 20000
	DefaultMaxStreamsPerSource = 2048
	// DefaultMaxConcurrentStreams is what ward serve gives
	// grpc.MaxConcurrentStreams (per HTTP/2 connection).
	DefaultMaxConcurrentStreams = 256
	// MaxLogString is how much of a client-supplied string is logged.
	MaxLogString = 256
	// MaxNackDetail is how much of a NACK's error detail /debug/syncz keeps.
	MaxNackDetail = 16 << 10
)

// Limits bound what one client can make the server hold. Zero fields take
// the defaults; a negative field disables that bound.
type Limits struct {
	// MaxNodeIDBytes and MaxNodeBytes (the whole node, metadata included,
	// encoded) bound a stream's node; a larger one is refused with
	// codes.InvalidArgument.
	MaxNodeIDBytes, MaxNodeBytes int
	// MaxStreams bounds open xDS streams in all; MaxStreamsPerSource those
	// from one source IP. A stream over either is refused with
	// codes.ResourceExhausted and counted in
	// ward_xds_rejected_streams_total.
	MaxStreams, MaxStreamsPerSource int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxNodeIDBytes, DefaultMaxNodeIDBytes)
	def(&l.MaxNodeBytes, DefaultMaxNodeBytes)
	def(&l.MaxStreams, DefaultMaxStreams)
	def(&l.MaxStreamsPerSource, DefaultMaxStreamsPerSource)
	return l
}

// over reports n exceeding limit (a negative limit is no limit).
func over(n, limit int) bool { return limit >= 0 && n > limit }

// Reasons of ward_xds_rejected_streams_total.
const (
	rejectUnauthenticated = "unauthenticated"
	rejectIdentity        = "identity_mismatch"
	rejectNode            = "invalid_node"
	rejectStreams         = "max_streams"
	rejectSourceStreams   = "max_streams_per_source"
)

// checkNode refuses a node the server will not hold: no id, or an id or
// node larger than the limits.
func (l Limits) checkNode(n *core.Node) error {
	id := n.GetId()
	switch {
	case id == "":
		return status.Error(codes.InvalidArgument, "the first request of a stream must carry node.id")
	case over(len(id), l.MaxNodeIDBytes):
		return status.Errorf(codes.InvalidArgument, "node.id is %d bytes, over the limit of %d", len(id), l.MaxNodeIDBytes)
	}
	if size := proto.Size(n); over(size, l.MaxNodeBytes) {
		return status.Errorf(codes.InvalidArgument, "node (id and metadata) is %d bytes, over the limit of %d", size, l.MaxNodeBytes)
	}
	return nil
}

// clip shortens a client-supplied string for a log line or debug page:
// the first MaxLogString bytes (cut at a rune boundary) and the full
// length. Every clip is counted in ward_xds_log_truncations_total.
func (s *Server) clip(v string) string { return s.clipTo(v, MaxLogString) }

// clipTo is clip with another length.
func (s *Server) clipTo(v string, n int) string {
	if len(v) <= n {
		return v
	}
	s.m.truncations.Inc()
	cut := n
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", v[:cut], len(v))
}

// logLimiter lets through at most burst log lines per interval; the
// lines it drops are reported (as "suppressed") with the next one let
// through. Refusals are counted in metrics regardless: the limiter only
// keeps a flood of bad clients from flooding the log.
type logLimiter struct {
	burst    int
	interval time.Duration

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// allow reports whether to log now, and how many lines were dropped since
// the last one logged.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.interval {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.suppressed++
		return false, 0
	}
	l.n++
	dropped := l.suppressed
	l.suppressed = 0
	return true, dropped
}

// warnRefusal logs a refused stream or connection, rate-limited.
func (s *Server) warnRefusal(msg string, args ...any) {
	ok, dropped := s.refusals.allow(s.cfg.Clock.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	s.log.Warn(msg, args...)
}
