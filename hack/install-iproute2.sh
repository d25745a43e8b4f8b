#!/usr/bin/env bash
# Installs Debian's iproute2 (`ip`) for the tests that build network
# namespaces: package redirect (the sidecar capture, proven with real
# sockets), cmd/ward/cli's ward redirect test and test/ambient.
# Idempotent; see hack/lib/apt.sh for what happens without root or apt.
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"
apt_install iproute2 /usr/sbin/ip "the network-namespace tests (redirect, ambient)"
