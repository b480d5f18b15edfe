#!/usr/bin/env bash
# Soak: RATE key updates/s (default 10000) for SECONDS (default 60) against a real etcd while terad
# watches the HAProxy example; prints memory, threads, open files and the final-state check.
# BATCH (default 1) puts go in one transaction per request: etcd on two cores takes about 6k
# separate puts/s, so 10k updates/s needs BATCH of 2 or more there.
# Not part of the test suite (it takes a minute and loads the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --locked
cargo run --release --locked --example bench -- soak "${1:-10000}" "${2:-60}" "${3:-1}"
