package mesh

import (
	"fmt"
	"sort"
	"strings"
)

// TelemetryProviders are the telemetry kinds of an ExtensionProvider, in
// the spelling of Istio's MeshConfig.ExtensionProvider. At most one is set
// (ExtensionProvider.validate checks exactly one kind overall).
type TelemetryProviders struct {
	// EnvoyFileAccessLog writes access logs to a file (default
	// /dev/stdout) in text or JSON.
	EnvoyFileAccessLog *FileAccessLogProvider `json:"envoyFileAccessLog,omitempty"`
	// EnvoyHTTPALS streams HTTP access logs to a gRPC Access Log Service.
	EnvoyHTTPALS *HTTPALSProvider `json:"envoyHttpAls,omitempty"`
	// EnvoyTCPALS streams TCP access logs to a gRPC Access Log Service.
	EnvoyTCPALS *TCPALSProvider `json:"envoyTcpAls,omitempty"`
	// EnvoyOtelALS sends access logs to an OpenTelemetry collector (OTLP
	// logs over gRPC).
	EnvoyOtelALS *OtelALSProvider `json:"envoyOtelAls,omitempty"`
	// OpenTelemetry is the tracing provider: spans to an OTLP collector.
	OpenTelemetry *OtelTracingProvider `json:"opentelemetry,omitempty"`
	// Prometheus names the metrics provider (Istio's standard metrics).
	Prometheus *PrometheusProvider `json:"prometheus,omitempty"`
	// WardALS streams HTTP and TCP access logs to Ward's own Access Log
	// Service on its secure port (Ward's addition; the built-in provider
	// "ward"). Proxies reach it through the cluster of the ext_authz
	// target when that is the secure port.
	WardALS *WardALSProvider `json:"wardAls,omitempty"`
}

// WardALSProvider selects Ward's own Access Log Service.
type WardALSProvider struct{}

// telemetryKindNames lists the telemetry kinds for error messages.
const telemetryKindNames = "envoyFileAccessLog, envoyHttpAls, envoyTcpAls, envoyOtelAls, wardAls, opentelemetry or prometheus"

// FileAccessLogProvider is Istio's EnvoyFileAccessLogProvider.
type FileAccessLogProvider struct {
	Path      string     `json:"path,omitempty"`
	LogFormat *LogFormat `json:"logFormat,omitempty"`
	// OmitEmptyValues leaves empty fields out instead of writing "-".
	OmitEmptyValues bool `json:"omitEmptyValues,omitempty"`
}

// LogFormat is a text format string or a JSON object of labels whose
// values are Envoy format operators. For the file provider only one may be
// set; an empty labels object means Ward's default JSON format.
type LogFormat struct {
	Text   string         `json:"text,omitempty"`
	Labels map[string]any `json:"labels,omitempty"`
}

// HTTPALSProvider is Istio's EnvoyHttpGrpcV3LogProvider.
type HTTPALSProvider struct {
	Service                         string   `json:"service"`
	Port                            uint32   `json:"port"`
	LogName                         string   `json:"logName,omitempty"`
	FilterStateObjectsToLog         []string `json:"filterStateObjectsToLog,omitempty"`
	AdditionalRequestHeadersToLog   []string `json:"additionalRequestHeadersToLog,omitempty"`
	AdditionalResponseHeadersToLog  []string `json:"additionalResponseHeadersToLog,omitempty"`
	AdditionalResponseTrailersToLog []string `json:"additionalResponseTrailersToLog,omitempty"`
}

// TCPALSProvider is Istio's EnvoyTcpGrpcV3LogProvider.
type TCPALSProvider struct {
	Service                 string   `json:"service"`
	Port                    uint32   `json:"port"`
	LogName                 string   `json:"logName,omitempty"`
	FilterStateObjectsToLog []string `json:"filterStateObjectsToLog,omitempty"`
}

// OtelALSProvider is Istio's EnvoyOpenTelemetryLogProvider. Both text
// (the log body) and labels (attributes) may be set.
type OtelALSProvider struct {
	Service   string     `json:"service"`
	Port      uint32     `json:"port"`
	LogName   string     `json:"logName,omitempty"`
	LogFormat *LogFormat `json:"logFormat,omitempty"`
}

