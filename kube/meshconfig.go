package kube

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// meshConfig reads Ward's MeshConfig ConfigMap. A missing ConfigMap means
// defaults; an invalid one keeps the last good config and is logged.
func (s *Source) meshConfig() mesh.MeshConfig {
	o, ok, _ := s.cms.GetStore().GetByKey(s.cfg.Namespace + "/" + s.cfg.MeshConfigMap)
	if !ok {
		s.lastMesh = mesh.MeshConfig{}
		return s.lastMesh
	}
	mc, err := ParseMeshConfig(o.(*corev1.ConfigMap))
	if err != nil {
		s.cfg.Log.Error("invalid mesh config, keeping the last good one", "namespace", s.cfg.Namespace, "name", s.cfg.MeshConfigMap, "err", err)
		return s.lastMesh
	}
	s.lastMesh = mc
	return mc
}

// ParseMeshConfig decodes the "mesh" key of Ward's MeshConfig ConfigMap
// (the MeshConfig spec as YAML) with the file source's strict rules.
func ParseMeshConfig(cm *corev1.ConfigMap) (mesh.MeshConfig, error) {
	var spec any
	if err := yaml.Unmarshal([]byte(cm.Data[MeshConfigKey]), &spec); err != nil {
		return mesh.MeshConfig{}, fmt.Errorf("configmap %s/%s key %s: %w", cm.Namespace, cm.Name, MeshConfigKey, err)
	}
	obj := map[string]any{
		"apiVersion": schema.GroupWard + "/v1alpha1",
		"kind":       schema.KindMeshConfig,
		"metadata":   map[string]any{"name": cm.Name, "namespace": cm.Namespace},
		"spec":       spec,
	}
	src := mesh.Source{File: fmt.Sprintf("k8s:ConfigMap/%s/%s", cm.Namespace, cm.Name)}
	d, err := schema.Decode(&schema.Document{Value: obj, Lines: map[string]int{}}, src)
	if err != nil {
		return mesh.MeshConfig{}, err
	}
	return *d.MeshConfig, nil
}
