#!/usr/bin/env bash
# The test command: installs what the tests need (etcd, Consul, HAProxy), then checks
# formatting and lints, then runs every test against real services. 7 minutes cold on 2 cores,
# plus about a minute to install the packages on a fresh machine (docs/src/development.md, "The
# test suite", says how it was measured).
#
# What takes longer runs after it in .ci/run, on every submission: scripts/release-checks.sh
# (the static binary and its tests in a chroot, the .deb, fuzzing, the book, the etcd stubs).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

# Proves that no build script needs protoc: one that ran it (as etcd-client's did) now fails
# the build. The etcd gRPC stubs are committed; only `scripts/gen-etcd-api.sh --check`, in
# scripts/release-checks.sh, uses protoc.
export PROTOC=/nonexistent PROTOC_INCLUDE=/nonexistent

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

# Everything but the static binary's tests, which need a second release build (run by
# scripts/release-checks.sh).
filter='not test(/^static_binary::/)'
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --all-targets --no-fail-fast -E "$filter"
else
  cargo test --locked --all-targets --no-fail-fast -- --skip static_binary::
fi
