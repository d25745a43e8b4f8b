#!/usr/bin/env bash
# Runs Ward's whole test suite. Installs (idempotently, cached) whatever the
# tests need, so it passes on a fresh machine: this is what `make test` and
# CI run.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# Downloads are cached in GOMODCACHE; a fresh machine fetches them once.
go mod download

for script in hack/install-*.sh; do
  [ -e "$script" ] || continue
  echo "== $script"
  bash "$script"
done

# -p 2: the CI machine has two cores; heavy end-to-end packages run in turn.
echo "== go vet"
go vet ./...
echo "== go test"
go test -p 2 -timeout 30m -count=1 ./...
