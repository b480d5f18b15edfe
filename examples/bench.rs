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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use terad::backend::etcd::api::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use terad::backend::etcd::client::{Client as EtcdClient, ConnectOptions, Error as EtcdError};

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
// terad and consul-template side by side.
#[path = "bench/consul_template.rs"]
mod consul_template;
// What the modes share: terad's binary, a dev Consul agent, /proc readings, percentiles.
#[path = "bench/harness.rs"]
mod harness;
use harness::{
    ConsulServer, DirEvents, consul_api, consul_put_many, memory_kb, ms, peak_rss_kb, percentile,
    pss_kb, raw_get, register_instances, server_address, terad_binary, threads_and_fds,
    time_onetime,
};
// The integration tests' HAProxy: master-worker in its own process group, killed with it.
#[path = "bench/haproxy_runtime.rs"]
mod haproxy_runtime;
#[allow(dead_code)]
#[path = "../tests/it/support/haproxy.rs"]
mod haproxy_support;

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

/// `--go`: the modes use the confd (Go) template.
static GO_TEMPLATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The HAProxy example in each engine's language; both render the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    /// `templates/haproxy.cfg.tmpl`
    Tera,
    /// `examples/confd/templates/haproxy.cfg.tmpl`: the same example as a confd template,
    /// names and addresses checked as in Tera (`safeName`, `hostPort`).
    Go,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Tera => "Tera",
            Engine::Go => "Go",
        }
    }
}

/// A confdir with the repository's HAProxy template (the Go one with `--go`) and a resource
/// writing into `out/`, with a reload command that counts reloads in `reloads.log`.
fn confdir(dir: &Path) -> PathBuf {
    let engine = if GO_TEMPLATE.load(std::sync::atomic::Ordering::Relaxed) {
        Engine::Go
    } else {
        Engine::Tera
    };
    confdir_with(dir, engine)
}

/// [`confdir`] with the template of `engine`, always named `haproxy.cfg.tmpl` and without an
/// `engine` key in the resource: the Go one is found by `auto`, as in a confd confdir.
fn confdir_with(dir: &Path, engine: Engine) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let template = match engine {
        Engine::Tera => "templates/haproxy.cfg.tmpl",
        Engine::Go => "examples/confd/templates/haproxy.cfg.tmpl",
    };
    std::fs::copy(root.join(template), dir.join("templates/haproxy.cfg.tmpl")).unwrap();
    let dest = dir.join("out/haproxy.cfg");
    std::fs::write(
        dir.join("conf.d/haproxy.toml"),
        format!(
            "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\nreload_cmd = \"echo reload >> {}\"\n",
            dest.display(),
            dir.join("reloads.log").display()
        ),
    )
    .unwrap();
    dest
}

/// The keys of the HAProxy example: the frontend port and `servers` registered servers.
fn haproxy_entries(port: &str, servers: usize) -> Vec<(String, String)> {
    let mut entries = vec![("/proxy/port".to_owned(), port.to_owned())];
    entries
        .extend((0..servers).map(|i| (format!("/proxy/frontend/web-{i:06}"), server_address(i))));
    entries
}

