package analyze

import (
	"fmt"
	"sort"
	"strings"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/telemetry"
	"github.com/wardmesh/ward/xds/translate"
)

// Severity grades a Diagnostic.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Code is a stable analyzer code; its meaning never changes.
type Code struct {
	ID   string `json:"code"`
	Name string `json:"name"`
}

// The analyzer codes. WA00xx: the config source; WA01xx: references;
// WA02xx: selectors; WA03xx: authorization; WA04xx: authentication;
// WA05xx: telemetry.
var (
	ConfigRejected     = Code{"WA0001", "ConfigRejected"}
	DocumentIgnored    = Code{"WA0002", "DocumentIgnored"}
	ConfigWarning      = Code{"WA0003", "ConfigWarning"}
	StricterThanIstio  = Code{"WA0004", "StricterThanIstio"}
	NotImplemented     = Code{"WA0005", "FieldNotImplemented"}
	HostNotFound       = Code{"WA0101", "ReferencedHostNotFound"}
	SubsetNotFound     = Code{"WA0102", "ReferencedSubsetNotFound"}
	ClaimRoutingNoRA   = Code{"WA0103", "JWTClaimRoutingWithoutRequestAuthentication"}
	DRTLSWithoutSAN    = Code{"WA0104", "DestinationRuleTLSWithoutSAN"}
	GatewayNotFound    = Code{"WA0105", "ReferencedGatewayNotFound"}
	ConflictingVSHosts = Code{"WA0106", "ConflictingVirtualServiceHosts"}
	SubsetNoWorkload   = Code{"WA0107", "SubsetSelectsNoWorkload"}
	LocalityNoEffect   = Code{"WA0108", "LocalityFailoverHasNoEffect"}
	SelectorNoMatch    = Code{"WA0201", "SelectorMatchesNothing"}
	AuthzInvalid       = Code{"WA0301", "AuthorizationPolicyDeniesAll"}
	AuthzHTTPOnTCP     = Code{"WA0302", "AuthorizationPolicyHTTPFieldsOnTCPPort"}
	MethodTypo         = Code{"WA0303", "AuthorizationPolicyMethodLooksLikeTypo"}
	PeerShadowed       = Code{"WA0401", string(authn.ReasonShadowed)}
	PeerRootSelector   = Code{"WA0402", string(authn.ReasonRootSelector)}
	PeerPortLevel      = Code{"WA0403", string(authn.ReasonPortLevelWithoutSelector)}
	GRPCPermissive     = Code{"WA0404", string(authn.ReasonGRPCPermissive)}
	GRPCTLSProfile     = Code{"WA0405", string(authn.ReasonGRPCProfile)}
	JWKSUnavailable    = Code{"WA0406", string(authn.ReasonJWKSUnavailable)}
	JWKSStale          = Code{"WA0407", string(authn.ReasonJWKSStale)}
	JWKSInvalid        = Code{"WA0408", string(authn.ReasonJWKSInvalid)}
	JWTOnTCP           = Code{"WA0409", string(authn.ReasonHTTPOnlyOnTCP)}
	TargetRefIgnored   = Code{"WA0410", string(authn.ReasonTargetRefIgnored)}
	MixedIdentity      = Code{"WA0411", string(authn.ReasonMixedIdentity)}
	TelemetryProvider  = Code{"WA0501", "TelemetryProviderUnavailable"}
)

// Codes lists every code, in order.
func Codes() []Code {
	return []Code{ConfigRejected, DocumentIgnored, ConfigWarning, StricterThanIstio, NotImplemented, HostNotFound, SubsetNotFound, ClaimRoutingNoRA, DRTLSWithoutSAN, GatewayNotFound, ConflictingVSHosts, SubsetNoWorkload, LocalityNoEffect,
		SelectorNoMatch, AuthzInvalid, AuthzHTTPOnTCP, MethodTypo, PeerShadowed, PeerRootSelector, PeerPortLevel, GRPCPermissive, GRPCTLSProfile,
		JWKSUnavailable, JWKSStale, JWKSInvalid, JWTOnTCP, TargetRefIgnored, MixedIdentity, TelemetryProvider}
}

var authnCodes = map[authn.Reason]Code{}

