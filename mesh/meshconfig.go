package mesh

import (
	"fmt"
	"time"
)

// OutboundPolicy is the mesh-wide outbound traffic policy.
type OutboundPolicy string

// Outbound traffic policies, as in Istio's MeshConfig.
const (
	OutboundAllowAny     OutboundPolicy = "ALLOW_ANY"
	OutboundRegistryOnly OutboundPolicy = "REGISTRY_ONLY"
)

// MeshConfig is Ward's small mesh-wide configuration. In a config directory
// it is a document with apiVersion config.wardmesh.io/v1alpha1 and kind
// MeshConfig; its spec decodes into this struct strictly.
type MeshConfig struct {
	// TrustDomain is the SPIFFE trust domain of every workload identity.
	TrustDomain string `json:"trustDomain,omitempty"`
	// RootNamespace holds mesh-wide policies (Istio's istio-system).
	RootNamespace string `json:"rootNamespace,omitempty"`
	// OutboundTrafficPolicy is ALLOW_ANY (default) or REGISTRY_ONLY.
	OutboundTrafficPolicy OutboundPolicy `json:"outboundTrafficPolicy,omitempty"`
	// EnableAutoMTLS originates mTLS to workloads with a mesh identity.
	EnableAutoMTLS *bool `json:"enableAutoMtls,omitempty"`
	// DefaultCertTTL is the default workload certificate lifetime.
	DefaultCertTTL Duration `json:"defaultCertTTL,omitempty"`
	// MaxCertTTL caps requested workload certificate lifetimes.
	MaxCertTTL Duration `json:"maxCertTTL,omitempty"`
	// TLSProfile is "" (default ciphers, TLS 1.2–1.3) or "fips".
	TLSProfile string `json:"tlsProfile,omitempty"`
	// ExtensionProviders name CUSTOM authorization providers and the
	// telemetry providers (access logs, tracing, metrics) that Telemetry
	// objects and DefaultProviders refer to.
	ExtensionProviders []ExtensionProvider `json:"extensionProviders,omitempty"`
	// DefaultProviders are the telemetry providers in effect where no
	// Telemetry names any (Istio's meshConfig.defaultProviders).
	DefaultProviders *DefaultProviders `json:"defaultProviders,omitempty"`
	// PathNormalization sets how proxies (and Ward's authorisation servers)
	// normalise request paths; nil means BASE (PathNormalizationLevel).
	PathNormalization *ProxyPathNormalization `json:"pathNormalization,omitempty"`
}

// ExtensionProvider is a CUSTOM AuthorizationPolicy provider or a
// telemetry provider. Exactly one of its kinds is set.
type ExtensionProvider struct {
	Name string `json:"name"`
	// EnvoyExtAuthzGRPC points at an external ext_authz v3 gRPC service.
	EnvoyExtAuthzGRPC *ExtAuthzGRPC `json:"envoyExtAuthzGrpc,omitempty"`
	// Rego is an opa-envoy-plugin style policy evaluated by Ward's own
	// ext_authz server: a Rego module and the rule to query.
	Rego *RegoProvider `json:"rego,omitempty"`
	TelemetryProviders
}

// ExtAuthzGRPC addresses an external ext_authz gRPC server.
type ExtAuthzGRPC struct {
	Service string   `json:"service"`
	Port    uint32   `json:"port"`
	Timeout Duration `json:"timeout,omitempty"`
}

// RegoProvider is a Rego module evaluated in Ward's ext_authz server.
type RegoProvider struct {
	Module string `json:"module"`
	Query  string `json:"query,omitempty"` // default data.envoy.authz.allow
}

// Defaults used when a MeshConfig leaves a field empty.
const (
	DefaultTrustDomain   = "cluster.local"
	DefaultRootNamespace = "istio-system"
)

// WithDefaults returns a copy with every unset field defaulted.
func (m MeshConfig) WithDefaults() MeshConfig {
	if m.TrustDomain == "" {
		m.TrustDomain = DefaultTrustDomain
	}
	if m.RootNamespace == "" {
		m.RootNamespace = DefaultRootNamespace
	}
	if m.OutboundTrafficPolicy == "" {
		m.OutboundTrafficPolicy = OutboundAllowAny
	}
	if m.EnableAutoMTLS == nil {
		t := true
		m.EnableAutoMTLS = &t
	}
	if m.DefaultCertTTL == 0 {
		m.DefaultCertTTL = Duration(24 * time.Hour)
	}
	if m.MaxCertTTL == 0 {
		m.MaxCertTTL = Duration(90 * 24 * time.Hour)
	}
	return m
}

