#!/usr/bin/env bash
# Installs Debian's chromium for the headless-browser tests of the `ward
# audit` HTML report (test/e2e/audit_html_test.go and the traffic graph).
# Idempotent and cached by apt; see hack/lib/apt.sh for what happens
# without root or apt.
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"
apt_install chromium /usr/bin/chromium "the headless HTML test"
