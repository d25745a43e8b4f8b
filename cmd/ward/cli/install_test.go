package cli

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/wardmesh/ward/deploy"
)

// Every argument the chart gives the control plane is a `ward serve` flag
// with the value the values asked for; in particular the pinned image
// reaches the injector (--ward-image).
func TestDeploymentArgsAreServeFlags(t *testing.T) {
	const pinned = "registry.example/ward@sha256:3333333333333333333333333333333333333333333333333333333333333333"
	v, err := deploy.Default().Merge([]byte(`
images:
  ward: {repository: registry.example/ward, tag: v1, digest: "sha256:3333333333333333333333333333333333333333333333333333333333333333"}
  proxy: envoyproxy/envoy:v1.36.1
debug: {tlsPort: 15015, operators: [ops/admin]}
xds: {plaintextPort: 15010}
`))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := deploy.Render(v, "")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := deploy.Objects(ms)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			args, _, _ = unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
		}
	}
	if len(args) < 2 || args[0] != "serve" {
		t.Fatalf("deployment args %v, want serve ...", args)
	}
	cmd := newServeCmd()
	if err := cmd.Flags().Parse(args[1:]); err != nil {
		t.Fatalf("ward serve rejects the Deployment's arguments: %v", err)
	}
	for flag, want := range map[string]string{
		"ward-image":     pinned,
		"proxy-image":    "envoyproxy/envoy:v1.36.1",
		"kube":           "true",
		"debug-tls-addr": ":15015",
		"debug-operator": "[ops/admin]",
		"xds-addr":       ":15010",
		"ca-plugin-dir":  "/etc/cacerts",
	} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
}

// The chart's ward-node DaemonSet (ambient.enabled) runs `ward node` with
// flags it accepts, enrolling with the projected token it mounts.
func TestDaemonSetArgsAreNodeFlags(t *testing.T) {
	v, err := deploy.Default().Merge([]byte("ambient: {enabled: true}\ntrustDomain: prod.example.org"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := deploy.Render(v, "")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := deploy.Objects(ms)
	if err != nil {
		t.Fatal(err)
	}
	var args, install []string
	for _, o := range objs {
		if o.GetKind() == "DaemonSet" && o.GetName() == "ward-node" {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			args, _, _ = unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
			ics, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "initContainers")
			if len(ics) == 1 {
				install, _, _ = unstructured.NestedStringSlice(ics[0].(map[string]any), "args")
			}
		}
	}
	// The init container installs the CNI plugin with flags `ward cni install` takes.
	if len(install) < 2 || install[0] != "cni" || install[1] != "install" {
		t.Fatalf("install-cni args %v, want cni install ...", install)
	}
	ic := newCNIInstallCmd()
	if err := ic.Flags().Parse(install[2:]); err != nil {
		t.Fatalf("ward cni install rejects the init container's arguments: %v", err)
	}
	if got := ic.Flags().Lookup("exclude-namespaces").Value.String(); got != "[kube-system,ward-system]" {
		t.Errorf("--exclude-namespaces = %s, want kube-system and the control plane's namespace", got)
	}
	if len(args) < 2 || args[0] != "node" {
		t.Fatalf("daemonset args %v, want node ...", args)
	}
	cmd := newNodeCmd()
	if err := cmd.Flags().Parse(args[1:]); err != nil {
		t.Fatalf("ward node rejects the DaemonSet's arguments: %v", err)
	}
	for flag, want := range map[string]string{
		"name":         "$(NODE_NAME)",
		"token-file":   "/var/run/secrets/ward/token",
		"ca-root":      "/var/run/ward/ca/root-cert.pem",
		"xds-addr":     "ward.ward-system.svc:15012",
		"ca-addr":      "ward.ward-system.svc:15012",
		"trust-domain": "prod.example.org",
		"cni-socket":   "/var/run/ward-cni/cni.sock",
	} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
}
