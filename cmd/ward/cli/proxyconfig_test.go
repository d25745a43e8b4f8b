package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/wardmesh/ward/xds"
)

func TestProxyConfigOffline(t *testing.T) {
	var out bytes.Buffer
	o := &proxyConfigOptions{configDir: "../../../xds/translate/testdata/grpc", proxyType: "grpc", namespace: "test", summary: true}
	if err := o.run(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listener  echo.test.svc.cluster.local:7070", "cluster   outbound|7070|v2|echo.test.svc.cluster.local EDS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := (&proxyConfigOptions{configDir: o.configDir, proxyType: "mesh"}).run(&out); err == nil {
		t.Error("unknown proxy type accepted")
	}
}

func TestProxyConfigFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/config_dump" || r.URL.Query().Get("proxy") != "a~b" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"proxy":"a~b","listeners":[{"name":"l1"}],"clusters":[{"name":"c1","type":"EDS"},{"name":"c0"}],` +
			`"endpoints":[{"cluster_name":"c1","endpoints":[{"lb_endpoints":[{},{}]}]}]}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := (&proxyConfigOptions{server: srv.URL, proxyID: "a~b", output: outJSON}).run(&out); err != nil || !strings.Contains(out.String(), `"proxy":"a~b"`) {
		t.Fatalf("fetch: %v %s", err, out.String())
	}
	out.Reset()
	if err := (&proxyConfigOptions{server: srv.URL, proxyID: "a~b", output: outYAML}).run(&out); err != nil || !strings.Contains(out.String(), "proxy: a~b") {
		t.Fatalf("fetch yaml: %v %s", err, out.String())
	}
	out.Reset()
	if err := (&proxyConfigOptions{server: srv.URL, proxyID: "a~b"}).run(&out); err != nil {
		t.Fatal(err)
	}
	want := "listener  l1\ncluster   c1 EDS\ncluster   c0 STATIC\nendpoints c1 (2)\n"
	if out.String() != want {
		t.Errorf("fetch table:\n%s\nwant\n%s", out.String(), want)
	}
	if err := (&proxyConfigOptions{server: srv.URL, proxyID: "other"}).run(&out); err == nil {
		t.Error("404 not reported")
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// shopArgs describe the frontend sidecar of testdata/proxyconfig/config.
var shopArgs = []string{"--config", "testdata/proxyconfig/config", "--namespace", "shop", "--labels", "app=frontend", "--ip", "10.1.0.9"}

// golden compares got with testdata/proxyconfig/name, rewriting it with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "proxyconfig", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, d)
	}
}

// TestProxyConfigTables prints each type's table for the shop mesh's
// frontend (generated offline by the real translators and security
// hooks), checks the rows that carry the meaning, and pins the rest in
// golden files.
func TestProxyConfigTables(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		rows []string // squeezed rows the table must contain
	}{
		{"listeners", []string{"listeners"}, []string{
			"virtualInbound 0.0.0.0:15006 2 inbound|9090||mtls-http port=9090 transport=tls mTLS inline route: inbound|9090|| (1 virtual hosts)",
			"virtualInbound 0.0.0.0:15006 2 virtualInbound-catchall-mtls-tcp transport=tls mTLS cluster: InboundPassthroughCluster", // STRICT: undeclared ports too
			"0.0.0.0_8080 0.0.0.0:8080 1 - ALL none route: 8080",
			"0.0.0.0_5432 0.0.0.0:5432 1 outbound|5432||legacy.shop.svc.cluster.local ALL none cluster: outbound|5432||legacy.shop.svc.cluster.local",
		}},
		{"routes", []string{"routes"}, []string{
			"8080 cart.shop.svc.cluster.local:8080 cart.shop.svc.cluster.local,cart.shop.svc.cluster.local:8080,cart +5 more /api* x-beta=yes outbound|8080|v2|cart.shop.svc.cluster.local",
			"8080 cart.shop.svc.cluster.local:8080 cart.shop.svc.cluster.local,cart.shop.svc.cluster.local:8080,cart +5 more /* outbound|8080|v1|cart.shop.svc.cluster.local 90%, outbound|8080|v2|cart.shop.svc.cluster.local 10%",
			"inbound|9090|| inbound|http|9090 * /* inbound|9090||", // inlined in virtualInbound
		}},
		{"clusters", []string{"clusters"}, []string{
			"outbound|8080|v1|cart.shop.svc.cluster.local EDS v1 mTLS spiffe://example.org/ns/shop/sa/cart",
			"outbound|8443||api.payments.example.com STRICT_DNS - TLS api.payments.example.com",
			"outbound|5432||legacy.shop.svc.cluster.local EDS - none -",
		}},
		{"endpoints", []string{"endpoints"}, []string{
			"outbound|8080|v1|cart.shop.svc.cluster.local 10.1.0.1:8080 UNKNOWN eu-west/zone-a 0 3",
			"outbound|8080|v2|cart.shop.svc.cluster.local 10.1.0.2:8080 UNKNOWN - 0 1",
		}},
		{"listeners-grpc", []string{"listeners", "--type", "grpc"}, []string{
			"cart.shop.svc.cluster.local:8080 (api listener) 0 - - - route: cart.shop.svc.cluster.local:8080",
			"grpc/server?xds.resource.listening_address=10.1.0.9:9090 10.1.0.9:9090 1 inbound|9090|| ALL mTLS inline route: inbound|9090|| (1 virtual hosts)",
		}},
		{"clusters-name", []string{"clusters", "--name", "outbound|8080|v2|cart.shop.svc.cluster.local"}, []string{
			"NAME TYPE SUBSET TLS SAN\noutbound|8080|v2|cart.shop.svc.cluster.local EDS v2 mTLS spiffe://example.org/ns/shop/sa/cart\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execRoot(t, append(append([]string{"proxy-config"}, tc.args...), shopArgs...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, r := range tc.rows {
				if !strings.Contains(squeeze(out), r) {
					t.Errorf("table lacks row %q:\n%s", r, out)
				}
			}
			golden(t, tc.name+".golden.txt", out)
		})
	}
}

// TestProxyConfigKindJSON: -o json|yaml print the selected Envoy
// resources themselves, decodable as their proto types.
func TestProxyConfigKindJSON(t *testing.T) {
	out, err := execRoot(t, append([]string{"proxy-config", "routes", "--name", "8080", "-o", "json"}, shopArgs...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw) != 1 {
		t.Fatalf("want one route configuration: %v\n%s", err, out)
	}
	var rc route.RouteConfiguration
	if err := protojson.Unmarshal(raw[0], &rc); err != nil || rc.GetName() != "8080" || len(rc.GetVirtualHosts()) == 0 {
		t.Fatalf("route configuration %v: %v", &rc, err)
	}
	y, err := execRoot(t, append([]string{"proxy-config", "clusters", "--name", "outbound|8443||api.payments.example.com", "-o", "yaml"}, shopArgs...)...)
	if err != nil || !strings.Contains(y, "name: outbound|8443||api.payments.example.com") || !strings.Contains(y, "sni: api.payments.example.com") {
		t.Errorf("clusters -o yaml: %v\n%s", err, y)
	}
}

func TestProxyConfigKindErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"clusters", "--name", "nope"}, `nothing named "nope"`},
		{[]string{"listeners", "--type", "mesh"}, `--type "mesh"`},
		{[]string{"endpoints", "--labels", "app"}, `--labels "app": want key=value`},
	} {
		out, err := execRoot(t, append(append([]string{"proxy-config"}, tc.args...), "--config", "testdata/proxyconfig/config")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
	if _, err := execRoot(t, "proxy-config", "routes"); err == nil || !strings.Contains(err.Error(), "give --config DIR") {
		t.Errorf("no source: %v", err)
	}
}

// TestProxyConfigKindsFromDump serves the offline resources as a
// /debug/config_dump and checks every table reads the same from it
// (protojson with typed Any payloads round-trips).
func TestProxyConfigKindsFromDump(t *testing.T) {
	o := &proxyConfigOptions{configDir: "testdata/proxyconfig/config", proxyType: "sidecar", namespace: "shop",
		labels: []string{"app=frontend"}, ip: "10.1.0.9"}
	res, err := o.offline()
	if err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	if err := printJSON(&dump, res); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/config_dump" || r.URL.Query().Get("proxy") != "frontend-1.shop" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(dump.Bytes())
	}))
	defer srv.Close()
	for _, k := range resourceKinds {
		offline, err := execRoot(t, append([]string{"proxy-config", k.use}, shopArgs...)...)
		if err != nil {
			t.Fatal(err)
		}
		online, err := execRoot(t, "proxy-config", k.use, "--server", srv.URL, "--proxy", "frontend-1.shop")
		if err != nil {
			t.Fatalf("%s from dump: %v", k.use, err)
		}
		if d := cmp.Diff(offline, online); d != "" {
			t.Errorf("%s: dump table differs from offline (-offline +dump):\n%s", k.use, d)
		}
	}
	if _, err := execRoot(t, "proxy-config", "clusters", "--server", srv.URL, "--proxy", "other"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown proxy: %v", err)
	}
}

// TestProxyConfigCompletion: the subcommands complete --proxy from the
// server's connected proxies, like proxy-config itself.
func TestProxyConfigCompletion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode([]xds.SyncStatus{{Proxy: "sidecar~10.0.0.1~a.shop~shop.svc.cluster.local", Type: "sidecar", Namespace: "shop"},
			{Proxy: "grpc~10.0.0.2~b.shop", Type: "grpc", Namespace: "shop"}})
	}))
	defer srv.Close()
	for _, sub := range []string{"listeners", "routes", "clusters", "endpoints"} {
		got := completions(t, "proxy-config", sub, "--server", srv.URL, "--proxy", "sidecar~")
		if len(got) != 1 || got[0] != "sidecar~10.0.0.1~a.shop~shop.svc.cluster.local" {
			t.Errorf("%s --proxy: %v", sub, got)
		}
	}
	if got := completions(t, "proxy-config", ""); !slices.Contains(got, "secrets") || !slices.Contains(got, "clusters") {
		t.Errorf("subcommands: %v", got)
	}
	if got := completions(t, "proxy-config", "secrets", "-o", ""); strings.Join(got, " ") != "table json yaml" {
		t.Errorf("secrets -o: %v", got)
	}
}
