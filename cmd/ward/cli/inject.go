package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/wardmesh/ward/mesh/schema"
	"github.com/wardmesh/ward/webhook"
)

// podTemplateKinds hold a pod template at spec.template.
var podTemplateKinds = map[string]bool{
	"Deployment": true, "StatefulSet": true, "DaemonSet": true, "ReplicaSet": true, "Job": true, "ReplicationController": true,
}

func newInjectCmd() *cobra.Command {
	var in string
	var cfg webhook.InjectConfig
	cmd := &cobra.Command{
		Use:   "inject -f FILE",
		Short: "Add Ward's sidecar to pods and pod templates in YAML, offline",
		Long: "Inject the proxy, `ward agent`, the traffic-redirection init container (unless\n" +
			"--cni), the projected service-account token and the trust bundle into every Pod\n" +
			"and workload pod template in FILE (\"-\" reads stdin), exactly as the /inject\n" +
			"webhook does, and print the result. Pods labelled sidecar.istio.io/inject=false\n" +
			"and hostNetwork pods are left alone; already injected pods are unchanged.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var data []byte
			var err error
			if in == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(in)
			}
			if err != nil {
				return fmt.Errorf("inject: read %s: %w", in, err)
			}
			out, err := injectYAML(data, cfg)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&in, "filename", "f", "", "YAML file to inject (\"-\" for stdin); required")
	f.StringVar(&cfg.ProxyImage, "proxy-image", "", "Envoy image (default envoyproxy/envoy:v1.36.0)")
	f.StringVar(&cfg.WardImage, "ward-image", "", "Ward image for the agent and init containers")
	f.BoolVar(&cfg.CNI, "cni", false, "traffic is redirected by a CNI plugin: no redirect (ward-init) init container")
	f.StringVar(&cfg.Namespace, "ward-namespace", "", "the namespace Ward runs in (default ward-system): the default --ca-addr, and outside ward-system the agent's --ca-server-id")
	f.StringVar(&cfg.CAAddr, "ca-addr", "", "Ward's certificate service (default ward.<ward-namespace>.svc:15012)")
	f.StringVar(&cfg.XDSAddr, "xds-addr", "", "Ward's xDS server (default: --ca-addr)")
	f.StringVar(&cfg.TrustDomain, "trust-domain", "", "SPIFFE trust domain (default cluster.local)")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// injectYAML injects every Pod and pod template in a multi-document YAML
// stream and renders the documents again, others unchanged.
func injectYAML(data []byte, cfg webhook.InjectConfig) (string, error) {
	docs, err := schema.SplitYAML(data)
	if err != nil {
		return "", fmt.Errorf("inject: %w", err)
	}
	var b strings.Builder
	for i, d := range docs {
		obj, ok := d.Value.(map[string]any)
		if !ok {
			return "", fmt.Errorf("inject: document %d (line %d) is not a mapping", i+1, d.Line)
		}
		if err := injectObject(obj, cfg); err != nil {
			return "", fmt.Errorf("inject: document %d (line %d): %w", i+1, d.Line, err)
		}
		y, err := yaml.Marshal(obj)
		if err != nil {
			return "", fmt.Errorf("inject: document %d: %w", i+1, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.String(), nil
}

func injectObject(obj map[string]any, cfg webhook.InjectConfig) error {
	kind, _ := obj["kind"].(string)
	switch {
	case kind == "Pod":
		return injectInto(obj, cfg)
	case podTemplateKinds[kind]:
		spec, _ := obj["spec"].(map[string]any)
		tmpl, ok := spec["template"].(map[string]any)
		if !ok {
			return fmt.Errorf("%s has no spec.template", kind)
		}
		if md, _ := obj["metadata"].(map[string]any); md != nil {
			if m, _ := tmpl["metadata"].(map[string]any); m != nil && m["namespace"] == nil {
				m["namespace"] = md["namespace"]
			}
		}
		return injectInto(tmpl, cfg)
	}
	return nil
}

// injectInto injects the pod (or pod template: metadata + spec) held in m,
// replacing its metadata and spec in place.
func injectInto(m map[string]any, cfg webhook.InjectConfig) error {
	b, err := json.Marshal(map[string]any{"metadata": m["metadata"], "spec": m["spec"]})
	if err != nil {
		return err
	}
	var pod corev1.Pod
	if err := json.Unmarshal(b, &pod); err != nil {
		return fmt.Errorf("decode pod: %w", err)
	}
	if !webhook.ShouldInject(&pod, nil, cfg).Inject {
		return nil
	}
	out, changed, err := webhook.Inject(&pod, cfg)
	if err != nil || !changed {
		return err
	}
	b, err = json.Marshal(out)
	if err != nil {
		return err
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		return err
	}
	md, _ := back["metadata"].(map[string]any)
	delete(md, "creationTimestamp")
	m["metadata"], m["spec"] = md, back["spec"]
	return nil
}
