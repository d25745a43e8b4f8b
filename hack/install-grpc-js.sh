#!/usr/bin/env bash
# Installs @grpc/grpc-js-xds (Node.js's xDS client, the second independent
# xDS client Ward is tested against) for test/e2e/grpcjs_test.go, from the
# npm registry into a cache outside the work tree. Idempotent: does nothing
# when the pinned versions are already there. Prints the cache directory
# on success. Without node/npm (and no way to install them) it says so and
# exits 0, and the test skips with that reason.
set -euo pipefail

dir="${WARD_GRPC_JS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ward/grpc-js}"
pins=("@grpc/grpc-js@1.14.7" "@grpc/grpc-js-xds@1.14.1" "@grpc/proto-loader@0.8.1")
stamp="$dir/.installed"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ] && [ -d "$dir/node_modules/@grpc/grpc-js-xds" ]; then
  echo "$dir"
  exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y --no-install-recommends nodejs npm >&2 ||
      { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends nodejs npm >&2; } || true
  fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install-grpc-js: node and npm are not available; the grpc-js-xds test will skip" >&2
    exit 0
  fi
fi

mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"name": "ward-grpc-js-check", "private": true}' >package.json
if ! npm install --no-audit --no-fund --save-exact --loglevel=error "${pins[@]}" >&2; then
  echo "install-grpc-js: npm install failed; the grpc-js-xds test will skip" >&2
  exit 0
fi
echo "${pins[*]}" >"$stamp"
echo "$dir"
