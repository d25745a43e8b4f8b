package image

import "time"

// BinaryDir is where the binary lives in every image.
const BinaryDir = "/usr/local/bin"

// NonRoot is the user and group every image runs as (distroless's nonroot).
const NonRoot = 65532

// Spec is one image: a name and the main package of its only binary.
type Spec struct {
	Name        string // image and binary name: "ward"
	Package     string // main package, relative to the module root: "./cmd/ward"
	Description string // org.opencontainers.image.description
}

// Entrypoint is the binary's path in the image.
func (s Spec) Entrypoint() string { return BinaryDir + "/" + s.Name }

// Ward's images: the ward binary (control plane, agent, node proxy,
// traffic redirection, operator tools) and the slim workload agent.
var (
	Ward = Spec{Name: "ward", Package: "./cmd/ward",
		Description: "Ward service mesh: control plane, agent, node proxy and operator tools"}
	WardAgent = Spec{Name: "ward-agent", Package: "./cmd/ward-agent",
		Description: "Ward workload agent: identity, rotation, SDS and proxyless gRPC files"}
)

// Specs is every image a release builds.
func Specs() []Spec { return []Spec{Ward, WardAgent} }

// Labels are the OCI labels of spec's image config, also its manifest's
// and index's annotations.
func Labels(spec Spec, src Source) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       spec.Name,
		"org.opencontainers.image.description": spec.Description,
		"org.opencontainers.image.source":      src.URL,
		"org.opencontainers.image.url":         src.URL,
		"org.opencontainers.image.version":     src.Version,
		"org.opencontainers.image.created":     src.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    src.Licenses,
	}
	if src.Revision != "" {
		l["org.opencontainers.image.revision"] = src.Revision
	}
	return l
}
