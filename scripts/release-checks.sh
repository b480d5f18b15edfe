#!/usr/bin/env bash
# What CI runs after the test command (scripts/test.sh), on every submission: the release
# artefacts and the checks that take longer than the suite itself.
#   - the static binary (a second release build) and its tests in an empty chroot;
#   - the Debian package: release build, package, and a check of its contents and binary;
#   - a short bounded run of every fuzz target (longer runs: ./scripts/fuzz.sh SECONDS [TARGET]);
#   - the book (docs/) builds and every relative link and anchor in it, in README.md and in
#     BENCHMARKS.md resolves;
#   - the committed etcd gRPC stubs are what scripts/gen-etcd-api.sh generates (the only step
#     that uses protoc).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh --docs
export PROTOC=/nonexistent PROTOC_INCLUDE=/nonexistent

# Named to the tests, so that a missing binary fails them instead of skipping them.
./scripts/build-static.sh
TERAD_TEST_STATIC_BIN="$PWD/$(./scripts/build-static.sh --path)"
export TERAD_TEST_STATIC_BIN
cargo nextest run --locked --all-targets --no-fail-fast -E 'test(/^static_binary::/)'

./scripts/build-deb.sh

./scripts/fuzz.sh 20

mdbook build docs
python3 scripts/check-links.py

# The generator needs protoc itself.
env -u PROTOC -u PROTOC_INCLUDE ./scripts/gen-etcd-api.sh --check
