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
		{"wildcard in the middle", `rules: [{from: [{source: {principals: ["a*b"]}}]}]`, []string{"spec.rules[0].from[0].source.principals[0]"}},
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
		{"sa shape", `rules: [{from: [{source: {serviceAccounts: ["ab"]}}]}]`, []string{"want <namespace>/<service-account>"}},
		{"two at once", `rules: [{to: [{operation: {methods: ["*a*"], ports: ["x"]}}]}]`, []string{"methods[0]", "ports[0]"}},
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
