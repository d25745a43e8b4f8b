package deploy

import (
	"github.com/wardmesh/ward/release/image"

	"fmt"

	"sigs.k8s.io/yaml"
)

// Values are the chart's values (helm/ward/values.yaml, which documents
// each one). Default returns that file's values; the JSON names are the
// Helm value paths.
type Values struct {
	Namespace   NamespaceValues `json:"namespace"`
	Images      ImageValues     `json:"images"`
	TrustDomain string          `json:"trustDomain"`
	MeshConfig  MeshConfig      `json:"meshConfig"`
	Replicas    int             `json:"replicas"`
	Resources   Resources       `json:"resources"`
	CACerts     CACerts         `json:"cacerts"`
	Debug       Debug           `json:"debug"`
	XDS         XDS             `json:"xds"`
	Ambient     Ambient         `json:"ambient"`
}

// NamespaceValues says whether the release namespace is part of the
// manifests.
type NamespaceValues struct {
	Create bool `json:"create"`
}

// ImageValues are the images the control plane runs and injects.
type ImageValues struct {
	Ward  Image  `json:"ward"`
	Proxy string `json:"proxy"` // Envoy; "" is the injector's default
}

// Image is a repository with a tag, pinned when Digest is set.
type Image struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest"`
}

// Reference is the image reference the manifests use: repository@digest
// when pinned, else repository:tag (the chart's "ward.image" template).
func (i Image) Reference() string {
	if i.Digest != "" {
		return i.Repository + "@" + i.Digest
	}
	return i.Repository + ":" + i.Tag
}

// MeshConfig is the part of Ward's MeshConfig the chart sets besides the
// trust domain.
type MeshConfig struct {
	RootNamespace         string `json:"rootNamespace"`
	OutboundTrafficPolicy string `json:"outboundTrafficPolicy"`
	DefaultCertTTL        string `json:"defaultCertTTL"`
	MaxCertTTL            string `json:"maxCertTTL"`
}

// Resources are the control-plane container's requests and limits.
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// CACerts is Istio's plug-in CA: an optional Secret with the intermediate
// Ward signs with.
type CACerts struct {
	Enabled    bool   `json:"enabled"`
	SecretName string `json:"secretName"`
}

// Debug is the exposure of the health, metrics and debug server.
type Debug struct {
	Service   bool     `json:"service"`
	TLSPort   int      `json:"tlsPort"`
	Operators []string `json:"operators"`
}

// XDS is the exposure of plaintext ADS (0: off).
type XDS struct {
	PlaintextPort int `json:"plaintextPort"`
}

// Ambient turns on the node proxy DaemonSet (ward node).
type Ambient struct {
	Enabled bool `json:"enabled"`
}

// Default returns the chart's default values (helm/ward/values.yaml).
func Default() Values {
	v, err := parseValues(chartFile("values.yaml"))
	if err != nil {
		panic(err) // the embedded file is checked by the tests
	}
	return v
}

// parseValues decodes a values file strictly, so that a values.yaml key
// the struct lacks (or a typo in an override file) is an error.
func parseValues(b []byte) (Values, error) {
	var v Values
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		return Values{}, fmt.Errorf("values: %w", err)
	}
	return v, nil
}

// Merge applies a values file (YAML, Helm's shape, possibly partial) over
// v and validates the result.
func (v Values) Merge(b []byte) (Values, error) {
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		return Values{}, fmt.Errorf("values: %w", err)
	}
	return v, v.Validate()
}

// Validate reports values the manifests cannot be rendered from.
func (v Values) Validate() error {
	var errs []string
	if v.Replicas < 1 {
		errs = append(errs, fmt.Sprintf("replicas: %d, want at least 1", v.Replicas))
	}
	if v.TrustDomain == "" {
		errs = append(errs, "trustDomain: empty")
	}
	if v.Images.Ward.Repository == "" {
		errs = append(errs, "images.ward.repository: empty")
	}
	if v.Images.Ward.Digest == "" && v.Images.Ward.Tag == "" {
		errs = append(errs, "images.ward: neither tag nor digest")
	}
	if d := v.Images.Ward.Digest; d != "" && !image.ValidDigest(d) {
		errs = append(errs, fmt.Sprintf("images.ward.digest: %q, want sha256:<64 hex digits>", d))
	}
	for _, p := range []struct {
		name string
		port int
	}{{"debug.tlsPort", v.Debug.TLSPort}, {"xds.plaintextPort", v.XDS.PlaintextPort}} {
		if p.port < 0 || p.port > 65535 || p.port == 15012 || p.port == 15014 || p.port == 15017 {
			errs = append(errs, fmt.Sprintf("%s: %d, want 0 (off) or a free port (not 15012, 15014, 15017)", p.name, p.port))
		}
	}
	if v.CACerts.Enabled && v.CACerts.SecretName == "" {
		errs = append(errs, "cacerts.secretName: empty")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid values: %s", joinErrs(errs))
	}
	return nil
}
