#!/usr/bin/env bash
# A linker for rustc that puts the functions terad runs first in .text, so a running terad
# keeps less of its code resident. The kernel maps a program's file pages 64 KiB at a time
# around each page fault, so every 64 KiB stretch of .text that holds anything the process runs
# counts in its RSS; with the functions that run packed together, far fewer stretches do
# (docs/src/performance.md, "Why the release binary is linked hot code first").
#
# Used by the release builds of the scripts (build-static.sh, build-deb.sh, fleet.sh) through
# CARGO_TARGET_<TRIPLE>_LINKER (scripts/release-env.sh). rustc calls it as it calls `cc`; it
# reads the symbols of the objects being linked, keeps those whose names (demangled, hashes
# dropped) are in link/hot-functions.txt, and hands them to lld as --symbol-ordering-file. The
# list has no hashes because symbol names carry hashes of the toolchain, the profile and the
# dependencies' versions, which would make a list of exact names go stale at the next upgrade.
# scripts/hot-functions.sh makes the list.
#
# What it did is written next to the output, in `<output>.hot-first` ("ordered N of M listed
# functions"), which the build scripts print. With TERAD_HOT_FIRST_REQUIRED=1 (release-env.sh
# sets it) it refuses to link when it cannot order (rustc does not link with lld, no object
# files) or when fewer than TERAD_HOT_FIRST_MIN percent of the list (90 by default) are found:
# the list no longer matches the code, rerun scripts/hot-functions.sh. Without it, any trouble
# links exactly as `cc` would.
set -uo pipefail
here=$(dirname "$0")
list="$here/../link/hot-functions.txt"
required=${TERAD_HOT_FIRST_REQUIRED:-0}
minimum=${TERAD_HOT_FIRST_MIN:-90}
objects=()
uses_lld=false
output=""
previous=""
for arg in "$@"; do
  case "$arg" in
    *.o) objects+=("$arg") ;;
    -fuse-ld=lld) uses_lld=true ;;
  esac
  if [[ "$previous" == "-o" ]]; then output=$arg; fi
  previous=$arg
done

# Says why it cannot order; fails the link when ordering is required, else links as `cc`.
refuse() {
  echo "link-hot-first: $1" >&2
  shift
  if [[ "$required" == 1 ]]; then exit 1; fi
  exec cc "$@"
}

# Build scripts (cargo's own, proc macros) link through here too: only terad's binaries are
# ordered and counted.
case "$(basename "${output:-none}")" in
  terad-*) ;;
  *) exec cc "$@" ;;
esac
if [[ ! -s "$list" ]]; then refuse "no list at $list" "$@"; fi
if ! $uses_lld; then refuse "rustc does not link $output with lld (-fuse-ld=lld): cannot order" "$@"; fi
if [[ ${#objects[@]} -eq 0 ]]; then refuse "no object files to read symbols from" "$@"; fi

order=$(mktemp)
trap 'rm -f "$order"' EXIT
# `nm` twice over the same objects lists the same symbols in the same order: mangled, then
# demangled with the hashes dropped.
paste -d '\t' \
  <(nm --defined-only --format=just-symbols "${objects[@]}" 2>/dev/null) \
  <(nm --defined-only --format=just-symbols --demangle "${objects[@]}" 2>/dev/null \
    | sed -f "$here/hashless-names.sed") \
  | awk -F '\t' 'NR == FNR { hot[$0] = 1; next } ($2 in hot) { print $1; found[$2] = 1 }
      END { n = 0; for (name in found) n++; print n > "/dev/stderr" }' "$list" - \
  2>"$order.found" >"$order"
found=$(cat "$order.found" 2>/dev/null || echo 0)
rm -f "$order.found"
listed=$(grep -vc '^#' "$list")
report="ordered $found of $listed listed functions ($((100 * found / listed))%)"
echo "$report" >"$output.hot-first"
if (( 100 * found < minimum * listed )); then
  refuse "$report, fewer than $minimum%: link/hot-functions.txt no longer matches the code (rerun scripts/hot-functions.sh)" "$@"
fi
cc "$@" -Wl,--symbol-ordering-file="$order" -Wl,--no-warn-symbol-ordering
