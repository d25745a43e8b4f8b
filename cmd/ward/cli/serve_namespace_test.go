package cli

import (
	"slices"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/mesh"
)

// TestServeFollowsKubeNamespace: in Kubernetes mode the control plane's
// identity, its serving certificate's names and the ext_authz server SAN
// proxies pin follow --kube-namespace and --kube-service; the namespace
// defaults to $POD_NAMESPACE.
func TestServeFollowsKubeNamespace(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "mesh-ctl")
	cmd := newServeCmd()
	if def := cmd.Flags().Lookup("kube-namespace").DefValue; def != "mesh-ctl" {
		t.Errorf("--kube-namespace defaults to %q with POD_NAMESPACE=mesh-ctl", def)
	}
	k := kubeOptions{enabled: true, namespace: "mesh-ctl", service: "ward"}
	if got, want := k.serverIdentity(), (mesh.Identity{Namespace: "mesh-ctl", ServiceAccount: "ward"}); got != want {
		t.Errorf("server identity %+v, want %+v", got, want)
	}
	names := k.serverNames([]string{"127.0.0.1", "ward.mesh-ctl.svc"})
	if want := []string{"127.0.0.1", "ward.mesh-ctl.svc", "ward.mesh-ctl.svc.cluster.local"}; !slices.Equal(names, want) {
		t.Errorf("server names %q, want %q", names, want)
	}
	tgt, err := extAuthzTarget(serveOptions{authzReach: "10.0.0.1:15012", authzTLS: extAuthzTLSAuto, secureAddr: ":15012", kube: k})
	if err != nil {
		t.Fatal(err)
	}
	if got := tgt.ServerSAN(mesh.MeshConfig{TrustDomain: "example.org"}); got != "spiffe://example.org/ns/mesh-ctl/sa/ward" {
		t.Errorf("ext_authz server SAN %s", got)
	}
	t.Setenv("POD_NAMESPACE", "")
	if def := newServeCmd().Flags().Lookup("kube-namespace").DefValue; def != "ward-system" {
		t.Errorf("--kube-namespace defaults to %q without POD_NAMESPACE", def)
	}
}

// TestNodeNamespaceFollowsServerID: a node proxy of a control plane in
// mesh-ctl asks for .../ns/mesh-ctl/sa/ward-node/node/<node>, the
// identity that CA issues nodes.
func TestNodeNamespaceFollowsServerID(t *testing.T) {
	for id, want := range map[string]string{
		"spiffe://cluster.local/ns/mesh-ctl/sa/ward":    "mesh-ctl",
		"spiffe://cluster.local/ns/ward-system/sa/ward": "ward-system",
		"spiffe://cluster.local/control-plane":          "ward-system",
	} {
		if got := nodeNamespace(spiffeid.RequireFromString(id)); got != want {
			t.Errorf("nodeNamespace(%s) = %q, want %q", id, got, want)
		}
	}
}
