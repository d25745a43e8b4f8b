package image

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// SBOMDir holds each image's SBOM, inside the image.
const SBOMDir = "/usr/share/sbom"

// SBOMPath is where spec's SBOM is in its image.
func SBOMPath(spec Spec) string { return SBOMDir + "/" + spec.Name + ".spdx.json" }

// SPDX is the subset of an SPDX 2.3 JSON document that Ward writes.
type SPDX struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      SPDXCreationInfo   `json:"creationInfo"`
	Packages          []SPDXPackage      `json:"packages"`
	Relationships     []SPDXRelationship `json:"relationships"`
}

// SPDXCreationInfo says when and by what the document was made.
type SPDXCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

// SPDXPackage is one Go module (or the Go standard library, or the binary).
type SPDXPackage struct {
	SPDXID           string            `json:"SPDXID"`
	Name             string            `json:"name"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	LicenseConcluded string            `json:"licenseConcluded"`
	LicenseDeclared  string            `json:"licenseDeclared"`
	CopyrightText    string            `json:"copyrightText"`
	Checksums        []SPDXChecksum    `json:"checksums,omitempty"`
	ExternalRefs     []SPDXExternalRef `json:"externalRefs,omitempty"`
	Comment          string            `json:"comment,omitempty"`
}

// SPDXChecksum is a package checksum.
type SPDXChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

// SPDXExternalRef is a package URL.
type SPDXExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

// SPDXRelationship links two SPDX elements.
type SPDXRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

const noAssertion = "NOASSERTION"

// NewSBOM describes a binary from its build info: the binary itself (its
// SHA-256), the main module, the Go standard library and every module it
// links with its version and go.sum hash. A module's go.sum "h1:" hash is
// a SHA-256 (of the module's file list), recorded as the package's SHA256
// checksum in hex, as Syft does, and verbatim in the comment.
func NewSBOM(spec Spec, src Source, binary []byte, bi *debug.BuildInfo) *SPDX {
	sum := sha256.Sum256(binary)
	doc := &SPDX{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT", Name: spec.Name,
		DocumentNamespace: fmt.Sprintf("%s/spdx/%s/%s-%s", strings.TrimSuffix(src.URL, "/"), spec.Name, src.Version, hex.EncodeToString(sum[:])),
		CreationInfo:      SPDXCreationInfo{Created: src.Created.UTC().Format(time.RFC3339), Creators: []string{"Tool: ward-release-image", "Organization: Ward"}},
	}
	bin := pkg("SPDXRef-Binary", spec.Name, src.Version, noAssertion)
	bin.Checksums = []SPDXChecksum{{Algorithm: "SHA256", ChecksumValue: hex.EncodeToString(sum[:])}}
	bin.Comment = "the " + spec.Entrypoint() + " binary, built from " + bi.Path + " with " + bi.GoVersion
	doc.add(bin, "DESCRIBES", "SPDXRef-DOCUMENT")
	main := module(&debug.Module{Path: bi.Main.Path, Version: src.Version}, "SPDXRef-Main")
	doc.add(main, "CONTAINS", bin.SPDXID)
	std := pkg("SPDXRef-Stdlib", "stdlib", bi.GoVersion, "https://go.dev/dl/")
	std.ExternalRefs = []SPDXExternalRef{purl("stdlib", bi.GoVersion)}
	doc.add(std, "CONTAINS", bin.SPDXID)
	for i, m := range bi.Deps {
		doc.add(module(m, fmt.Sprintf("SPDXRef-Module-%d", i)), "CONTAINS", bin.SPDXID)
	}
	return doc
}

// add appends p and the relationship "from TYPE p" (DESCRIBES from the
// document, CONTAINS from the binary).
func (d *SPDX) add(p SPDXPackage, relationship, from string) {
	d.Packages = append(d.Packages, p)
	d.Relationships = append(d.Relationships, SPDXRelationship{Element: from, Type: relationship, Related: p.SPDXID})
}

// Package returns the package named path (a module path, "stdlib" or the
// image name) and whether there is one.
func (d *SPDX) Package(path string) (SPDXPackage, bool) {
	for _, p := range d.Packages {
		if p.Name == path {
			return p, true
		}
	}
	return SPDXPackage{}, false
}

// JSON is the document as indented JSON.
func (d *SPDX) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode sbom: %w", err)
	}
	return append(b, '\n'), nil
}

func pkg(id, name, version, download string) SPDXPackage {
	return SPDXPackage{SPDXID: id, Name: name, VersionInfo: version, DownloadLocation: download,
		LicenseConcluded: noAssertion, LicenseDeclared: noAssertion, CopyrightText: noAssertion}
}

// module is the package for a Go module (the module it was replaced by,
// when replaced, with the original named in the comment).
func module(m *debug.Module, id string) SPDXPackage {
	if m.Replace != nil {
		r := module(m.Replace, id)
		r.Comment = strings.TrimSpace("replaces " + m.Path + " " + m.Version + "; " + r.Comment)
		return r
	}
	p := pkg(id, m.Path, m.Version, noAssertion)
	if m.Version != "" && m.Version != "(devel)" {
		p.DownloadLocation = "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip"
	}
	p.ExternalRefs = []SPDXExternalRef{purl(m.Path, m.Version)}
	if h, ok := h1Hex(m.Sum); ok {
		p.Checksums = []SPDXChecksum{{Algorithm: "SHA256", ChecksumValue: h}}
		p.Comment = "go.sum " + m.Sum
	}
	return p
}

func purl(path, version string) SPDXExternalRef {
	loc := "pkg:golang/" + path
	if version != "" {
		loc += "@" + version
	}
	return SPDXExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: loc}
}

// h1Hex turns a go.sum "h1:<base64 sha256>" hash into hex.
func h1Hex(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != sha256.Size {
		return "", false
	}
	return hex.EncodeToString(b), true
}
