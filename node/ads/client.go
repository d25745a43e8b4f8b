package ads

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/mcp"
)

// Backoff bounds between reconnection attempts (with jitter; reset once
// a stream delivered a response).
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// MaxMessage bounds one response from the control plane (64 MiB: about
// 220,000 workloads in one push).
const MaxMessage = 64 << 20

// Config configures a Client.
type Config struct {
	// Addr is `ward serve`'s secure port (15012).
	Addr string
	// Creds authenticate the node (its node certificate) and the server.
	Creds credentials.TransportCredentials
	// Node is this node's name, sent as Node.id "node~<Node>" for the
	// server's logs; the server takes the node from the certificate.
	Node string
	// Apply receives each new snapshot; an error NACKs the response that
	// produced it (the previous snapshot stays in effect).
	Apply func(ctx context.Context, snap *mesh.Snapshot) error
	// MinBackoff and MaxBackoff bound reconnection waits.
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger
	// Metrics receives ward_node_config_* series; nil registers none.
	Metrics prometheus.Registerer
	// After is the clock's timer (default time.After); tests inject one.
	After func(time.Duration) <-chan time.Time
}

// Client is one node's config subscription.
type Client struct {
	cfg    Config
	synced chan struct{}
	m      *metrics

	mu     sync.Mutex
	meshOK bool
	meshC  mesh.MeshConfig
	state  map[string]map[string]held // by type URL, then name
	status map[string]*TypeStatus
}

// held is one applied resource.
type held struct {
	version string
	config  *mesh.Config
}

// TypeStatus is the client's view of one type.
type TypeStatus struct {
	Version   string // system version of the last ACKed response
	Resources int
	Acks      int
	Nacks     int
	LastNack  string
}

// New validates cfg and returns a client; Run connects.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" || cfg.Creds == nil || cfg.Apply == nil {
		return nil, errors.New("ads: Addr, Creds and Apply are required")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, synced: make(chan struct{}), m: m, state: map[string]map[string]held{}, status: map[string]*TypeStatus{}}
	for _, url := range mcp.NodeTypes {
		c.status[url] = &TypeStatus{}
	}
	return c, nil
}

// Synced is closed once the first complete snapshot was applied. Until
// then the node proxy has no config and serves nothing (fail closed).
func (c *Client) Synced() <-chan struct{} { return c.synced }

// Status returns a copy of the per-type status, by type URL.
func (c *Client) Status() map[string]TypeStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]TypeStatus{}
	for url, st := range c.status {
		out[url] = *st
	}
	return out
}

// Run keeps a stream open until ctx ends, reconnecting with backoff.
func (c *Client) Run(ctx context.Context) error {
	// A first push carries every address in the mesh (~290 bytes a
	// workload: 10,000 workloads are 2.9 MB), beyond gRPC's 4 MiB default
	// at ~14,000; MaxMessage bounds one response instead.
	cc, err := grpc.NewClient(c.cfg.Addr, grpc.WithTransportCredentials(c.cfg.Creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessage)))
	if err != nil {
		return fmt.Errorf("ads: dial %s: %w", c.cfg.Addr, err)
	}
	defer cc.Close()
	wait := c.cfg.MinBackoff
	for {
		got, err := c.stream(ctx, discovery.NewAggregatedDiscoveryServiceClient(cc))
		if ctx.Err() != nil {
			return nil
		}
		if got {
			wait = c.cfg.MinBackoff
		}
		d := wait/2 + rand.N(wait/2+1)
		c.m.reconnects.Inc()
		c.cfg.Log.Warn("node config stream ended; reconnecting", "addr", c.cfg.Addr, "error", err, "retry_in", d)
		select {
		case <-ctx.Done():
			return nil
		case <-c.cfg.After(d):
		}
		wait = min(wait*2, c.cfg.MaxBackoff)
	}
}

