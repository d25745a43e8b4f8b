package audit

import (
	"time"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authn/jwks"
	"github.com/wardmesh/ward/authz/decisionlog"
	"github.com/wardmesh/ward/ca"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/telemetry/als"
)

// SchemaVersion names the JSON schema of a Report (docs/audit.md).
const SchemaVersion = "ward.audit/v1"

// Input is everything an audit looks at. Only Snapshot is required.
type Input struct {
	Snapshot *mesh.Snapshot
	// Source describes where the snapshot came from (e.g. the config dir).
	Source string
	// Rejected are objects the source refused to load.
	Rejected []string
	// CA is the CA's state, nil when no CA state was given.
	CA *ca.Status
	// Keys is the JWKS resolver of a running control plane; nil audits
	// offline, where JWKS health is reported as not checked.
	Keys authn.KeySets
	// JWKS is a running control plane's key-source state (/debug/jwks);
	// used for JWKS health when Keys is nil. Nil: offline.
	JWKS []jwks.Status
	// Decisions are decision-log entries; nil when no log was given.
	Decisions []decisionlog.Entry
	// Calls are observed call records (ward serve's access-log service:
	// calls.log or /debug/calls); nil when none were given.
	Calls []als.Record
	// Now is the audit time; ExpiryThreshold flags certificates expiring
	// sooner than Now+threshold (default 30 days).
	Now             time.Time
	ExpiryThreshold time.Duration
}

// Report is the audit model; its JSON form is the stable schema.
type Report struct {
	Schema          string           `json:"schema"`
	GeneratedAt     time.Time        `json:"generatedAt"`
	Source          string           `json:"source,omitempty"`
	Summary         Summary          `json:"summary"`
	MTLS            []MTLSWorkload   `json:"mtls"`
	Authz           []AuthzWorkload  `json:"authorization"`
	Policies        []PolicyInfo     `json:"policies"`
	JWT             []JWTWorkload    `json:"jwt"`
	Certificates    Certificates     `json:"certificates"`
	Decisions       *Decisions       `json:"decisions,omitempty"`
	Traffic         *Traffic         `json:"observedTraffic,omitempty"`
	Findings        []Finding        `json:"findings"`
	StrictReadiness []NamespaceReady `json:"strictReadiness"`
}

// Summary holds headline counts.
type Summary struct {
	Namespaces     int `json:"namespaces"`
	Workloads      int `json:"workloads"`
	Ports          int `json:"ports"`
	StrictPorts    int `json:"strictPorts"`
	PlaintextPorts int `json:"plaintextPorts"`
	NoIdentity     int `json:"workloadsWithoutIdentity"`
	// Ambient counts workloads enrolled in ambient mode (mesh identity
	// and mTLS from the node proxy, no sidecar).
	Ambient       int            `json:"ambientWorkloads"`
	OpenWorkloads int            `json:"workloadsWithoutAllowPolicy"`
	Findings      map[string]int `json:"findingsBySeverity"`
	Rejected      int            `json:"rejectedObjects"`
}

// MTLSWorkload is the effective PeerAuthentication of one workload.
type MTLSWorkload struct {
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	Identity  string `json:"identity,omitempty"`
	// HasIdentity is false for workloads not enrolled in the mesh (no
	// security.istio.io/tlsMode=istio): they can neither serve nor send
	// mTLS.
	HasIdentity bool `json:"hasIdentity"`
	// Dataplane is how the workload is in the mesh: "sidecar"
	// (security.istio.io/tlsMode=istio), "ambient"
	// (istio.io/dataplane-mode=ambient: the node proxy always uses mTLS
	// between ambient workloads; STRICT refuses plaintext callers,
	// PERMISSIVE accepts them) or "none".
	Dataplane string `json:"dataplane"`
	Mode      string `json:"mode"`
	// MeshPolicy, NamespacePolicy and WorkloadPolicy are the winning
	// PeerAuthentication at each level ("" where none applies).
	MeshPolicy      string `json:"meshPolicy,omitempty"`
	NamespacePolicy string `json:"namespacePolicy,omitempty"`
	WorkloadPolicy  string `json:"workloadPolicy,omitempty"`
	// Ignored are PeerAuthentications that matched this workload but lost
	// (shadowed by an older one, selector in the root namespace, …).
	Ignored []string   `json:"ignored,omitempty"`
	Ports   []MTLSPort `json:"ports"`
}

