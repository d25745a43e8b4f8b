package xds

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/genproto/googleapis/rpc/status"
)

func recvSotW(t *testing.T, st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) *discovery.DiscoveryResponse {
	t.Helper()
	ch := make(chan *discovery.DiscoveryResponse, 1)
	go func() {
		r, err := st.Recv()
		if err != nil {
			close(ch)
			return
		}
		ch <- r
	}()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("stream closed")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no response within 10s")
	}
	return nil
}

func TestAckNackMetricsAndDebugPages(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewServer(Config{Registry: reg})
	s.UpdateNow(snapshotOf(serviceEntry("a.test.svc.cluster.local", 80, "10.0.0.1")))
	cc := startServer(t, s)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id := "sidecar~10.1.0.1~app.test~test.svc.cluster.local"
	if err := st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: id}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	r := recvSotW(t, st)
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	good := r.GetVersionInfo()
	waitFor(t, "ACK recorded", func() bool {
		rows := s.SyncStatus()
		return len(rows) == 1 && rows[0].Types["cds"].Acked == good
	})
	// A new version arrives; the proxy rejects it.
	s.UpdateNow(snapshotOf(serviceEntry("a.test.svc.cluster.local", 80, "10.0.0.1"), serviceEntry("b.test.svc.cluster.local", 80, "10.0.0.2")))
	r = recvSotW(t, st)
	if r.GetVersionInfo() == good {
		t.Fatal("no new cluster version after a new service")
	}
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: good, ResponseNonce: r.GetNonce(), ErrorDetail: &status.Status{Code: 3, Message: "bad cluster"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "NACK counted", func() bool { return value(t, s.m.rejects.WithLabelValues("cds")) == 1 })
	if got := value(t, s.m.connected); got != 1 {
		t.Errorf("connected proxies = %v, want 1", got)
	}
	if got := value(t, s.m.pushes.WithLabelValues("cds")); got != 2 {
		t.Errorf("cds pushes = %v, want 2 (the rejected version must not be re-sent)", got)
	}
	if n := convergenceCount(t, reg); n < 1 {
		t.Errorf("convergence histogram has %d observations, want ≥1 (the first ACK)", n)
	}

	get := func(path string) string {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	var sync []SyncStatus
	if err := json.Unmarshal([]byte(get("/debug/syncz")), &sync); err != nil {
		t.Fatal(err)
	}
	if len(sync) != 1 || sync[0].Types["cds"].Acked != good || sync[0].Types["cds"].Nacks != 1 || sync[0].Types["cds"].LastNack != "bad cluster" {
		t.Errorf("syncz = %+v", sync)
	}
	if cds := sync[0].Types["cds"]; cds.Latest != r.GetVersionInfo() || cds.Pending != r.GetVersionInfo() || cds.PendingSince == nil || cds.NackedVer != r.GetVersionInfo() {
		t.Errorf("syncz cds = %+v: want latest, pending and nacked = the rejected version %s, with pendingSince", cds, r.GetVersionInfo())
	}
	if sync[0].ConnectedAt.IsZero() || sync[0].SnapshotVersion == "" {
		t.Errorf("syncz row lacks connectedAt or snapshotVersion: %+v", sync[0])
	}
	if lds := sync[0].Types["lds"]; lds.Sent != "" || lds.Latest == "" {
		t.Errorf("syncz lds = %+v: never requested, want nothing sent but a latest version", lds)
	}
	if dump := get("/debug/config_dump?proxy=" + id); !strings.Contains(dump, "outbound|80||b.test.svc.cluster.local") {
		t.Errorf("config_dump lacks the new cluster: %.500s", dump)
	}
	// The ACKed view is what the proxy enforces: the first cluster set,
	// not the rejected one; listeners were never requested, so never ACKed.
	var acked struct {
		View     string
		Versions struct{ Clusters string }
		Unacked  []string
		Clusters []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(get("/debug/config_dump?acked=true&proxy="+id)), &acked); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, c := range acked.Clusters {
		names = append(names, c.Name)
	}
	if acked.View != "acked" || acked.Versions.Clusters != good || !slices.Contains(names, "outbound|80||a.test.svc.cluster.local") ||
		slices.Contains(names, "outbound|80||b.test.svc.cluster.local") || !slices.Contains(acked.Unacked, "lds") || slices.Contains(acked.Unacked, "cds") {
		t.Errorf("acked config_dump = %+v: want the ACKed cds version %s with cluster a only, lds un-ACKed", acked, good)
	}
	if conns := get("/debug/connections"); !strings.Contains(conns, id) {
		t.Errorf("connections: %s", conns)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/config_dump?proxy=nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("unknown proxy: %d", rec.Code)
	}
}

func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	m := &dto.Metric{}
	if err := c.Write(m); err != nil {
		t.Fatal(err)
	}
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func convergenceCount(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ward_proxy_convergence_time_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}
