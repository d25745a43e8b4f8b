#!/usr/bin/env bash
# Installs Debian's iptables for one test only: node's
# TestCaptureRemovesLegacyChains creates the chains an iptables-based
# `ward node` left in a pod namespace, to check they are migrated. `ward
# node` itself needs no iptables (its capture is nf_tables from Go).
# Idempotent; see hack/lib/apt.sh for what happens without root or apt.
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"
apt_install iptables /usr/sbin/iptables "the ambient e2e test"
