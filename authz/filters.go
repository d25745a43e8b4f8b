package authz

import (
	"fmt"
	"sort"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	extauthznet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/wardmesh/ward/mesh"
)

// Envoy filter names. FilterHTTPRBAC is also the dynamic-metadata
// namespace RBAC filters write (shadow_effective_policy_id). The filters
// Ward emits carry distinct names (FilterName), since a listener holds
// several RBAC filters and grpc-go rejects duplicate filter names.
const (
	FilterHTTPRBAC     = "envoy.filters.http.rbac"
	FilterHTTPExtAuthz = "envoy.filters.http.ext_authz"
	FilterNetRBAC      = "envoy.filters.network.rbac"
	FilterNetExtAuthz  = "envoy.filters.network.ext_authz"
)

// FilterName is the name of one of Ward's authorization filters, e.g.
// "ward.authz.rbac.deny".
func FilterName(kind string) string { return "ward.authz." + kind }

// Context extension keys that identify the workload to Ward's ext_authz
// server.
const (
	ContextNamespace = "ward.namespace"
	ContextWorkload  = "ward.workload"
	ContextLabels    = "ward.labels" // JSON object
	// ContextRemoteIP says how the calling HCM derives the client address
	// (remote.ip); RemoteIPLastXFF is a sidecar's HCM
	// (use_remote_address false, no trusted hops): the last
	// X-Forwarded-For entry, else the peer.
	ContextRemoteIP = "ward.remote_ip"
	RemoteIPLastXFF = "xff-last"
)

// Enforcement selects how a proxy enforces authorization.
type Enforcement int

const (
	// EnforceExtAuthz: Envoy calls Ward's ext_authz server (OPA), which
	// decides; native RBAC is emitted only as shadow rules, for stats.
	EnforceExtAuthz Enforcement = iota
	// EnforceRBAC: native RBAC filters decide (proxyless gRPC, or Envoy
	// without an ext_authz server).
	EnforceRBAC
)

// FilterConfig configures the filters for one workload.
type FilterConfig struct {
	Workload    Workload
	Enforcement Enforcement
	// ExtAuthzCluster is the Envoy cluster of Ward's ext_authz server
	// (EnforceExtAuthz); Timeout bounds each check (default 200ms).
	ExtAuthzCluster string
	Timeout         time.Duration
	// ProviderCluster maps an envoyExtAuthzGrpc provider name to the
	// cluster the xDS core built for its service and port.
	ProviderCluster func(mesh.ExtensionProvider) string
	// Mesh supplies the CUSTOM extension providers.
	Mesh mesh.MeshConfig
	// ForGRPC drops what proxyless grpc-go cannot use (LOG rules).
	ForGRPC bool
	// RemoteIPFromXFF tells Ward's ext_authz server that the HCM in front
	// of it takes remote.ip from the last X-Forwarded-For entry (an Envoy
	// sidecar: use_remote_address false), as native RBAC's remote_ip
	// does there, so both judge remoteIpBlocks alike.
	RemoteIPFromXFF bool
	// TCP makes HTTPFilters judge with TCP semantics (BuildRBAC forTCP),
	// for an HTTP connection manager that serves an opaque-TCP port: a
	// proxyless gRPC server, which has no network filters.
	TCP bool
}

// Workload identifies the workload the filters protect.
type Workload struct {
	Namespace string
	Name      string
	Labels    mesh.Labels
}

