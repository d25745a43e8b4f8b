package recommend

import (
	"bytes"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// Annotations Ward writes on a recommended policy.
const (
	AnnotationDryRun    = "istio.io/dry-run"
	AnnotationEvidence  = "recommend.wardmesh.io/evidence"
	AnnotationWorkloads = "recommend.wardmesh.io/workloads"
)

type policyDoc struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   metadata `json:"metadata"`
	Spec       spec     `json:"spec"`
}

type metadata struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type spec struct {
	Selector *selector `json:"selector,omitempty"`
	Action   string    `json:"action"`
	Rules    []ruleDoc `json:"rules"`
}

type selector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type ruleDoc struct {
	From []fromDoc `json:"from,omitempty"`
	To   []toDoc   `json:"to,omitempty"`
}

type fromDoc struct {
	Source sourceDoc `json:"source"`
}

type sourceDoc struct {
	Principals []string `json:"principals,omitempty"`
	IPBlocks   []string `json:"ipBlocks,omitempty"`
}

type toDoc struct {
	Operation opDoc `json:"operation"`
}

type opDoc struct {
	Ports   []string `json:"ports,omitempty"`
	Methods []string `json:"methods,omitempty"`
	Paths   []string `json:"paths,omitempty"`
}

// YAML renders the result as a stream of AuthorizationPolicies
// (security.istio.io/v1), each preceded by comments giving the evidence
// of its rules, after a header with the window and the rollout plan.
func (r Result) YAML(dryRun bool) ([]byte, error) {
	var b bytes.Buffer
	r.header(&b, dryRun)
	for _, p := range r.Policies {
		out, err := yaml.Marshal(p.doc(dryRun))
		if err != nil {
			return nil, fmt.Errorf("recommend: render %s/%s: %w", p.Namespace, p.Name, err)
		}
		b.WriteString("---\n")
		for i, rule := range p.Rules {
			fmt.Fprintf(&b, "# rules[%d]: %s\n", i, rule.Evidence)
		}
		b.Write(out)
	}
	return b.Bytes(), nil
}

func (r Result) header(b *bytes.Buffer, dryRun bool) {
	fmt.Fprintf(b, "# Recommended by `ward authz recommend` from observed calls.\n")
	if r.Window.Calls > 0 {
		fmt.Fprintf(b, "# Evidence: %s; %d denied (not allowed here), %d without a destination workload (skipped).\n", r.Window, r.Denied, r.Skipped)
	}
	fmt.Fprintf(b, "# Rollout:\n")
	fmt.Fprintf(b, "#   1. apply these in dry-run (%s: \"true\"): nothing is enforced, would-be denials are logged;\n", AnnotationDryRun)
	fmt.Fprintf(b, "#   2. watch the decision log / `ward audit` for dry-run denials over a full traffic cycle (e.g. a week);\n")
	fmt.Fprintf(b, "#   3. enforce: remove the %s annotation (or rerun with --enforce) once none were seen.\n", AnnotationDryRun)
	if !dryRun {
		fmt.Fprintf(b, "# These policies ENFORCE (step 3): calls not seen in the window will be denied.\n")
	}
}

func (p Policy) doc(dryRun bool) policyDoc {
	d := policyDoc{
		APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy",
		Metadata: metadata{Name: p.Name, Namespace: p.Namespace, Annotations: map[string]string{
			AnnotationEvidence:  p.Evidence.String(),
			AnnotationWorkloads: strings.Join(p.Workloads, ","),
		}},
		Spec: spec{Action: "ALLOW"},
	}
	if dryRun {
		d.Metadata.Annotations[AnnotationDryRun] = "true"
	}
	if len(p.Selector) > 0 {
		d.Spec.Selector = &selector{MatchLabels: p.Selector}
	}
	for _, r := range p.Rules {
		d.Spec.Rules = append(d.Spec.Rules, r.doc())
	}
	return d
}

func (r Rule) doc() ruleDoc {
	var d ruleDoc
	if !r.AnySource {
		if len(r.Principals) > 0 {
			d.From = append(d.From, fromDoc{Source: sourceDoc{Principals: istioPrincipals(r.Principals)}})
		}
		if len(r.IPBlocks) > 0 {
			d.From = append(d.From, fromDoc{Source: sourceDoc{IPBlocks: r.IPBlocks}})
		}
	}
	for _, o := range r.To {
		d.To = append(d.To, toDoc{Operation: opDoc(o)})
	}
	return d
}

// istioPrincipals writes SPIFFE IDs in Istio's principal form, without
// the scheme (Istio matches "spiffe://" + principal, so a principal with
// the scheme would never match there; Ward accepts both).
func istioPrincipals(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.TrimPrefix(id, "spiffe://")
	}
	return out
}
