package authz

import (
	"encoding/json"
	"fmt"

	"github.com/wardmesh/ward/mesh"
)

func labelsJSON(l mesh.Labels) string {
	if len(l) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(map[string]string(l)) // a string map always marshals
	return string(b)
}

// ParseLabels reads the JSON label object of a context extension.
func ParseLabels(s string) (mesh.Labels, error) {
	if s == "" {
		return mesh.Labels{}, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("parse workload labels: %w", err)
	}
	return mesh.Labels(m), nil
}