// OtelTracingProvider is Istio's OpenTelemetryTracingProvider: OTLP over
// gRPC by default, OTLP/HTTP when HTTP is set.
type OtelTracingProvider struct {
	Service      string        `json:"service"`
	Port         uint32        `json:"port"`
	MaxTagLength uint32        `json:"maxTagLength,omitempty"`
	GRPC         *OtelGRPC     `json:"grpc,omitempty"`
	HTTP         *OtelHTTPSink `json:"http,omitempty"`
}

// OtelGRPC tunes the OTLP/gRPC exporter.
type OtelGRPC struct {
	Timeout         Duration     `json:"timeout,omitempty"`
	InitialMetadata []HTTPHeader `json:"initialMetadata,omitempty"`
}

// OtelHTTPSink is the OTLP/HTTP exporter.
type OtelHTTPSink struct {
	Path    string       `json:"path,omitempty"`
	Timeout Duration     `json:"timeout,omitempty"`
	Headers []HTTPHeader `json:"headers,omitempty"`
}

// HTTPHeader is a header (or gRPC metadata) with a literal value. Istio's
// envName (a value read from the proxy's environment) is not supported:
// Ward's translator has no proxy environment to read.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// PrometheusProvider selects Istio's standard metrics.
type PrometheusProvider struct{}

// DefaultProviders are Istio's meshConfig.defaultProviders.
type DefaultProviders struct {
	AccessLogging []string `json:"accessLogging,omitempty"`
	Tracing       []string `json:"tracing,omitempty"`
	Metrics       []string `json:"metrics,omitempty"`
}

func (t TelemetryProviders) kinds() int {
	n := 0
	for _, set := range []bool{t.EnvoyFileAccessLog != nil, t.EnvoyHTTPALS != nil, t.EnvoyTCPALS != nil,
		t.EnvoyOtelALS != nil, t.OpenTelemetry != nil, t.Prometheus != nil, t.WardALS != nil} {
		if set {
			n++
		}
	}
	return n
}

// IsAccessLog reports whether p is an access-log provider.
func (t TelemetryProviders) IsAccessLog() bool {
	return t.EnvoyFileAccessLog != nil || t.EnvoyHTTPALS != nil || t.EnvoyTCPALS != nil || t.EnvoyOtelALS != nil || t.WardALS != nil
}

// IsTracing reports whether p is a tracing provider.
func (t TelemetryProviders) IsTracing() bool { return t.OpenTelemetry != nil }

// IsMetrics reports whether p is a metrics provider.
func (t TelemetryProviders) IsMetrics() bool { return t.Prometheus != nil }

func (t TelemetryProviders) validate(path string) []error {
	var errs []error
	if f := t.EnvoyFileAccessLog; f != nil && f.LogFormat != nil {
		if f.LogFormat.Text != "" && f.LogFormat.Labels != nil {
			errs = append(errs, fmt.Errorf("%s.envoyFileAccessLog.logFormat: only one of text or labels may be set", path))
		}
		errs = append(errs, f.LogFormat.validate(path+".envoyFileAccessLog.logFormat")...)
	}
	if a := t.EnvoyHTTPALS; a != nil {
		errs = append(errs, checkService(path+".envoyHttpAls", a.Service, a.Port)...)
		for _, l := range []struct {
			name string
			hs   []string
		}{{"additionalRequestHeadersToLog", a.AdditionalRequestHeadersToLog}, {"additionalResponseHeadersToLog", a.AdditionalResponseHeadersToLog}, {"additionalResponseTrailersToLog", a.AdditionalResponseTrailersToLog}} {
			for i, h := range l.hs {
				if !validHeader(h) {
					errs = append(errs, fmt.Errorf("%s.envoyHttpAls.%s[%d]: %q is not a valid header name", path, l.name, i, h))
				}
			}
		}
	}
	if a := t.EnvoyTCPALS; a != nil {
		errs = append(errs, checkService(path+".envoyTcpAls", a.Service, a.Port)...)
	}
	if o := t.EnvoyOtelALS; o != nil {
		errs = append(errs, checkService(path+".envoyOtelAls", o.Service, o.Port)...)
		if o.LogFormat != nil {
			errs = append(errs, o.LogFormat.validate(path+".envoyOtelAls.logFormat")...)
		}
	}
	if o := t.OpenTelemetry; o != nil {
		errs = append(errs, o.validate(path+".opentelemetry")...)
	}
	return errs
}

