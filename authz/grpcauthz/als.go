package grpcauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
)

// ALSConfig configures an ALSClient.
type ALSConfig struct {
	// Client calls Ward's access-log service (ward serve's secure port,
	// with the workload's certificate: MTLSFromDir). When nil,
	// NewALSClient dials Target with DialOptions.
	Client      alsv3.AccessLogServiceClient
	Target      string
	DialOptions []grpc.DialOption
	// NodeID and Namespace identify the reporter as Envoy's node does;
	// the server requires Namespace to be the certificate's.
	NodeID    string
	Namespace string
	// LogName names the log (default "ward-proxyless").
	LogName string
	// QueueSize bounds the entries waiting to be sent (default 4096);
	// beyond it entries are dropped and counted, never blocking an RPC.
	QueueSize int
	// BatchSize bounds the entries of one message (default 100; the
	// server accepts 1 000).
	BatchSize int
	Log       *slog.Logger
}

// ALSClient is a CallLog that streams the entries to Ward's access-log
// service (envoy.service.accesslog.v3), as Envoy's HTTP gRPC access
// logger does: one stream, an identifier on its first message, batches
// of HTTP entries. Run sends; LogCall only enqueues.
type ALSClient struct {
	cfg     ALSConfig
	client  alsv3.AccessLogServiceClient
	conn    *grpc.ClientConn
	queue   chan *datav3.HTTPAccessLogEntry
	sent    atomic.Uint64
	dropped atomic.Uint64
}

var _ CallLog = (*ALSClient)(nil)

// ALSStats counts what an ALSClient did with the entries it was given.
type ALSStats struct {
	Sent    uint64 `json:"sent"`
	Dropped uint64 `json:"dropped"` // queue full or stream failed
}

// NewALSClient validates cfg and, without a Client, creates the channel
// to Target (no I/O until Run sends).
func NewALSClient(cfg ALSConfig) (*ALSClient, error) {
	if cfg.Namespace == "" || cfg.NodeID == "" {
		return nil, errors.New("grpcauthz: access log config: a node id and namespace are required")
	}
	if cfg.LogName == "" {
		cfg.LogName = "ward-proxyless"
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.BatchSize <= 0 || cfg.BatchSize > 1000 {
		cfg.BatchSize = 100
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &ALSClient{cfg: cfg, client: cfg.Client, queue: make(chan *datav3.HTTPAccessLogEntry, cfg.QueueSize)}
	if c.client == nil {
		if cfg.Target == "" {
			return nil, errors.New("grpcauthz: access log config: a Client or Target is required")
		}
		conn, err := grpc.NewClient(cfg.Target, cfg.DialOptions...)
		if err != nil {
			return nil, fmt.Errorf("grpcauthz: dial access log service %s: %w", cfg.Target, err)
		}
		c.conn, c.client = conn, alsv3.NewAccessLogServiceClient(conn)
	}
	return c, nil
}

// LogCall enqueues e, or drops it when the queue is full.
func (c *ALSClient) LogCall(e *datav3.HTTPAccessLogEntry) {
	select {
	case c.queue <- e:
	default:
		c.dropped.Add(1)
	}
}

// Stats returns the counters.
func (c *ALSClient) Stats() ALSStats {
	return ALSStats{Sent: c.sent.Load(), Dropped: c.dropped.Load()}
}

// Close closes the channel NewALSClient dialled, if any.
func (c *ALSClient) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Run sends queued entries until ctx ends, opening a stream when it has
// none. A failed send drops its batch (counted) and the stream; the next
// batch opens a new one.
func (c *ALSClient) Run(ctx context.Context) error {
	var s *alsStream
	defer func() { s.close() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-c.queue:
			batch := c.batch(e)
			if s == nil {
				s = c.open(ctx)
			}
			if err := s.send(batch); err != nil {
				c.dropped.Add(uint64(len(batch)))
				c.cfg.Log.Warn("access log stream failed; entries dropped", "entries", len(batch), "error", err)
				s.close()
				s = nil
				continue
			}
			c.sent.Add(uint64(len(batch)))
		}
	}
}

// batch is e and whatever else is queued, up to BatchSize.
func (c *ALSClient) batch(e *datav3.HTTPAccessLogEntry) []*datav3.HTTPAccessLogEntry {
	out := []*datav3.HTTPAccessLogEntry{e}
	for len(out) < c.cfg.BatchSize {
		select {
		case e := <-c.queue:
			out = append(out, e)
		default:
			return out
		}
	}
	return out
}

// alsStream is one StreamAccessLogs call; its first message carries the
// identifier.
type alsStream struct {
	c      *ALSClient
	stream alsv3.AccessLogService_StreamAccessLogsClient
	err    error
	sent   bool
	cancel context.CancelFunc
}

func (c *ALSClient) open(ctx context.Context) *alsStream {
	sctx, cancel := context.WithCancel(ctx)
	st, err := c.client.StreamAccessLogs(sctx)
	return &alsStream{c: c, stream: st, err: err, cancel: cancel}
}

func (s *alsStream) send(batch []*datav3.HTTPAccessLogEntry) error {
	if s.err != nil {
		return s.err
	}
	msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: batch}}}
	if !s.sent {
		msg.Identifier = s.c.identifier()
	}
	if err := s.stream.Send(msg); err != nil {
		// The server ended the stream: its status says why.
		if _, rerr := s.stream.CloseAndRecv(); rerr != nil {
			err = rerr
		}
		return err
	}
	s.sent = true
	return nil
}

func (s *alsStream) close() {
	if s == nil {
		return
	}
	if s.stream != nil {
		_ = s.stream.CloseSend()
	}
	s.cancel()
}

func (c *ALSClient) identifier() *alsv3.StreamAccessLogsMessage_Identifier {
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": c.cfg.Namespace})
	return &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: c.cfg.NodeID, Metadata: md}, LogName: c.cfg.LogName}
}
