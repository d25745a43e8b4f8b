#!/usr/bin/env bash
# Installs Debian's iptables for the ambient capture tests (test/ambient):
# `ward node` installs its redirect rules inside each pod network namespace.
# Idempotent; see hack/lib/apt.sh for what happens without root or apt.
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"
apt_install iptables /usr/sbin/iptables "the ambient e2e test"
