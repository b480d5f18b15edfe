//! End-to-end benchmarks of the terad binary with the HAProxy example. Not a test: it measures.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example bench -- onetime-file 1000 10000 100000
//! cargo run --release --example bench -- etcd 1000 10000 100000
//! BENCH_CONSUL_TEMPLATE=/path/to/consul-template cargo run --release --example bench -- consul-template
//! ```
//!
//! - `onetime-file N…`: one-shot wall time and peak RSS, keys from a YAML file.
//! - `etcd N…`: against a real etcd started here on loopback ports, with N servers under
//!   `/proxy/frontend/`: one-shot wall time; in watch mode the latency from a put to the
//!   rewritten destination (p50, p99), resident memory while watching (steady and peak), and the
//!   reloads caused by a burst of 200 updates.
//!
//! - `onetime-haproxy N…`: the container-entrypoint case. A real etcd with N servers, then
//!   `terad --onetime` start to exit with the HAProxy example as shipped: render, `haproxy -c`
//!   on the staged file, swap. Also times `haproxy -c` alone on the result, to show what is
//!   HAProxy's share.
//!
//! - `soak RATE SECONDS` (default 10000 60): a real etcd with 1000 servers registered, terad
//!   watching; RATE updates per second for SECONDS; reports resident memory, threads and open
//!   files at start and end, and whether the final file equals a fresh one-shot render.
//!
//! - `onetime-etcd N…`: a real etcd with N servers, then `terad --onetime --sync-only` start to
//!   exit with each template engine in turn (Tera's `templates/haproxy.cfg.tmpl`, then the same
//!   example as a confd template, `examples/confd/templates/haproxy.cfg.tmpl`, alternating run by
//!   run); checks that both write the same file.
//!
//! - `consul-services N…` (default 10 1000): a real Consul agent (`-dev`) with N instances of the
//!   service `web`, each with a TTL check, and terad watching the HAProxy services example
//!   (`examples/consul-services/templates/haproxy-services.cfg.tmpl`, no `wait`): the latency from a check turning
//!   critical (or passing again) through the agent's API to the rewritten destination (p50, p99),
//!   and resident memory; then resident memory with 50 services watched by one template.
//!
//! - `fleet INSTANCES SERVERS ROUNDS` (default 200 1000 20): a real 3-member etcd cluster, SERVERS
//!   servers, INSTANCES separate `terad --watch` processes (each its own confdir and destination,
//!   every member in `--node`). Reports the time until every instance rendered; the fan-out of
//!   one put to every file (p50, p99, max over ROUNDS puts, each waited for); the store's
//!   watchers and watch streams per instance; the store's CPU while the fleet idles and during a
//!   burst of 200 updates in 1 s; a leader kill (failover, the calls on the other members and
//!   the busiest second); resident memory per instance; then the coordinated rollout of INSTANCES
//!   new processes in one group (`max_concurrent = 10`, a 200 ms reload, 20 SIGKILLed
//!   mid-rollout): time to reach every survivor, most reloads at once.
//!
//! - `fleet-consul INSTANCES SERVERS ROUNDS`: the same fleet on 3 Consul servers and a client
//!   agent (the tests' cluster harness), every instance on the client agent first. The store's
//!   cost is connections per instance, the fleet's GET requests to the agents and the client
//!   agent's RPCs to the servers, counted per second from the agents' statsd lines (Consul 1.8's
//!   metrics endpoint only has 10 s intervals). `scripts/fleet.sh` runs both.
//!
//! - `haproxy-runtime CHANGES HOLD_EVERY` (default 1000 10): HAProxy following etcd with and
//!   without its runtime API (`[template.haproxy]`): the latency from a put to the new server
//!   answering through HAProxy (p50, p99), then, after CHANGES membership changes with a
//!   long-lived request opened every HOLD_EVERY changes and held, HAProxy's processes and
//!   memory (RSS and PSS of the master and every worker) and the reloads run
//!   (`bench/haproxy_runtime.rs`).
//!
//! - `consul-template [INSTANCES [WATCHERS [KEYS…]]]` (default 1000 100 1000 10000): terad side
//!   by side with a real consul-template (`$BENCH_CONSUL_TEMPLATE`, else on `PATH`) on one Consul
//!   agent, both with the same command line and template (terad through a symlink named
//!   `consul-template`): one-shot, put → file and RSS at KEYS keys, health flip → file at
//!   INSTANCES instances, and the Consul requests of WATCHERS templates in one process
//!   (`bench/consul_template.rs`).
//!
//! `--go` (anywhere on the command line) makes every other mode use the Go template instead of
//! the Tera one, as an unchanged confd confdir would: same file name, no `engine` key (terad's
//! `auto` picks Go).
//!
//! Results print as Markdown table rows for BENCHMARKS.md.

