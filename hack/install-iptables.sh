#!/usr/bin/env bash
# Installs Debian's iptables for the ambient capture test (test/ambient): `ward node`
# installs its redirect rules inside each pod network namespace. Idempotent: does nothing when
# /usr/sbin/iptables already exists. Needs root (or sudo) and apt; without
# them it says so and exits 0, and the test skips with that reason. With
# them, a failed install fails (a green run must not hide it).
set -euo pipefail

if [ -x /usr/sbin/iptables ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-iptables: apt-get not available; the ambient capture test will skip" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "install-iptables: not root and no passwordless sudo; the ambient capture test will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends iptables; then
  if ! { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends iptables; }; then
    echo "install-iptables: apt-get could not install iptables (the ambient capture test needs it)" >&2
    exit 1
  fi
fi