// stream runs one ADS stream; got reports whether it delivered anything.
func (c *Client) stream(ctx context.Context, api discovery.AggregatedDiscoveryServiceClient) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := api.DeltaAggregatedResources(ctx)
	if err != nil {
		return false, err
	}
	for i, url := range mcp.NodeTypes {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: url, InitialResourceVersions: c.versions(url)}
		if i == 0 {
			req.Node = &core.Node{Id: "node~" + c.cfg.Node}
		}
		if err := st.Send(req); err != nil {
			return false, err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return got, err
		}
		got = true
		ack := &discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		if err := c.handle(ctx, resp); err != nil {
			c.cfg.Log.Error("node config rejected; the previous config stays in effect", "type", resp.GetTypeUrl(), "error", err)
			ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		}
		if err := st.Send(ack); err != nil {
			return got, err
		}
	}
}

// versions lists what the client holds of url, for a resumed stream.
func (c *Client) versions(url string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for n, h := range c.state[url] {
		out[n] = h.version
	}
	return out
}

// handle applies one response: decode every resource (any failure
// rejects the whole response), rebuild the snapshot once every type has
// arrived, and commit only if it applied.
func (c *Client) handle(ctx context.Context, resp *discovery.DeltaDiscoveryResponse) error {
	url := resp.GetTypeUrl()
	if !mcp.IsNodeType(url) {
		return fmt.Errorf("type %s was not asked for", url)
	}
	c.mu.Lock()
	next := maps.Clone(c.state[url])
	meshC, meshOK := c.meshC, c.meshOK
	c.mu.Unlock()
	if next == nil {
		next = map[string]held{}
	}
	for _, name := range resp.GetRemovedResources() {
		delete(next, name)
	}
	for _, r := range resp.GetResources() {
		if url == mcp.TypeMeshConfig {
			m, err := mcp.DecodeMesh(r.GetResource())
			if err != nil {
				return c.nacked(url, err)
			}
			meshC, meshOK = m, true
			next[r.GetName()] = held{version: r.GetVersion()}
			continue
		}
		cfg, err := mcp.Decode(url, r.GetName(), r.GetResource())
		if err != nil {
			return c.nacked(url, err)
		}
		next[r.GetName()] = held{version: r.GetVersion(), config: cfg}
	}
	if err := c.apply(ctx, url, next, meshC, meshOK); err != nil {
		return c.nacked(url, err)
	}
	c.m.updates.WithLabelValues(url, "applied").Inc()
	c.m.resources.WithLabelValues(url).Set(float64(len(next)))
	c.mu.Lock()
	st := c.status[url]
	st.Version, st.Resources, st.Acks = resp.GetSystemVersionInfo(), len(next), st.Acks+1
	c.mu.Unlock()
	c.cfg.Log.Info("node config applied", "type", url, "version", resp.GetSystemVersionInfo(), "resources", len(next),
		"changed", len(resp.GetResources()), "removed", len(resp.GetRemovedResources()))
	return nil
}

func (c *Client) nacked(url string, err error) error {
	c.m.updates.WithLabelValues(url, "rejected").Inc()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status[url]
	st.Nacks++
	st.LastNack = err.Error()
	return err
}

// apply commits next as url's state if the resulting snapshot applies
// (or, before every type arrived, holds it for the first snapshot).
func (c *Client) apply(ctx context.Context, url string, next map[string]held, meshC mesh.MeshConfig, meshOK bool) error {
	c.mu.Lock()
	state := maps.Clone(c.state)
	c.mu.Unlock()
	state[url] = next
	complete := meshOK && len(state) == len(mcp.NodeTypes)
	if complete {
		if err := c.cfg.Apply(ctx, build(meshC, state)); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.state[url], c.meshC, c.meshOK = next, meshC, meshOK
	c.mu.Unlock()
	if complete {
		select {
		case <-c.synced:
		default:
			close(c.synced)
			c.m.synced.Set(1)
		}
	}
	return nil
}

// build folds the held objects into a snapshot, as the file source does.
func build(m mesh.MeshConfig, state map[string]map[string]held) *mesh.Snapshot {
	var cs []*mesh.Config
	for _, url := range slices.Sorted(maps.Keys(state)) {
		for _, h := range state[url] {
			if h.config != nil {
				cs = append(cs, h.config)
			}
		}
	}
	return mesh.NewSnapshot(m, cs)
}