// AutoMTLS reports whether auto mTLS is on (default true).
func (m MeshConfig) AutoMTLS() bool { return m.EnableAutoMTLS == nil || *m.EnableAutoMTLS }

// Validate reports every problem with the config, with field paths.
func (m MeshConfig) Validate() []error {
	var errs []error
	switch m.OutboundTrafficPolicy {
	case "", OutboundAllowAny, OutboundRegistryOnly:
	default:
		errs = append(errs, fmt.Errorf("spec.outboundTrafficPolicy: must be ALLOW_ANY or REGISTRY_ONLY, got %q", m.OutboundTrafficPolicy))
	}
	switch m.TLSProfile {
	case "", "fips":
	default:
		errs = append(errs, fmt.Errorf("spec.tlsProfile: must be empty or \"fips\", got %q", m.TLSProfile))
	}
	if m.DefaultCertTTL < 0 || m.MaxCertTTL < 0 {
		errs = append(errs, fmt.Errorf("spec.defaultCertTTL/maxCertTTL: must not be negative"))
	}
	if m.MaxCertTTL > 0 && m.DefaultCertTTL > m.MaxCertTTL {
		errs = append(errs, fmt.Errorf("spec.defaultCertTTL: %s exceeds maxCertTTL %s", m.DefaultCertTTL, m.MaxCertTTL))
	}
	if m.TrustDomain != "" {
		if _, err := (Identity{TrustDomain: m.TrustDomain, Namespace: "x", ServiceAccount: "x"}).SPIFFEID(); err != nil {
			errs = append(errs, fmt.Errorf("spec.trustDomain: %w", err))
		}
	}
	if err := m.PathNormalization.validate(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, p := range m.ExtensionProviders {
		errs = append(errs, p.validate(fmt.Sprintf("spec.extensionProviders[%d]", i), seen)...)
	}
	return append(errs, m.DefaultProviders.validate(m.ExtensionProviders)...)
}

// IsAuthorization reports whether p is a CUSTOM authorization provider
// (envoyExtAuthzGrpc or rego), as opposed to a telemetry provider.
func (p ExtensionProvider) IsAuthorization() bool { return p.EnvoyExtAuthzGRPC != nil || p.Rego != nil }

func (p ExtensionProvider) kinds() int {
	n := p.TelemetryProviders.kinds()
	if p.EnvoyExtAuthzGRPC != nil {
		n++
	}
	if p.Rego != nil {
		n++
	}
	return n
}

func (p ExtensionProvider) validate(path string, seen map[string]bool) []error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, fmt.Errorf("%s.name: required", path))
	} else if seen[p.Name] {
		errs = append(errs, fmt.Errorf("%s.name: duplicate provider %q", path, p.Name))
	}
	seen[p.Name] = true
	if n := p.kinds(); n != 1 {
		errs = append(errs, fmt.Errorf("%s: exactly one of envoyExtAuthzGrpc, rego, %s must be set, found %d", path, telemetryKindNames, n))
	}
	errs = append(errs, p.TelemetryProviders.validate(path)...)
	if g := p.EnvoyExtAuthzGRPC; g != nil && (g.Service == "" || g.Port == 0 || g.Port > 65535) {
		errs = append(errs, fmt.Errorf("%s.envoyExtAuthzGrpc: service and a port in 1-65535 are required", path))
	}
	if r := p.Rego; r != nil && r.Module == "" {
		errs = append(errs, fmt.Errorf("%s.rego.module: required", path))
	}
	return errs
}

// Duration is a time.Duration that reads and writes as a Go duration string
// ("24h", "90s") in JSON and YAML.
type Duration time.Duration

// String renders the duration like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads a duration string such as "24h".
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("duration must be a string like \"24h\", got %s", b)
	}
	v, err := time.ParseDuration(string(b[1 : len(b)-1]))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
