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

# `man terad` from the installed package. Only where installing is harmless: CI, as root, on a
# fresh machine (the package's scripts tolerate a system without systemd). The package is
# removed again.
if [ "$(id -u)" -eq 0 ] && [ "${CI:-}" = true ]; then
  deb=$(ls target/debian/terad_*.deb | head -n1)
  dpkg -i "$deb" >/dev/null
  if ! MANWIDTH=100 man terad 2>/dev/null | grep -q -- '--onetime'; then
    echo "release-checks: man terad, from the installed $deb, does not document --onetime" >&2
    exit 1
  fi
  echo "release-checks: man terad works from the installed $deb"
  dpkg -r terad >/dev/null
fi

./scripts/fuzz.sh 20

mdbook build docs
python3 scripts/check-links.py

# The generator needs protoc itself.
env -u PROTOC -u PROTOC_INCLUDE ./scripts/gen-etcd-api.sh --check
