#!/usr/bin/env bash
# One-time set-up of a fresh Debian 12 machine for ivrflow: the system packages the build
# and the tests need. Safe to run again; it installs only what is missing.
#
#   sip-tester  SIPp, the real SIP peer the tests call ivrflow with
#   iproute2    `ip netns`, to isolate the RFC 4475 torture traffic
#   build-essential, pkg-config: C compiler for crates with C parts (TLS, SQLite)
set -euo pipefail

need=()
for pkg in sip-tester iproute2 build-essential pkg-config ca-certificates; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is missing. Install the stable toolchain (rustup, Rust >= 1.89) and re-run." >&2
  exit 1
fi
echo "setup: ok ($(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -1), $(cargo --version))"