// MTLSPort is the effective mode on one workload port.
type MTLSPort struct {
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol"`
	Mode     string `json:"mode"`
	// From is where the mode came from: "port-level <policy>",
	// "workload <policy>", "namespace <policy>", "mesh <policy>" or
	// "default" (no policy: PERMISSIVE).
	From      string `json:"from"`
	Plaintext bool   `json:"acceptsPlaintext"`
}

// AuthzWorkload is the authorization coverage of one workload.
type AuthzWorkload struct {
	Namespace string   `json:"namespace"`
	Workload  string   `json:"workload"`
	Allow     []string `json:"allow,omitempty"`
	Deny      []string `json:"deny,omitempty"`
	Custom    []string `json:"custom,omitempty"`
	Audit     []string `json:"audit,omitempty"`
	DryRun    []string `json:"dryRun,omitempty"`
	// Open is true when no enforced ALLOW policy applies: any caller in
	// the mesh that no DENY policy stops is allowed.
	Open bool `json:"open"`
}

// PolicyInfo describes one AuthorizationPolicy.
type PolicyInfo struct {
	Policy             string `json:"policy"`
	Action             string `json:"action"`
	DryRun             bool   `json:"dryRun"`
	Rules              int    `json:"rules"`
	Workloads          int    `json:"workloads"`
	AllowAll           bool   `json:"allowAll"`
	WildcardPrincipals bool   `json:"wildcardPrincipals"`
	Invalid            string `json:"invalid,omitempty"`
}

// JWTWorkload is a workload or gateway with RequestAuthentication.
type JWTWorkload struct {
	Namespace string   `json:"namespace"`
	Workload  string   `json:"workload"`
	Policies  []string `json:"requestAuthentications"`
	Issuers   []string `json:"issuers"`
	// Required is "all" when every enforced ALLOW rule needs a request
	// principal (a request without a token is denied), "some" when only
	// some rules do, "none" otherwise (a token is verified if present but
	// a request without one is not rejected).
	Required string `json:"tokenRequired"`
	// JWKS is the key health per issuer: "ok", "unavailable" or
	// "not checked" (offline audit).
	JWKS       []IssuerHealth `json:"jwks"`
	RequiredBy []string       `json:"requiredBy,omitempty"`
}

// Certificates is the certificate inventory.
type Certificates struct {
	Available bool       `json:"available"`
	Phase     string     `json:"phase,omitempty"`
	Mode      string     `json:"mode,omitempty"`
	Roots     []CertInfo `json:"roots,omitempty"`
	Signer    *CertInfo  `json:"signer,omitempty"`
	// Issued is every unexpired certificate in the CA's issuance records,
	// soonest expiry first. It is empty (and Note says why) when no
	// records were read. The table, Markdown and HTML reports show
	// IssuedSummary and the soonest-expiring few; JSON and YAML all.
	Issued        []IssuedCertInfo `json:"issued"`
	IssuedSummary *IssuedSummary   `json:"issuedSummary,omitempty"`
	Note          string           `json:"note,omitempty"`
}

// IssuedCertInfo is one issued workload (or control-plane) certificate.
type IssuedCertInfo struct {
	SPIFFEID       string    `json:"spiffeId"`
	Namespace      string    `json:"namespace,omitempty"`
	ServiceAccount string    `json:"serviceAccount,omitempty"`
	Serial         string    `json:"serial"`
	IssuedAt       time.Time `json:"issuedAt"`
	NotAfter       time.Time `json:"notAfter"`
	ExpiresIn      string    `json:"expiresIn"`
	Expiring       bool      `json:"expiringSoon"`
	// Method is how the caller authenticated: mtls (renewal), k8s-jwt,
	// join-token, or control-plane for Ward's own serving certificate.
	Method string `json:"method,omitempty"`
}

