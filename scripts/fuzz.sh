#!/usr/bin/env bash
# Fuzz every parser that reads outside bytes (fuzz/fuzz_targets/*) for a bounded time each,
# starting from the seed corpus in fuzz/corpus/<target>/; exits non-zero on the first crash
# (the input is left in fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh            # 20 s per target (CI)
#   scripts/fuzz.sh 600        # longer, locally; new inputs go to a scratch corpus
#   scripts/fuzz.sh 60 sdp     # one target
#
# cargo-fuzz drives libFuzzer; it passes -Z flags to rustc, which the stable toolchain
# accepts with RUSTC_BOOTSTRAP=1. No sanitizer (-s none): the code is safe Rust, and what is
# looked for is a panic, an abort, a hang or runaway memory.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
only=${2:-}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build -s none
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  if [ -n "$only" ] && [ "$target" != "$only" ]; then continue; fi
  mkdir -p "$scratch/$target"
  echo "fuzz: $target for ${secs}s"
  log="$scratch/$target.log"
  if ! cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$log" || true
done
