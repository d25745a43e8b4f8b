package mesh

import "fmt"

// PathNormalization is how far proxies normalise request paths before
// routing and authorisation: Istio's MeshConfig.pathNormalization levels.
type PathNormalization string

// Path normalisation levels, weakest first. PathNormalizationDefault
// (Istio's DEFAULT) means PathNormalizationBase.
const (
	PathNormalizationDefault PathNormalization = "DEFAULT"
	// NONE forwards the path as received (Envoy still rejects a path that
	// does not start with "/" or carries a fragment).
	PathNormalizationNone PathNormalization = "NONE"
	// BASE applies RFC 3986 normalisation: dot segments removed, "\"
	// turned into "/", percent-encoded unreserved characters decoded.
	PathNormalizationBase PathNormalization = "BASE"
	// MERGE_SLASHES is BASE, then runs of "/" merged into one.
	PathNormalizationMergeSlashes PathNormalization = "MERGE_SLASHES"
	// DECODE_AND_MERGE_SLASHES first decodes %2F and %5C (any case) into
	// "/" and "\", then does MERGE_SLASHES.
	PathNormalizationDecodeAndMergeSlashes PathNormalization = "DECODE_AND_MERGE_SLASHES"
)

// ProxyPathNormalization is MeshConfig.pathNormalization, shaped as in
// Istio's MeshConfig: {normalization: BASE}.
type ProxyPathNormalization struct {
	Normalization PathNormalization `json:"normalization,omitempty"`
}

// PathNormalizationLevel is the effective level: BASE when unset or
// DEFAULT, as in Istio.
func (m MeshConfig) PathNormalizationLevel() PathNormalization {
	if m.PathNormalization == nil {
		return PathNormalizationBase
	}
	switch l := m.PathNormalization.Normalization; l {
	case "", PathNormalizationDefault:
		return PathNormalizationBase
	default:
		return l
	}
}

// Valid reports whether l is one of Istio's levels ("" = DEFAULT).
func (l PathNormalization) Valid() bool {
	switch l {
	case "", PathNormalizationDefault, PathNormalizationNone, PathNormalizationBase,
		PathNormalizationMergeSlashes, PathNormalizationDecodeAndMergeSlashes:
		return true
	}
	return false
}

func (p *ProxyPathNormalization) validate() error {
	if p == nil || p.Normalization.Valid() {
		return nil
	}
	return fmt.Errorf("spec.pathNormalization.normalization: must be one of DEFAULT, NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES, got %q", p.Normalization)
}