// HTTPFilters returns the authorization HTTP filters for one inbound HTTP
// listener, in order: one ext_authz filter per external CUSTOM provider
// (gated by the shadow RBAC filter holding that provider's rules, Istio's
// way), then either Ward's ext_authz filter (with every decision) or the
// native RBAC filters DENY, ALLOW, AUDIT. Every message passes
// ValidateAll.
func HTTPFilters(ps []*Policy, cfg FilterConfig) ([]*hcmv3.HttpFilter, error) {
	set, err := BuildRBAC(ps, cfg.TCP)
	if err != nil {
		return nil, err
	}
	var out []*hcmv3.HttpFilter
	custom, err := customHTTPFilters(set, cfg)
	if err != nil {
		return nil, err
	}
	out = append(out, custom...)
	if cfg.Enforcement == EnforceExtAuthz {
		f, err := httpFilter(FilterName("rbac.shadow"), shadowOnly(set))
		if err != nil {
			return nil, err
		}
		ea := ExtAuthzHTTP(cfg)
		if usesRegoProvider(ps, cfg.Mesh) {
			// opa-envoy-plugin policies may read parsed_body.
			ea.WithRequestBody = &extauthzhttp.BufferSettings{MaxRequestBytes: MaxBodyBytes, AllowPartialMessage: true}
		}
		eaf, err := httpFilter(FilterName("ext_authz"), ea)
		if err != nil {
			return nil, err
		}
		return append(out, f, eaf), nil
	}
	for _, r := range httpRBACs(set, cfg.ForGRPC) {
		f, err := httpFilter(FilterName("rbac."+r.kind), r.cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// httpRBACs orders the enforcing RBAC configs: DENY (with its dry-run
// shadow), ALLOW (only when an enforced ALLOW policy applies), AUDIT.
func httpRBACs(set *RBACSet, grpc bool) []namedRBAC {
	var out []namedRBAC
	if set.Deny != nil || set.DenyShadow != nil {
		out = append(out, namedRBAC{"deny", withShadow(set.Deny, set.DenyShadow, rbacv3.RBAC_DENY, "istio_dry_run_deny_")})
	}
	if set.Allow != nil || set.AllowShadow != nil {
		r := withShadow(set.Allow, set.AllowShadow, rbacv3.RBAC_ALLOW, "istio_dry_run_allow_")
		if set.Allow == nil {
			r.Rules = nil // no enforced ALLOW policy: allow everything
		}
		out = append(out, namedRBAC{"allow", r})
	}
	if !grpc && (set.Audit != nil || set.AuditShadow != nil) {
		out = append(out, namedRBAC{"audit", withShadow(set.Audit, set.AuditShadow, rbacv3.RBAC_LOG, "istio_dry_run_audit_")})
	}
	return out
}

type namedRBAC struct {
	kind string
	cfg  *rbachttp.RBAC
}

func withShadow(rules, shadow *rbacv3.RBAC, a rbacv3.RBAC_Action, prefix string) *rbachttp.RBAC {
	if rules == nil && a == rbacv3.RBAC_DENY {
		rules = &rbacv3.RBAC{Action: a, Policies: map[string]*rbacv3.Policy{}}
	}
	out := &rbachttp.RBAC{Rules: rules}
	if shadow != nil {
		out.ShadowRules = shadow
		out.ShadowRulesStatPrefix = prefix
	}
	return out
}

// shadowOnly folds every rule into shadow rules, for EnforceExtAuthz: RBAC
// then records what it would decide while ext_authz enforces.
func shadowOnly(set *RBACSet) *rbachttp.RBAC {
	merged := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
	for _, r := range []*rbacv3.RBAC{set.Deny, set.DenyShadow} {
		if r != nil {
			for k, v := range r.Policies {
				merged.Policies[k] = v
			}
		}
	}
	return &rbachttp.RBAC{ShadowRules: merged, ShadowRulesStatPrefix: "ward_shadow_"}
}

// customHTTPFilters emits, per external CUSTOM provider, a shadow RBAC
// filter with the provider's rules and an ext_authz filter enabled only
// when that shadow policy matched (filter_enabled_metadata on the RBAC
// filter's shadow_effective_policy_id), as Istio does. Rego providers are
// evaluated by Ward's own server and need no filter; where that server is
// not in the chain (EnforceRBAC, proxyless gRPC) their rules deny.
func customHTTPFilters(set *RBACSet, cfg FilterConfig) ([]*hcmv3.HttpFilter, error) {
	names := make([]string, 0, len(set.Custom))
	for n := range set.Custom {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*hcmv3.HttpFilter
	for _, name := range names {
		ep, ok := findProvider(cfg.Mesh, name)
		if ok && ep.Rego != nil && cfg.Enforcement == EnforceExtAuthz {
			continue // Ward's own ext_authz server consults it
		}
		if !ok || ep.Rego != nil || cfg.ProviderCluster == nil {
			// Unknown provider, a rego provider without Ward's ext_authz
			// (native RBAC, proxyless gRPC), or nowhere to send the check:
			// deny what the CUSTOM rules match, fail closed.
			f, err := httpFilter(FilterName("custom."+name), &rbachttp.RBAC{Rules: set.Custom[name]})
			if err != nil {
				return nil, err
			}
			out = append(out, f)
			continue
		}
		fs, err := externalProviderFilters(name, set.Custom[name], ep, cfg.ProviderCluster(ep))
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

// externalProviderFilters is the shadow RBAC filter holding provider
// name's CUSTOM rules and the ext_authz filter to its cluster, enabled
// only when one of those rules matched.
func externalProviderFilters(name string, rules *rbacv3.RBAC, ep mesh.ExtensionProvider, cluster string) ([]*hcmv3.HttpFilter, error) {
	prefix := "istio-ext-authz-" + name + "-"
	shadow := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
	for k, v := range rules.Policies {
		shadow.Policies[prefix+k] = v
	}
	sf, err := httpFilter(FilterName("custom."+name+".shadow"), &rbachttp.RBAC{ShadowRules: shadow, ShadowRulesStatPrefix: prefix})
	if err != nil {
		return nil, err
	}
	ea := &extauthzhttp.ExtAuthz{
		Services:            &extauthzhttp.ExtAuthz_GrpcService{GrpcService: grpcService(cluster, ep.EnvoyExtAuthzGRPC.Timeout.String(), nil)},
		TransportApiVersion: corev3.ApiVersion_V3,
		FailureModeAllow:    false,
		StatusOnError:       &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
		FilterEnabledMetadata: &matcherv3.MetadataMatcher{Filter: FilterHTTPRBAC,
			Path:  []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: shadowPolicyKey(prefix)}}},
			Value: valueString(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}})},
	}
	ef, err := httpFilter(FilterName("custom."+name), ea)
	if err != nil {
		return nil, err
	}
	return []*hcmv3.HttpFilter{sf, ef}, nil
}

// shadowPolicyKey is the dynamic-metadata key an RBAC filter writes its
// matched shadow policy under: Envoy prefixes shadow_effective_policy_id
// with the filter's shadow_rules_stat_prefix, so a gate on the bare key
// would never open and the provider's rules would fail open.
func shadowPolicyKey(statPrefix string) string {
	return statPrefix + "shadow_effective_policy_id"
}

// MaxBodyBytes is how much of a request body Envoy buffers for a CUSTOM
// rego provider (a longer body arrives truncated: truncated_body).
const MaxBodyBytes = 8192

func usesRegoProvider(ps []*Policy, m mesh.MeshConfig) bool {
	for _, p := range ps {
		if ep, ok := findProvider(m, p.Provider); p.Action == ActionCustom && ok && ep.Rego != nil {
			return true
		}
	}
	return false
}

func findProvider(m mesh.MeshConfig, name string) (mesh.ExtensionProvider, bool) {
	for _, p := range m.ExtensionProviders {
		// A telemetry provider is no authorization provider: a CUSTOM
		// policy naming one is treated as naming an unknown provider.
		if p.Name == name && p.IsAuthorization() {
			return p, true
		}
	}
	return mesh.ExtensionProvider{}, false
}

// ExtAuthzHTTP is the ext_authz HTTP filter config pointing at Ward's
// server: gRPC v3, fail closed (failure_mode_allow false, 403 on error),
// the jwt_authn metadata namespace forwarded so verified claims reach the
// server, and the workload named in the gRPC initial metadata. Per-route
// context extensions (ExtAuthzPerRoute) name it too.
func ExtAuthzHTTP(cfg FilterConfig) *extauthzhttp.ExtAuthz {
	return &extauthzhttp.ExtAuthz{
		Services:                  &extauthzhttp.ExtAuthz_GrpcService{GrpcService: grpcService(cfg.ExtAuthzCluster, timeout(cfg), httpCheckMetadata(cfg))},
		TransportApiVersion:       corev3.ApiVersion_V3,
		FailureModeAllow:          false,
		StatusOnError:             &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
		MetadataContextNamespaces: []string{JWTFilter},
		IncludePeerCertificate:    false,
		IncludeTlsSession:         true,
	}
}

// ExtAuthzPerRoute names the workload in context_extensions, for the
// inbound virtual host's typed_per_filter_config.
func ExtAuthzPerRoute(w Workload) *extauthzhttp.ExtAuthzPerRoute {
	return &extauthzhttp.ExtAuthzPerRoute{Override: &extauthzhttp.ExtAuthzPerRoute_CheckSettings{
		CheckSettings: &extauthzhttp.CheckSettings{ContextExtensions: WorkloadContext(w)}}}
}

// ExtAuthzNetwork is the ext_authz network filter for TCP listeners.
func ExtAuthzNetwork(cfg FilterConfig) *extauthznet.ExtAuthz {
	return &extauthznet.ExtAuthz{
		StatPrefix:          "ward_authz",
		GrpcService:         grpcService(cfg.ExtAuthzCluster, timeout(cfg), workloadMetadata(cfg.Workload)),
		FailureModeAllow:    false,
		TransportApiVersion: corev3.ApiVersion_V3,
		IncludeTlsSession:   true,
	}
}

// NetworkFilters returns the authorization network filters for a TCP
// listener: Ward's ext_authz network filter, or native RBAC network
// filters (DENY, ALLOW, AUDIT) with TCP semantics.
func NetworkFilters(ps []*Policy, cfg FilterConfig) ([]*listenerv3.Filter, error) {
	set, err := BuildRBAC(ps, true)
	if err != nil {
		return nil, err
	}
	out, err := customNetworkFilters(set, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Enforcement == EnforceExtAuthz {
		f, err := netFilter(FilterName("ext_authz"), ExtAuthzNetwork(cfg))
		if err != nil {
			return nil, err
		}
		return append(out, f), nil
	}
	for _, r := range httpRBACs(set, cfg.ForGRPC) {
		f, err := netFilter(FilterName("rbac."+r.kind), &rbacnet.RBAC{StatPrefix: "ward_authz_" + r.kind + "_", Rules: r.cfg.Rules, ShadowRules: r.cfg.ShadowRules, ShadowRulesStatPrefix: r.cfg.ShadowRulesStatPrefix})
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// customNetworkFilters is customHTTPFilters for TCP: an external provider
// gets a shadow network RBAC filter and a network ext_authz filter enabled
// by its shadow match; a rego provider is left to Ward's ext_authz server
// when it is in the chain; anything else denies what the CUSTOM rules
// match.
func customNetworkFilters(set *RBACSet, cfg FilterConfig) ([]*listenerv3.Filter, error) {
	var out []*listenerv3.Filter
	for _, name := range sortedProviders(set) {
		ep, ok := findProvider(cfg.Mesh, name)
		switch {
		case ok && ep.Rego != nil && cfg.Enforcement == EnforceExtAuthz:
			continue
		case ok && ep.EnvoyExtAuthzGRPC != nil && cfg.ProviderCluster != nil:
			fs, err := externalNetworkFilters(name, set.Custom[name], ep, cfg.ProviderCluster(ep))
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
		default:
			f, err := netFilter(FilterName("custom."+name), &rbacnet.RBAC{StatPrefix: "ward_custom_", Rules: set.Custom[name]})
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
	}
	return out, nil
}

func externalNetworkFilters(name string, rules *rbacv3.RBAC, ep mesh.ExtensionProvider, cluster string) ([]*listenerv3.Filter, error) {
	prefix := "istio-ext-authz-" + name + "-"
	shadow := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{}}
	for k, v := range rules.Policies {
		shadow.Policies[prefix+k] = v
	}
	sf, err := netFilter(FilterName("custom."+name+".shadow"), &rbacnet.RBAC{StatPrefix: "ward_custom_", ShadowRules: shadow, ShadowRulesStatPrefix: prefix})
	if err != nil {
		return nil, err
	}
	ea := &extauthznet.ExtAuthz{
		StatPrefix:          "ward_custom_" + name,
		GrpcService:         grpcService(cluster, ep.EnvoyExtAuthzGRPC.Timeout.String(), nil),
		FailureModeAllow:    false,
		TransportApiVersion: corev3.ApiVersion_V3,
		FilterEnabledMetadata: &matcherv3.MetadataMatcher{Filter: FilterNetRBAC,
			Path:  []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: shadowPolicyKey(prefix)}}},
			Value: valueString(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}})},
	}
	ef, err := netFilter(FilterName("custom."+name), ea)
	if err != nil {
		return nil, err
	}
	return []*listenerv3.Filter{sf, ef}, nil
}

