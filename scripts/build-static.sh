#!/usr/bin/env bash
# Builds the static binary target/static/terad-<version>-linux-<arch> and its .sha256, the
# names confd's releases use, and checks it.
#
#   ./scripts/build-static.sh            release build (static), copy, checksum, check
#   ./scripts/build-static.sh --check    only check the existing target/static binary
#
# The binary is glibc linked statically (`-C target-feature=+crt-static` on the gnu target: a
# static-pie), so it runs in any Linux image of the same architecture: Alpine, distroless,
# scratch, old distributions. A musl target would need a toolchain download; this route needs
# nothing beyond the Rust toolchain and the glibc static libraries (libc6-dev) already there.
#
# The build names the host triple with --target, so RUSTFLAGS reach only terad's own code and
# dependencies (not build scripts and proc macros, which must stay dynamic) and the output goes
# to target/<triple>/release: target/release and target/debug are not rebuilt or replaced.
#
# The check fails unless the binary has no program interpreter and no shared library
# dependencies, `file` calls it statically linked (static-pie linked), and `--version` prints
# "terad <version>". What it needs at run time is in README.md ("Install").
set -euo pipefail
cd "$(dirname "$0")/.."

mode=build
case "${1:-}" in
  --check) mode=check ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
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
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --bin terad --target "$triple"
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

if [ "$mode" = build ]; then build; fi
check
