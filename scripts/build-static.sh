#!/usr/bin/env bash
# Builds the static binary target/static/terad-<version>-linux-<arch> and its .sha256, the
# names confd's releases use, and checks it.
#
#   ./scripts/build-static.sh            release build (static), copy, checksum, check
#   ./scripts/build-static.sh --check    only check the existing target/static binary
#   ./scripts/build-static.sh --path     print the binary's path (for scripts/test.sh)
#
# The binary is glibc linked statically (`-C target-feature=+crt-static` on the gnu target: a
# static-pie), so it runs in any Linux image of the same architecture: Alpine, distroless,
# scratch, old distributions. A musl target would need a toolchain download; this route needs
# nothing beyond the Rust toolchain and the glibc static libraries (libc6-dev) already there.
#
# getrandom 0.3 and 0.4 (Tera's hash seed, hickory) find glibc's getrandom() with dlsym, which a
# static binary cannot do, and then fall back to reading /dev/random and /dev/urandom (without
# them the binary aborts at its first template). `getrandom_backend="linux_getrandom"` makes them
# call it directly, as std and getrandom 0.2 (ring) already do: the getrandom system call, Linux
# 3.17 or later, no device files.
#
# The build names the host triple with --target, so RUSTFLAGS reach only terad's own code and
# dependencies (not build scripts and proc macros, which must stay dynamic) and the output goes
# to target/<triple>/release: target/release and target/debug are not rebuilt or replaced.
#
# The check fails unless the binary has no program interpreter and no shared library
# dependencies, `file` calls it statically linked (static-pie linked), and `--version` prints
# "terad <version>". What it needs at run time is in docs/src/operating.md ("The static binary").
set -euo pipefail
cd "$(dirname "$0")/.."

mode=build
case "${1:-}" in
  --check) mode=check ;;
  --path) mode=path ;;
  "") ;;
  *) echo "usage: $0 [--check | --path]" >&2; exit 2 ;;
esac

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
triple=$(rustc -vV | sed -n 's/^host: //p')
case "$triple" in
  x86_64-unknown-linux-gnu) arch=amd64 ;;
  aarch64-unknown-linux-gnu) arch=arm64 ;;
  *) echo "build-static: unsupported host $triple (needs a *-linux-gnu target)" >&2; exit 1 ;;
esac
target_dir=${CARGO_TARGET_DIR:-target}
out=target/static
name=terad-${version}-linux-${arch}
binary=$out/$name

build() {
  local started=$SECONDS
  . scripts/release-env.sh
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
    cargo build --release --locked --bin terad --target "$triple"
  hot_first_report "$target_dir/$triple/release/deps"
  mkdir -p "$out"
  rm -f "$out"/terad-*-linux-*
  install -m 0755 "$target_dir/$triple/release/terad" "$binary"
  (cd "$out" && sha256sum "$name" >"$name.sha256")
  echo "build-static: built in $((SECONDS - started)) s"
}

check() {
  [ -x "$binary" ] || { echo "build-static: no binary $binary; run without --check" >&2; exit 1; }
  local failed=0 described headers reported
  described=$(file -b "$binary")
  echo "build-static: file: $described"
  case "$described" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) echo "build-static: file does not call $binary statically linked" >&2; failed=1 ;;
  esac
  # No PT_INTERP (the dynamic loader) and no DT_NEEDED (shared libraries).
  headers=$(readelf -ld "$binary")
  if grep -q 'INTERP' <<<"$headers"; then
    echo "build-static: $binary names a program interpreter" >&2
    failed=1
  fi
  if grep -q '(NEEDED)' <<<"$headers"; then
    echo "build-static: $binary needs shared libraries:" >&2
    grep '(NEEDED)' <<<"$headers" >&2
    failed=1
  fi
  if ! (cd "$out" && sha256sum --quiet -c "$name.sha256"); then
    echo "build-static: $binary does not match $name.sha256" >&2
    failed=1
  fi
  if ! reported=$("$binary" --version); then
    echo "build-static: $binary does not run" >&2
    failed=1
  elif [ "$reported" != "terad $version" ]; then
    echo "build-static: $binary reports '$reported', expected 'terad $version'" >&2
    failed=1
  fi
  if [ "$failed" -ne 0 ]; then
    echo "build-static: $binary FAILED its check" >&2
    exit 1
  fi
  echo "build-static: $binary ok ($reported, $(du -h "$binary" | cut -f1))"
}

if [ "$mode" = path ]; then echo "$binary"; exit 0; fi
if [ "$mode" = build ]; then build; fi
check
