// Package oci builds Ward's container images without a Docker engine: it
// compiles a static binary per platform (go build -trimpath,
// CGO_ENABLED=0), assembles a distroless-style OCI image around it with
// go-containerregistry (the binary, /etc/passwd and /etc/group with the
// nonroot user 65532, /tmp, the binary's SPDX SBOM; no shell), gathers
// the platforms into an OCI image index, and writes it as an OCI layout or
// pushes it to a registry.
//
// Builds are reproducible: every timestamp is the source's (SOURCE_DATE_EPOCH
// or the commit time), file owners and modes are fixed, and the binary is
// built without paths, build IDs or toolchain VCS stamps, so the same
// source and Go toolchain give the same digests. What the images are is
// described by package release/image.
package oci
