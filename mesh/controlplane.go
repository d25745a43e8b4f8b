package mesh

// The control plane's default identity: the service account its serving
// certificate names (spiffe://<td>/ns/ward-system/sa/ward). Agents pin it
// when they reach the CA and xDS, Envoy and proxyless workloads when they
// reach ext_authz.
const (
	ControlPlaneNamespace      = "ward-system"
	ControlPlaneServiceAccount = "ward"
)

// ControlPlaneIdentity is the control plane's default identity in trust
// domain td.
func ControlPlaneIdentity(td string) Identity {
	return Identity{TrustDomain: td, Namespace: ControlPlaneNamespace, ServiceAccount: ControlPlaneServiceAccount}
}
