package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds"
)

func serviceEntry(host string) *mesh.Config {
	return &mesh.Config{Meta: mesh.Meta{Kind: mesh.KindServiceEntry, Namespace: "test", Name: host}, Spec: &networking.ServiceEntry{
		Hosts: []string{host}, Resolution: networking.ServiceEntry_STATIC, Location: networking.ServiceEntry_MESH_INTERNAL,
		Ports:     []*networking.ServicePort{{Number: 80, Name: "grpc", Protocol: "GRPC"}},
		Endpoints: []*networking.WorkloadEntry{{Address: "10.0.0.1"}},
	}}
}

// xdsFixture is a real Ward xDS server on loopback with its debug handler.
type xdsFixture struct {
	srv   *xds.Server
	cc    *grpc.ClientConn
	debug string // base URL of /debug
}

func startXDS(t *testing.T) *xdsFixture {
	t.Helper()
	s := xds.NewServer(xds.Config{})
	t.Cleanup(s.Close)
	s.UpdateNow(mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{serviceEntry("a.test.svc.cluster.local")}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	h := httptest.NewServer(s.Handler())
	t.Cleanup(h.Close)
	return &xdsFixture{srv: s, cc: cc, debug: h.URL}
}

// adsClient is a raw state-of-the-world ADS stream for one node.
type adsClient struct {
	t  *testing.T
	st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	id string
}

func (f *xdsFixture) connect(t *testing.T, id string) *adsClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(f.cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &adsClient{t: t, st: st, id: id}
}

func (c *adsClient) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	req.Node = &core.Node{Id: c.id}
	if err := c.st.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *adsClient) recv() *discovery.DiscoveryResponse {
	c.t.Helper()
	ch := make(chan *discovery.DiscoveryResponse, 1)
	go func() {
		r, err := c.st.Recv()
		if err != nil {
			close(ch)
			return
		}
		ch <- r
	}()
	select {
	case r, ok := <-ch:
		if !ok {
			c.t.Fatal("stream closed")
		}
		return r
	case <-time.After(10 * time.Second):
		c.t.Fatal("no xDS response within 10s")
	}
	return nil
}

// waitSync polls the server's sync state (ACKs are recorded
// asynchronously) for at most 10 s.
func waitSync(t *testing.T, s *xds.Server, what string, cond func(map[string]xds.SyncStatus) bool) map[string]xds.SyncStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows := map[string]xds.SyncStatus{}
		for _, r := range s.SyncStatus() {
			rows[r.Proxy] = r
		}
		if cond(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after 10s: %+v", what, rows)
		}
		time.Sleep(5 * time.Millisecond) // poll interval of a bounded wait
	}
}

const (
	envoyID = "sidecar~10.1.0.1~a.test~test.svc.cluster.local"
	grpcID  = "grpc~10.1.0.2~b.test~test.svc.cluster.local"
)

