package authz

import (
	"errors"
	"strings"
	"testing"
)

func TestValidationNamesEveryViolation(t *testing.T) {
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"empty method", `rules: [{to: [{operation: {methods: [""]}}]}]`, []string{`spec.rules[0].to[0].operation.methods[0]: empty value`}},
		{"trust domain wildcard in the middle", `rules: [{from: [{source: {trustDomains: ["a*b"]}}]}]`, []string{"spec.rules[0].from[0].source.trustDomains[0]", "only allowed at the start or end"}},
		{"trust domain condition with slash", `rules: [{when: [{key: source.trustDomain, values: ["td/ns"]}]}]`, []string{"spec.rules[0].when[0].values[0]", "must not contain '/'"}},
		{"envoy filter metadata", `rules: [{when: [{key: "experimental.envoy.filters.a.b[c]", values: ["x"]}]}]`, []string{"spec.rules[0].when[0].key", "not supported by Ward"}},
		{"bad cidr", `rules: [{from: [{source: {ipBlocks: ["10.0.0.0/99"]}}]}]`, []string{"spec.rules[0].from[0].source.ipBlocks[0]"}},
		{"bad port", `rules: [{to: [{operation: {ports: ["http"]}}]}]`, []string{"spec.rules[0].to[0].operation.ports[0]"}},
		{"empty source", `rules: [{from: [{source: {}}]}]`, []string{"spec.rules[0].from[0].source: must not be empty"}},
		{"unknown when key", `rules: [{when: [{key: request.bogus, values: ["x"]}]}]`, []string{"spec.rules[0].when[0].key: unknown attribute"}},
		{"when without values", `rules: [{when: [{key: source.ip}]}]`, []string{"spec.rules[0].when[0]: values or notValues must be set"}},
		{"custom without provider", `action: CUSTOM`, []string{"spec.provider.name: required"}},
		{"provider on allow", `provider: {name: x}`, []string{"spec.provider: only allowed with action CUSTOM"}},
		{"template not last", `rules: [{to: [{operation: {paths: ["/a/{**}/{*}"]}}]}]`, []string{"must be the last operator"}},
		{"template mixed", `rules: [{to: [{operation: {paths: ["/a/{*}/b*"]}}]}]`, []string{"cannot mix"}},
		{"sa with principals", `rules: [{from: [{source: {serviceAccounts: ["a/b"], principals: ["x"]}}]}]`, []string{"cannot be set with principals or namespaces"}},
		{"sa shape", `rules: [{from: [{source: {serviceAccounts: ["a/b/c"]}}]}]`, []string{"want <namespace>/<name> or <name>"}},
		{"sa wildcard", `rules: [{when: [{key: source.serviceAccount, values: ["a/*"]}]}]`, []string{"spec.rules[0].when[0].values[0]", "no form of wildcard"}},
		{"two at once", `rules: [{to: [{operation: {methods: [""], ports: ["x"]}}]}]`, []string{"methods[0]", "ports[0]"}},
		{"bad claim key", `rules: [{when: [{key: "request.auth.claims[]", values: ["x"]}]}]`, []string{"invalid claim key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfgs := parseConfigs(t, "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: prod}\nspec:\n  "+strings.ReplaceAll(tc.spec, "\n", "\n  ")+"\n")
			_, err := FromConfig(cfgs[0])
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "AuthorizationPolicy prod/p: ") {
				t.Errorf("error %q does not name the object", err)
			}
		})
	}
}

// TestIstioPatternsAccepted: values Istio's validation accepts compile
// (they used to fail the workload closed), with Istio's meaning.
func TestIstioPatternsAccepted(t *testing.T) {
	cfgs := parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: prod}
spec:
  rules:
  - from: [{source: {principals: ["a*b", "*x*"], namespaces: ["t-*-p"]}}]
  - from: [{source: {serviceAccounts: ["web"], notServiceAccounts: ["other/web"]}}]
    when: [{key: source.serviceAccount, values: ["robot"]}, {key: source.trustDomain, values: ["*.local"]}]
`)
	p, err := FromConfig(cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	got := p.Rules[1].From[0][0].Values[0] + " " + p.Rules[1].From[0][1].Values[0] + " " + p.Rules[1].When[0].Values[0]
	if want := "prod/web other/web prod/robot"; got != want {
		t.Errorf("service accounts = %q, want %q", got, want)
	}
}

func TestWarningsForHTTPFieldsOnTCP(t *testing.T) {
	cfgs := parseConfigs(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: ns}
spec:
  rules: [{to: [{operation: {methods: ["GET"]}}]}, {from: [{source: {namespaces: ["a"]}}]}]
`)
	p, err := FromConfig(cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "ns[ns]-policy[p]-rule[0]") || !strings.Contains(p.Warnings[0], "dropped") {
		t.Errorf("warnings = %q", p.Warnings)
	}
}
