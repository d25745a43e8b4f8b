package telemetry

import (
	"errors"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	grpcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	otelv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/open_telemetry/v3"
	otlpcommon "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/mesh"
)

// Envoy access logger and filter extension names.
const (
	LoggerFile     = "envoy.access_loggers.file"
	LoggerHTTPGRPC = "envoy.access_loggers.http_grpc"
	LoggerTCPGRPC  = "envoy.access_loggers.tcp_grpc"
	LoggerOTel     = "envoy.access_loggers.open_telemetry"
	FilterCEL      = "envoy.access_loggers.extension_filters.cel"
)

// Default log names, as Istio's.
const (
	httpLogName = "http_envoy_accesslog"
	tcpLogName  = "tcp_envoy_accesslog"
	otelLogName = "otel_envoy_accesslog"
)

// Translator holds what the translation needs beyond the snapshot. Its
// zero value translates everything but the wardAls provider.
type Translator struct {
	// WardCluster is the proxies' cluster to Ward's secure port (mTLS
	// with the workload certificate, Ward's identity pinned, HTTP/2): the
	// wardAls provider streams to the Access Log Service there. Empty:
	// wardAls providers are reported, not emitted.
	WardCluster string
}

// WardAuthority is the :authority of access-log streams to Ward.
const WardAuthority = "ward"

// AccessLogs is Translator{}.AccessLogs.
func AccessLogs(s *mesh.Snapshot, p *mesh.Proxy, m Mode, proto Protocol) ([]*accesslogv3.AccessLog, []Finding) {
	return Translator{}.AccessLogs(s, p, m, proto)
}

// AccessLogs returns the access_log entries for a listener of proxy p on
// side m, HTTP (connection manager) or TCP (tcp_proxy), with the findings
// for providers it could not honour. Proxyless gRPC gets none: grpc-go has
// no access logs. envoyHttpAls logs HTTP only, envoyTcpAls TCP only,
// wardAls both (HTTP and TCP gRPC loggers).
func (t Translator) AccessLogs(s *mesh.Snapshot, p *mesh.Proxy, m Mode, proto Protocol) ([]*accesslogv3.AccessLog, []Finding) {
	if p.Type == mesh.ProxyGRPC {
		return nil, nil
	}
	var out []*accesslogv3.AccessLog
	var findings []Finding
	for _, spec := range AccessLogging(s, Applicable(s, p), m) {
		ep, err := provider(s, spec.Provider, "an access logging", mesh.TelemetryProviders.IsAccessLog)
		if err != nil {
			findings = append(findings, Finding{Object: spec.From, Message: err.Error()})
			continue
		}
		al, err := t.accessLog(s, ep, proto)
		if err != nil {
			findings = append(findings, Finding{Object: spec.From, Message: "provider " + spec.Provider + ": " + err.Error()})
			continue
		}
		if al == nil {
			continue
		}
		al.Filter = celFilter(spec.Filter)
		out = append(out, al)
	}
	return out, findings
}