func TestProxyStatusAgainstRealServer(t *testing.T) {
	f := startXDS(t)
	envoy, grpcc := f.connect(t, envoyID), f.connect(t, grpcID)
	envoy.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
	r1 := envoy.recv()
	envoy.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: r1.GetVersionInfo(), ResponseNonce: r1.GetNonce()})
	grpcc.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
	grpcc.recv() // never ACKed
	waitSync(t, f.srv, "envoy ACK", func(m map[string]xds.SyncStatus) bool {
		return m[envoyID].Types["cds"].Acked == r1.GetVersionInfo() && m[grpcID].Types["cds"].Sent != ""
	})

	o := &proxyStatusOptions{server: f.debug, output: outTable, now: time.Now}
	out := runStatus(t, o, "")
	for _, want := range []string{
		"NAME", envoyID, grpcID,
		"sidecar test SYNCED NOT SENT NOT SENT NOT SENT",
		"grpc test STALE",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	// A new config: the Envoy rejects it with a long error.
	nackMsg := "cluster outbound|80||b.test.svc.cluster.local: " + strings.Repeat("invalid field value; ", 10) + "END"
	f.srv.UpdateNow(mesh.NewSnapshot(mesh.MeshConfig{}, []*mesh.Config{serviceEntry("a.test.svc.cluster.local"), serviceEntry("b.test.svc.cluster.local")}))
	r2 := envoy.recv()
	envoy.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: r1.GetVersionInfo(), ResponseNonce: r2.GetNonce(),
		ErrorDetail: &status.Status{Code: 3, Message: nackMsg}})
	rows := waitSync(t, f.srv, "envoy NACK", func(m map[string]xds.SyncStatus) bool { return m[envoyID].Types["cds"].Nacks == 1 })

	// STALE shows for how long, from the server's pendingSince.
	since := rows[grpcID].Types["cds"].PendingSince
	if since == nil {
		t.Fatalf("grpc cds has no pendingSince: %+v", rows[grpcID].Types["cds"])
	}
	o.now = func() time.Time { return since.Add(90 * time.Second) }
	out = runStatus(t, o, "")
	for _, want := range []string{"sidecar test NACK", "STALE (1m30s)", "rejected (the proxy keeps its previous config", envoyID + " CDS: cluster outbound|80||b"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "END") {
		t.Errorf("the list shows the full NACK error, want it shortened:\n%s", out)
	}

	// Detail: the full error and the versions.
	out = runStatus(t, o, envoyID)
	for _, want := range []string{"Proxy: " + envoyID, "CDS NACK", "CDS rejected version " + r2.GetVersionInfo(), nackMsg} {
		if !strings.Contains(out, want) {
			t.Errorf("detail lacks %q:\n%s", want, out)
		}
	}

	// JSON and YAML come from the same struct.
	o.output = outJSON
	var list []proxySync
	if err := json.Unmarshal([]byte(runStatus(t, o, "")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].Proxy != envoyID || list[1].Types["cds"].Status != stateNack || list[1].Types["cds"].Error != nackMsg ||
		list[0].Types["cds"].Status != stateStale || list[0].Types["cds"].StaleFor != "1m30s" || list[1].Types["lds"].Status != stateNotSent {
		t.Errorf("json = %+v", list)
	}
	o.output = outYAML
	if y := runStatus(t, o, grpcID); !strings.Contains(y, "proxy: "+grpcID) || !strings.Contains(y, "status: STALE") {
		t.Errorf("yaml:\n%s", y)
	}

	// An unknown id lists the close matches.
	err := o.run(context.Background(), &bytes.Buffer{}, "sidecar~10.1.0.1~a.tset")
	if err == nil || !strings.Contains(err.Error(), "did you mean") || !strings.Contains(err.Error(), envoyID) || strings.Contains(err.Error(), grpcID) {
		t.Errorf("unknown id: %v", err)
	}
	err = o.run(context.Background(), &bytes.Buffer{}, "zzzzzzzz")
	if err == nil || !strings.Contains(err.Error(), "2 connected") {
		t.Errorf("unknown id without matches: %v", err)
	}
}

func runStatus(t *testing.T, o *proxyStatusOptions, id string) string {
	t.Helper()
	var b bytes.Buffer
	if err := o.run(context.Background(), &b, id); err != nil {
		t.Fatal(err)
	}
	if o.output != outTable {
		return b.String()
	}
	return squeeze(b.String())
}

// squeeze collapses the table padding to single spaces, line by line.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	since := now.Add(-10 * time.Second)
	cases := []struct {
		name string
		in   *xds.TypeSync
		want typeState
	}{
		{"never requested", &xds.TypeSync{Latest: "v1"}, typeState{Status: stateNotSent, Latest: "v1"}},
		{"no row", nil, typeState{Status: stateNotSent}},
		{"acked latest", &xds.TypeSync{Latest: "v1", Sent: "v1", Acked: "v1"}, typeState{Status: stateSynced, Latest: "v1", Sent: "v1", Acked: "v1"}},
		{"sent not acked", &xds.TypeSync{Latest: "v2", Sent: "v2", Acked: "v1", Pending: "v2", PendingSince: &since},
			typeState{Status: stateStale, Latest: "v2", Sent: "v2", Acked: "v1", StaleFor: "10s"}},
		{"acked but newer due", &xds.TypeSync{Latest: "v2", Sent: "v1", Acked: "v1", Pending: "v2", PendingSince: &since},
			typeState{Status: stateStale, Latest: "v2", Sent: "v1", Acked: "v1", StaleFor: "10s"}},
		{"rejected", &xds.TypeSync{Latest: "v2", Sent: "v2", Acked: "v1", Nacks: 1, NackedVer: "v2", LastNack: "bad"},
			typeState{Status: stateNack, Latest: "v2", Sent: "v2", Acked: "v1", Nacks: 1, Error: "bad"}},
		{"rejected then fixed", &xds.TypeSync{Latest: "v3", Sent: "v3", Acked: "v3", Nacks: 1, NackedVer: "v2", LastNack: "bad"},
			typeState{Status: stateSynced, Latest: "v3", Sent: "v3", Acked: "v3", Nacks: 1}},
	}
	for _, c := range cases {
		if got := classify(c.in, now); got != c.want {
			t.Errorf("%s: classify = %+v, want %+v", c.name, got, c.want)
		}
	}
}
