package telemetry

import (
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	telemetryv1 "istio.io/api/telemetry/v1alpha1"

	"github.com/wardmesh/ward/mesh"
)

// TracerOTel is Envoy's OpenTelemetry tracer extension.
const TracerOTel = "envoy.tracers.opentelemetry"

// Defaults of the OTLP exporters.
const (
	defaultOTLPTimeout = 5 * time.Second
	defaultOTLPPath    = "/v1/traces"
)

// HTTPTracing returns the HTTP connection manager tracing of proxy p on
// side m, nil when no tracing provider is in effect (or for proxyless
// gRPC, which has no tracing), with findings for a provider it could
// not use. disableSpanReporting keeps sampling and custom tags but
// configures no tracer, so no spans leave the proxy.
func HTTPTracing(s *mesh.Snapshot, p *mesh.Proxy, m Mode) (*hcmv3.HttpConnectionManager_Tracing, []Finding) {
	if p.Type == mesh.ProxyGRPC {
		return nil, nil
	}
	l := Applicable(s, p)
	t := TracingFor(s, l, m)
	if t == nil {
		return nil, nil
	}
	out := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:  &typev3.Percent{Value: 100},
		RandomSampling:  &typev3.Percent{Value: t.SamplingPercentage},
		OverallSampling: &typev3.Percent{Value: 100},
		CustomTags:      customTags(t.CustomTags),
	}
	if t.DisableSpanReporting {
		return out, nil
	}
	ep, err := provider(s, t.Provider, "a tracing", mesh.TelemetryProviders.IsTracing)
	if err != nil {
		return nil, []Finding{{Object: mostSpecific(l), Message: err.Error()}}
	}
	tracer, err := otelTracer(s, ep.OpenTelemetry, serviceName(p))
	if err != nil {
		return nil, []Finding{{Object: mostSpecific(l), Message: "provider " + t.Provider + ": " + err.Error()}}
	}
	if n := ep.OpenTelemetry.MaxTagLength; n > 0 {
		out.MaxPathTagLength = wrapperspb.UInt32(n)
	}
	out.Provider = &tracev3.Tracing_Http{Name: TracerOTel, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(tracer)}}
	return out, nil
}

func mostSpecific(l Levels) mesh.Key {
	list := l.List()
	if len(list) == 0 {
		return mesh.Key{}
	}
	return list[len(list)-1].Key()
}

// otelTracer exports spans over OTLP/gRPC, or OTLP/HTTP when the provider
// says http, to the collector's outbound cluster.
func otelTracer(s *mesh.Snapshot, o *mesh.OtelTracingProvider, service string) (*tracev3.OpenTelemetryConfig, error) {
	c, err := LookupCollector(s, o.Service, o.Port)
	if err != nil {
		return nil, err
	}
	cfg := &tracev3.OpenTelemetryConfig{ServiceName: service}
	if h := o.HTTP; h != nil {
		cfg.HttpService = &corev3.HttpService{
			HttpUri: &corev3.HttpUri{
				Uri:              fmt.Sprintf("http://%s:%d%s", c.Host, o.Port, orDefault(h.Path, defaultOTLPPath)),
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: c.Cluster},
				Timeout:          durationpb.New(timeoutOr(h.Timeout)),
			},
			RequestHeadersToAdd: headers(h.Headers),
		}
		return cfg, nil
	}
	gs := grpcService(c)
	if g := o.GRPC; g != nil {
		gs.Timeout = durationpb.New(timeoutOr(g.Timeout))
		for _, h := range g.InitialMetadata {
			gs.InitialMetadata = append(gs.InitialMetadata, &corev3.HeaderValue{Key: h.Name, Value: h.Value})
		}
	}
	cfg.GrpcService = gs
	return cfg, nil
}

func timeoutOr(d mesh.Duration) time.Duration {
	if d <= 0 {
		return defaultOTLPTimeout
	}
	return time.Duration(d)
}

func headers(hs []mesh.HTTPHeader) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(hs))
	for _, h := range hs {
		out = append(out, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	return out
}

// serviceName names the proxy's spans like Istio's canonical service:
// "<canonical name>.<namespace>".
func serviceName(p *mesh.Proxy) string {
	name := "unknown"
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := p.Labels[k]; v != "" {
			name = v
			break
		}
	}
	if name == "unknown" && p.Metadata["NAME"] != "" {
		name = p.Metadata["NAME"]
	}
	return name + "." + p.Namespace
}

// customTags converts Istio's custom tags to Envoy's, sorted by tag name.
func customTags(tags map[string]*telemetryv1.Tracing_CustomTag) []*tracingv3.CustomTag {
	out := make([]*tracingv3.CustomTag, 0, len(tags))
	for _, name := range sortedKeys(tags) {
		ct := &tracingv3.CustomTag{Tag: name}
		switch t := tags[name].GetType().(type) {
		case *telemetryv1.Tracing_CustomTag_Literal:
			ct.Type = &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: t.Literal.GetValue()}}
		case *telemetryv1.Tracing_CustomTag_Environment:
			ct.Type = &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{Name: t.Environment.GetName(), DefaultValue: t.Environment.GetDefaultValue()}}
		case *telemetryv1.Tracing_CustomTag_Header:
			ct.Type = &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: t.Header.GetName(), DefaultValue: t.Header.GetDefaultValue()}}
		case *telemetryv1.Tracing_CustomTag_Formatter:
			ct.Type = &tracingv3.CustomTag_Value{Value: t.Formatter.GetValue()}
		default:
			continue // rejected by validation
		}
		out = append(out, ct)
	}
	return out
}
