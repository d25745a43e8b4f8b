#!/usr/bin/env bash
# Builds and caches (by version, outside the repo) the kube-apiserver and
# etcd binaries that the Kubernetes tests start through hack/kube-env.sh.
# Idempotent: a warm cache makes this instant; a cold one costs ~5.5 min
# (kube-apiserver) + ~1.5 min (etcd) once per machine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/build-kube-apiserver.sh"
"$here/build-etcd.sh"
