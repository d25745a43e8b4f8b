# Sourced by hack/install-*.sh: apt_install NAME BINARY WHAT installs
# Debian's package NAME unless BINARY exists. Without apt-get, or without
# root or passwordless sudo, it says so and returns 0 (the tests that need
# it skip with that reason). With them, a failed install fails: a green
# run must not hide a missing install step.
apt_install() {
  local pkg=$1 bin=$2 what=$3 sudo=""
  if [ -x "$bin" ]; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-$pkg: apt-get not available; $what will skip" >&2
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "install-$pkg: not root and no passwordless sudo; $what will skip" >&2
      return 0
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  if $sudo apt-get install -y --no-install-recommends "$pkg"; then
    return 0
  fi
  if ! { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "$pkg"; }; then
    echo "install-$pkg: apt-get could not install $pkg ($what needs it)" >&2
    return 1
  fi
}
