package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wardmesh/ward/authz/grpcauthz"
	"github.com/wardmesh/ward/telemetry/als"
)

// TestServeAccessLogsOverMTLS: ward serve takes Envoy's gRPC access logs
// on the secure port from an enrolled workload certificate, for its own
// namespace only, and serves the records and edges on /debug/calls.
func TestServeAccessLogsOverMTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ward binary")
	}
	_, _, state, debug, secure, xdsAddr := startServe(t)
	dir := t.TempDir()
	enrolAgent(t, dir, state, secure, xdsAddr)
	creds, err := grpcauthz.MTLSFromDir(filepath.Join(dir, "agent-out"), spiffeid.RequireFromString("spiffe://cluster.local/ns/ward-system/sa/ward"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(secure, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := alsv3.NewAccessLogServiceClient(conn)
	stream := func(node string) codes.Code {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := client.StreamAccessLogs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Send(&alsv3.StreamAccessLogsMessage{
			Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: node}, LogName: "http_envoy_accesslog"},
			LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: []*datav3.HTTPAccessLogEntry{{
				CommonProperties: &datav3.AccessLogCommon{UpstreamCluster: "inbound|9080||"},
				Request:          &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Path: "/productpage"},
				Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
			}}}},
		})
		_, err = s.CloseAndRecv()
		return status.Code(err)
	}
	if code := stream("sidecar~10.0.0.9~productpage-0.bookinfo~bookinfo.svc.cluster.local"); code != codes.OK {
		t.Fatalf("own namespace: %v, want OK", code)
	}
	if code := stream("sidecar~10.0.0.8~payments-0.payments~payments.svc.cluster.local"); code != codes.PermissionDenied {
		t.Errorf("foreign namespace: %v, want PermissionDenied", code)
	}
	var calls struct {
		Stats   als.Stats    `json:"stats"`
		Records []als.Record `json:"records"`
	}
	getJSON(t, debug+"/debug/calls", &calls)
	// It is counted in Istio's standard metrics on /metrics.
	resp, err := http.Get(debug + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var series string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "istio_requests_total{") {
			series = l
		}
	}
	// A plaintext inbound call: Istio names no destination principal and
	// reports policy none; the destination service is the one
	// productpage's workloads back, as Istio's inbound cluster says.
	for _, label := range []string{`reporter="destination"`, `connection_security_policy="none"`, `destination_principal="unknown"`,
		`destination_workload="productpage-1"`, `destination_workload_namespace="bookinfo"`, `destination_canonical_service="productpage"`,
		`destination_service="productpage.bookinfo.svc.cluster.local"`, `destination_service_name="productpage"`,
		`destination_service_namespace="bookinfo"`, `request_protocol="http"`, `response_code="200"`, `grpc_response_status=""`} {
		if !strings.Contains(series, label) {
			t.Errorf("/metrics istio_requests_total lacks %s: %q", label, series)
		}
	}
	// The record also went to <state>/calls.log as a JSON line.
	line, err := os.ReadFile(filepath.Join(state, "calls.log"))
	if err != nil || !strings.Contains(string(line), `"path":"/productpage"`) || strings.Count(string(line), "\n") != 1 {
		t.Errorf("calls.log = %q, %v; want the one record", line, err)
	}
	if len(calls.Records) != 1 || calls.Records[0].Reporter != "spiffe://cluster.local/ns/bookinfo/sa/productpage" || calls.Records[0].Path != "/productpage" {
		t.Errorf("/debug/calls = %+v, want the one record reported by productpage", calls)
	}
}
