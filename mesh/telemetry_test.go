package mesh

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTelemetryProvidersValidate(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string // substrings, one per error
	}{
		{"valid", `{"extensionProviders":[
			{"name":"file","envoyFileAccessLog":{"path":"/dev/stdout","logFormat":{"labels":{"code":"%RESPONSE_CODE%"}}}},
			{"name":"als","envoyHttpAls":{"service":"als.obs.svc.cluster.local","port":9001,"additionalRequestHeadersToLog":["x-tenant"]}},
			{"name":"tcp-als","envoyTcpAls":{"service":"obs/als.obs.svc.cluster.local","port":9001}},
			{"name":"otel-logs","envoyOtelAls":{"service":"otel.obs.svc.cluster.local","port":4317,"logFormat":{"text":"%REQ(:PATH)%","labels":{"a":"b"}}}},
			{"name":"otel","opentelemetry":{"service":"otel.obs.svc.cluster.local","port":4317,"grpc":{"timeout":"2s"}}},
			{"name":"evidence","wardAls":{}}],
			"defaultProviders":{"accessLogging":["envoy","file","ward","evidence"],"tracing":["otel"],"metrics":["prometheus"]}}`, nil},
		{"two kinds", `{"extensionProviders":[{"name":"x","envoyTcpAls":{"service":"a","port":1},"rego":{"module":"package x"}}]}`,
			[]string{"extensionProviders[0]: exactly one of"}},
		{"text and labels", `{"extensionProviders":[{"name":"x","envoyFileAccessLog":{"logFormat":{"text":"a","labels":{"b":"c"}}}}]}`,
			[]string{"envoyFileAccessLog.logFormat: only one of text or labels"}},
		{"service port", `{"extensionProviders":[{"name":"x","envoyOtelAls":{"port":0}}]}`,
			[]string{"envoyOtelAls.service: required", "envoyOtelAls.port: must be in 1-65535"}},
		{"bad header", `{"extensionProviders":[{"name":"x","envoyHttpAls":{"service":"a","port":1,"additionalRequestHeadersToLog":["a b"]}}]}`,
			[]string{"additionalRequestHeadersToLog[0]"}},
		{"default unknown and wrong kind", `{"extensionProviders":[{"name":"otel","opentelemetry":{"service":"a","port":1}}],
			"defaultProviders":{"accessLogging":["otel"],"tracing":["nope"]}}`,
			[]string{`defaultProviders.accessLogging[0]: provider "otel" is not an access logging provider`, `defaultProviders.tracing[0]: unknown provider "nope"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m MeshConfig
			dec := json.NewDecoder(strings.NewReader(tc.spec))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			errs := m.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestTelemetryProviderBuiltins(t *testing.T) {
	var m MeshConfig
	if p, ok := m.TelemetryProvider(ProviderEnvoy); !ok || p.EnvoyFileAccessLog.Path != "/dev/stdout" {
		t.Errorf("built-in envoy = %+v, %v", p, ok)
	}
	m.ExtensionProviders = []ExtensionProvider{{Name: ProviderEnvoy, TelemetryProviders: TelemetryProviders{EnvoyFileAccessLog: &FileAccessLogProvider{Path: "/var/log/a"}}}}
	if p, _ := m.TelemetryProvider(ProviderEnvoy); p.EnvoyFileAccessLog.Path != "/var/log/a" {
		t.Errorf("declared envoy provider does not replace the built-in one: %+v", p)
	}
	if _, ok := m.TelemetryProvider("nope"); ok {
		t.Error("unknown provider found")
	}
}
