#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (resource_parser, glob, flatten, go_template), each for a
# bounded time.
#
#   ./scripts/fuzz.sh              every target for 20 s (what CI runs)
#   ./scripts/fuzz.sh 600 glob     one target for 10 minutes
#
# Installs cargo-fuzz when it is missing.
# The sanitizer is off by default (terad is safe Rust; coverage guidance is what finds the
# panics); FUZZ_SANITIZER=address turns AddressSanitizer on for longer runs. The corpus grows
# in fuzz/corpus/<target> (seeded from fuzz/corpus_seeds); a crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script. A target with a dictionary of its syntax
# (fuzz/dicts/<target>.dict) gets it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(resource_parser glob flatten go_template); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# libFuzzer's instrumentation uses nightly-only compiler flags. The stable toolchain (the one
# every machine here has) accepts them with RUSTC_BOOTSTRAP=1; FUZZ_TOOLCHAIN=nightly uses a
# nightly toolchain instead.
toolchain=()
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
  toolchain=("+$FUZZ_TOOLCHAIN")
else
  export RUSTC_BOOTSTRAP=1
fi
sanitizer=${FUZZ_SANITIZER:-none}

cargo "${toolchain[@]}" fuzz build --sanitizer "$sanitizer"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  cp -n corpus_seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
  dict=()
  if [ -f "dicts/$target.dict" ]; then dict=("-dict=dicts/$target.dict"); fi
  echo "fuzz: $target for ${seconds}s"
  if ! cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::peak_rss_mb)' "$log" || true
done
