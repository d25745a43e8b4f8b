package authn

import (
	"fmt"
	"sort"

	"github.com/wardmesh/ward/mesh"
)

// Severity grades a Finding.
type Severity string

// Severities, from least to most serious.
const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Reason is a stable, machine-readable code for a Finding.
type Reason string

// Finding reasons. Each names something Istio would do silently.
const (
	// ReasonShadowed: another policy at the same level is older and wins.
	ReasonShadowed Reason = "ShadowedByOlderPolicy"
	// ReasonRootSelector: a PeerAuthentication with a selector in the root
	// namespace is ignored.
	ReasonRootSelector Reason = "SelectorInRootNamespace"
	// ReasonPortLevelWithoutSelector: portLevelMtls only applies to
	// workload-level policies.
	ReasonPortLevelWithoutSelector Reason = "PortLevelMtlsWithoutSelector"
	// ReasonGRPCPermissive: proxyless gRPC cannot accept both plaintext
	// and mTLS on one port.
	ReasonGRPCPermissive Reason = "PermissiveNotExpressibleForGRPC"
	// ReasonGRPCProfile: grpc-go rejects tls_params, so the TLS profile is
	// the Go runtime's.
	ReasonGRPCProfile Reason = "TLSProfileNotExpressibleForGRPC"
	// ReasonJWKSUnavailable: no keys for an issuer; tokens are rejected.
	ReasonJWKSUnavailable Reason = "JWKSUnavailable"
	// ReasonJWKSStale: refreshing an issuer's keys fails; the last good
	// keys are still served.
	ReasonJWKSStale Reason = "JWKSRefreshFailing"
	// ReasonJWKSInvalid: an inline jwks does not parse.
	ReasonJWKSInvalid Reason = "JWKSInvalid"
	// ReasonHTTPOnlyOnTCP: JWT rules select a workload port that is not HTTP.
	ReasonHTTPOnlyOnTCP Reason = "HTTPOnlyFieldsOnTCPPort"
	// ReasonTargetRefIgnored: a targetRef that cannot apply to this proxy.
	ReasonTargetRefIgnored Reason = "TargetRefIgnored"
	// ReasonMixedIdentity: a proxyless cluster mixes endpoints with and
	// without a mesh identity, so it is sent in plaintext.
	ReasonMixedIdentity Reason = "MixedEndpointIdentity"
)

// Finding is something about a policy that an operator should see in the
// object's status, /debug output and the audit: never a silent drop.
type Finding struct {
	Object   mesh.Key `json:"object"`
	Severity Severity `json:"severity"`
	Reason   Reason   `json:"reason"`
	Message  string   `json:"message"`
}

// String renders "Kind ns/name: [reason] message".
func (f Finding) String() string {
	return fmt.Sprintf("%s: [%s] %s", f.Object, f.Reason, f.Message)
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Object != b.Object {
			return a.Object.String() < b.Object.String()
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return a.Message < b.Message
	})
}

func dedupFindings(fs []Finding) []Finding {
	sortFindings(fs)
	out := fs[:0]
	for i, f := range fs {
		if i > 0 && f == fs[i-1] {
			continue
		}
		out = append(out, f)
	}
	return out
}
