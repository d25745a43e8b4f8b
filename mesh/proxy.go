package mesh

// ProxyType is the kind of data plane a proxy is.
type ProxyType string

// Proxy types.
const (
	ProxySidecar ProxyType = "sidecar" // Envoy beside a workload
	ProxyRouter  ProxyType = "router"  // Envoy as an ingress/egress gateway
	ProxyGRPC    ProxyType = "grpc"    // proxyless grpc-go
)

// Proxy is a connected data plane as the translators see it: who it is and
// where it runs. The xds package fills it from the Envoy node.
type Proxy struct {
	ID             string
	Type           ProxyType
	Namespace      string
	Labels         Labels
	ServiceAccount string
	IPs            []string
	// Metadata holds the remaining node metadata as strings.
	Metadata map[string]string
}

// Identity returns the proxy's mesh identity in trust domain td.
func (p *Proxy) Identity(td string) Identity {
	sa := p.ServiceAccount
	if sa == "" {
		sa = DefaultServiceAccount
	}
	return Identity{TrustDomain: td, Namespace: p.Namespace, ServiceAccount: sa}
}
