#!/usr/bin/env bash
# Builds etcd from the Go module proxy and caches the binary outside the
# repo, keyed by version (Debian's etcd-server 3.4 is too old for
# kube-apiserver 1.37). Idempotent: a cached binary is reused. Prints the
# binary's path.
set -euo pipefail

ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE="${WARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ward}"
OUT="$CACHE/etcd/$ETCD_VERSION/etcd"

if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > go.mod <<MOD
module wardetcdbuild

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
GOFLAGS=-mod=mod go mod tidy >&2
mkdir -p "$(dirname "$OUT")"
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT.tmp" . >&2
mv "$OUT.tmp" "$OUT"
echo "$OUT"
