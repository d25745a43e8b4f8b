package schema

import (
	"strings"

	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/wardmesh/ward/mesh"
)

func init() {
	validators[mesh.KindTelemetry] = validateTelemetry
}

// validateTelemetry applies Istio's Telemetry validation: targeting as
// for the policy kinds, provider references by name, sampling within
// 0–100, complete custom tags, filter expressions, metric tag overrides.
// Fields Ward accepts but does not act on are warnings.
func validateTelemetry(c *mesh.Config, e *errs) {
	in, ok := c.Spec.(*telemetry.Telemetry)
	if !ok {
		wrongType(e, c, "*v1alpha1.Telemetry")
		return
	}
	checkTargeting(e, in.GetSelector(), in.GetTargetRef(), in.GetTargetRefs())
	for i, t := range in.GetTracing() {
		checkTracing(e, idx("spec.tracing", i), t)
	}
	for i, m := range in.GetMetrics() {
		checkMetrics(e, idx("spec.metrics", i), m)
	}
	for i, l := range in.GetAccessLogging() {
		checkAccessLogging(e, idx("spec.accessLogging", i), l)
	}
}

func checkProviders(e *errs, p string, ps []*telemetry.ProviderRef) {
	for i, r := range ps {
		if r.GetName() == "" {
			e.add(idx(p+".providers", i)+".name", "provider name is required")
		}
	}
}

func checkTracing(e *errs, p string, t *telemetry.Tracing) {
	if t == nil {
		e.add(p, "tracing must not be null")
		return
	}
	checkProviders(e, p, t.GetProviders())
	if len(t.GetProviders()) > 1 {
		e.warn(p+".providers", "multiple tracing providers are not supported: only %q is used", t.GetProviders()[0].GetName())
	}
	if s := t.GetRandomSamplingPercentage(); s != nil && (s.GetValue() < 0 || s.GetValue() > 100) {
		e.add(p+".randomSamplingPercentage", "must be in the range [0.0, 100.0], got %v", s.GetValue())
	}
	for _, k := range sortedStrKeys(t.GetCustomTags()) {
		checkCustomTag(e, key(p+".customTags", k), k, t.GetCustomTags()[k])
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"useRequestIdForTraceSampling", t.GetUseRequestIdForTraceSampling() != nil},
		{"enableIstioTags", t.GetEnableIstioTags() != nil},
		{"disableContextPropagation", t.GetDisableContextPropagation() != nil},
	} {
		if f.set {
			e.warnCode(CodeNotImplemented, p+"."+f.name, "%s is not implemented by Ward: the proxies keep Envoy's default", f.name)
		}
	}
}

func checkCustomTag(e *errs, p, name string, tag *telemetry.Tracing_CustomTag) {
	if name == "" {
		e.add(p, "custom tag name must not be empty")
	}
	switch t := tag.GetType().(type) {
	case *telemetry.Tracing_CustomTag_Literal:
		if t.Literal.GetValue() == "" {
			e.add(p+".literal.value", "literal value is required")
		}
	case *telemetry.Tracing_CustomTag_Environment:
		if t.Environment.GetName() == "" {
			e.add(p+".environment.name", "environment variable name is required")
		}
	case *telemetry.Tracing_CustomTag_Header:
		// Istio only requires a name (pseudo-headers such as :path are
		// fine); Envoy reads whatever header is named.
		if t.Header.GetName() == "" {
			e.add(p+".header.name", "header name is required")
		}
	case *telemetry.Tracing_CustomTag_Formatter:
		if t.Formatter.GetValue() == "" {
			e.add(p+".formatter.value", "formatter value is required")
		}
	default:
		e.add(p, "one of literal, environment, header or formatter is required")
	}
}

func checkMetrics(e *errs, p string, m *telemetry.Metrics) {
	if m == nil {
		e.add(p, "metrics must not be null")
		return
	}
	checkProviders(e, p, m.GetProviders())
	if d := m.GetReportingInterval(); d != nil {
		checkDuration(e, p+".reportingInterval", d) // at least 1ms
	}
	for i, o := range m.GetOverrides() {
		op := idx(p+".overrides", i)
		if m := o.GetMatch(); m != nil {
			if cm, ok := m.GetMetricMatch().(*telemetry.MetricSelector_CustomMetric); ok && cm.CustomMetric == "" {
				e.add(op+".match.customMetric", "customMetric must not be empty")
			}
		}
		for _, k := range sortedStrKeys(o.GetTagOverrides()) {
			checkTagOverride(e, key(op+".tagOverrides", k), k, o.GetTagOverrides()[k])
		}
	}
	if len(m.GetOverrides()) > 0 || m.GetReportingInterval() != nil {
		e.warnCode(CodeNotImplemented, p, "metrics overrides and reportingInterval are accepted but Ward's proxies emit no Istio standard metrics yet")
	}
}

func checkTagOverride(e *errs, p, name string, o *telemetry.MetricsOverrides_TagOverride) {
	if name == "" {
		e.add(p, "tag name must not be empty")
	}
	switch o.GetOperation() {
	case telemetry.MetricsOverrides_TagOverride_UPSERT:
		if o.GetValue() == "" {
			e.add(p+".value", "UPSERT requires a value")
		}
	case telemetry.MetricsOverrides_TagOverride_REMOVE:
		if o.GetValue() != "" {
			e.add(p+".value", "REMOVE must not have a value")
		}
	}
}

func checkAccessLogging(e *errs, p string, l *telemetry.AccessLogging) {
	if l == nil {
		e.add(p, "accessLogging must not be null")
		return
	}
	checkProviders(e, p, l.GetProviders())
	if f := l.GetFilter(); f != nil {
		if err := celSyntax(f.GetExpression()); err != "" {
			e.add(p+".filter.expression", "%s", err)
		}
	}
}

// celSyntax is a light syntax check of a CEL filter expression: not
// empty, quotes closed, brackets balanced. Envoy compiles the expression
// itself and rejects the listener on a type error; this catches the
// mistakes that are visible without a CEL parser.
func celSyntax(expr string) string {
	if strings.TrimSpace(expr) == "" {
		return "filter expression must not be empty"
	}
	var stack []rune
	var quote rune
	escaped := false
	for _, r := range expr {
		switch {
		case quote != 0:
			switch {
			case escaped:
				escaped = false
			case r == '\\':
				escaped = true
			case r == quote:
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case r == ')' || r == ']' || r == '}':
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return "invalid CEL expression " + quoteExpr(expr) + ": unbalanced " + string(r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if quote != 0 {
		return "invalid CEL expression " + quoteExpr(expr) + ": unterminated string"
	}
	if len(stack) > 0 {
		return "invalid CEL expression " + quoteExpr(expr) + ": unclosed " + string(stack[len(stack)-1])
	}
	return ""
}

func quoteExpr(s string) string { return "\"" + strings.ReplaceAll(s, "\"", "\\\"") + "\"" }
