package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttp "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnet "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"

	"github.com/wardmesh/ward/mesh"
)

// This file holds the entry points the xDS core's translate.Hooks call.

// HookConfig configures the xDS hooks.
type HookConfig struct {
	// ExtAuthzCluster is the Envoy cluster of Ward's ext_authz server.
	// Envoy sidecars call it when set; otherwise (and always for proxyless
	// gRPC, which has no ext_authz) native RBAC enforces.
	ExtAuthzCluster string
	// ProviderCluster names the cluster of an envoyExtAuthzGrpc provider.
	ProviderCluster func(mesh.ExtensionProvider) string
	// Log receives compile errors (which fail closed).
	Log *slog.Logger
}

// ModelFor compiles the policies that apply to proxy. An invalid
// applicable policy is an error: the caller must fail closed.
func ModelFor(snap *mesh.Snapshot, proxy *mesh.Proxy) ([]*Policy, error) {
	cfgs := PoliciesFor(snap, proxy.Namespace, proxy.Labels)
	out := make([]*Policy, 0, len(cfgs))
	for _, c := range cfgs {
		p, err := FromConfig(c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (h HookConfig) filterConfig(snap *mesh.Snapshot, proxy *mesh.Proxy) FilterConfig {
	cfg := FilterConfig{
		Workload:        Workload{Namespace: proxy.Namespace, Name: proxy.Metadata["NAME"], Labels: proxy.Labels},
		Enforcement:     EnforceRBAC,
		ExtAuthzCluster: h.ExtAuthzCluster,
		ProviderCluster: h.ProviderCluster,
		Mesh:            snap.Mesh(),
		ForGRPC:         proxy.Type == mesh.ProxyGRPC,
		RemoteIPFromXFF: proxy.Type == mesh.ProxySidecar,
	}
	if h.ExtAuthzCluster != "" && proxy.Type != mesh.ProxyGRPC {
		cfg.Enforcement = EnforceExtAuthz
	}
	return cfg
}

// InboundHTTPFilters returns the authorization HTTP filters for an inbound
// HTTP listener of proxy (see HTTPFilters). On any error it returns a
// deny-all RBAC filter with the error: fail closed.
func (h HookConfig) InboundHTTPFilters(snap *mesh.Snapshot, proxy *mesh.Proxy) ([]*hcmv3.HttpFilter, error) {
	return h.inboundHTTPFilters(snap, proxy, false)
}

func (h HookConfig) inboundHTTPFilters(snap *mesh.Snapshot, proxy *mesh.Proxy, tcp bool) ([]*hcmv3.HttpFilter, error) {
	ps, err := ModelFor(snap, proxy)
	if err == nil {
		var fs []*hcmv3.HttpFilter
		cfg := h.filterConfig(snap, proxy)
		cfg.TCP = tcp
		if fs, err = HTTPFilters(ps, cfg); err == nil {
			return fs, nil
		}
	}
	deny, derr := httpFilter(FilterName("rbac.deny_all"), DenyAllHTTP())
	if derr != nil {
		panic("authz: deny-all RBAC does not validate: " + derr.Error())
	}
	return []*hcmv3.HttpFilter{deny}, fmt.Errorf("authorization filters for proxy %s: %w", proxy.ID, err)
}

// InboundNetworkFilters is InboundHTTPFilters for TCP listeners.
func (h HookConfig) InboundNetworkFilters(snap *mesh.Snapshot, proxy *mesh.Proxy) ([]*listenerv3.Filter, error) {
	ps, err := ModelFor(snap, proxy)
	if err == nil {
		var fs []*listenerv3.Filter
		if fs, err = NetworkFilters(ps, h.filterConfig(snap, proxy)); err == nil {
			return fs, nil
		}
	}
	deny, derr := netFilter(FilterName("rbac.deny_all"), &rbacnet.RBAC{StatPrefix: "ward_deny_all_", Rules: DenyAllHTTP().Rules})
	if derr != nil {
		panic("authz: deny-all RBAC does not validate: " + derr.Error())
	}
	return []*listenerv3.Filter{deny}, fmt.Errorf("authorization filters for proxy %s: %w", proxy.ID, err)
}

// HTTPFilterHook adapts InboundHTTPFilters to translate.Hooks.HTTPFilters
// (dir is the translate.Direction as a string): inbound listeners get the
// filters ("inbound-tcp", an HCM serving an opaque-TCP port, with TCP
// semantics), others none. Errors are logged and fail closed.
func (h HookConfig) HTTPFilterHook(snap *mesh.Snapshot, proxy *mesh.Proxy, dir string) []*hcmv3.HttpFilter {
	if dir != "inbound" && dir != "inbound-tcp" {
		return nil
	}
	fs, err := h.inboundHTTPFilters(snap, proxy, dir == "inbound-tcp")
	if err != nil && h.Log != nil {
		h.Log.Error("authorization failed closed: deny-all filter installed", "proxy", proxy.ID, "error", err)
	}
	return fs
}

// NetworkFilterHook adapts InboundNetworkFilters to
// translate.Hooks.NetworkFilters: chains that proxy opaque TCP to the
// workload ("inbound") or through a gateway ("gateway") get the filters,
// others none. Errors are logged and fail closed (a deny-all filter).
func (h HookConfig) NetworkFilterHook(snap *mesh.Snapshot, proxy *mesh.Proxy, dir string) []*listenerv3.Filter {
	if dir != "inbound" && dir != "gateway" {
		return nil
	}
	fs, err := h.InboundNetworkFilters(snap, proxy)
	if err != nil && h.Log != nil {
		h.Log.Error("authorization failed closed: deny-all network filter installed", "proxy", proxy.ID, "error", err)
	}
	return fs
}

// DenyAllHTTP is an RBAC config that denies every request: an ALLOW
// action with no policies.
func DenyAllHTTP() *rbachttp.RBAC {
	return &rbachttp.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW}}
}

// Fingerprint hashes everything authz reads for proxy: the applicable
// policies (key, annotations, spec) and the extension providers. Equal
// fingerprints mean equal authz output.
func Fingerprint(snap *mesh.Snapshot, proxy *mesh.Proxy) string {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, c := range PoliciesFor(snap, proxy.Namespace, proxy.Labels) {
		b, _ := opts.Marshal(c.Spec) // deterministic marshal of a valid message
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00", c.Key(), c.Annotations[mesh.AnnotationDryRun], len(b))
		h.Write(b)
	}
	hashProviders(h, snap.Mesh().ExtensionProviders)
	fmt.Fprintf(h, "%v", proxy.Type)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func hashProviders(h io.Writer, ps []mesh.ExtensionProvider) {
	for _, p := range ps {
		fmt.Fprintf(h, "%d:%s\x00", len(p.Name), p.Name)
		if r := p.Rego; r != nil {
			fmt.Fprintf(h, "rego\x00%d:%s\x00%d:%s\x00", len(r.Module), r.Module, len(r.Query), r.Query)
		}
		if g := p.EnvoyExtAuthzGRPC; g != nil {
			fmt.Fprintf(h, "grpc\x00%d:%s\x00%d\x00%s\x00", len(g.Service), g.Service, g.Port, g.Timeout)
		}
	}
}
