package authn

import (
	"fmt"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/mesh"
)

// KeyErrors is optionally implemented by a KeySets to explain why an
// issuer's keys are unavailable (authn/jwks.Resolver does).
type KeyErrors interface {
	LastError(issuer, jwksURI string) string
}

// Findings is everything authn has to say about a snapshot's
// authentication policies, for the objects' status, /debug and the audit:
// PeerFindings plus RequestAuthFindings.
func Findings(snap *mesh.Snapshot, keys KeySets) []Finding {
	return dedupFindings(append(PeerFindings(snap), RequestAuthFindings(snap, keys)...))
}

// RequestAuthFindings reports per RequestAuthentication: rules whose keys
// are unavailable (tokens for them are rejected) or invalid, targetRefs
// that cannot apply, and ports of selected workloads that are not HTTP,
// where jwtRules have no meaning and are not enforced.
func RequestAuthFindings(snap *mesh.Snapshot, keys KeySets) []Finding {
	var out []Finding
	for _, c := range snap.All(mesh.KindRequestAuthentication) {
		out = append(out, keyFindings(c, keys)...)
		out = append(out, targetRefFindings(c)...)
		out = append(out, tcpPortFindings(snap, c)...)
	}
	return dedupFindings(out)
}

func keyFindings(c *mesh.Config, keys KeySets) []Finding {
	ra, _ := c.Spec.(*security.RequestAuthentication)
	var out []Finding
	for i, r := range ra.GetJwtRules() {
		if f, ok := staleFinding(c, i, r, keys); ok {
			out = append(out, f)
		}
		_, fs := ruleKeys(jwtRule{src: c.Key(), idx: i, rule: r}, keys)
		for _, f := range fs {
			if ke, ok := keys.(KeyErrors); ok && f.Reason == ReasonJWKSUnavailable {
				if e := ke.LastError(r.GetIssuer(), r.GetJwksUri()); e != "" {
					f.Message += "; last error: " + e
				}
			}
			out = append(out, f)
		}
	}
	return out
}

func targetRefFindings(c *mesh.Config) []Finding {
	ra, _ := c.Spec.(*security.RequestAuthentication)
	var out []Finding
	for _, r := range targetRefs(ra) {
		if !gatewayRef(r) {
			out = append(out, Finding{Object: c.Key(), Severity: SeverityWarning, Reason: ReasonTargetRefIgnored,
				Message: fmt.Sprintf("targetRef %s %s/%s is ignored: Ward applies targetRefs to Gateways only; use a selector for workloads", r.GetKind(), r.GetGroup(), r.GetName())})
		}
	}
	return out
}

// tcpPortFindings lists non-HTTP service ports of the workloads c selects.
func tcpPortFindings(snap *mesh.Snapshot, c *mesh.Config) []Finding {
	ra, _ := c.Spec.(*security.RequestAuthentication)
	if len(targetRefs(ra)) > 0 || len(ra.GetJwtRules()) == 0 {
		return nil
	}
	sel, _ := mesh.SelectorOf(ra)
	root := snap.Mesh().RootNamespace
	seen := map[string]bool{}
	var out []Finding
	for _, w := range snap.Workloads() {
		if (c.Namespace != root && w.Namespace != c.Namespace) || !sel.Matches(w.Labels) {
			continue
		}
		for _, svc := range snap.ServicesForWorkload(w.Namespace, w.Labels) {
			for _, p := range svc.Ports {
				key := fmt.Sprintf("%s:%d", svc.Hostname, p.Number)
				if p.Protocol.IsHTTP() || seen[key] {
					continue
				}
				seen[key] = true
				out = append(out, Finding{Object: c.Key(), Severity: SeverityInfo, Reason: ReasonHTTPOnlyOnTCP,
					Message: fmt.Sprintf("service %s port %d (%s) is not HTTP: jwtRules have no meaning there and are not enforced; an AuthorizationPolicy requiring requestPrincipals denies that port", svc.Hostname, p.Number, protoName(p.Protocol))})
			}
		}
	}
	return out
}

// staleFinding reports a rule whose keys are served from the last good
// fetch while refreshing them fails.
func staleFinding(c *mesh.Config, i int, r *security.JWTRule, keys KeySets) (Finding, bool) {
	ke, ok := keys.(KeyErrors)
	if !ok || r.GetJwks() != "" {
		return Finding{}, false
	}
	if _, have := keys.JWKS(r.GetIssuer(), r.GetJwksUri()); !have {
		return Finding{}, false
	}
	e := ke.LastError(r.GetIssuer(), r.GetJwksUri())
	if e == "" {
		return Finding{}, false
	}
	return Finding{Object: c.Key(), Severity: SeverityWarning, Reason: ReasonJWKSStale,
		Message: fmt.Sprintf("jwtRules[%d] (%s): refreshing keys fails, the last good keys are still served: %s", i, RuleLabel(r), e)}, true
}
