#!/usr/bin/env bash
# A linker for rustc that puts the functions terad runs first in .text, so a running terad
# keeps less of its code resident. The kernel maps a program's file pages 64 KiB at a time
# around each page fault, so every 64 KiB stretch of .text that holds anything the process runs
# counts in its RSS; with the functions that run packed together, far fewer stretches do
# (docs/src/performance.md, "Why the release binary is linked hot code first").
#
# Used by the release builds of the scripts (build-static.sh, build-deb.sh, fleet.sh) through
# CARGO_TARGET_<TRIPLE>_LINKER. rustc calls it as it calls `cc`; it reads the symbols of the
# objects being linked, keeps those whose names (demangled, hashes dropped) are in
# link/hot-functions.txt, and hands them to lld as --symbol-ordering-file. The list has no
# hashes because symbol names carry hashes of the toolchain, the profile and the dependencies'
# versions, which would make a list of exact names go stale at the next upgrade. With no list,
# no objects or any trouble it links exactly as `cc` would: the order is an optimisation, never
# a reason for a build to fail. scripts/hot-functions.sh makes the list.
set -uo pipefail
here=$(dirname "$0")
list="$here/../link/hot-functions.txt"
objects=()
uses_lld=false
for arg in "$@"; do
  case "$arg" in
    *.o) objects+=("$arg") ;;
    -fuse-ld=lld) uses_lld=true ;;
  esac
done
if [[ -s "$list" && ${#objects[@]} -gt 0 ]] && $uses_lld; then
  order=$(mktemp)
  # `nm` twice over the same objects lists the same symbols in the same order: mangled, then
  # demangled with the hashes dropped.
  if paste -d '\t' \
      <(nm --defined-only --format=just-symbols "${objects[@]}" 2>/dev/null) \
      <(nm --defined-only --format=just-symbols --demangle "${objects[@]}" 2>/dev/null \
        | sed -f "$here/hashless-names.sed") \
    | awk -F '\t' 'NR == FNR { hot[$0] = 1; next } ($2 in hot) { print $1 }' "$list" - \
      > "$order" && [[ -s "$order" ]]; then
    cc "$@" -Wl,--symbol-ordering-file="$order" -Wl,--no-warn-symbol-ordering
    status=$?
    rm -f "$order"
    exit $status
  fi
  rm -f "$order"
fi
exec cc "$@"
