#!/usr/bin/env bash
# Builds opa-envoy-plugin (OPA with its envoy_ext_authz_grpc plugin) for the
# ext_authz comparison in docs/benchmarks.md and caches the binary outside
# the repo, keyed by version. Idempotent: a cached binary is reused. Prints
# the binary's path; pass it to the load generator as
#   go test ./test/bench -run '^$' -bench ExtAuthzLoad -benchtime 1x \
#     -args -authz.targets=null,ward,opa-envoy -authz.opa-envoy="$(hack/build-opa-envoy-plugin.sh)"
#
# By default the module comes from the Go module proxy, like every other
# tool hack/ builds. Where the proxy does not serve it (on the shared
# development machine it answers 403 "This module version is not
# available" for github.com/open-policy-agent/opa-envoy-plugin, every
# version), point OPA_ENVOY_SRC at a checkout of the plugin's repository
# (tag v1.19.1-envoy or later): it is built from there, its dependencies
# still from the module proxy.
set -euo pipefail

OPA_ENVOY_VERSION="${OPA_ENVOY_VERSION:-v1.19.1-envoy}"
CACHE="${WARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ward}"
OUT="$CACHE/opa-envoy-plugin/$OPA_ENVOY_VERSION/opa-envoy-plugin"

if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
mkdir -p "$(dirname "$OUT")"

if [ -n "${OPA_ENVOY_SRC:-}" ]; then
  # A source checkout: build its own main package with its own go.mod.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if [ -d "$OPA_ENVOY_SRC/.git" ] || git -C "$OPA_ENVOY_SRC" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$OPA_ENVOY_SRC" archive HEAD | tar -x -C "$work"
  else
    cp -r "$OPA_ENVOY_SRC"/. "$work"
  fi
  (cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT.tmp" ./cmd/opa-envoy-plugin) >&2
  mv "$OUT.tmp" "$OUT"
  echo "$OUT"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > go.mod <<MOD
module wardopaenvoybuild

go 1.26

require github.com/open-policy-agent/opa-envoy-plugin $OPA_ENVOY_VERSION
MOD
# The plugin's own cmd/opa-envoy-plugin main, reproduced: register the
# plugin and run OPA's root command.
cat > main.go <<'GO'
package main

import (
	"os"

	"github.com/open-policy-agent/opa-envoy-plugin/plugin"
	"github.com/open-policy-agent/opa/cmd"
	"github.com/open-policy-agent/opa/v1/runtime"
)

func main() {
	runtime.RegisterPlugin("envoy.ext_authz.grpc", plugin.Factory{})
	runtime.RegisterPlugin(plugin.PluginName, plugin.Factory{})
	if err := cmd.RootCommand.Execute(); err != nil {
		os.Exit(1)
	}
}
GO
if ! GOFLAGS=-mod=mod go mod tidy >&2; then
  echo "build-opa-envoy-plugin: the Go module proxy did not serve github.com/open-policy-agent/opa-envoy-plugin@$OPA_ENVOY_VERSION;" >&2
  echo "set OPA_ENVOY_SRC to a checkout of its repository to build from source" >&2
  exit 1
fi
GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT.tmp" . >&2
mv "$OUT.tmp" "$OUT"
echo "$OUT"