func (o *OtelTracingProvider) validate(path string) []error {
	errs := checkService(path, o.Service, o.Port)
	if o.GRPC != nil && o.HTTP != nil {
		errs = append(errs, fmt.Errorf("%s: only one of grpc or http may be set", path))
	}
	var hs []HTTPHeader
	hp := ""
	if o.GRPC != nil {
		hs, hp = o.GRPC.InitialMetadata, path+".grpc.initialMetadata"
		if o.GRPC.Timeout < 0 {
			errs = append(errs, fmt.Errorf("%s.grpc.timeout: must not be negative", path))
		}
	}
	if o.HTTP != nil {
		hs, hp = o.HTTP.Headers, path+".http.headers"
		if o.HTTP.Path != "" && !strings.HasPrefix(o.HTTP.Path, "/") {
			errs = append(errs, fmt.Errorf("%s.http.path: %q must start with /", path, o.HTTP.Path))
		}
		if o.HTTP.Timeout < 0 {
			errs = append(errs, fmt.Errorf("%s.http.timeout: must not be negative", path))
		}
	}
	for i, h := range hs {
		if !validHeader(h.Name) {
			errs = append(errs, fmt.Errorf("%s[%d].name: %q is not a valid header name", hp, i, h.Name))
		}
	}
	return errs
}

func (f *LogFormat) validate(path string) []error {
	var errs []error
	for _, k := range sortedLabelKeys(f.Labels) {
		if k == "" {
			errs = append(errs, fmt.Errorf("%s.labels: empty label name", path))
		}
		switch f.Labels[k].(type) {
		case string, float64, bool, map[string]any:
		default:
			errs = append(errs, fmt.Errorf("%s.labels[%s]: must be a string, number, boolean or object", path, k))
		}
	}
	return errs
}

func checkService(path, svc string, port uint32) []error {
	var errs []error
	if svc == "" {
		errs = append(errs, fmt.Errorf("%s.service: required (a hostname, or namespace/hostname)", path))
	}
	if port == 0 || port > 65535 {
		errs = append(errs, fmt.Errorf("%s.port: must be in 1-65535, got %d", path, port))
	}
	return errs
}

func validHeader(h string) bool {
	if h == "" {
		return false
	}
	for _, r := range h {
		if !(r == '-' || r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func sortedLabelKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Built-in telemetry providers: as Istio's default mesh config declares
// them, "envoy" (a file access log to /dev/stdout in the default format)
// and "prometheus"; and Ward's own "ward" (wardAls). A provider of the same
// name in extensionProviders replaces the built-in one.
const (
	ProviderEnvoy      = "envoy"
	ProviderPrometheus = "prometheus"
	ProviderWard       = "ward"
)

// TelemetryProvider returns the extension provider named name, falling
// back to the built-in "envoy" and "prometheus" providers.
func (m MeshConfig) TelemetryProvider(name string) (ExtensionProvider, bool) {
	for _, p := range m.ExtensionProviders {
		if p.Name == name {
			return p, true
		}
	}
	switch name {
	case ProviderEnvoy:
		return ExtensionProvider{Name: name, TelemetryProviders: TelemetryProviders{EnvoyFileAccessLog: &FileAccessLogProvider{Path: "/dev/stdout"}}}, true
	case ProviderPrometheus:
		return ExtensionProvider{Name: name, TelemetryProviders: TelemetryProviders{Prometheus: &PrometheusProvider{}}}, true
	case ProviderWard:
		return ExtensionProvider{Name: name, TelemetryProviders: TelemetryProviders{WardALS: &WardALSProvider{}}}, true
	}
	return ExtensionProvider{}, false
}

// validate checks that every default provider exists and is of the
// right kind.
func (d *DefaultProviders) validate(ps []ExtensionProvider) []error {
	if d == nil {
		return nil
	}
	m := MeshConfig{ExtensionProviders: ps}
	var errs []error
	check := func(field string, names []string, kind string, ok func(TelemetryProviders) bool) {
		for i, n := range names {
			p, found := m.TelemetryProvider(n)
			switch {
			case !found:
				errs = append(errs, fmt.Errorf("spec.defaultProviders.%s[%d]: unknown provider %q", field, i, n))
			case !ok(p.TelemetryProviders):
				errs = append(errs, fmt.Errorf("spec.defaultProviders.%s[%d]: provider %q is not a%s provider", field, i, n, kind))
			}
		}
	}
	check("accessLogging", d.AccessLogging, "n access logging", TelemetryProviders.IsAccessLog)
	check("tracing", d.Tracing, " tracing", TelemetryProviders.IsTracing)
	check("metrics", d.Metrics, " metrics", TelemetryProviders.IsMetrics)
	return errs
}