// The integration tests' cluster harnesses: the Consul cluster of `fleet-consul`, and ports
// claimed below the ephemeral range (they find `free_port` and `etcd_cluster` as siblings).
#[allow(dead_code)]
#[path = "../tests/it/support/consul_cluster.rs"]
mod consul_cluster;
#[allow(dead_code)]
#[path = "../tests/it/support/etcd_cluster.rs"]
mod etcd_cluster;
#[path = "../tests/it/support/ports.rs"]
mod ports;
use ports::free_port;
// The integration tests' HAProxy: master-worker in its own process group, killed with it.
#[allow(dead_code)]
#[path = "../tests/it/support/haproxy.rs"]
mod haproxy_support;

// What the modes share: terad's binary, a dev Consul agent, /proc readings, percentiles,
// waiting on a destination.
#[path = "bench/harness.rs"]
mod harness;
// The HAProxy example as a confdir, and the stores the modes run against.
#[path = "bench/example.rs"]
mod example;
#[path = "bench/stores.rs"]
mod stores;

// The modes, one file each (fleet-consul reuses the fleet's helpers).
#[path = "bench/consul_template.rs"]
mod consul_template;
#[path = "bench/fleet.rs"]
mod fleet;
#[path = "bench/fleet_consul.rs"]
mod fleet_consul;
#[path = "bench/haproxy_runtime.rs"]
mod haproxy_runtime;
#[path = "bench/onetime.rs"]
mod onetime;
#[path = "bench/services.rs"]
mod services;
#[path = "bench/soak.rs"]
mod soak;
#[path = "bench/watch.rs"]
mod watch;

use example::GO_TEMPLATE;
use fleet::fleet;
use fleet_consul::fleet_consul;
use harness::server_address;
use onetime::{onetime_etcd, onetime_file, onetime_haproxy};
use services::services_bench;
use soak::soak;
use stores::{etcd_connect, put_many};
use watch::watch_bench;

fn main() {
    // reqwest is built without a default TLS provider; terad passes its own configuration,
    // the benchmark's plain-HTTP Consul client needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--go") {
        args.remove(at);
        GO_TEMPLATE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let Some((mode, sizes)) = args.split_first() else {
        eprintln!(
            "usage: bench [--go] (onetime-file | onetime-etcd | onetime-haproxy | haproxy-runtime | etcd | consul | consul-services | consul-template | fleet | fleet-consul | soak) N…"
        );
        std::process::exit(2);
    };
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|s| s.parse().expect("a number of servers"))
        .collect();
    match mode.as_str() {
        "onetime-file" => onetime_file(&sizes),
        "onetime-haproxy" => onetime_haproxy(&sizes),
        "onetime-etcd" => onetime_etcd(&sizes),
        "haproxy-runtime" => haproxy_runtime::run(
            sizes.first().copied().unwrap_or(1000),
            sizes.get(1).copied().unwrap_or(10),
        ),
        "etcd" | "consul" => watch_bench(mode, &sizes),
        "consul-services" => services_bench(if sizes.is_empty() {
            &[10, 1000]
        } else {
            &sizes
        }),
        "consul-template" => consul_template::run(
            sizes.first().copied().unwrap_or(1000),
            sizes.get(1).copied().unwrap_or(100),
            if sizes.len() > 2 {
                &sizes[2..]
            } else {
                &[1000, 10_000]
            },
        ),
        "fleet" => fleet(
            sizes.first().copied().unwrap_or(200),
            sizes.get(1).copied().unwrap_or(1000),
            sizes.get(2).copied().unwrap_or(20),
        ),
        "fleet-consul" => fleet_consul(
            sizes.first().copied().unwrap_or(200),
            sizes.get(1).copied().unwrap_or(1000),
            sizes.get(2).copied().unwrap_or(20),
        ),
        "soak" => soak(
            sizes.first().copied().unwrap_or(10_000),
            sizes.get(1).copied().unwrap_or(60),
            sizes.get(2).copied().unwrap_or(1).max(1),
        ),
        // For profiling by hand: fill an already running etcd at $ETCD_URL.
        "etcd-load" => {
            let url = std::env::var("ETCD_URL").expect("ETCD_URL");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut client = runtime.block_on(etcd_connect(&url)).unwrap();
            for &servers in &sizes {
                let entries = (0..servers)
                    .map(|i| (format!("/proxy/frontend/web-{i:06}"), server_address(i)))
                    .collect();
                runtime.block_on(put_many(&mut client, entries));
            }
        }
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
