package kube_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardmesh/ward/kube/kubetest"
)

// deploy/ applies cleanly to a real API server (server-side dry run for
// the parts that would start serving), and its RBAC grants Ward what it
// needs and not more.
func TestDeployManifests(t *testing.T) {
	env := kubetest.Require(t)
	deploy := filepath.Join(env.Root, "deploy")
	env.Kubectl(t, "", "apply", "-f", filepath.Join(deploy, "namespace.yaml"), "-f", filepath.Join(deploy, "crds.yaml"), "-f", filepath.Join(deploy, "rbac.yaml"))
	env.Kubectl(t, "", "apply", "-k", deploy, "--dry-run=server")

	const sa = "system:serviceaccount:ward-system:ward"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "authorizationpolicies.security.istio.io", "-A"}, "yes"},
		{[]string{"update", "virtualservices.networking.istio.io", "--subresource", "status", "-n", "shop"}, "yes"},
		{[]string{"update", "workloadgroups.networking.istio.io", "--subresource", "status", "-n", "shop"}, "yes"},
		{[]string{"update", "requestauthentications.security.istio.io", "--subresource", "status", "-n", "shop"}, "yes"},
		{[]string{"update", "virtualservices.networking.istio.io", "-n", "shop"}, "no"},
		{[]string{"watch", "endpointslices.discovery.k8s.io", "-A"}, "yes"},
		{[]string{"create", "tokenreviews.authentication.k8s.io"}, "yes"},
		{[]string{"update", "configmaps/ward-ca-root-cert", "-n", "shop"}, "yes"},
		{[]string{"update", "configmaps/app-config", "-n", "shop"}, "no"},
		{[]string{"get", "secrets/ward-ca", "-n", "ward-system"}, "yes"},
		{[]string{"update", "secrets/ward-ca", "-n", "ward-system"}, "yes"},
		{[]string{"get", "secrets/other", "-n", "ward-system"}, "no"},
		{[]string{"get", "secrets", "-n", "shop"}, "no"},
		{[]string{"update", "leases.coordination.k8s.io/ward-leader", "-n", "ward-system"}, "yes"},
		{[]string{"update", "leases.coordination.k8s.io/other", "-n", "ward-system"}, "no"},
		{[]string{"update", "mutatingwebhookconfigurations/ward-sidecar-injector"}, "yes"},
		{[]string{"update", "mutatingwebhookconfigurations/someone-else"}, "no"},
		{[]string{"delete", "pods", "-n", "shop"}, "no"},
	} {
		out, _ := env.KubectlErr("", append([]string{"auth", "can-i", "--as", sa}, tc.args...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n") // after any warnings
		if got := lines[len(lines)-1]; got != tc.want {
			t.Errorf("can-i %s: %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}