func init() {
	for _, c := range Codes() {
		if strings.HasPrefix(c.ID, "WA04") {
			authnCodes[authn.Reason(c.Name)] = c
		}
	}
}

// Diagnostic is one analyzer result.
type Diagnostic struct {
	Code
	Severity Severity `json:"severity"`
	Object   string   `json:"object"`
	Message  string   `json:"message"`
}

func (d Diagnostic) String() string {
	return fmt.Sprintf("%s %s %s %s: %s", d.Severity, d.ID, d.Name, d.Object, d.Message)
}

// Input is what the analyzers look at.
type Input struct {
	Snapshot *mesh.Snapshot
	// Rejected and Ignored come from the config source (mesh/file).
	Rejected []string
	Ignored  []string
	// Keys is the JWKS resolver of a running control plane; nil (offline)
	// skips key-availability diagnostics, which only a resolver can know.
	Keys authn.KeySets
	// Proxies are the proxies whose per-proxy authn findings to report
	// (e.g. the connected ones of a running control plane); nil means the
	// workloads the config declares proxyless (DeclaredProxies).
	Proxies []*mesh.Proxy
}

// Run runs every analyzer, sorted by code, object and message.
func Run(in Input) []Diagnostic {
	a := &analyzer{snap: in.Snapshot, ix: translate.NewIndex(in.Snapshot), seen: map[Diagnostic]bool{}}
	for _, r := range in.Rejected {
		a.add(ConfigRejected, Error, "config", r)
	}
	for _, r := range in.Ignored {
		a.add(DocumentIgnored, Info, "config", r)
	}
	a.schemaWarnings()
	a.virtualServices()
	a.destinationRules()
	a.conflictingHosts()
	a.selectors()
	a.authz()
	a.authn(in.Keys)
	a.telemetry()
	a.perProxy(in.Proxies)
	sort.SliceStable(a.out, func(i, j int) bool {
		x, y := a.out[i], a.out[j]
		if x.ID != y.ID {
			return x.ID < y.ID
		}
		if x.Object != y.Object {
			return x.Object < y.Object
		}
		return x.Message < y.Message
	})
	return a.out
}

type analyzer struct {
	snap *mesh.Snapshot
	ix   *translate.Index
	out  []Diagnostic
	seen map[Diagnostic]bool
}

// add records a diagnostic once (per-proxy analyzers find the same
// problem through every proxy that sees it).
func (a *analyzer) add(c Code, s Severity, obj, msg string) {
	d := Diagnostic{Code: c, Severity: s, Object: obj, Message: msg}
	if !a.seen[d] {
		a.seen[d] = true
		a.out = append(a.out, d)
	}
}

// telemetry reports provider references the proxies cannot honour (their
// logs or spans would be missing); the mesh config's own are reported
// under "MeshConfig".
func (a *analyzer) telemetry() {
	for _, f := range telemetry.Analyze(a.snap) {
		obj := "MeshConfig"
		if f.Object != (mesh.Key{}) {
			obj = f.Object.String()
		}
		a.add(TelemetryProvider, Warning, obj, f.Message)
	}
}

func (a *analyzer) authz() {
	for _, f := range authz.Analyze(a.snap) {
		if f.Severity == authz.SeverityError {
			a.add(AuthzInvalid, Error, f.Key.String(), f.Message)
		} else {
			a.add(AuthzHTTPOnTCP, Warning, f.Key.String(), f.Message)
		}
	}
}

func (a *analyzer) authn(keys authn.KeySets) {
	var fs []authn.Finding
	for _, f := range authn.Findings(a.snap, keys) {
		if keys == nil && (f.Reason == authn.ReasonJWKSUnavailable || f.Reason == authn.ReasonJWKSStale) {
			continue
		}
		fs = append(fs, f)
	}
	a.addAuthn(fs)
}

// addAuthn reports authn findings under their codes.
func (a *analyzer) addAuthn(fs []authn.Finding) {
	for _, f := range fs {
		c, ok := authnCodes[f.Reason]
		if !ok {
			c = Code{"WA0400", string(f.Reason)} // an authn reason without its own code yet
		}
		s := map[authn.Severity]Severity{authn.SeverityError: Error, authn.SeverityWarning: Warning, authn.SeverityInfo: Info}[f.Severity]
		a.add(c, s, f.Object.String(), f.Message)
	}
}
