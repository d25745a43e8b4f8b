package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
