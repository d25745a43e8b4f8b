package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/wardmesh/ward/xds"
)

const standbySvc = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: standby, namespace: test}
spec:
  hosts: [standby.test.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  workloadSelector: {labels: {app: standby}}
---
`

func connection(t *testing.T, srv *xds.Server, id string) xds.Connection {
	t.Helper()
	for _, c := range srv.ConnectionList() {
		if c.Proxy == id {
			return c
		}
	}
	t.Fatalf("proxy %s not connected", id)
	return xds.Connection{}
}

func TestXDSWorkloadEntryChangeMovesTrafficWithoutReconnect(t *testing.T) {
	m := newXDSMesh(t)
	a, lisA := m.listen("a")
	b, lisB := m.listen("b")
	base := echoService(echoHost, "test", "echo") + standbySvc +
		workloadEntry("b", "test", b.port, map[string]string{"app": "standby"})
	m.apply(base + workloadEntry("echo-1", "test", a.port, map[string]string{"app": "echo"}))
	m.serve(a, lisA, "test", map[string]string{"app": "echo"})
	m.serve(b, lisB, "test", map[string]string{"app": "standby"})
	c, id := m.client("caller", "test", echoHost+":7070")
	if name, err := call(context.Background(), c); err != nil || name != "a" {
		t.Fatalf("before the change: got %q, %v; want a", name, err)
	}
	before := connection(t, m.srv, id)

	// Same WorkloadEntry, new port: the endpoint moves to b.
	m.apply(base + workloadEntry("echo-1", "test", b.port, map[string]string{"app": "echo"}))
	eventually(t, "traffic moves to b", func() error {
		name, err := call(context.Background(), c)
		if err != nil || name != "b" {
			return fmt.Errorf("got %q, %v", name, err)
		}
		return nil
	})
	after := connection(t, m.srv, id)
	if after.Connection != before.Connection || !after.ConnectedAt.Equal(before.ConnectedAt) {
		t.Fatalf("xDS stream was re-established: before %+v after %+v", before, after)
	}
}

func TestXDSSidecarEgressScoping(t *testing.T) {
	m := newXDSMesh(t)
	e, lisE := m.listen("echo")
	o, lisO := m.listen("other")
	base := echoService(echoHost, "test", "echo") + echoService("other.prod.svc.cluster.local", "prod", "other") +
		workloadEntry("echo", "test", e.port, map[string]string{"app": "echo"}) +
		workloadEntry("other", "prod", o.port, map[string]string{"app": "other"})
	m.apply(base)
	m.serve(e, lisE, "test", map[string]string{"app": "echo"})
	m.serve(o, lisO, "prod", map[string]string{"app": "other"})
	other, id := m.client("caller", "test", "other.prod.svc.cluster.local:7070")
	if name, err := call(context.Background(), other); err != nil || name != "other" {
		t.Fatalf("before scoping: %q %v", name, err)
	}
	const otherCluster = "outbound|7070||other.prod.svc.cluster.local"
	if dump := configDump(t, m.srv, id); !strings.Contains(dump, otherCluster) {
		t.Fatalf("config dump lacks %s before scoping", otherCluster)
	}

	m.apply(base + `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: test}
spec:
  egress: [{hosts: ["./*"]}]
`)
	if dump := configDump(t, m.srv, id); strings.Contains(dump, otherCluster) || !strings.Contains(dump, "outbound|7070||"+echoHost) {
		t.Fatalf("after Sidecar ./*: config dump should hold echo but not other:\n%.2000s", dump)
	}
	eventually(t, "calls to the hidden service fail", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := other.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if status.Code(err) == codes.OK {
			return fmt.Errorf("call still succeeds")
		}
		return nil
	})
}

func configDump(t *testing.T, srv *xds.Server, id string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/config_dump?proxy="+id, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("config_dump: %d %s", rec.Code, rec.Body)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestXDSNackKeepsOldConfig(t *testing.T) {
	m := newXDSMesh(t)
	b, lis := m.listen("echo")
	base := echoService(echoHost, "test", "echo") + workloadEntry("echo", "test", b.port, map[string]string{"app": "echo"})
	m.apply(base)
	m.serve(b, lis, "test", map[string]string{"app": "echo"})
	c, id := m.client("caller", "test", echoHost+":7070")
	if _, err := call(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// Valid for Envoy, invalid for grpc: file-based TLS roots instead of a
	// certificate-provider instance. grpc NACKs the clusters.
	m.apply(base + `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: test}
spec:
  host: echo.test.svc.cluster.local
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: /etc/certs/root.pem}
`)
	var nack string
	eventually(t, "NACK recorded", func() error {
		for _, row := range m.srv.SyncStatus() {
			if row.Proxy == id && row.Types["cds"].Nacks > 0 {
				nack = row.Types["cds"].LastNack
				return nil
			}
		}
		return errNotYet
	})
	if !strings.Contains(nack, "ca_certificate_provider_instance") {
		t.Errorf("NACK detail %q does not carry grpc's error", nack)
	}
	for range 20 {
		if _, err := call(context.Background(), c); err != nil {
			t.Fatalf("after NACK the client must keep working on the old config: %v", err)
		}
	}
	for _, row := range m.srv.SyncStatus() {
		if row.Proxy != id {
			continue
		}
		if st := row.Types["cds"]; st.Acked == st.NackedVer || st.Nacks != 1 {
			// More than one NACK means the rejected config was re-sent.
			t.Fatalf("cds sync state %+v: want the rejected version not acked and exactly one NACK", st)
		}
	}
}
