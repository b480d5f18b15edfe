#!/usr/bin/env bash
# Fleet: INSTANCES (default 200) terad processes watching one prefix of SERVERS (default 1000)
# servers, first on a 3-member etcd cluster, then on 3 Consul servers with a client agent, both
# started by the benchmark on loopback ports; ROUNDS (default 20) puts, each waited for in every
# file. Prints the fan-out (p50, p99, max), the store's watches or connections per instance, its
# CPU while the fleet idles and during a burst of 200 updates in 1 s, a leader kill (failover,
# the store's requests: average and busiest second), the RSS and PSS per instance, and on etcd a
# coordinated rollout of the fleet (max_concurrent = 10, 20 instances SIGKILLed mid-rollout).
# Figures in BENCHMARKS.md ("Fleet").
# Not part of the test suite: it starts hundreds of processes and loads the machine for minutes.
# BENCH_ETCD_DIR=/dev/shm keeps etcd's fsyncs off the disk the fleet writes to.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
(. scripts/release-env.sh && cargo build --release --locked --bin terad)
# The fleet is the release binary; the driver only starts processes, writes and timestamps
# inotify events, so its dev build (no second LTO link, minutes on two cores) does.
cargo run --locked --example bench -- fleet "${1:-200}" "${2:-1000}" "${3:-20}"
cargo run --locked --example bench -- fleet-consul "${1:-200}" "${2:-1000}" "${3:-20}"
