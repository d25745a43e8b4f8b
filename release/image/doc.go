// Package image describes Ward's container images and what a release
// build records about them: the images (Spec: name, main package,
// entrypoint, the nonroot user), the source they are built from (Source:
// version, revision, times; GitSource), their OCI labels, the SPDX SBOM
// of each binary (NewSBOM), and images.json (Manifest, LoadManifest), the
// list of built images pinned by digest from which the installer and the
// sidecar injector take image references.
//
// It links only the standard library, so ward itself can read images.json.
// The builder (go-containerregistry: layers, indexes, OCI layouts, push)
// is release/image/oci.
package image
