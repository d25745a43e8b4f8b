package agent

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardmesh/ward/mesh/identity"
)

// grpc certificate-provider instance names; they must match what Ward's
// xDS translator puts in UpstreamTlsContext/DownstreamTlsContext. Both are
// Istio's single instance "default" (certificate, key and roots), so a
// bootstrap written by Istio's agent and one written by Ward's agent are
// interchangeable.
const (
	GRPCIdentityInstance = "default"
	GRPCRootInstance     = "default"
	// GRPCServerListenerTemplate is the server listener name template
	// (grpc-go's own default); Ward's translator also serves Istio's
	// "xds.istio.io/grpc/lds/inbound/%s".
	GRPCServerListenerTemplate = "grpc/server?xds.resource.listening_address=%s"
)

// GRPCBootstrapConfig describes the node and xDS server for a proxyless
// gRPC bootstrap.
type GRPCBootstrapConfig struct {
	XDSAddress string // host:port of Ward's xDS server
	// XDSInsecure uses a plaintext channel (15010, local development);
	// otherwise the channel is mTLS with the agent's files.
	XDSInsecure bool
	Name        string // workload (pod or VM) name
	IP          string
	Labels      map[string]string
	// RefreshInterval is how often grpc re-reads the certificate files
	// (default 10s).
	RefreshInterval time.Duration
	// Authz is how the workload enforces authorisation, written as node
	// metadata WARD_AUTHZ: AuthzRBAC (or "": Ward sends native xDS RBAC)
	// or AuthzExtAuthz (Ward sends no RBAC; the application enforces with
	// authz/grpcauthz through Ward's ext_authz server).
	Authz string
	// Locality is the workload's "region/zone/subzone" ("" = unknown).
	// node.locality is always written (empty when unknown): grpc-js-xds
	// refuses a bootstrap without it.
	Locality string
}

// WARD_AUTHZ node metadata and its values.
const (
	MetaAuthz     = "WARD_AUTHZ"
	AuthzRBAC     = "rbac"
	AuthzExtAuthz = "ext-authz"
)

// GRPCBootstrap renders a grpc xDS bootstrap for workload id whose
// certificate files are in dir: one file_watcher certificate provider
// "default" (identity and roots, as Istio's agent writes it), the server
// listener template, and an Istio-style node id, locality and metadata.
func GRPCBootstrap(c GRPCBootstrapConfig, id spiffeid.ID, dir string) ([]byte, error) {
	wid, err := identity.FromID(id)
	if err != nil {
		return nil, fmt.Errorf("grpc bootstrap: %w", err)
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = 10 * time.Second
	}
	if c.Authz != "" && c.Authz != AuthzRBAC && c.Authz != AuthzExtAuthz {
		return nil, fmt.Errorf("grpc bootstrap: authz mode %q: want %q or %q", c.Authz, AuthzRBAC, AuthzExtAuthz)
	}
	refresh := fmt.Sprintf("%gs", c.RefreshInterval.Seconds())
	files := map[string]any{
		"certificate_file":    filepath.Join(dir, FileCertChain),
		"private_key_file":    filepath.Join(dir, FileKey),
		"ca_certificate_file": filepath.Join(dir, FileRoots),
		"refresh_interval":    refresh,
	}
	creds := map[string]any{"type": "tls", "config": files}
	if c.XDSInsecure {
		creds = map[string]any{"type": "insecure"}
	}
	meta := map[string]any{
		"GENERATOR": "grpc", "NAMESPACE": wid.Namespace, "SERVICE_ACCOUNT": wid.ServiceAccount,
		"LABELS": c.Labels,
	}
	if c.IP != "" {
		meta["INSTANCE_IPS"] = c.IP
	}
	if c.Name != "" {
		meta["NAME"] = c.Name // Istio's node metadata: the pod (or WorkloadEntry) name
	}
	if c.Authz != "" {
		meta[MetaAuthz] = c.Authz
	}
	doc := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri": c.XDSAddress, "channel_creds": []any{creds}, "server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{"id": NodeID("grpc", c.IP, c.Name, wid.Namespace), "locality": nodeLocality(c.Locality), "metadata": meta},
		"certificate_providers": map[string]any{
			GRPCIdentityInstance: map[string]any{"plugin_name": "file_watcher", "config": files},
		},
		"server_listener_resource_name_template": GRPCServerListenerTemplate,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("grpc bootstrap: %w", err)
	}
	return b, nil
}

// nodeLocality is the bootstrap's node.locality for "region/zone/subzone":
// only the parts that are set, {} when none is.
func nodeLocality(l string) map[string]string {
	out := map[string]string{}
	for i, part := range strings.SplitN(l, "/", 3) {
		if part != "" {
			out[[]string{"region", "zone", "sub_zone"}[i]] = part
		}
	}
	return out
}

// NodeID is Istio's node id: <type>~<ip>~<name>.<namespace>~<namespace>.svc.cluster.local.
func NodeID(typ, ip, name, namespace string) string {
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", typ, ip, name, namespace, namespace)
}
