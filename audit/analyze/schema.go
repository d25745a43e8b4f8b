package analyze

import (
	"github.com/wardmesh/ward/mesh"
	"github.com/wardmesh/ward/mesh/schema"
)

// schemaWarnings reports what validation accepts but flags (Istio's own
// warnings, Ward's checks beyond Istio's, fields Ward does not act on,
// method typos), each under its code, for every object in the snapshot.
func (a *analyzer) schemaWarnings() {
	for _, k := range mesh.Kinds() {
		for _, c := range a.snap.All(k) {
			for _, w := range schema.Warnings(c) {
				a.add(schemaCode(w.Code), Warning, c.Key().String(), w.Error())
			}
		}
	}
}

func schemaCode(code string) Code {
	switch code {
	case schema.CodeMethodTypo:
		return MethodTypo
	case schema.CodeStricter:
		return StricterThanIstio
	case schema.CodeNotImplemented:
		return NotImplemented
	}
	return ConfigWarning
}
