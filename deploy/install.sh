#!/usr/bin/env bash
# Install an unpacked ivrflow release (made by scripts/release.sh) on a systemd host:
#
#   tar xzf ivrflow-VERSION-TARGET.tar.gz && cd ivrflow-VERSION-TARGET && sudo ./install.sh
#
# Puts the binary in PREFIX/bin, the scenarios, prompts, model and tools in
# PREFIX/share/ivrflow (where the binary looks for them), the unit in
# /etc/systemd/system, a commented /etc/ivrflow/ivrflow.yaml and /etc/ivrflow/env (secrets,
# 0600) unless they exist, and a system user `ivrflow`. It never overwrites your config.
#
# Options: --prefix DIR (default /usr/local); --root DIR (install under DIR, e.g. a package
# build root: no user, no systemctl).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    *) echo "install.sh: unknown option $1 (--prefix DIR, --root DIR)" >&2; exit 2 ;;
  esac
done
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo ./install.sh), or with --root DIR" >&2
  exit 1
fi
dest="$root$prefix"
install -d "$dest/bin" "$dest/share/ivrflow" "$dest/share/doc/ivrflow" "$root/etc/ivrflow" \
  "$root/etc/systemd/system"
install -m 0755 "$here/bin/ivrflow" "$dest/bin/ivrflow"
cp -R "$here/share/ivrflow/." "$dest/share/ivrflow/"
cp -R "$here/share/doc/ivrflow/." "$dest/share/doc/ivrflow/"
if [ ! -e "$root/etc/ivrflow/ivrflow.yaml" ]; then
  install -m 0644 "$here/etc/ivrflow/ivrflow.yaml" "$root/etc/ivrflow/ivrflow.yaml"
fi
if [ ! -e "$root/etc/ivrflow/env" ]; then
  install -m 0600 "$here/etc/ivrflow/env.example" "$root/etc/ivrflow/env"
fi
sed -e "s|/usr/local/bin/ivrflow|$prefix/bin/ivrflow|" \
    -e "s|/usr/local/share/doc/ivrflow|$prefix/share/doc/ivrflow|" \
    "$here/lib/systemd/system/ivrflow.service" > "$root/etc/systemd/system/ivrflow.service"
chmod 0644 "$root/etc/systemd/system/ivrflow.service"
if [ -z "$root" ]; then
  if ! id ivrflow >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/ivrflow --no-create-home --shell /usr/sbin/nologin ivrflow
  fi
  if command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
  fi
fi
"$dest/bin/ivrflow" --version
cat <<NEXT
installed. Next:
  1. put the API token (and webhook secret) in $root/etc/ivrflow/env
  2. edit $root/etc/ivrflow/ivrflow.yaml (sip.listen, webhook.url, trunks, routes, …)
  3. systemctl enable --now ivrflow; journalctl -u ivrflow -f
  the console: http://<api.listen>/console
NEXT
