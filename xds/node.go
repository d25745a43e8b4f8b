package xds

import (
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/xds/translate"
)

// Node metadata keys Ward reads (Istio's spelling).
const (
	MetaNamespace      = "NAMESPACE"
	MetaLabels         = "LABELS"
	MetaServiceAccount = "SERVICE_ACCOUNT"
	MetaInstanceIPs    = "INSTANCE_IPS"
	MetaGenerator      = "GENERATOR"
	// MetaAuthz=ext-authz on a proxyless gRPC server drops its RBAC
	// (xds/hooks): privileged, honoured only on an authenticated stream.
	MetaAuthz = "WARD_AUTHZ"
)

// ProxyFromNode builds the proxy the translators see from an xDS node.
//
// The node id is Istio's "<type>~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local"
// (type sidecar, router or grpc); metadata NAMESPACE, LABELS (a struct of
// strings), SERVICE_ACCOUNT, INSTANCE_IPS (comma separated) take
// precedence over what the id says. GENERATOR=grpc or an id starting with
// "grpc~" marks a proxyless gRPC client. Remaining string metadata is kept
// in Proxy.Metadata.
func ProxyFromNode(n *core.Node) *mesh.Proxy {
	p := &mesh.Proxy{ID: n.GetId(), Type: mesh.ProxySidecar, Labels: mesh.Labels{}, Metadata: map[string]string{}}
	parts := strings.Split(n.GetId(), "~")
	if len(parts) == 4 {
		switch mesh.ProxyType(parts[0]) {
		case mesh.ProxyRouter, mesh.ProxyGRPC, mesh.ProxySidecar:
			p.Type = mesh.ProxyType(parts[0])
		}
		if parts[1] != "" {
			p.IPs = []string{parts[1]}
		}
		if _, ns, ok := strings.Cut(parts[2], "."); ok {
			p.Namespace = ns
		} else if ns, _, ok := strings.Cut(parts[3], "."); ok {
			p.Namespace = ns
		}
	}
	fields := n.GetMetadata().GetFields()
	for k, v := range fields {
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			p.Metadata[k] = s.StringValue
		}
	}
	if ns := p.Metadata[MetaNamespace]; ns != "" {
		p.Namespace = ns
	}
	p.ServiceAccount = p.Metadata[MetaServiceAccount]
	if ips := p.Metadata[MetaInstanceIPs]; ips != "" {
		p.IPs = nil
		for _, ip := range strings.Split(ips, ",") {
			if ip = strings.TrimSpace(ip); ip != "" {
				p.IPs = append(p.IPs, ip)
			}
		}
	}
	sort.Strings(p.IPs)
	for k, v := range fields[MetaLabels].GetStructValue().GetFields() {
		p.Labels[k] = v.GetStringValue()
	}
	if l := n.GetLocality(); l.GetRegion() != "" && p.Metadata[translate.MetaLocality] == "" {
		p.Metadata[translate.MetaLocality] = strings.TrimRight(l.GetRegion()+"/"+l.GetZone()+"/"+l.GetSubZone(), "/")
	}
	if strings.EqualFold(p.Metadata[MetaGenerator], "grpc") || strings.HasPrefix(p.ID, "grpc~") {
		p.Type = mesh.ProxyGRPC
	}
	return p
}
