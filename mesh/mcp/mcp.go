package mcp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	mcppb "istio.io/api/mcp/v1alpha1"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// The collections a node proxy is served, as xDS type URLs. Istio's
// spelling: group/version/Kind (v1alpha3 and v1beta1 are the proto
// packages of the istio.io/api types Ward decodes into).
const (
	TypeWorkloadEntry       = "networking.istio.io/v1alpha3/WorkloadEntry"
	TypeServiceEntry        = "networking.istio.io/v1alpha3/ServiceEntry"
	TypePeerAuthentication  = "security.istio.io/v1beta1/PeerAuthentication"
	TypeAuthorizationPolicy = "security.istio.io/v1beta1/AuthorizationPolicy"
	// TypeMeshConfig is Ward's MeshConfig (one resource, MeshConfigName),
	// its JSON as a google.protobuf.Struct body.
	TypeMeshConfig = "config.wardmesh.io/v1alpha1/MeshConfig"
	MeshConfigName = "mesh"
)

// NodeTypes are the types a node proxy subscribes to, in the order it
// needs them to build a snapshot.
var NodeTypes = []string{TypeMeshConfig, TypeWorkloadEntry, TypeServiceEntry, TypePeerAuthentication, TypeAuthorizationPolicy}

var kindOfType = map[string]mesh.Kind{
	TypeWorkloadEntry:       mesh.KindWorkloadEntry,
	TypeServiceEntry:        mesh.KindServiceEntry,
	TypePeerAuthentication:  mesh.KindPeerAuthentication,
	TypeAuthorizationPolicy: mesh.KindAuthorizationPolicy,
}

// TypeOf returns the type URL of kind k, or "" when nodes are not served it.
func TypeOf(k mesh.Kind) string {
	for t, kk := range kindOfType {
		if kk == k {
			return t
		}
	}
	return ""
}

// IsNodeType reports whether url is one of NodeTypes.
func IsNodeType(url string) bool {
	_, ok := kindOfType[url]
	return ok || url == TypeMeshConfig
}

// Name is the resource name of c: "<namespace>/<name>".
func Name(c *mesh.Config) string { return c.Namespace + "/" + c.Name }

// Resource is one encoded resource with its content-hash version.
type Resource struct {
	Name     string
	Version  string
	Resource *anypb.Any
}

// Encode packs c as an MCP resource. The version is a hash of the
// deterministic encoding, so an unchanged object keeps its version.
func Encode(c *mesh.Config) (Resource, error) {
	body, err := deterministicAny(c.Spec)
	if err != nil {
		return Resource{}, fmt.Errorf("encode %s: %w", c.Key(), err)
	}
	md := &mcppb.Metadata{Name: Name(c), Labels: c.Labels, Annotations: c.Annotations, Version: c.ResourceVersion}
	if !c.CreationTimestamp.IsZero() {
		md.CreateTime = timestamppb.New(c.CreationTimestamp)
	}
	return pack(Name(c), &mcppb.Resource{Metadata: md, Body: body})
}

// EncodeMesh packs the mesh config as the MeshConfig resource.
func EncodeMesh(m mesh.MeshConfig) (Resource, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return Resource{}, fmt.Errorf("encode MeshConfig: %w", err)
	}
	var st structpb.Struct
	if err := st.UnmarshalJSON(b); err != nil {
		return Resource{}, fmt.Errorf("encode MeshConfig: %w", err)
	}
	body, err := deterministicAny(&st)
	if err != nil {
		return Resource{}, fmt.Errorf("encode MeshConfig: %w", err)
	}
	return pack(MeshConfigName, &mcppb.Resource{Metadata: &mcppb.Metadata{Name: MeshConfigName}, Body: body})
}

func pack(name string, r *mcppb.Resource) (Resource, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return Resource{}, fmt.Errorf("encode %s: %w", name, err)
	}
	sum := sha256.Sum256(b)
	a := &anypb.Any{TypeUrl: "type.googleapis.com/istio.mcp.v1alpha1.Resource", Value: b}
	return Resource{Name: name, Version: hex.EncodeToString(sum[:8]), Resource: a}, nil
}

// Decode unpacks resource name of type url into a config object and
// validates it as the file source does (schema.Validate): a resource a
// node proxy cannot use is an error naming it, never skipped.
func Decode(url, name string, a *anypb.Any) (*mesh.Config, error) {
	kind, ok := kindOfType[url]
	if !ok {
		return nil, fmt.Errorf("resource %s: type %s is not a config collection", name, url)
	}
	r, err := unpack(name, a)
	if err != nil {
		return nil, err
	}
	ns, n, ok := strings.Cut(r.GetMetadata().GetName(), "/")
	if !ok || ns+"/"+n != name {
		return nil, fmt.Errorf("resource %s: metadata name %q is not %q", name, r.GetMetadata().GetName(), name)
	}
	info, _ := kind.Info()
	spec := info.NewSpec()
	if err := r.GetBody().UnmarshalTo(spec); err != nil {
		return nil, fmt.Errorf("resource %s %s: body: %w", kind, name, err)
	}
	c := &mesh.Config{Meta: mesh.Meta{Kind: kind, APIVersion: info.Group + "/" + info.Versions[0], Namespace: ns, Name: n,
		Labels: r.GetMetadata().GetLabels(), Annotations: r.GetMetadata().GetAnnotations(), ResourceVersion: r.GetMetadata().GetVersion()}, Spec: spec}
	if t := r.GetMetadata().GetCreateTime(); t != nil {
		c.CreationTimestamp = t.AsTime()
	}
	if err := schema.ValidateObject(c, nil); err != nil {
		return nil, fmt.Errorf("resource %s: %w", name, err)
	}
	return c, nil
}

// DecodeMesh unpacks and validates the MeshConfig resource.
func DecodeMesh(a *anypb.Any) (mesh.MeshConfig, error) {
	var m mesh.MeshConfig
	r, err := unpack(MeshConfigName, a)
	if err != nil {
		return m, err
	}
	var st structpb.Struct
	if err := r.GetBody().UnmarshalTo(&st); err != nil {
		return m, fmt.Errorf("resource %s: body: %w", MeshConfigName, err)
	}
	b, err := st.MarshalJSON()
	if err != nil {
		return m, fmt.Errorf("resource %s: %w", MeshConfigName, err)
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return m, fmt.Errorf("resource %s: %w", MeshConfigName, err)
	}
	if errs := m.Validate(); len(errs) > 0 {
		return m, fmt.Errorf("resource %s: %w", MeshConfigName, errors.Join(errs...))
	}
	return m, nil
}

func unpack(name string, a *anypb.Any) (*mcppb.Resource, error) {
	r := &mcppb.Resource{}
	if err := a.UnmarshalTo(r); err != nil {
		return nil, fmt.Errorf("resource %s: %w", name, err)
	}
	return r, nil
}

// deterministicAny packs m with sorted map entries, so equal objects get
// equal bytes and so equal versions.
func deterministicAny(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return a, nil
}
