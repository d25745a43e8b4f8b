#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy (no Docker, no internet
# beyond the proxy) and caches the binary outside the repo, keyed by
# version. Idempotent: a cached binary is reused. Prints the binary's path.
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod
# points every k8s.io/* staging module at ./staging. A throw-away module
# requires it and replaces each staging module with its published v0.Y.Z.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"      # v1.37.2's zip is not served by the proxy
CACHE="${WARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ward}"
OUT="$CACHE/kube/$KUBE_VERSION/kube-apiserver"

if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi

staging="v0.${KUBE_VERSION#v1.}"
minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > go.mod <<MOD
module wardkubebuild

go 1.26

require k8s.io/kubernetes $KUBE_VERSION
MOD

gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
# Every "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x v0.Y.Z".
grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}' >> go.mod
cat > main.go <<'GO'
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"

func main() {}
GO
GOFLAGS=-mod=mod go mod tidy >&2
mkdir -p "$(dirname "$OUT")"
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$OUT.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$OUT.tmp" "$OUT"
echo "$OUT"
