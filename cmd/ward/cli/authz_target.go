package cli

import (
	"fmt"
	"sort"
	"strings"

	security "istio.io/api/security/v1beta1"

	"github.com/wardmesh/ward/authn"
	"github.com/wardmesh/ward/authz"
	"github.com/wardmesh/ward/mesh"
)

// workloadPort is one port a workload serves, as the services selecting it
// declare it: the target port traffic arrives on and its protocol.
type workloadPort struct {
	Port     uint32
	Protocol mesh.Protocol // ProtocolUnknown is served as TCP
	Service  string        // empty: no service declares the port
}

// workloadPorts lists the ports the services selecting w declare, keyed
// by the port the workload receives traffic on (WorkloadEntry port
// mapping, else targetPort, else the service port), sorted.
func workloadPorts(snap *mesh.Snapshot, w authz.Workload, we *mesh.Workload) []workloadPort {
	seen := map[uint32]bool{}
	var out []workloadPort
	for _, svc := range snap.ServicesForWorkload(w.Namespace, w.Labels) {
		for _, p := range svc.Ports {
			t := targetOf(p, we)
			if seen[t] {
				continue
			}
			seen[t] = true
			out = append(out, workloadPort{Port: t, Protocol: p.Protocol, Service: svc.Hostname})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

func targetOf(p mesh.Port, we *mesh.Workload) uint32 {
	if we != nil {
		if n, ok := we.Ports[p.Name]; ok && n != 0 {
			return n
		}
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// choosePort resolves --port: the flag when given (its protocol from the
// workload's services), else the workload's only port. Several ports and
// no flag is an error that lists them. A port no service declares has no
// Service: nothing says what it speaks.
func choosePort(ports []workloadPort, flag uint32, set bool) (workloadPort, error) {
	if set {
		for _, p := range ports {
			if p.Port == flag {
				return p, nil
			}
		}
		return workloadPort{Port: flag}, nil
	}
	switch len(ports) {
	case 0:
		return workloadPort{Port: defaultCheckPort}, nil
	case 1:
		return ports[0], nil
	}
	return workloadPort{}, fmt.Errorf("authz check: the workload serves several ports (%s); choose one with --port", portList(ports))
}

const defaultCheckPort = 8080

func portList(ports []workloadPort) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprintf("%d/%s", p.Port, protoName(p.Protocol))
	}
	return strings.Join(s, ", ")
}

func protoName(p mesh.Protocol) string {
	if p == mesh.ProtocolUnknown {
		return "unknown (TCP)"
	}
	return string(p)
}

// trustedIssuers returns the issuers of the RequestAuthentications that
// apply to the workload (jwksUri-only rules accept any issuer: "*").
func trustedIssuers(snap *mesh.Snapshot, w authz.Workload) []string {
	p := &mesh.Proxy{Namespace: w.Namespace, Labels: w.Labels, Type: mesh.ProxySidecar}
	var out []string
	for _, c := range authn.RequestAuthsFor(snap, p) {
		ra, _ := c.Spec.(*security.RequestAuthentication)
		for _, r := range ra.GetJwtRules() {
			iss := r.GetIssuer()
			if iss == "" {
				iss = "*"
			}
			out = append(out, iss)
		}
	}
	return out
}

// claimsVerdict says what Envoy's jwt_authn would make of a token with
// these claims: ok (a request principal), ignored (no RequestAuthentication
// applies, so the token is never verified and gives no principal), or
// rejected (an issuer the workload does not trust: 401 before authz).
type claimsVerdict int

const (
	claimsOK claimsVerdict = iota
	claimsIgnored
	claimsRejected
)

func judgeClaims(issuers []string, claims map[string]any) (claimsVerdict, string) {
	if len(issuers) == 0 {
		return claimsIgnored, "no RequestAuthentication applies to the workload: the token is not verified and gives no request principal"
	}
	iss, _ := claims["iss"].(string)
	for _, t := range issuers {
		if t == "*" || t == iss {
			return claimsOK, ""
		}
	}
	return claimsRejected, fmt.Sprintf("issuer %q is not trusted by the workload's RequestAuthentication (trusted: %s): jwt_authn rejects the request with 401", iss, strings.Join(issuers, ", "))
}
