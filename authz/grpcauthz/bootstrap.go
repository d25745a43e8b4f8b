package grpcauthz

import (
	"encoding/json"
	"fmt"
	"os"
)

// Node metadata keys of the grpc xDS bootstrap (agent.GRPCBootstrap).
const (
	metaNamespace = "NAMESPACE"
	metaLabels    = "LABELS"
	// MetaAuthz is the node metadata key naming how the workload enforces
	// authorisation: "rbac" (or absent: Ward sends native RBAC) or
	// "ext-authz" (Ward sends no RBAC; this package enforces).
	MetaAuthz = "WARD_AUTHZ"
	// AuthzExtAuthz is MetaAuthz's value for enforcement by this package.
	AuthzExtAuthz = "ext-authz"
)

// Workload is the protected workload as its bootstrap describes it.
type Workload struct {
	Namespace string
	// Name is node.metadata NAME, the workload's name ("" when absent).
	Name   string
	Labels map[string]string
	// Authz is the WARD_AUTHZ node metadata ("" when absent).
	Authz string
}

// ReadBootstrap reads the workload from a grpc xDS bootstrap file (the
// one GRPC_XDS_BOOTSTRAP names), so the interceptor and the xDS server
// share one source of truth.
func ReadBootstrap(path string) (Workload, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Workload{}, fmt.Errorf("grpcauthz: read bootstrap: %w", err)
	}
	w, err := ParseBootstrap(b)
	if err != nil {
		return Workload{}, fmt.Errorf("grpcauthz: bootstrap %s: %w", path, err)
	}
	return w, nil
}

// ParseBootstrap reads node.metadata NAMESPACE, NAME, LABELS and WARD_AUTHZ
// from grpc xDS bootstrap contents. A missing namespace is an error.
func ParseBootstrap(contents []byte) (Workload, error) {
	var doc struct {
		Node struct {
			Metadata map[string]json.RawMessage `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal(contents, &doc); err != nil {
		return Workload{}, fmt.Errorf("parse bootstrap: %w", err)
	}
	md := doc.Node.Metadata
	var w Workload
	if err := decodeField(md, metaNamespace, &w.Namespace); err != nil {
		return Workload{}, err
	}
	if w.Namespace == "" {
		return Workload{}, fmt.Errorf("node metadata has no %s", metaNamespace)
	}
	if err := decodeField(md, metaLabels, &w.Labels); err != nil {
		return Workload{}, err
	}
	if err := decodeField(md, "NAME", &w.Name); err != nil {
		return Workload{}, err
	}
	if err := decodeField(md, MetaAuthz, &w.Authz); err != nil {
		return Workload{}, err
	}
	return w, nil
}

func decodeField(md map[string]json.RawMessage, key string, v any) error {
	raw, ok := md[key]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("node metadata %s: %w", key, err)
	}
	return nil
}
