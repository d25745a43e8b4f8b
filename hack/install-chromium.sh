#!/usr/bin/env bash
# Installs Debian's chromium for the headless-browser test of the `ward audit`
# HTML report (test/e2e/audit_html_test.go). Idempotent: does nothing when
# /usr/bin/chromium already exists. Needs root (or sudo) and an apt mirror;
# without them it says so and exits 0, and the test skips with that reason.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: apt-get not available; the headless HTML test will skip" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "install-chromium: not root and no passwordless sudo; the headless HTML test will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends chromium; then
  if ! { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends chromium; }; then
    echo "install-chromium: apt-get could not install chromium; the headless HTML test will skip" >&2
    exit 0
  fi
fi