// IssuedSummary counts the issued certificates.
type IssuedSummary struct {
	// Scope is "state" when the records cover every certificate issued
	// with this CA state (file mode), "process" when they are one
	// control-plane process's (Kubernetes mode: one replica's share).
	Scope        string           `json:"scope"`
	Total        int              `json:"total"`
	Identities   int              `json:"identities"`
	ExpiringSoon int              `json:"expiringSoon"`
	PerNamespace []NamespaceCerts `json:"perNamespace"`
}

// NamespaceCerts counts the issued certificates of one namespace.
type NamespaceCerts struct {
	Namespace    string `json:"namespace"`
	Certificates int    `json:"certificates"`
	Identities   int    `json:"identities"`
	ExpiringSoon int    `json:"expiringSoon"`
}

// CertInfo is one certificate.
type CertInfo struct {
	Subject   string    `json:"subject"`
	Serial    string    `json:"serial"`
	NotAfter  time.Time `json:"notAfter"`
	Signing   bool      `json:"signing,omitempty"`
	ExpiresIn string    `json:"expiresIn"`
	Expiring  bool      `json:"expiringSoon"`
}

// Decisions are statistics over the decision log.
type Decisions struct {
	From             time.Time      `json:"from,omitzero"`
	To               time.Time      `json:"to,omitzero"`
	Total            int            `json:"total"`
	Allowed          int            `json:"allowed"`
	Denied           int            `json:"denied"`
	Errors           int            `json:"errors"`
	WouldDeny        int            `json:"dryRunWouldDeny"`
	Audited          int            `json:"audited"`
	PerWorkload      []WorkloadStat `json:"perWorkload"`
	TopDeniedCallers []Count        `json:"topDeniedCallers"`
	TopDeniedPaths   []Count        `json:"topDeniedPaths"`
}

// WorkloadStat counts decisions for one workload.
type WorkloadStat struct {
	Workload  string `json:"workload"`
	Allowed   int    `json:"allowed"`
	Denied    int    `json:"denied"`
	WouldDeny int    `json:"dryRunWouldDeny"`
}

// Count is a value and how often it occurred.
type Count struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// Severity grades a Finding.
type Severity string

// Severities, most serious first.
const (
	High   Severity = "high"
	Medium Severity = "medium"
	Low    Severity = "low"
	Info   Severity = "info"
)

// Rank orders severities: high 3 … info 0; unknown -1.
func (s Severity) Rank() int {
	switch s {
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	case Info:
		return 0
	}
	return -1
}

// ParseSeverity parses a severity name.
func ParseSeverity(s string) (Severity, bool) {
	v := Severity(s)
	return v, v.Rank() >= 0
}

// Finding is one audit result with the controls it bears on.
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Category string   `json:"category"`
	Object   string   `json:"object"`
	Message  string   `json:"message"`
	Controls []string `json:"controls"`
}

// NamespaceReady says whether a namespace can flip to STRICT.
type NamespaceReady struct {
	Namespace string   `json:"namespace"`
	Mode      string   `json:"currentMode"`
	Ready     bool     `json:"ready"`
	Blockers  []string `json:"blockers,omitempty"`
}

// Max returns the highest severity among the findings ("" when none).
func (r *Report) Max() Severity {
	best := Severity("")
	for _, f := range r.Findings {
		if f.Severity.Rank() > best.Rank() {
			best = f.Severity
		}
	}
	return best
}

// IssuerHealth is whether keys for one issuer are available.
type IssuerHealth struct {
	Issuer string `json:"issuer"`
	Status string `json:"status"`
}
