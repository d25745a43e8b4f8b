package schema

import "github.com/wardmesh/ward/mesh"

// DecodeAll strictly decodes every document of a multi-document YAML (or
// JSON) stream, as Decode does one: the config objects in order, and the
// MeshConfig if the stream holds one (the last wins). Objects of groups
// Ward does not read are skipped. It stops at the first error. Semantic
// validation is the caller's (Validate).
func DecodeAll(data []byte, src mesh.Source) ([]*mesh.Config, *mesh.MeshConfig, error) {
	docs, err := SplitYAML(data)
	if err != nil {
		return nil, nil, err
	}
	var cfgs []*mesh.Config
	var mc *mesh.MeshConfig
	for _, d := range docs {
		dec, err := Decode(d, src)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case dec.Config != nil:
			cfgs = append(cfgs, dec.Config)
		case dec.MeshConfig != nil:
			mc = dec.MeshConfig
		}
	}
	return cfgs, mc, nil
}