// accessLog builds one provider's entry; nil when the provider does not
// log this protocol.
func (t Translator) accessLog(s *mesh.Snapshot, ep mesh.ExtensionProvider, p Protocol) (*accesslogv3.AccessLog, error) {
	switch {
	case ep.WardALS != nil:
		return t.wardLog(p)
	case ep.EnvoyFileAccessLog != nil:
		return entry(LoggerFile, fileLog(ep.EnvoyFileAccessLog, p)), nil
	case ep.EnvoyHTTPALS != nil:
		if p != HTTP {
			return nil, nil
		}
		return grpcLog(s, ep.EnvoyHTTPALS.Service, ep.EnvoyHTTPALS.Port, func(c *grpcv3.CommonGrpcAccessLogConfig) proto.Message {
			a := ep.EnvoyHTTPALS
			c.LogName, c.FilterStateObjectsToLog = orDefault(a.LogName, httpLogName), a.FilterStateObjectsToLog
			return &grpcv3.HttpGrpcAccessLogConfig{CommonConfig: c, AdditionalRequestHeadersToLog: a.AdditionalRequestHeadersToLog,
				AdditionalResponseHeadersToLog: a.AdditionalResponseHeadersToLog, AdditionalResponseTrailersToLog: a.AdditionalResponseTrailersToLog}
		}, LoggerHTTPGRPC)
	case ep.EnvoyTCPALS != nil:
		if p != TCP {
			return nil, nil
		}
		return grpcLog(s, ep.EnvoyTCPALS.Service, ep.EnvoyTCPALS.Port, func(c *grpcv3.CommonGrpcAccessLogConfig) proto.Message {
			c.LogName, c.FilterStateObjectsToLog = orDefault(ep.EnvoyTCPALS.LogName, tcpLogName), ep.EnvoyTCPALS.FilterStateObjectsToLog
			return &grpcv3.TcpGrpcAccessLogConfig{CommonConfig: c}
		}, LoggerTCPGRPC)
	case ep.EnvoyOtelALS != nil:
		return otelLog(s, ep.EnvoyOtelALS, p)
	}
	return nil, nil
}

// wardLog streams to Ward's own Access Log Service: the HTTP logger on
// connection managers, the TCP logger on tcp_proxy, Istio's log names.
// The HTTP logger adds the only headers the service reads, for Istio's
// request_protocol and grpc_response_status: the request's content-type
// and the response's grpc-status (a trailer, or a header when the
// response is trailers-only).
func (t Translator) wardLog(p Protocol) (*accesslogv3.AccessLog, error) {
	if t.WardCluster == "" {
		return nil, errors.New("ward's access log service is not reachable from proxies: run ward serve with --ext-authz-target on its secure port")
	}
	c := &grpcv3.CommonGrpcAccessLogConfig{
		GrpcService:         grpcService(Collector{Host: WardAuthority, Cluster: t.WardCluster}),
		TransportApiVersion: corev3.ApiVersion_V3,
	}
	if p == TCP {
		c.LogName = tcpLogName
		return entry(LoggerTCPGRPC, &grpcv3.TcpGrpcAccessLogConfig{CommonConfig: c}), nil
	}
	c.LogName = httpLogName
	return entry(LoggerHTTPGRPC, &grpcv3.HttpGrpcAccessLogConfig{CommonConfig: c,
		AdditionalRequestHeadersToLog:   []string{"content-type"},
		AdditionalResponseHeadersToLog:  []string{"grpc-status"},
		AdditionalResponseTrailersToLog: []string{"grpc-status"},
	}), nil
}

func entry(name string, cfg proto.Message) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{Name: name, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(cfg)}}
}

// fileLog is a file access log: the provider's text (a newline added when
// missing, as Istio does) or labels, else Ward's default text format; an
// empty labels object means Ward's default JSON format.
func fileLog(f *mesh.FileAccessLogProvider, p Protocol) *filev3.FileAccessLog {
	sf := &corev3.SubstitutionFormatString{OmitEmptyValues: f.OmitEmptyValues}
	lf := f.LogFormat
	switch {
	case lf != nil && lf.Labels != nil:
		labels := labelsOrDefault(lf.Labels, p)
		sf.Format, sf.Formatters = &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: labels}, formatters("", labels)
	case lf != nil && lf.Text != "":
		sf.Format, sf.Formatters = textFormat(withNewline(lf.Text)), formatters(lf.Text, nil)
	default:
		sf.Format, sf.Formatters = textFormat(DefaultTextFormat(p)), formatters(DefaultTextFormat(p), nil)
	}
	return &filev3.FileAccessLog{Path: orDefault(f.Path, "/dev/stdout"), AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: sf}}
}

func textFormat(s string) *corev3.SubstitutionFormatString_TextFormatSource {
	return &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}}
}