/// Waits until watch mode's first render (which lists the last server) is at `dest`.
fn wait_initial_render(dest: &Path, servers: usize, limit: Duration) {
    let last = format!("web-{:06}", servers - 1);
    let started = Instant::now();
    while !std::fs::read_to_string(dest).is_ok_and(|t| t.contains(&last)) {
        assert!(started.elapsed() < limit, "no initial render");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn onetime_file(sizes: &[usize]) {
    let terad = terad_binary();
    println!("| servers | keys file | one-shot min | median | p90 | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for &servers in sizes {
        let dir = tempfile::tempdir().unwrap();
        let dest = confdir(dir.path());
        let keys = dir.path().join("keys.yaml");
        let mut yaml = String::from("proxy:\n  port: \"80\"\n  frontend:\n");
        for i in 0..servers {
            yaml.push_str(&format!("    web-{i:06}: {}\n", server_address(i)));
        }
        std::fs::write(&keys, &yaml).unwrap();
        let make = || {
            let mut command = Command::new(&terad);
            command
                .args([
                    "--onetime",
                    "--sync-only",
                    "--log-level",
                    "error",
                    "--backend",
                    "file",
                    "--file",
                ])
                .arg(&keys)
                .arg("--confdir")
                .arg(dir.path());
            command
        };
        let runs = if servers >= 100_000 { 10 } else { 30 };
        let times = time_onetime(make, &dest, runs);
        let peak_kb = peak_rss_kb(&mut make());
        println!(
            "| {servers} | {} KiB | {} | {} | {} | {:.1} MiB |",
            yaml.len() / 1024,
            ms(times[0]),
            ms(percentile(&times, 50)),
            ms(percentile(&times, 90)),
            peak_kb as f64 / 1024.0
        );
    }
}

/// A real etcd on free loopback ports with a temporary data directory.
struct EtcdServer {
    child: Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl EtcdServer {
    fn start(runtime: &tokio::runtime::Runtime) -> EtcdServer {
        // BENCH_ETCD_DIR=/dev/shm keeps etcd's WAL fsyncs off the disk terad writes to, as in a
        // deployment where etcd runs on its own machines.
        let dir = match std::env::var_os("BENCH_ETCD_DIR") {
            Some(d) => tempfile::tempdir_in(d).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        let port = |_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (client, peer) = (port(0), port(1));
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .arg("--log-level=error")
            .arg("--logger=zap")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd installed (scripts/install-deps.sh)");
        let server = EtcdServer {
            child,
            _dir: dir,
            url,
        };
        let ready = || {
            runtime.block_on(async {
                match etcd_connect(&server.url).await {
                    Ok(client) => client.status().await.is_ok(),
                    Err(_) => false,
                }
            })
        };
        let started = Instant::now();
        while !ready() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn client(&self, runtime: &tokio::runtime::Runtime) -> EtcdClient {
        runtime.block_on(etcd_connect(&self.url)).unwrap()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key-value store a watch benchmark runs against, with the client that drives it.
enum Store {
    Etcd(EtcdServer, Box<EtcdClient>),
    Consul(ConsulServer, reqwest::Client),
}

impl Store {
    fn start(kind: &str, runtime: &tokio::runtime::Runtime) -> Store {
        match kind {
            "etcd" => {
                let server = EtcdServer::start(runtime);
                let client = server.client(runtime);
                Store::Etcd(server, Box::new(client))
            }
            _ => {
                let server = ConsulServer::start(runtime);
                Store::Consul(server, reqwest::Client::new())
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Store::Etcd(server, _) => server.url.clone(),
            Store::Consul(server, _) => server.url.clone(),
        }
    }

    fn load(&mut self, runtime: &tokio::runtime::Runtime, entries: Vec<(String, String)>) {
        match self {
            Store::Etcd(_, client) => runtime.block_on(put_many(client, entries)),
            Store::Consul(server, client) => {
                runtime.block_on(consul_put_many(&server.url, client, entries))
            }
        }
    }

    fn put(&mut self, runtime: &tokio::runtime::Runtime, key: &str, value: &str) {
        match self {
            Store::Etcd(_, client) => {
                runtime.block_on(client.put(etcd_put(key, value))).unwrap();
            }
            Store::Consul(server, client) => {
                let url = format!("{}/v1/kv/{}", server.url, key.trim_start_matches('/'));
                let response = runtime
                    .block_on(client.put(url).body(value.to_owned()).send())
                    .unwrap();
                assert!(response.status().is_success());
            }
        }
    }
}

/// Puts many keys in transactions of 128 (etcd's limit per transaction).
async fn put_many(client: &mut EtcdClient, entries: Vec<(String, String)>) {
    for chunk in entries.chunks(128) {
        let puts = chunk.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        client.txn(etcd_txn(puts)).await.unwrap();
    }
}

/// A client for the etcd member at `url` (terad's own, over the gRPC stubs it ships).
async fn etcd_connect(url: &str) -> Result<EtcdClient, EtcdError> {
    EtcdClient::connect(url, &ConnectOptions::default()).await
}

/// A put of `value` at `key`.
fn etcd_put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..PutRequest::default()
    }
}

/// One transaction of puts (etcd takes at most 128 operations in one).
fn etcd_txn<'a>(puts: impl IntoIterator<Item = (&'a str, &'a str)>) -> TxnRequest {
    TxnRequest {
        success: puts
            .into_iter()
            .map(|(key, value)| RequestOp {
                request: Some(request_op::Request::RequestPut(etcd_put(key, value))),
            })
            .collect(),
        ..TxnRequest::default()
    }
}

fn watch_bench(kind: &str, sizes: &[usize]) {
    let terad = terad_binary();
    println!(
        "| servers | one-shot median | put → file p50 | p99 | (put RPC alone p50) | RSS while watching (max sampled) | RSS peak (VmHWM) | reloads for 200 updates | reloads for 200 updates over 1 s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // One runtime for every client call: a client's connection lives on the runtime it was
    // made on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for &servers in sizes {
        let mut store = Store::start(kind, &runtime);
        store.load(&runtime, haproxy_entries("80", servers));

        let dir = tempfile::tempdir().unwrap();
        let dest = confdir(dir.path());
        let terad_command = |mode: &str| {
            let mut command = Command::new(&terad);
            command
                .args([
                    mode,
                    "--log-level",
                    "error",
                    "--backend",
                    kind,
                    "--node",
                    &store.url(),
                ])
                .arg("--confdir")
                .arg(dir.path());
            command
        };
        let runs = if servers >= 100_000 { 10 } else { 30 };
        let onetime = time_onetime(
            || {
                let mut command = terad_command("--onetime");
                command.arg("--sync-only");
                command
            },
            &dest,
            runs,
        );

        // Watch mode.
        let _ = std::fs::remove_file(&dest);
        let mut daemon = terad_command("--watch")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = daemon.id();
        wait_initial_render(&dest, servers, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(500));

        let events = DirEvents::watch(dest.parent().unwrap());

        let iterations = match servers {
            s if s >= 100_000 => 30,
            s if s >= 10_000 => 100,
            _ => 200,
        };
        let mut latencies = Vec::with_capacity(iterations);
        let mut put_rpcs = Vec::with_capacity(iterations);
        let mut sampled_rss = 0;
        for i in 0..iterations {
            let key = format!("/proxy/frontend/web-{:06}", (i * 7919) % servers);
            let value = format!("192.168.{}.{}:{}", i / 250, i % 250, 9000 + i);
            events.drain();
            let t0 = Instant::now();
            store.put(&runtime, &key, &value);
            put_rpcs.push(t0.elapsed());
            events.until(&dest, Duration::from_secs(30), |t| t.contains(&value));
            latencies.push(t0.elapsed());
            sampled_rss = sampled_rss.max(memory_kb(pid).0);
            std::thread::sleep(Duration::from_millis(20));
        }
        latencies.sort();
        put_rpcs.sort();
        // Let the renders settle, then read memory as an idle sidecar has it.
        std::thread::sleep(Duration::from_millis(500));
        let (idle_rss, peak) = memory_kb(pid);
        sampled_rss = sampled_rss.max(idle_rss);

        // Burst: 200 updates as fast as one client can send them.
        let reloads = dir.path().join("reloads.log");
        let before = std::fs::read_to_string(&reloads)
            .unwrap_or_default()
            .lines()
            .count();
        let mut last = String::new();
        for i in 0..200 {
            let key = format!("/proxy/frontend/web-{:06}", i % servers);
            last = format!("172.16.{}.{}:7000", i / 250, i % 250);
            store.put(&runtime, &key, &last);
        }
        let started = Instant::now();
        while !std::fs::read_to_string(&dest).is_ok_and(|t| t.contains(&last)) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "burst not applied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_secs(2));
        let count_reloads = || {
            std::fs::read_to_string(&reloads)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let burst_reloads = count_reloads() - before;

        // The same 200 updates spread over 1 s (one every 5 ms): each may find the last one
        // written and its reload done, which is how a stream of registrations becomes a
        // reload storm without spacing (issue 27: 197 reloads).
        let before = count_reloads();
        let started = Instant::now();
        for i in 0..200u32 {
            let key = format!("/proxy/frontend/web-{:06}", i as usize % servers);
            last = format!("172.17.{}.{}:7000", i / 250, i % 250);
            store.put(&runtime, &key, &last);
            let due = started + Duration::from_millis(5 * u64::from(i + 1));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        while !std::fs::read_to_string(&dest).is_ok_and(|t| t.contains(&last)) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "spread burst not applied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_secs(2));
        let spread_reloads = count_reloads() - before;

        let _ = daemon.kill();
        let _ = daemon.wait();
        println!(
            "| {servers} | {} | {} | {} | ({}) | {:.1} MiB | {:.1} MiB | {burst_reloads} | {spread_reloads} |",
            ms(percentile(&onetime, 50)),
            ms(percentile(&latencies, 50)),
            ms(percentile(&latencies, 99)),
            ms(percentile(&put_rpcs, 50)),
            sampled_rss as f64 / 1024.0,
            peak as f64 / 1024.0,
        );
    }
}

/// RATE key updates per second for SECONDS; with BATCH > 1 each request is a transaction of BATCH
/// puts (one etcd revision, one watch response carrying BATCH events), which is how writers that
/// update many keys at once reach rates a single etcd on two cores cannot take as separate puts.
fn soak(rate: usize, seconds: usize, batch: usize) {
    let terad = terad_binary();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let servers = 1000;
    let etcd = EtcdServer::start(&runtime);
    let mut client = etcd.client(&runtime);
    runtime.block_on(put_many(&mut client, haproxy_entries("80", servers)));

    let dir = tempfile::tempdir().unwrap();
    let dest = confdir(dir.path());
    let mut daemon = Command::new(&terad)
        .args([
            "--watch",
            "--log-level",
            "warn",
            "--backend",
            "etcd",
            "--node",
            &etcd.url,
        ])
        .arg("--confdir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    wait_initial_render(&dest, servers, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let (rss_start, _) = memory_kb(pid);
    let (threads_start, fds_start) = threads_and_fds(pid);

    // RATE updates per second from 32 concurrent writers, each on its own client.
    let writers = 32;
    let per_writer = rate as f64 / writers as f64 / batch as f64;
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let url = etcd.url.clone();
    let mut samples = Vec::new();
    let done = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..writers {
            let url = url.clone();
            tasks.spawn(async move {
                let client = etcd_connect(&url).await.unwrap();
                let interval = Duration::from_secs_f64(1.0 / per_writer);
                let mut next = tokio::time::Instant::now();
                let mut sent = 0usize;
                while Instant::now() < deadline {
                    let mut puts = Vec::with_capacity(batch);
                    for _ in 0..batch {
                        let i = (writer * 7919 + sent * 31) % servers;
                        let value = format!(
                            "172.{}.{}.{}:{}",
                            writer,
                            (sent >> 8) & 255,
                            sent & 255,
                            1000 + i
                        );
                        puts.push((format!("/proxy/frontend/web-{i:06}"), value));
                        sent += 1;
                    }
                    if let [(key, value)] = &puts[..] {
                        client.put(etcd_put(key, value)).await.unwrap();
                    } else {
                        let puts = puts
                            .iter()
                            .map(|(key, value)| (key.as_str(), value.as_str()));
                        client.txn(etcd_txn(puts)).await.unwrap();
                    }
                    next += interval;
                    tokio::time::sleep_until(next).await;
                }
                sent
            });
        }
        let mut total = 0;
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    Some(sent) => total += sent.unwrap(),
                    None => break,
                },
                _ = ticker.tick() => samples.push(memory_kb(pid).0),
            }
        }
        total
    });
    // Let terad settle on the last state.
    std::thread::sleep(Duration::from_secs(3));
    let (rss_end, peak) = memory_kb(pid);
    let (threads_end, fds_end) = threads_and_fds(pid);
    let final_file = std::fs::read_to_string(&dest).unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();

    // The render of the final store, by a fresh one-shot into another directory.
    let check_dir = tempfile::tempdir().unwrap();
    let check_dest = confdir(check_dir.path());
    let output = Command::new(&terad)
        .args([
            "--onetime",
            "--sync-only",
            "--log-level",
            "error",
            "--backend",
            "etcd",
            "--node",
            &etcd.url,
        ])
        .arg("--confdir")
        .arg(check_dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let expected = std::fs::read_to_string(&check_dest).unwrap();

    println!(
        "| updates sent (puts per request: {batch}) | achieved rate | RSS start | RSS end | RSS max sampled | RSS peak | threads start/end | open fds start/end | final file = render of final store |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {done} in {seconds} s | {:.0}/s | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {threads_start}/{threads_end} | {fds_start}/{fds_end} | {} |",
        done as f64 / seconds as f64,
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        samples.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        peak as f64 / 1024.0,
        if final_file == expected { "yes" } else { "NO" }
    );
}

fn onetime_haproxy(sizes: &[usize]) {
    let terad = terad_binary();
    println!(
        "| servers | terad --onetime (render + haproxy -c + swap) median | p90 | haproxy -c alone median |"
    );
    println!("|---|---|---|---|");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for &servers in sizes {
        let mut store = Store::start("etcd", &runtime);
        store.load(&runtime, haproxy_entries("8080", servers));
        let dir = tempfile::tempdir().unwrap();
        let dest = confdir(dir.path());
        // The shipped resource's check; no HAProxy is running, so no reload.
        std::fs::write(
            dir.path().join("conf.d/haproxy.toml"),
            format!(
                "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\ncheck_cmd = \"haproxy -c -f {{{{.src}}}}\"\n",
                dest.display()
            ),
        )
        .unwrap();
        let runs = 30;
        let onetime = time_onetime(
            || {
                let mut command = Command::new(&terad);
                command
                    .args([
                        "--onetime",
                        "--log-level",
                        "error",
                        "--backend",
                        "etcd",
                        "--node",
                    ])
                    .arg(store.url())
                    .arg("--confdir")
                    .arg(dir.path());
                command
            },
            &dest,
            runs,
        );
        let mut check: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let status = Command::new("haproxy")
                    .args(["-c", "-q", "-f"])
                    .arg(&dest)
                    .status()
                    .expect("haproxy");
                assert!(status.success());
                started.elapsed()
            })
            .collect();
        check.sort();
        println!(
            "| {servers} | {} | {} | {} |",
            ms(percentile(&onetime, 50)),
            ms(percentile(&onetime, 90)),
            ms(percentile(&check, 50))
        );
    }
}

/// One-shot from etcd, Tera and Go templates side by side against the same etcd, alternating
/// run by run so that both see the same machine.
fn onetime_etcd(sizes: &[usize]) {
    let terad = terad_binary();
    println!("| servers | template | one-shot min | median | p90 |");
    println!("|---|---|---|---|---|");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for &servers in sizes {
        let mut store = Store::start("etcd", &runtime);
        store.load(&runtime, haproxy_entries("80", servers));
        let engines = [Engine::Tera, Engine::Go];
        let dirs: Vec<tempfile::TempDir> = engines
            .iter()
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let dests: Vec<PathBuf> = engines
            .iter()
            .zip(&dirs)
            .map(|(&engine, dir)| confdir_with(dir.path(), engine))
            .collect();
        let runs = if servers >= 100_000 { 10 } else { 30 };
        let mut times = vec![Vec::with_capacity(runs); engines.len()];
        for _ in 0..runs {
            for (i, dir) in dirs.iter().enumerate() {
                let make = || {
                    let mut command = Command::new(&terad);
                    command
                        .args([
                            "--onetime",
                            "--sync-only",
                            "--log-level",
                            "error",
                            "--backend",
                            "etcd",
                            "--node",
                        ])
                        .arg(store.url())
                        .arg("--confdir")
                        .arg(dir.path());
                    command
                };
                times[i].extend(time_onetime(make, &dests[i], 1));
            }
        }
        let rendered: Vec<Vec<u8>> = dests.iter().map(|d| std::fs::read(d).unwrap()).collect();
        assert!(
            rendered.windows(2).all(|w| w[0] == w[1]),
            "the Tera and Go templates wrote different files"
        );
        for (engine, times) in engines.iter().zip(&mut times) {
            times.sort();
            println!(
                "| {servers} | {} | {} | {} | {} |",
                engine.name(),
                ms(times[0]),
                ms(percentile(times, 50)),
                ms(percentile(times, 90)),
            );
        }
    }
}

/// Health change → file, with N instances of one service; then RSS with 50 services watched.
/// `terad --watch` against the Consul agent at `url`, with the confdir `confdir`, quiet.
fn watch_consul(terad: &Path, url: &str, confdir: &Path) -> Child {
    Command::new(terad)
        .args([
            "--watch",
            "--log-level",
            "error",
            "--backend",
            "consul",
            "--node",
            url,
        ])
        .arg("--confdir")
        .arg(confdir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn services_bench(sizes: &[usize]) {
    let terad = terad_binary();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    println!(
        "| instances | health change → file p50 | leaves / returns p50 | p99 | (check update alone p50) | Consul's blocking answer alone p50: state/critical (health/service?passing) | RSS while watching | RSS peak (VmHWM) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &instances in sizes {
        let server = ConsulServer::start(&runtime);
        register_instances(&runtime, &client, &server, "web", instances);
        let dir = tempfile::tempdir().unwrap();
        for sub in ["conf.d", "templates", "out"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::copy(
            root.join("examples/consul-services/templates/haproxy-services.cfg.tmpl"),
            dir.path().join("templates/haproxy-services.cfg.tmpl"),
        )
        .unwrap();
        let dest = dir.path().join("out/haproxy.cfg");
        std::fs::write(
            dir.path().join("conf.d/haproxy.toml"),
            format!(
                "[template]\nsrc = \"haproxy-services.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy/port\"]\nreload_cmd = \"echo reload >> {}\"\n",
                dest.display(),
                dir.path().join("reloads.log").display()
            ),
        )
        .unwrap();
        let mut daemon = watch_consul(&terad, &server.url, dir.path());
        let pid = daemon.id();
        let last = format!("server web-{:06} ", instances - 1);
        let started = Instant::now();
        while !std::fs::read_to_string(&dest).is_ok_and(|t| t.contains(&last)) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no initial render"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(500));

        let events = DirEvents::watch(dest.parent().unwrap());

        let samples = 100;
        let mut latencies = Vec::with_capacity(samples);
        // Split by direction: a check failing (the instance leaves) or passing (it returns).
        let (mut leaves, mut returns) = (Vec::new(), Vec::new());
        let mut updates = Vec::with_capacity(samples);
        let mut sampled_rss = 0;
        for i in 0..samples {
            // Each instance fails, then passes again: the line leaves, then comes back.
            let k = (i / 2 * 7919) % instances;
            let failing = i % 2 == 0;
            let line = format!("server web-{k:06} ");
            events.drain();
            let t0 = Instant::now();
            consul_api(
                &runtime,
                &client,
                &server,
                reqwest::Method::PUT,
                &format!(
                    "/v1/agent/check/{}/check-web-{k}",
                    if failing { "fail" } else { "pass" }
                ),
                String::new(),
            );
            updates.push(t0.elapsed());
            events.until(&dest, Duration::from_secs(30), |t| {
                t.contains(&line) != failing
            });
            latencies.push(t0.elapsed());
            if failing {
                leaves.push(t0.elapsed());
            } else {
                returns.push(t0.elapsed());
            }
            sampled_rss = sampled_rss.max(memory_kb(pid).0);
            std::thread::sleep(Duration::from_millis(20));
        }
        latencies.sort();
        leaves.sort();
        returns.sort();
        updates.sort();
        std::thread::sleep(Duration::from_millis(500));
        let (idle_rss, peak) = memory_kb(pid);
        sampled_rss = sampled_rss.max(idle_rss);
        let _ = daemon.kill();
        let _ = daemon.wait();

        // The same changes with terad gone and a bare client blocking on what terad's watch
        // blocks on for a check flip (`/v1/health/state/critical`; the catalog query does not
        // wake): how long Consul itself takes to answer, for reference. And the same for the
        // all-in-one `/v1/health/service/web?passing` that one-shot runs read.
        let addr = server.url.trim_start_matches("http://").to_owned();
        let mut consul_alone = Vec::with_capacity(samples);
        let mut health_service_alone = Vec::with_capacity(samples);
        for i in 0..samples {
            let k = (i / 2 * 7919) % instances;
            let failing = i % 2 == 0;
            let query = if i % 4 < 2 {
                "/v1/health/state/critical?"
            } else {
                "/v1/health/service/web?passing&"
            };
            let (index, _) = raw_get(&addr, query.trim_end_matches(['?', '&']));
            let blocking = {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    raw_get(&addr, &format!("{query}index={index}&wait=30s")).1
                })
            };
            std::thread::sleep(Duration::from_millis(50));
            let t0 = Instant::now();
            consul_api(
                &runtime,
                &client,
                &server,
                reqwest::Method::PUT,
                &format!(
                    "/v1/agent/check/{}/check-web-{k}",
                    if failing { "fail" } else { "pass" }
                ),
                String::new(),
            );
            let answered = blocking.join().unwrap().saturating_duration_since(t0);
            if i % 4 < 2 {
                consul_alone.push(answered);
            } else {
                health_service_alone.push(answered);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        health_service_alone.sort();
        consul_alone.sort();
        println!(
            "| {instances} | {} | {} / {} | {} | ({}) | {} ({}) | {:.1} MiB | {:.1} MiB |",
            ms(percentile(&latencies, 50)),
            ms(percentile(&leaves, 50)),
            ms(percentile(&returns, 50)),
            ms(percentile(&latencies, 99)),
            ms(percentile(&updates, 50)),
            ms(percentile(&consul_alone, 50)),
            ms(percentile(&health_service_alone, 50)),
            sampled_rss as f64 / 1024.0,
            peak as f64 / 1024.0,
        );
    }

    // 50 services of 10 instances each, all in one template: 50 blocking queries.
    let services = 50;
    let server = ConsulServer::start(&runtime);
    for s in 0..services {
        register_instances(&runtime, &client, &server, &format!("svc-{s:02}"), 10);
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["conf.d", "templates", "out"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let mut template = String::new();
    for s in 0..services {
        template.push_str(&format!(
            "backend svc-{s:02}\n{{% for i in service(name=\"svc-{s:02}\") %}}    server {{{{ i.id }}}} {{{{ i.address }}}}:{{{{ i.port }}}}\n{{% endfor %}}"
        ));
    }
    std::fs::write(dir.path().join("templates/many.tmpl"), template).unwrap();
    let dest = dir.path().join("out/many.cfg");
    std::fs::write(
        dir.path().join("conf.d/many.toml"),
        format!(
            "[template]\nsrc = \"many.tmpl\"\ndest = \"{}\"\n",
            dest.display()
        ),
    )
    .unwrap();
    let mut daemon = watch_consul(&terad, &server.url, dir.path());
    let pid = daemon.id();
    let started = Instant::now();
    while !std::fs::read_to_string(&dest).is_ok_and(|t| t.contains("server svc-49-000009 ")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no initial render"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A few health changes spread over the services, then idle.
    for s in 0..10 {
        let check = format!("/v1/agent/check/fail/check-svc-{:02}-3", s * 5);
        consul_api(
            &runtime,
            &client,
            &server,
            reqwest::Method::PUT,
            &check,
            String::new(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (rss, peak) = memory_kb(pid);
    let (threads, fds) = threads_and_fds(pid);
    let _ = daemon.kill();
    let _ = daemon.wait();
    println!();
    println!(
        "| watched services | instances | RSS while watching | RSS peak (VmHWM) | threads | open fds |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {services} | {} | {:.1} MiB | {:.1} MiB | {threads} | {fds} |",
        services * 10,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// A 3-member etcd cluster on free loopback ports, for the fleet benchmark.
struct EtcdCluster3 {
    children: Vec<Child>,
    commands: Vec<Command>,
    _dir: tempfile::TempDir,
    urls: Vec<String>,
}

impl EtcdCluster3 {
    fn start(runtime: &tokio::runtime::Runtime) -> EtcdCluster3 {
        let dir = match std::env::var_os("BENCH_ETCD_DIR") {
            Some(d) => tempfile::tempdir_in(d).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        // Below the ephemeral range and claimed (see the harness): a port taken from bind(0)
        // was once handed to an outgoing connection before etcd could listen on it.
        let port = free_port;
        let clients: Vec<u16> = (0..3).map(|_| port()).collect();
        let peers: Vec<u16> = (0..3).map(|_| port()).collect();
        let initial: Vec<String> = (0..3)
            .map(|i| format!("m{i}=http://127.0.0.1:{}", peers[i]))
            .collect();
        let urls: Vec<String> = clients
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let mut commands: Vec<Command> = (0..3)
            .map(|i| {
                let mut command = Command::new("etcd");
                command
                    .arg(format!("--name=m{i}"))
                    .arg(format!(
                        "--data-dir={}",
                        dir.path().join(format!("m{i}")).display()
                    ))
                    .arg(format!("--listen-client-urls={}", urls[i]))
                    .arg(format!("--advertise-client-urls={}", urls[i]))
                    .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", peers[i]))
                    .arg(format!(
                        "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                        peers[i]
                    ))
                    .arg(format!("--initial-cluster={}", initial.join(",")))
                    .arg(format!(
                        "--initial-cluster-token=fleet-{}",
                        std::process::id()
                    ))
                    .arg("--initial-cluster-state=new")
                    .arg("--log-level=error")
                    .arg("--logger=zap")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                command
            })
            .collect();
        let children = commands
            .iter_mut()
            .map(|command| {
                command
                    .spawn()
                    .expect("etcd installed (scripts/install-deps.sh)")
            })
            .collect();
        let cluster = EtcdCluster3 {
            children,
            commands,
            _dir: dir,
            urls,
        };
        let has_leader = |url: &String| {
            runtime.block_on(async {
                match etcd_connect(url).await {
                    Ok(client) => client.status().await.is_ok_and(|s| s.leader != 0),
                    Err(_) => false,
                }
            })
        };
        let started = Instant::now();
        while !cluster.urls.iter().all(has_leader) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the etcd cluster did not form"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// The member that leads, as the members report it.
    fn leader(&self, runtime: &tokio::runtime::Runtime) -> Option<usize> {
        runtime.block_on(async {
            for url in &self.urls {
                let Ok(client) = etcd_connect(url).await else {
                    continue;
                };
                let Ok(status) = client.status().await else {
                    continue;
                };
                if status.leader == 0 {
                    continue;
                }
                for (i, other) in self.urls.iter().enumerate() {
                    let Ok(client) = etcd_connect(other).await else {
                        continue;
                    };
                    if let Ok(theirs) = client.status().await
                        && theirs.header.map(|h| h.member_id) == Some(status.leader)
                    {
                        return Some(i);
                    }
                }
            }
            None
        })
    }

    fn kill(&mut self, i: usize) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
    }

    /// Starts a killed member again, with its data.
    fn restart(&mut self, i: usize) {
        self.children[i] = self.commands[i].spawn().unwrap();
    }

    /// Sum over the members of the counter or gauge `name` on the lines that contain `label`.
    fn counter(&self, runtime: &tokio::runtime::Runtime, name: &str, label: &str) -> f64 {
        self.counter_on(runtime, &[0, 1, 2], name, label)
    }

    /// [`EtcdCluster3::counter`] over some members only.
    fn counter_on(
        &self,
        runtime: &tokio::runtime::Runtime,
        members: &[usize],
        name: &str,
        label: &str,
    ) -> f64 {
        let urls: Vec<String> = members.iter().map(|&i| self.urls[i].clone()).collect();
        metric_sum(runtime, &urls, name, label)
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for EtcdCluster3 {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time (user + system) a process has used so far.
/// The sum over the etcd members at `urls` of the Prometheus series `name` whose labels hold
/// `label`.
fn metric_sum(runtime: &tokio::runtime::Runtime, urls: &[String], name: &str, label: &str) -> f64 {
    let http = reqwest::Client::new();
    urls.iter()
        .map(|url| {
            let text = runtime
                .block_on(async {
                    http.get(format!("{url}/metrics"))
                        .send()
                        .await?
                        .text()
                        .await
                })
                .unwrap_or_default();
            text.lines()
                .filter(|line| line.split(['{', ' ']).next() == Some(name) && line.contains(label))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum()
}

/// Samples the gRPC calls started on the members at `urls` every 250 ms until `stop`; returns
/// the highest count over any 1 s (four consecutive samples).
fn peak_call_rate(urls: Vec<String>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<f64> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            samples.push(metric_sum(&runtime, &urls, "grpc_server_started_total", ""));
            std::thread::sleep(Duration::from_millis(250));
        }
        samples.windows(5).map(|w| w[4] - w[0]).fold(0.0, f64::max)
    })
}

fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses; utime and stime
    // are the 14th and 15th fields, in clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter().map(|&pid| cpu_time(pid)).sum()
}

/// Waits until every file in `dests` holds all of `values`; returns how long after `since` each one
/// was renamed into place (inotify events, timestamped as they arrive).
fn fan_out(
    events: &std::sync::mpsc::Receiver<(PathBuf, Instant)>,
    dests: &std::collections::HashSet<PathBuf>,
    values: &[String],
    since: Instant,
    limit: Duration,
) -> Vec<Duration> {
    let mut done: std::collections::HashMap<PathBuf, Duration> = Default::default();
    let current = |path: &Path| {
        std::fs::read_to_string(path).is_ok_and(|t| values.iter().all(|v| t.contains(v.as_str())))
    };
    while done.len() < dests.len() {
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(first) => {
                // Everything queued too, each file at its latest event: an earlier event read
                // late must not be credited with a later rename's content.
                let mut latest: std::collections::HashMap<PathBuf, Instant> = Default::default();
                for (path, at) in std::iter::once(first).chain(events.try_iter()) {
                    latest.insert(path, at);
                }
                for (path, at) in latest {
                    if dests.contains(&path) && !done.contains_key(&path) && current(&path) {
                        done.insert(path, at.saturating_duration_since(since));
                    }
                }
            }
            // Quiet: an event may have been missed (the queue overflowed); look at the files.
            Err(_) => {
                assert!(
                    since.elapsed() < limit,
                    "{} of {} files current after {limit:?}",
                    done.len(),
                    dests.len()
                );
                for dest in dests {
                    if !done.contains_key(dest) && current(dest) {
                        done.insert(dest.clone(), since.elapsed());
                    }
                }
            }
        }
    }
    done.into_values().collect()
}

/// The fleet's processes, killed when dropped: a run that panics half-way must not leave
/// hundreds of terad processes behind (one did, before this).
struct Instances(Vec<Child>);

impl Drop for Instances {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `instances` `terad --watch` processes on `backend` at `nodes`, each with its own
/// confdir under `root` rendering the HAProxy example into its own destination; `extra(i)`
/// adds lines to instance i's resource. Returns the processes and the destinations.
fn spawn_fleet(
    terad: &Path,
    root: &Path,
    instances: usize,
    backend: &str,
    nodes: &[String],
    extra: impl Fn(usize) -> String,
) -> (Instances, Vec<PathBuf>) {
    let mut children = Instances(Vec::new());
    let mut dests = Vec::new();
    for i in 0..instances {
        let dir = root.join(format!("i{i:04}"));
        for sub in ["conf.d", "templates", "out"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/haproxy.cfg.tmpl"),
            dir.join("templates/haproxy.cfg.tmpl"),
        )
        .unwrap();
        let dest = dir.join("out/haproxy.cfg");
        std::fs::write(
            dir.join("conf.d/haproxy.toml"),
            format!(
                "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\n{}",
                dest.display(),
                extra(i)
            ),
        )
        .unwrap();
        let mut command = Command::new(terad);
        command
            .args(["--watch", "--log-level", "error", "--backend", backend])
            .args(["--instance", &format!("i{i:04}")])
            .arg("--confdir")
            .arg(&dir);
        for node in nodes {
            command.args(["--node", node]);
        }
        children.0.push(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        dests.push(dest);
    }
    (children, dests)
}

/// Timestamps every inotify event in the directories of `dests` as it arrives; the events
/// flow while the returned watcher lives.
fn watch_dests(
    dests: &std::collections::HashSet<PathBuf>,
) -> (
    notify::RecommendedWatcher,
    std::sync::mpsc::Receiver<(PathBuf, Instant)>,
) {
    use notify::Watcher;
    let (events_tx, events) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let at = Instant::now();
            for path in event.paths {
                let _ = events_tx.send((path, at));
            }
        }
    })
    .unwrap();
    for dest in dests {
        watcher
            .watch(dest.parent().unwrap(), notify::RecursiveMode::NonRecursive)
            .unwrap();
    }
    (watcher, events)
}

/// Where the fleet benchmarks write: the etcd cluster, or a Consul agent's KV.
#[derive(Clone)]
enum FleetWriter {
    Etcd(Box<EtcdClient>),
    Consul { http: reqwest::Client, url: String },
}

impl FleetWriter {
    async fn put(&self, key: &str, value: &str) {
        match self {
            FleetWriter::Etcd(client) => {
                client.put(etcd_put(key, value)).await.unwrap();
            }
            FleetWriter::Consul { http, url } => consul_put(http, url, key, value).await,
        }
    }
}

/// Fan-out: one put, then every file holding it; `rounds` times. Returns every file's latency
/// and each put's slowest file, sorted.
fn fan_out_rounds(
    runtime: &tokio::runtime::Runtime,
    writer: &FleetWriter,
    events: &std::sync::mpsc::Receiver<(PathBuf, Instant)>,
    dests: &std::collections::HashSet<PathBuf>,
    servers: usize,
    rounds: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut all = Vec::with_capacity(rounds * dests.len());
    let mut round_max = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let key = format!("/proxy/frontend/web-{:06}", (r * 7919) % servers);
        let value = format!("192.168.{}.{}:{}", r / 250, r % 250, 9000 + r);
        while events.try_recv().is_ok() {}
        let t0 = Instant::now();
        runtime.block_on(writer.put(&key, &value));
        let mut latencies = fan_out(events, dests, &[value], t0, Duration::from_secs(120));
        latencies.sort();
        round_max.push(*latencies.last().unwrap());
        all.extend(latencies);
        std::thread::sleep(Duration::from_secs(1));
    }
    all.sort();
    round_max.sort();
    (all, round_max)
}

/// A burst: 200 updates spread over 1 s (one every 5 ms, each on its own key, not waiting for
/// the one before), then every file holding all of them. Returns when it started, how long
/// sending took, and every file's latency, sorted.
fn burst(
    runtime: &tokio::runtime::Runtime,
    writer: &FleetWriter,
    events: &std::sync::mpsc::Receiver<(PathBuf, Instant)>,
    dests: &std::collections::HashSet<PathBuf>,
    servers: usize,
) -> (Instant, Duration, Vec<Duration>) {
    while events.try_recv().is_ok() {}
    let t0 = Instant::now();
    let values: Vec<String> = (0..200)
        .map(|i| format!("172.16.{}.{}:7000", i / 250, i % 250))
        .collect();
    let sent = runtime.block_on(async {
        let mut puts = tokio::task::JoinSet::new();
        for (i, value) in values.iter().enumerate() {
            let (writer, value) = (writer.clone(), value.clone());
            let key = format!("/proxy/frontend/web-{:06}", (i * 31) % servers);
            let due = tokio::time::Instant::from_std(t0 + Duration::from_millis(5 * i as u64));
            puts.spawn(async move {
                tokio::time::sleep_until(due).await;
                writer.put(&key, &value).await;
            });
        }
        while let Some(put) = puts.join_next().await {
            put.unwrap();
        }
        t0.elapsed()
    });
    let mut latencies = fan_out(events, dests, &values, t0, Duration::from_secs(120));
    latencies.sort();
    (t0, sent, latencies)
}

/// Issue 15's fleet: INSTANCES terad processes watching one prefix of SERVERS servers on a
/// 3-member etcd cluster.
fn fleet(instances: usize, servers: usize, rounds: usize) {
    let terad = terad_binary();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cluster = EtcdCluster3::start(&runtime);
    // One member is enough to write through; the leader kill below writes through a survivor.
    let mut client = runtime.block_on(etcd_connect(&cluster.urls[0])).unwrap();
    runtime.block_on(put_many(&mut client, haproxy_entries("80", servers)));
    let etcd_pids = cluster.pids();

    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // No check or reload command: what is measured is the store's fan-out to the files.
    let (children, dest_list) = spawn_fleet(
        &terad,
        root.path(),
        instances,
        "etcd",
        &cluster.urls,
        |_| String::new(),
    );
    for dest in &dest_list {
        wait_initial_render(dest, servers, Duration::from_secs(300));
    }
    let all_rendered = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let dests: std::collections::HashSet<PathBuf> = dest_list.into_iter().collect();
    let (_watcher, events) = watch_dests(&dests);

    // The store's cost of an idle fleet: the watches it holds, and its CPU over 10 s (the
    // watch watchdog asks for a progress notification after each second of silence).
    let watchers = cluster.counter(&runtime, "etcd_debugging_mvcc_watcher_total", "");
    let streams = cluster.counter(&runtime, "etcd_debugging_mvcc_watch_stream_total", "");
    let cpu_before = cpu_of(&etcd_pids);
    let terad_pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    let terad_cpu_before = cpu_of(&terad_pids);
    std::thread::sleep(Duration::from_secs(10));
    let idle_store_cpu = cpu_of(&etcd_pids).saturating_sub(cpu_before);
    let idle_fleet_cpu = cpu_of(&terad_pids).saturating_sub(terad_cpu_before);

    let writer = FleetWriter::Etcd(Box::new(client.clone()));
    let (all, round_max) = fan_out_rounds(&runtime, &writer, &events, &dests, servers, rounds);
    let cpu_before = cpu_of(&etcd_pids);
    let (t0, sent, burst) = burst(&runtime, &writer, &events, &dests, servers);
    let burst_store_cpu = cpu_of(&etcd_pids).saturating_sub(cpu_before);
    let burst_wall = t0.elapsed();

    // A blip: the leader is killed and restarted 3 s later; a put right after the kill (once
    // the cluster takes it) must reach every file. The store's request counters over the
    // episode show whether the fleet came back with jittered retries or in a tight loop.
    std::thread::sleep(Duration::from_secs(2));
    let leader = cluster.leader(&runtime).expect("a leader");
    // Counted on the members that stay up (the restarted one starts its counters over).
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let count = |cluster: &EtcdCluster3, label: &str| {
        cluster.counter_on(&runtime, &survivors, "grpc_server_started_total", label)
    };
    let started_before = count(&cluster, "");
    let ranges_before = count(&cluster, "\"Range\"");
    let watches_before = count(&cluster, "\"Watch\"");
    let writer = runtime
        .block_on(etcd_connect(&cluster.urls[survivors[0]]))
        .unwrap();
    while events.try_recv().is_ok() {}
    let sampling = Arc::new(AtomicBool::new(false));
    let peak = peak_call_rate(
        survivors.iter().map(|&i| cluster.urls[i].clone()).collect(),
        Arc::clone(&sampling),
    );
    let blip = Instant::now();
    cluster.kill(leader);
    let value = "10.99.99.99:9999".to_owned();
    loop {
        let put = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(1),
                writer.put(etcd_put("/proxy/frontend/web-000000", &value)),
            )
            .await
        });
        if matches!(put, Ok(Ok(_))) {
            break;
        }
        assert!(
            blip.elapsed() < Duration::from_secs(30),
            "no write after the leader died"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let committed = blip.elapsed();
    let mut after_blip = fan_out(&events, &dests, &[value], blip, Duration::from_secs(120));
    after_blip.sort();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(blip.elapsed()));
    cluster.restart(leader);
    // Counted over 10 s from the kill: the failover and the member's return.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(blip.elapsed()));
    sampling.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    let window = blip.elapsed().as_secs_f64();
    let requests = count(&cluster, "") - started_before;
    let ranges = count(&cluster, "\"Range\"") - ranges_before;
    let watches = count(&cluster, "\"Watch\"") - watches_before;

    let rss: Vec<u64> = terad_pids.iter().map(|&pid| memory_kb(pid).0).collect();
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1024.0;
    let rss_max = *rss.iter().max().unwrap() as f64 / 1024.0;
    let pss: Vec<(u64, u64)> = terad_pids.iter().map(|&pid| pss_kb(pid)).collect();
    let pss_mean = pss.iter().map(|p| p.0).sum::<u64>() as f64 / pss.len() as f64 / 1024.0;
    let anon_mean = pss.iter().map(|p| p.1).sum::<u64>() as f64 / pss.len() as f64 / 1024.0;

    drop(children);
    println!("fleet: {instances} terad processes, {servers} servers, 3-member etcd cluster");
    println!(
        "every instance rendered {:.1} s after the first was started",
        all_rendered.as_secs_f64()
    );
    println!(
        "fan-out, one put to every file, {} puts x {instances} files: p50 {}, p99 {}, max {} (slowest file per put: median {})",
        rounds,
        ms(percentile(&all, 50)),
        ms(percentile(&all, 99)),
        ms(*all.last().unwrap()),
        ms(percentile(&round_max, 50)),
    );
    println!(
        "store: {:.0} watchers and {:.0} watch streams for {instances} instances ({:.2} and {:.2} per instance)",
        watchers,
        streams,
        watchers / instances as f64,
        streams / instances as f64
    );
    println!(
        "store CPU while the fleet idles: {:.1} % of one core (the fleet itself: {:.1} %)",
        idle_store_cpu.as_secs_f64() * 10.0,
        idle_fleet_cpu.as_secs_f64() * 10.0
    );
    println!(
        "burst of 200 updates sent in {:.2} s: every file holding all 200 {} after the first put (p50 {}; the driver saw it at {:.2} s); store CPU {:.2} s",
        sent.as_secs_f64(),
        ms(*burst.last().unwrap()),
        ms(percentile(&burst, 50)),
        burst_wall.as_secs_f64(),
        burst_store_cpu.as_secs_f64()
    );
    println!(
        "leader killed (restarted after 3 s): a put committed {:.2} s after the kill; every file current {} after the kill, {} after the commit (p50 {}); \
         over {window:.0} s the two other members counted {requests:.0} gRPC calls ({:.0}/s on average, {peak:.0} in the busiest second), {ranges:.0} Range ({:.2} per instance), {watches:.0} new watch streams",
        committed.as_secs_f64(),
        ms(*after_blip.last().unwrap()),
        ms(after_blip.last().unwrap().saturating_sub(committed)),
        ms(percentile(&after_blip, 50)),
        requests / window,
        ranges / instances as f64,
    );
    println!(
        "RSS per instance: mean {rss_mean:.1} MiB, max {rss_max:.1} MiB; PSS mean {pss_mean:.1} MiB, of it anonymous {anon_mean:.1} MiB"
    );

    rollout(&terad, &runtime, &cluster, &mut client, instances, servers);
}

/// The fleet's coordinated rollout: INSTANCES new `terad --watch` processes in one group with
/// `max_concurrent = 10` and a 200 ms reload; one put rolls through them while 20 are
/// SIGKILLed (ten of them holding a slot, mid-reload, as far as the reload log shows). Prints
/// the time for the change to reach every survivor, the most reloads seen running at once,
/// and whether every survivor reloaded.
fn rollout(
    terad: &Path,
    runtime: &tokio::runtime::Runtime,
    cluster: &EtcdCluster3,
    client: &mut EtcdClient,
    instances: usize,
    servers: usize,
) {
    const MAX_CONCURRENT: usize = 10;
    const KILLED: usize = 20;
    let root = tempfile::tempdir().unwrap();
    let reloads = root.path().join("reloads.log");
    // Each reload appends its start and end (one short O_APPEND write each) to one log.
    let (mut children, dests) = spawn_fleet(
        terad,
        root.path(),
        instances,
        "etcd",
        &cluster.urls,
        |i| {
            format!(
                "reload_cmd = \"sh -c 'echo s $(date +%s%N) {i} >> {log}; sleep 0.2; echo e $(date +%s%N) {i} >> {log}'\"\n\n\
             [template.coordination]\ngroup = \"bench-rollout\"\nmax_concurrent = {MAX_CONCURRENT}\n",
                log = reloads.display()
            )
        },
    );
    for dest in &dests {
        wait_initial_render(dest, servers, Duration::from_secs(300));
    }
    // The first renders' reloads (if any) settle before the change.
    std::thread::sleep(Duration::from_secs(3));
    let _ = std::fs::remove_file(&reloads);

    let value = "10.77.77.77:7777";
    let t0 = Instant::now();
    runtime
        .block_on(client.put(etcd_put("/proxy/frontend/web-000001", value)))
        .unwrap();
    // Once the rollout is under way, kill ten instances mid-reload and ten still waiting.
    let mut killed = std::collections::HashSet::new();
    let deadline = t0 + Duration::from_secs(30);
    while killed.len() < KILLED / 2 && Instant::now() < deadline {
        let log = std::fs::read_to_string(&reloads).unwrap_or_default();
        let (started, ended) = reloaded(&reload_marks(&log));
        for &i in &started {
            if !ended.contains(&i) && killed.len() < KILLED / 2 && killed.insert(i) {
                let _ = children.0[i].kill();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(&reloads).unwrap_or_default();
    let (started, _) = reloaded(&reload_marks(&log));
    for i in (0..instances).rev() {
        if killed.len() >= KILLED {
            break;
        }
        if !started.contains(&i) && killed.insert(i) {
            let _ = children.0[i].kill();
        }
    }
    let killed_at = t0.elapsed();

    // Every survivor must reload with the change; none may wait forever.
    let survivors: Vec<usize> = (0..instances).filter(|i| !killed.contains(i)).collect();
    let limit = Duration::from_secs(300);
    let done = loop {
        let log = std::fs::read_to_string(&reloads).unwrap_or_default();
        let (_, ended) = reloaded(&reload_marks(&log));
        let current = survivors.iter().all(|&i| {
            ended.contains(&i)
                && std::fs::read_to_string(&dests[i]).is_ok_and(|t| t.contains(value))
        });
        if current {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "{} of {} survivors reloaded after {limit:?}",
            survivors.iter().filter(|i| ended.contains(i)).count(),
            survivors.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Reloads of killed instances still running end later: read the log once they have.
    std::thread::sleep(Duration::from_secs(1));
    let marks = reload_marks(&std::fs::read_to_string(&reloads).unwrap_or_default());
    let (started, _) = reloaded(&marks);
    // The most reloads running at once: starts and ends in time order (an end first on a tie).
    let mut steps: Vec<(u128, i32)> = marks
        .iter()
        .map(|&(start, at, _)| (at, if start { 1 } else { -1 }))
        .collect();
    steps.sort();
    let (mut running, mut most) = (0i32, 0i32);
    for (_, step) in steps {
        running += step;
        most = most.max(running);
    }
    let last_end = marks
        .iter()
        .filter(|m| !m.0)
        .map(|m| m.1)
        .max()
        .unwrap_or(0);
    let first_start = marks.iter().filter(|m| m.0).map(|m| m.1).min().unwrap_or(0);
    println!(
        "coordinated rollout: {instances} instances, max_concurrent = {MAX_CONCURRENT}, a 200 ms reload, {} SIGKILLed ({} mid-reload) by {:.2} s: \
         every one of the {} survivors reloaded with the change {:.2} s after the put (first reload start to last end {:.2} s); \
         {} reloads in all, at most {most} running at once",
        killed.len(),
        killed.iter().filter(|i| started.contains(i)).count(),
        killed_at.as_secs_f64(),
        survivors.len(),
        done.as_secs_f64(),
        (last_end.saturating_sub(first_start)) as f64 / 1e9,
        marks.iter().filter(|m| m.0).count(),
    );
    assert!(
        most as usize <= MAX_CONCURRENT,
        "more than {MAX_CONCURRENT} reloads at once"
    );
}

/// The reload log's lines: (started, ns since the epoch, instance).
fn reload_marks(log: &str) -> Vec<(bool, u128, usize)> {
    log.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let started = match fields.next()? {
                "s" => true,
                "e" => false,
                _ => return None,
            };
            Some((
                started,
                fields.next()?.parse().ok()?,
                fields.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// The instances with a reload started, and those with one ended, in `marks`.
fn reloaded(
    marks: &[(bool, u128, usize)],
) -> (
    std::collections::HashSet<usize>,
    std::collections::HashSet<usize>,
) {
    let mut started = std::collections::HashSet::new();
    let mut ended = std::collections::HashSet::new();
    for &(start, _, i) in marks {
        if start {
            started.insert(i);
        } else {
            ended.insert(i);
        }
    }
    (started, ended)
}

/// A KV write through the agent at `url`; panics unless it is taken.
async fn consul_put(http: &reqwest::Client, url: &str, key: &str, value: &str) {
    let response = http
        .put(format!("{url}/v1/kv/{}", key.trim_start_matches('/')))
        .body(value.to_owned())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "put {key}: {}",
        response.status()
    );
}

/// Counters the Consul agents send as statsd lines (`telemetry { statsd_address }`), each
/// timestamped as it arrives. Consul 1.8's own metrics endpoint only serves 10 s intervals;
/// its statsd sink flushes every 100 ms, fine enough for a busiest second.
struct StatsdCounts {
    address: std::net::SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<(Instant, &'static str)>>>,
}

/// The counters [`StatsdCounts`] keeps (a trailing `.` takes every name under it): the client
/// agent's RPCs to the servers, and the GET requests the agents answer, each a
/// `consul.http.GET.<path>` timer sample. The fleet only reads; the benchmark only writes.
const STATSD_COUNTERS: [&str; 2] = ["consul.client.rpc", "consul.http.GET."];

impl StatsdCounts {
    fn listen() -> StatsdCounts {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buffer) {
                let at = Instant::now();
                let text = String::from_utf8_lossy(&buffer[..n]);
                let mut sink = sink.lock().unwrap();
                for line in text.lines() {
                    // `name:value|type`: a counter's value is its increment; a timer's line is
                    // one sample, one request.
                    let Some((name, rest)) = line.split_once(':') else {
                        continue;
                    };
                    let Some(counter) = STATSD_COUNTERS
                        .iter()
                        .find(|c| name == **c || (c.ends_with('.') && name.starts_with(*c)))
                    else {
                        continue;
                    };
                    let increment = match rest.split_once('|') {
                        Some((value, "c")) => value.parse::<f64>().unwrap_or(0.0) as usize,
                        _ => 1,
                    };
                    sink.extend(std::iter::repeat_n((at, *counter), increment));
                }
            }
        });
        StatsdCounts { address, seen }
    }

    /// How many `counter` events arrived between `from` and `to`, and the most in any 1 s.
    fn between(&self, counter: &str, from: Instant, to: Instant) -> (usize, usize) {
        let times: Vec<Instant> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, name)| *name == counter && *at >= from && *at <= to)
            .map(|(at, _)| *at)
            .collect();
        let mut busiest = 0;
        let mut first = 0;
        for (last, at) in times.iter().enumerate() {
            while at.duration_since(times[first]) >= Duration::from_secs(1) {
                first += 1;
            }
            busiest = busiest.max(last + 1 - first);
        }
        (times.len(), busiest)
    }
}

/// Writes through the agents `via` in turn, every 20 ms until one takes it; returns when the
/// write is committed.
fn put_through(
    cluster: &consul_cluster::ConsulCluster,
    via: &[usize],
    key: &str,
    value: &str,
) -> Instant {
    let started = Instant::now();
    loop {
        if via.iter().any(|&i| cluster.put_via(i, key, value)) {
            return Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no server took a write of {key}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Established TCP connections to `port` on loopback (the fleet's connections to an agent).
fn connections_to(port: u16) -> usize {
    let output = Command::new("ss")
        .args(["-Htn", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).lines().count()
}

/// Issue 15's fleet on Consul: INSTANCES terad processes, each given the client agent first and
/// then the three servers, watching one prefix of SERVERS servers.
fn fleet_consul(instances: usize, servers: usize, rounds: usize) {
    use consul_cluster::{CLIENT, ConsulCluster};
    let terad = terad_binary();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statsd = StatsdCounts::listen();
    let mut cluster = ConsulCluster::start_with(&format!(
        "telemetry {{\n  statsd_address = \"{}\"\n}}\n",
        statsd.address
    ));
    let http = reqwest::Client::new();
    let agent = cluster.url(CLIENT);
    runtime.block_on(consul_put_many(
        &agent,
        &http,
        haproxy_entries("80", servers),
    ));
    let consul_pids = cluster.pids();

    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (children, dest_list) = spawn_fleet(
        &terad,
        root.path(),
        instances,
        "consul",
        &cluster.terad_nodes(),
        |_| String::new(),
    );
    for dest in &dest_list {
        wait_initial_render(dest, servers, Duration::from_secs(300));
    }
    let all_rendered = started.elapsed();
    let dests: std::collections::HashSet<PathBuf> = dest_list.iter().cloned().collect();
    std::thread::sleep(Duration::from_secs(2));
    let (_watcher, events) = watch_dests(&dests);

    let agent_port: u16 = agent.rsplit(':').next().unwrap().parse().unwrap();
    let connections = connections_to(agent_port);
    let cpu_before = cpu_of(&consul_pids);
    let terad_pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    let terad_cpu_before = cpu_of(&terad_pids);
    let idle_from = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let idle_store_cpu = cpu_of(&consul_pids).saturating_sub(cpu_before);
    let idle_fleet_cpu = cpu_of(&terad_pids).saturating_sub(terad_cpu_before);
    let idle_window = idle_from.elapsed();
    let idle_rate = |counter: &str| {
        statsd
            .between(counter, idle_from, idle_from + idle_window)
            .0 as f64
            / idle_window.as_secs_f64()
    };
    let (idle_rpcs, idle_reads) = (
        idle_rate("consul.client.rpc"),
        idle_rate("consul.http.GET."),
    );

    let writer = FleetWriter::Consul {
        http: http.clone(),
        url: agent.clone(),
    };
    let (all, _) = fan_out_rounds(&runtime, &writer, &events, &dests, servers, rounds);
    let cpu_before = cpu_of(&consul_pids);
    let (_, sent, burst) = burst(&runtime, &writer, &events, &dests, servers);
    let burst_store_cpu = cpu_of(&consul_pids).saturating_sub(cpu_before);

    // A blip: the leader server is killed and restarted 3 s later.
    std::thread::sleep(Duration::from_secs(2));
    let leader = cluster.leader().expect("a leader");
    while events.try_recv().is_ok() {}
    let blip = Instant::now();
    cluster.kill(leader);
    let value = "10.99.99.99:9999".to_owned();
    // Written through the surviving servers, so the client agent's RPCs are the fleet's.
    let survivors: Vec<usize> = (0..3).filter(|&s| s != leader).collect();
    let committed = put_through(&cluster, &survivors, "/proxy/frontend/web-000000", &value) - blip;
    let mut after_blip = fan_out(&events, &dests, &[value], blip, Duration::from_secs(120));
    after_blip.sort();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(blip.elapsed()));
    cluster.restart(leader);
    // The restarted server's catch-up, and a last statsd flush.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(blip.elapsed()));
    let blip_window = blip.elapsed();
    let blip_counts = |counter: &str| statsd.between(counter, blip, blip + blip_window);
    let (rpcs, rpc_peak) = blip_counts("consul.client.rpc");
    let (reads, read_peak) = blip_counts("consul.http.GET.");

    let rss: Vec<u64> = terad_pids.iter().map(|&pid| memory_kb(pid).0).collect();
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1024.0;
    let rss_max = *rss.iter().max().unwrap() as f64 / 1024.0;
    let pss: Vec<(u64, u64)> = terad_pids.iter().map(|&pid| pss_kb(pid)).collect();
    let pss_mean = pss.iter().map(|p| p.0).sum::<u64>() as f64 / pss.len() as f64 / 1024.0;
    let anon_mean = pss.iter().map(|p| p.1).sum::<u64>() as f64 / pss.len() as f64 / 1024.0;
    drop(children);

    println!(
        "fleet: {instances} terad processes, {servers} servers, 3 Consul servers and a client agent (every instance on the client agent first)"
    );
    println!(
        "every instance rendered {:.1} s after the first was started",
        all_rendered.as_secs_f64()
    );
    println!(
        "fan-out, one put to every file, {rounds} puts x {instances} files: p50 {}, p99 {}, max {}",
        ms(percentile(&all, 50)),
        ms(percentile(&all, 99)),
        ms(*all.last().unwrap()),
    );
    println!(
        "store: {connections} connections to the client agent ({:.2} per instance); while the fleet idles, per second: {idle_reads:.1} GET requests to the agents, {idle_rpcs:.1} RPCs from the client agent to the servers",
        connections as f64 / instances as f64,
    );
    println!(
        "store CPU while the fleet idles: {:.1} % of one core, 4 agents (the fleet itself: {:.1} %)",
        idle_store_cpu.as_secs_f64() * 100.0 / idle_window.as_secs_f64(),
        idle_fleet_cpu.as_secs_f64() * 100.0 / idle_window.as_secs_f64()
    );
    println!(
        "burst of 200 updates sent in {:.2} s: every file holding all 200 {} after the first put (p50 {}); store CPU {:.2} s",
        sent.as_secs_f64(),
        ms(*burst.last().unwrap()),
        ms(percentile(&burst, 50)),
        burst_store_cpu.as_secs_f64()
    );
    println!(
        "leader server killed (restarted after 3 s): a put committed {:.2} s after the kill; every file current {} after the kill, {} after the commit (p50 {})",
        committed.as_secs_f64(),
        ms(*after_blip.last().unwrap()),
        ms(after_blip.last().unwrap().saturating_sub(committed)),
        ms(percentile(&after_blip, 50)),
    );
    let per_second = |n: usize| n as f64 / blip_window.as_secs_f64();
    println!(
        "over the {:.0} s from the kill: the fleet's GET requests to the agents {reads} ({:.0}/s on average, {read_peak} in the busiest second, {:.1} per instance); \
         the client agent's RPCs to the servers {rpcs} ({:.0}/s, busiest second {rpc_peak})",
        blip_window.as_secs_f64(),
        per_second(reads),
        read_peak as f64 / instances as f64,
        per_second(rpcs),
    );
    println!(
        "RSS per instance: mean {rss_mean:.1} MiB, max {rss_max:.1} MiB; PSS mean {pss_mean:.1} MiB, of it anonymous {anon_mean:.1} MiB"
    );
}
