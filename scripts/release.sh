#!/usr/bin/env bash
# Build a release tarball: target/dist/ivrflow-VERSION-TARGET.tar.gz and its .sha256.
#
#   ./scripts/release.sh                  # cargo build --release, then package
#   ./scripts/release.sh --binary PATH    # package an ivrflow binary built already
#   ./scripts/release.sh --without-model  # leave the speech model out (install it later
#                                         # with share/ivrflow/scripts/fetch-model.sh)
#   ./scripts/release.sh --out DIR        # write there (default target/dist)
#
# The tarball unpacks to ivrflow-VERSION-TARGET/ with:
#   bin/ivrflow                          the binary (finds its assets in ../share/ivrflow)
#   share/ivrflow/{scenarios,audio}      the bundled scenarios and prompts
#   share/ivrflow/models/ggml-base-q8_0.bin   the default speech model (unless --without-model)
#   share/ivrflow/scripts/               fetch-model.sh and its converter
#   share/ivrflow/deploy/                Grafana dashboard, Prometheus rules
#   share/doc/ivrflow/                   README and docs
#   etc/ivrflow/ivrflow.yaml             `ivrflow init`'s commented config; env.example
#   lib/systemd/system/ivrflow.service   the unit
#   install.sh                           sudo ./install.sh puts it all in place
#
# The release build sets GGML_NATIVE=OFF (whisper.cpp without -march=native, so the binary
# runs on other x86-64 machines) and IVRFLOW_GIT_COMMIT (ivrflow_build_info's commit).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
with_model=1
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --without-model) with_model=0; shift ;;
    --out) out_dir=$2; shift 2 ;;
    *) echo "release: unknown option $1 (--binary PATH, --without-model, --out DIR)" >&2; exit 2 ;;
  esac
done
out_dir=${out_dir:-${CARGO_TARGET_DIR:-target}/dist}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
target=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
target=${target:-$(uname -m)-unknown-linux-gnu}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then commit="$commit-dirty"; fi

if [ -z "$binary" ]; then
  echo "release: building ivrflow $version ($commit) for $target"
  # whisper-rs-sys passes GGML_* to cmake but does not tell cargo to rebuild when they
  # change: a whisper.cpp built earlier with -march=native would be reused. Rebuild it.
  cargo clean --release --quiet -p whisper-rs-sys
  GGML_NATIVE=OFF IVRFLOW_GIT_COMMIT=$commit cargo build --release --locked
  binary=${CARGO_TARGET_DIR:-target}/release/ivrflow
  cache=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/build/whisper-rs-sys-*/out/build/CMakeCache.txt | head -1)
  if ! grep -q '^GGML_NATIVE:[A-Z]*=OFF$' "$cache"; then
    echo "release: whisper.cpp was built with GGML_NATIVE on ($cache): the binary would not be portable" >&2
    exit 1
  fi
fi
[ -x "$binary" ] || { echo "release: no binary at $binary" >&2; exit 1; }
model=models/ggml-base-q8_0.bin
if [ "$with_model" = 1 ] && [ ! -f "$model" ]; then
  echo "release: $model is missing: run ./scripts/setup.sh (or pass --without-model)" >&2
  exit 1
fi

name="ivrflow-$version-$target"
stage="$out_dir/$name"
rm -rf "$stage" "$out_dir/$name.tar.gz" "$out_dir/$name.tar.gz.sha256"
mkdir -p "$stage/bin" "$stage/share/ivrflow/scripts" "$stage/share/ivrflow/deploy" \
  "$stage/share/doc/ivrflow" "$stage/etc/ivrflow" "$stage/lib/systemd/system"

install -m 0755 "$binary" "$stage/bin/ivrflow"
cp -R scenarios audio "$stage/share/ivrflow/"
cp scripts/fetch-model.sh scripts/ct2_to_ggml.py "$stage/share/ivrflow/scripts/"
cp -R deploy/grafana deploy/prometheus "$stage/share/ivrflow/deploy/"
if [ "$with_model" = 1 ]; then
  mkdir -p "$stage/share/ivrflow/models"
  cp "$model" "$stage/share/ivrflow/models/"
fi
cp README.md "$stage/share/doc/ivrflow/"
cp docs/*.md docs/openapi.yaml "$stage/share/doc/ivrflow/"
"$stage/bin/ivrflow" init --output "$stage/etc/ivrflow/ivrflow.yaml" >/dev/null
cp deploy/systemd/env.example "$stage/etc/ivrflow/env.example"
cp deploy/systemd/ivrflow.service "$stage/lib/systemd/system/"
install -m 0755 deploy/install.sh "$stage/install.sh"

# The packaged binary finds its own assets from anywhere (not this checkout's).
stage_abs=$(cd "$stage" && pwd)
(cd / && "$stage_abs/bin/ivrflow" validate --quiet >/dev/null) || {
  echo "release: the packaged binary does not validate its bundled scenarios" >&2
  exit 1
}

tar -C "$out_dir" -czf "$out_dir/$name.tar.gz" "$name"
(cd "$out_dir" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "release: $out_dir/$name.tar.gz ($(du -h "$out_dir/$name.tar.gz" | cut -f1))"