func labelsOrDefault(labels map[string]any, p Protocol) *structpb.Struct {
	if len(labels) == 0 {
		return DefaultJSONFormat(p)
	}
	st, err := structpb.NewStruct(labels)
	if err != nil { // validation admits only JSON values
		return DefaultJSONFormat(p)
	}
	return st
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// grpcLog builds a gRPC ALS entry to the provider's collector; build
// fills in the logger-specific config around the common part.
func grpcLog(s *mesh.Snapshot, service string, port uint32, build func(*grpcv3.CommonGrpcAccessLogConfig) proto.Message, name string) (*accesslogv3.AccessLog, error) {
	c, err := LookupCollector(s, service, port)
	if err != nil {
		return nil, err
	}
	common := &grpcv3.CommonGrpcAccessLogConfig{GrpcService: grpcService(c), TransportApiVersion: corev3.ApiVersion_V3}
	return entry(name, build(common)), nil
}

func grpcService(c Collector) *corev3.GrpcService {
	return &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: c.Cluster, Authority: c.Host}}}
}

// otelLog sends OTLP log records over gRPC: the body is the provider's
// text (default Ward's text format), its labels become attributes.
func otelLog(s *mesh.Snapshot, o *mesh.OtelALSProvider, p Protocol) (*accesslogv3.AccessLog, error) {
	c, err := LookupCollector(s, o.Service, o.Port)
	if err != nil {
		return nil, err
	}
	body := DefaultTextFormat(p)
	var attrs *otlpcommon.KeyValueList
	if lf := o.LogFormat; lf != nil {
		if lf.Text != "" {
			body = lf.Text
		}
		attrs = keyValues(lf.Labels)
	}
	var labels *structpb.Struct
	if o.LogFormat != nil && len(o.LogFormat.Labels) > 0 {
		labels, _ = structpb.NewStruct(o.LogFormat.Labels) // validated JSON values
	}
	cfg := &otelv3.OpenTelemetryAccessLogConfig{
		GrpcService: grpcService(c),
		LogName:     orDefault(o.LogName, otelLogName),
		Body:        &otlpcommon.AnyValue{Value: &otlpcommon.AnyValue_StringValue{StringValue: strings.TrimSuffix(body, "\n")}},
		Attributes:  attrs,
		Formatters:  formatters(body, labels),
	}
	return entry(LoggerOTel, cfg), nil
}

// keyValues turns labels into OTLP attributes, sorted by key; nested
// objects become key-value lists.
func keyValues(labels map[string]any) *otlpcommon.KeyValueList {
	if len(labels) == 0 {
		return nil
	}
	out := &otlpcommon.KeyValueList{}
	for _, k := range sortedKeys(labels) {
		out.Values = append(out.Values, &otlpcommon.KeyValue{Key: k, Value: anyValue(labels[k])})
	}
	return out
}

func anyValue(v any) *otlpcommon.AnyValue {
	switch x := v.(type) {
	case string:
		return &otlpcommon.AnyValue{Value: &otlpcommon.AnyValue_StringValue{StringValue: x}}
	case bool:
		return &otlpcommon.AnyValue{Value: &otlpcommon.AnyValue_BoolValue{BoolValue: x}}
	case float64:
		return &otlpcommon.AnyValue{Value: &otlpcommon.AnyValue_DoubleValue{DoubleValue: x}}
	case map[string]any:
		return &otlpcommon.AnyValue{Value: &otlpcommon.AnyValue_KvlistValue{KvlistValue: keyValues(x)}}
	}
	return &otlpcommon.AnyValue{}
}

// celFilter mirrors Istio's filter.expression: Envoy's CEL access-log
// extension filter.
func celFilter(expr string) *accesslogv3.AccessLogFilter {
	if expr == "" {
		return nil
	}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
		Name:       FilterCEL,
		ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: mustAny(&celv3.ExpressionFilter{Expression: expr})},
	}}}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("telemetry: pack " + string(proto.MessageName(m)) + ": " + err.Error()) // a valid, built message
	}
	return a
}