func sortedProviders(set *RBACSet) []string {
	out := make([]string, 0, len(set.Custom))
	for n := range set.Custom {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func timeout(cfg FilterConfig) string {
	if cfg.Timeout == 0 {
		return "200ms"
	}
	return cfg.Timeout.String()
}

func grpcService(cluster, tmo string, md []*corev3.HeaderValue) *corev3.GrpcService {
	d, err := time.ParseDuration(tmo)
	if err != nil || d <= 0 {
		d = 200 * time.Millisecond
	}
	return &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}},
		Timeout:         durationpb.New(d),
		InitialMetadata: md,
	}
}

// WorkloadContext renders the workload as context extensions.
func WorkloadContext(w Workload) map[string]string {
	return map[string]string{ContextNamespace: w.Namespace, ContextWorkload: w.Name, ContextLabels: labelsJSON(w.Labels)}
}

// httpCheckMetadata is workloadMetadata plus how the HCM derives
// remote.ip.
func httpCheckMetadata(cfg FilterConfig) []*corev3.HeaderValue {
	md := workloadMetadata(cfg.Workload)
	if cfg.RemoteIPFromXFF {
		md = append(md, &corev3.HeaderValue{Key: "x-ward-remote-ip", Value: RemoteIPLastXFF})
	}
	return md
}

func workloadMetadata(w Workload) []*corev3.HeaderValue {
	return []*corev3.HeaderValue{
		{Key: "x-ward-namespace", Value: w.Namespace},
		{Key: "x-ward-workload", Value: w.Name},
		{Key: "x-ward-labels", Value: labelsJSON(w.Labels)},
	}
}

type validator interface {
	proto.Message
	ValidateAll() error
}

func httpFilter(name string, cfg validator) (*hcmv3.HttpFilter, error) {
	if err := cfg.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validate %s config: %w", name, err)
	}
	a, err := anypb.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal %s config: %w", name, err)
	}
	f := &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}
	if err := f.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validate %s filter: %w", name, err)
	}
	return f, nil
}

func netFilter(name string, cfg validator) (*listenerv3.Filter, error) {
	if err := cfg.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validate %s config: %w", name, err)
	}
	a, err := anypb.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal %s config: %w", name, err)
	}
	f := &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
	if err := f.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validate %s filter: %w", name, err)
	}
	return f, nil
}
