#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (etcd, Consul, HAProxy, and
# protoc for .ci/run's check of the etcd stubs), then checks formatting and lints, then runs
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

# Proves that no build script needs protoc: one that ran it (as etcd-client's did) now fails
# the build. The etcd gRPC stubs are committed; only `scripts/gen-etcd-api.sh --check`, which
# .ci/run runs after this script, uses protoc.
export PROTOC=/nonexistent PROTOC_INCLUDE=/nonexistent

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

# The static binary (target/static/terad-<version>-linux-<arch>): a second release build, for
# the tests that run it in a chroot (tests/it/static_binary.rs). Named to them, so that a
# missing binary fails them instead of skipping them.
./scripts/build-static.sh
TERAD_TEST_STATIC_BIN="$PWD/$(./scripts/build-static.sh --path)"
export TERAD_TEST_STATIC_BIN

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --all-targets --no-fail-fast
else
  cargo test --locked --all-targets --no-fail-fast
fi

# The Debian package: release build, package, and a check of its contents and binary.
./scripts/build-deb.sh

# A short bounded run of every fuzz target (longer runs: ./scripts/fuzz.sh SECONDS [TARGET]).
./scripts/fuzz.sh 20
