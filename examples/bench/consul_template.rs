//! `consul-template [INSTANCES [WATCHERS [KEYS…]]]` (default 1000 100 1000 10000): terad side by
//! side with a real consul-template, both on the same Consul agent (`-dev`, a fresh one for each
//! part), issue 25's drop-in claim.
//!
//! Both tools get the same command line and the same template: terad runs through a symlink
//! named `consul-template`, which makes it read consul-template's flags, so the only thing that
//! differs between two runs is the program. consul-template is `$BENCH_CONSUL_TEMPLATE`, else
//! `consul-template` on `PATH` (v0.20.1 was measured; it is not built here, nothing in CI needs
//! Go). The tools take turns, run by run or block by block, so the machine's noise (2 cores,
//! other work on them) falls on both.
//!
//! - One-shot (`-once`) at KEYS keys under `proxy/frontend/`, an HAProxy backend list from
//!   `ls`: start to exit, the destination removed before each run.
//! - put → file in watch mode at KEYS keys: one PUT of a changed key to the destination renamed
//!   into place with the new value (inotify on its directory); the PUT's round trip alone; RSS
//!   sampled after each update and VmHWM.
//! - Health flip → file with INSTANCES instances of `web`, each with a TTL check: a check failing
//!   (the instance leaves the file) or passing again (it returns).
//! - WATCHERS templates in one process, each reading the service `web` (10 instances),
//!   `key "app/config"` and its own `key "app/N"`, through a counting proxy in front of Consul:
//!   the requests made in the first 10 s (initial render included) and during 20 changes
//!   (10 puts to `app/config`, 10 health flips), and the connections opened to Consul.
//!
//! A size of 0 skips its part. `BENCH_SAMPLES` prints every latency in the order taken,
//! `BENCH_PROXY_LOG` every request line the proxy sees, `BENCH_VERBOSE` the tools' own logs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{
    ConsulServer, DirEvents, consul_api, consul_put_many, memory_kb, ms, percentile,
    register_instances, server_address, terad_binary, wait_for_file,
};

/// The flags both tools get besides `-consul-addr` and `-template`: consul-template v0.20.1's
/// own defaults written out (no quiescence: `wait` is off unless its minimum is above zero;
/// stale reads allowed up to 2 s), so neither runs on a default the other lacks.
const COMMON_FLAGS: [&str; 3] = ["-log-level=warn", "-wait=0s", "-max-stale=2s"];

/// The classic HAProxy backend list, as a consul-template template.
const KV_TEMPLATE: &str = "global\n    maxconn 4096\n\nbackend web\n    balance roundrobin\n\
{{ range ls \"proxy/frontend\" }}    server {{ .Key }} {{ .Value }} check\n{{ end }}";

/// The instances of `web` that pass their health checks.
const SERVICE_TEMPLATE: &str =
    "{{ range service \"web\" }}server {{ .ID }} {{ .Address }}:{{ .Port }}\n{{ end }}";

/// One of the tools, as a program that answers to consul-template's command line.
struct Tool {
    name: &'static str,
    program: PathBuf,
}

impl Tool {
    /// A command with the common flags, Consul at `consul` (`HOST:PORT`), and `templates`.
    fn command(&self, consul: &str, templates: &[String]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .arg(format!("-consul-addr={consul}"))
            .args(COMMON_FLAGS)
            .args(templates.iter().map(|t| format!("-template={t}")));
        command
    }

    /// The tool in watch mode, quiet unless `BENCH_VERBOSE` is set.
    fn watch(&self, consul: &str, templates: &[String]) -> Child {
        let quiet = std::env::var_os("BENCH_VERBOSE").is_none();
        let stderr = || {
            if quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            }
        };
        self.command(consul, templates)
            .stdout(stderr())
            .stderr(stderr())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name))
    }

    fn version(&self) -> String {
        let output = Command::new(&self.program).arg("-v").output().unwrap();
        let text = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        text.lines().next().unwrap_or("").trim().to_owned()
    }
}

/// The two tools: terad through a symlink named `consul-template` in `dir`, and the real one.
fn tools(dir: &Path) -> [Tool; 2] {
    let link = dir.join("consul-template");
    std::os::unix::fs::symlink(terad_binary(), &link).unwrap();
    [
        Tool {
            name: "terad",
            program: link,
        },
        Tool {
            name: "consul-template",
            program: consul_template_binary(),
        },
    ]
}

/// `$BENCH_CONSUL_TEMPLATE`, else `consul-template` on `PATH`; exits with a message if neither.
fn consul_template_binary() -> PathBuf {
    let given = std::env::var_os("BENCH_CONSUL_TEMPLATE");
    let found = match &given {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("consul-template"))
                .find(|p| p.is_file())
        }),
    };
    found.unwrap_or_else(|| {
        eprintln!(
            "consul-template not found ({}): set BENCH_CONSUL_TEMPLATE to a consul-template \
             binary (v0.20.1 was measured), e.g. built with `go get` at that tag",
            match &given {
                Some(path) => format!("BENCH_CONSUL_TEMPLATE={}", Path::new(path).display()),
                None => "none on PATH".to_owned(),
            }
        );
        std::process::exit(2);
    })
}

/// One row of the side-by-side table: a measure, terad's figure, consul-template's, and whether
/// terad is ahead (`lower` is better when true).
fn row(measure: &str, terad: f64, ct: f64, show: impl Fn(f64) -> String, lower: bool) {
    let ahead = if lower { terad < ct } else { terad > ct };
    let ratio = if terad > 0.0 {
        format!("{:.1}×", ct / terad)
    } else {
        "–".to_owned()
    };
    println!(
        "| {measure} | {} | {} | {ratio} | {} |",
        show(terad),
        show(ct),
        if ahead { "yes" } else { "**no**" }
    );
}

fn show_ms(value: f64) -> String {
    format!("{value:.1} ms")
}

fn show_mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn show_kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn show_count(value: f64) -> String {
    format!("{value:.0}")
}

fn msf(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub fn run(instances: usize, watchers: usize, sizes: &[usize]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let bin = tempfile::tempdir().unwrap();
    let tools = tools(bin.path());
    for tool in &tools {
        println!("{}: `{}`", tool.name, tool.version());
    }
    println!(
        "Flags for both: `-consul-addr=127.0.0.1:PORT {} -template=in:out` (watch mode without `-once`).",
        COMMON_FLAGS.join(" ")
    );
    println!();
    println!("| measure | terad | consul-template | consul-template / terad | terad ahead |");
    println!("|---|---|---|---|---|");
    // A size of 0 skips that part (to rerun one part alone).
    for &keys in sizes.iter().filter(|&&k| k > 0) {
        kv_bench(&runtime, &client, &tools, keys);
    }
    if instances > 0 {
        health_bench(&runtime, &client, &tools, instances);
    }
    if watchers > 0 {
        watchers_bench(&runtime, &client, &tools, watchers);
    }
}

/// A PUT of `value` at `key`, straight to Consul; its round trip.
fn kv_put(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    server: &ConsulServer,
    key: &str,
    value: &str,
) -> Duration {
    let t0 = Instant::now();
    consul_api(
        runtime,
        client,
        server,
        reqwest::Method::PUT,
        &format!("/v1/kv/{key}"),
        value.to_owned(),
    );
    t0.elapsed()
}

/// BENCH_SAMPLES: every sample in the order taken, to see where the outliers fall.
fn dump(what: &str, tools: &[Tool; 2], samples: &[Vec<Duration>; 2]) {
    if std::env::var_os("BENCH_SAMPLES").is_some() {
        for (tool, samples) in tools.iter().zip(samples) {
            let list: Vec<String> = samples.iter().map(|d| format!("{:.1}", msf(*d))).collect();
            eprintln!("{what} {}: {}", tool.name, list.join(" "));
        }
    }
}

fn sorted(mut values: Vec<Duration>) -> Vec<Duration> {
    values.sort();
    values
}

/// One-shot, put → file and memory at `keys` keys.
fn kv_bench(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    tools: &[Tool; 2],
    keys: usize,
) {
    let server = ConsulServer::start(runtime);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let entries = (0..keys)
        .map(|i| (format!("proxy/frontend/web-{i:06}"), server_address(i)))
        .collect();
    runtime.block_on(consul_put_many(&server.url, client, entries));
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("haproxy.ctmpl");
    std::fs::write(&source, KV_TEMPLATE).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let dest = dir.path().join("out/haproxy.cfg");
    let templates = [format!("{}:{}", source.display(), dest.display())];
    let last = format!("server web-{:06} ", keys - 1);

    // One-shot, turn by turn; the first file of each is kept to check they render the same.
    let runs = 10;
    let mut onetime: [Vec<Duration>; 2] = Default::default();
    let mut first: [Option<String>; 2] = Default::default();
    for _ in 0..runs {
        for (t, tool) in tools.iter().enumerate() {
            let _ = std::fs::remove_file(&dest);
            let mut command = tool.command(&addr, &templates);
            command.arg("-once");
            let started = Instant::now();
            let output = command.output().unwrap();
            onetime[t].push(started.elapsed());
            assert!(
                output.status.success(),
                "{} -once: {}",
                tool.name,
                String::from_utf8_lossy(&output.stderr)
            );
            let text = std::fs::read_to_string(&dest).unwrap();
            assert!(text.contains(&last), "{}: incomplete render", tool.name);
            first[t].get_or_insert(text);
        }
    }
    assert_eq!(first[0], first[1], "the two tools rendered different files");
    let onetime = onetime.map(sorted);

    // Watch mode, in blocks taking turns: each block a fresh process, its initial render
    // waited for, then `per_block` PUTs of one changed key, each waited for in the file. Short
    // blocks, because the machine's noise comes in bursts (another build on the two cores): in
    // blocks of 25 a burst could land on one tool's samples only.
    let (blocks, per_block) = if keys >= 10_000 { (8, 5) } else { (10, 10) };
    let mut latencies: [Vec<Duration>; 2] = Default::default();
    let mut puts: [Vec<Duration>; 2] = Default::default();
    let mut rss = [0u64; 2];
    let mut hwm = [0u64; 2];
    let events = DirEvents::watch(dest.parent().unwrap());
    let mut sample = 0;
    for _ in 0..blocks {
        for (t, tool) in tools.iter().enumerate() {
            let _ = std::fs::remove_file(&dest);
            let mut daemon = tool.watch(&addr, &templates);
            let pid = daemon.id();
            wait_for_file(&dest, Duration::from_secs(60), "initial render", |t| {
                t.contains(&last)
            });
            std::thread::sleep(Duration::from_millis(500));
            for _ in 0..per_block {
                let i = sample;
                sample += 1;
                let key = format!("proxy/frontend/web-{:06}", (i * 7919) % keys);
                let value = format!("192.168.{}.{}:{}", i / 250, i % 250, 9000 + i);
                let line = format!(" {value} check\n");
                events.drain();
                let t0 = Instant::now();
                puts[t].push(kv_put(runtime, client, &server, &key, &value));
                let at = events.until(&dest, Duration::from_secs(30), |text| text.contains(&line));
                latencies[t].push(at.saturating_duration_since(t0));
                rss[t] = rss[t].max(memory_kb(pid).0);
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(300));
            let (now, peak) = memory_kb(pid);
            rss[t] = rss[t].max(now);
            hwm[t] = hwm[t].max(peak);
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
    dump(&format!("{keys} keys: put → file"), tools, &latencies);
    let latencies = latencies.map(sorted);
    let puts = puts.map(sorted);
    let n = latencies[0].len();
    let p = |v: &[Duration], q| msf(percentile(v, q));
    row(
        &format!("{keys} keys: one-shot median ({runs} runs each)"),
        p(&onetime[0], 50),
        p(&onetime[1], 50),
        show_ms,
        true,
    );
    println!(
        "| {keys} keys: one-shot min / max | {} / {} | {} / {} | | |",
        ms(onetime[0][0]),
        ms(onetime[0][runs - 1]),
        ms(onetime[1][0]),
        ms(onetime[1][runs - 1]),
    );
    row(
        &format!("{keys} keys: put → file p50 ({n} puts each)"),
        p(&latencies[0], 50),
        p(&latencies[1], 50),
        show_ms,
        true,
    );
    row(
        &format!("{keys} keys: put → file p90"),
        p(&latencies[0], 90),
        p(&latencies[1], 90),
        show_ms,
        true,
    );
    row(
        &format!("{keys} keys: put → file p99"),
        p(&latencies[0], 99),
        p(&latencies[1], 99),
        show_ms,
        true,
    );
    println!(
        "| {keys} keys: (the PUT's round trip alone, p50) | ({}) | ({}) | | |",
        ms(percentile(&puts[0], 50)),
        ms(percentile(&puts[1], 50)),
    );
    row(
        &format!("{keys} keys: RSS while watching (max sampled)"),
        rss[0] as f64,
        rss[1] as f64,
        show_mib,
        true,
    );
    row(
        &format!("{keys} keys: RSS peak (VmHWM)"),
        hwm[0] as f64,
        hwm[1] as f64,
        show_mib,
        true,
    );
}

/// A check of instance `k` of `web` turned to failing or passing through the agent's API.
fn flip(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    server: &ConsulServer,
    k: usize,
    failing: bool,
) {
    let verb = if failing { "fail" } else { "pass" };
    consul_api(
        runtime,
        client,
        server,
        reqwest::Method::PUT,
        &format!("/v1/agent/check/{verb}/check-web-{k}"),
        String::new(),
    );
}

/// Health flip → file with `instances` instances of `web`.
fn health_bench(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    tools: &[Tool; 2],
    instances: usize,
) {
    let server = ConsulServer::start(runtime);
    let addr = server.url.trim_start_matches("http://").to_owned();
    register_instances(runtime, client, &server, "web", instances);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("web.ctmpl");
    std::fs::write(&source, SERVICE_TEMPLATE).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let dest = dir.path().join("out/web.cfg");
    let templates = [format!("{}:{}", source.display(), dest.display())];
    let last = format!("server web-{:06} ", instances - 1);

    // Short blocks of fail/pass pairs, taking turns, each block a fresh process.
    let (blocks, per_block) = (8, 8);
    let mut latencies: [Vec<Duration>; 2] = Default::default();
    let mut leaves: [Vec<Duration>; 2] = Default::default();
    let mut returns: [Vec<Duration>; 2] = Default::default();
    let mut updates: [Vec<Duration>; 2] = Default::default();
    let events = DirEvents::watch(dest.parent().unwrap());
    let mut sample = 0;
    for _ in 0..blocks {
        for (t, tool) in tools.iter().enumerate() {
            let _ = std::fs::remove_file(&dest);
            let mut daemon = tool.watch(&addr, &templates);
            wait_for_file(&dest, Duration::from_secs(60), "initial render", |t| {
                t.contains(&last)
            });
            std::thread::sleep(Duration::from_millis(500));
            for _ in 0..per_block {
                let i = sample;
                sample += 1;
                // Each instance fails, then passes again: its line leaves, then comes back.
                let k = (i / 2 * 7919) % instances;
                let failing = i % 2 == 0;
                let line = format!("server web-{k:06} ");
                events.drain();
                let t0 = Instant::now();
                flip(runtime, client, &server, k, failing);
                updates[t].push(t0.elapsed());
                let at = events.until(&dest, Duration::from_secs(30), |text| {
                    text.contains(&line) != failing
                });
                let latency = at.saturating_duration_since(t0);
                latencies[t].push(latency);
                if failing {
                    leaves[t].push(latency);
                } else {
                    returns[t].push(latency);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
    dump(
        &format!("{instances} instances: flip → file"),
        tools,
        &latencies,
    );
    let latencies = latencies.map(sorted);
    let leaves = leaves.map(sorted);
    let returns = returns.map(sorted);
    let updates = updates.map(sorted);
    let n = latencies[0].len();
    let p = |v: &[Duration], q| msf(percentile(v, q));
    row(
        &format!("{instances} instances: health flip → file p50 ({n} flips each)"),
        p(&latencies[0], 50),
        p(&latencies[1], 50),
        show_ms,
        true,
    );
    row(
        &format!("{instances} instances: health flip → file p90"),
        p(&latencies[0], 90),
        p(&latencies[1], 90),
        show_ms,
        true,
    );
    row(
        &format!("{instances} instances: health flip → file p99"),
        p(&latencies[0], 99),
        p(&latencies[1], 99),
        show_ms,
        true,
    );
    println!(
        "| {instances} instances: leaves / returns p50 | {} / {} | {} / {} | | |",
        ms(percentile(&leaves[0], 50)),
        ms(percentile(&returns[0], 50)),
        ms(percentile(&leaves[1], 50)),
        ms(percentile(&returns[1], 50)),
    );
    println!(
        "| {instances} instances: (the check update alone, p50) | ({}) | ({}) | | |",
        ms(percentile(&updates[0], 50)),
        ms(percentile(&updates[1], 50)),
    );
}

/// What the counting proxy saw.
#[derive(Debug, Clone, Default)]
struct Counts {
    /// HTTP requests to `/v1/…`, counted by their request lines.
    requests: usize,
    /// Requests by method and path without the query (`GET /v1/kv/app/config`).
    by_path: BTreeMap<String, usize>,
    /// Bytes of Consul's answers.
    answered_bytes: usize,
    /// Connections accepted, open now, and most open at once.
    accepted: usize,
    open: usize,
    max_open: usize,
}

/// A TCP proxy on a loopback port in front of Consul that counts the requests going through
/// (std threads: one accepting, two per connection).
struct CountingProxy {
    addr: String,
    counts: Arc<Mutex<Counts>>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    fn start(upstream: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let counts = Arc::new(Mutex::new(Counts::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        {
            let (counts, stop) = (counts.clone(), stop.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        continue;
                    };
                    {
                        let mut c = counts.lock().unwrap();
                        c.accepted += 1;
                        c.open += 1;
                        c.max_open = c.max_open.max(c.open);
                    }
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_r, server_w) = (client.try_clone().unwrap(), server.try_clone());
                    let server_w = server_w.unwrap();
                    // Answers back as they come.
                    let answers = counts.clone();
                    std::thread::spawn(move || pipe(server, client, &answers, false));
                    let counts = counts.clone();
                    std::thread::spawn(move || {
                        pipe(client_r, server_w, &counts, true);
                        counts.lock().unwrap().open -= 1;
                    });
                }
            });
        }
        CountingProxy { addr, counts, stop }
    }

    fn counts(&self) -> Counts {
        self.counts.lock().unwrap().clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so it sees `stop`.
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Copies `from` to `to` until either ends, then closes both; counts the request lines in what
/// passes when `requests`, else its bytes. A request line may arrive split over reads, so lines are gathered whole
/// (a body's lines never start with a method and ` /v1/`; GETs have none).
fn pipe(mut from: TcpStream, mut to: TcpStream, counts: &Mutex<Counts>, requests: bool) {
    let mut buffer = [0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !requests {
            counts.lock().unwrap().answered_bytes += n;
        } else {
            for &byte in &buffer[..n] {
                if byte == b'\n' {
                    count_line(&line, counts);
                    line.clear();
                } else if line.len() < 4096 {
                    line.push(byte);
                }
            }
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn count_line(line: &[u8], counts: &Mutex<Counts>) {
    let text = String::from_utf8_lossy(line);
    let Some((method, rest)) = text.split_once(' ') else {
        return;
    };
    if !["GET", "PUT", "POST", "DELETE"].contains(&method) || !rest.starts_with("/v1/") {
        return;
    }
    let path = rest.split([' ', '?']).next().unwrap_or("");
    // BENCH_PROXY_LOG: every request line, to see what a tool asks and when.
    if std::env::var_os("BENCH_PROXY_LOG").is_some() {
        eprintln!("{:?} {}", std::time::SystemTime::now(), text.trim_end());
    }
    let mut c = counts.lock().unwrap();
    c.requests += 1;
    *c.by_path.entry(format!("{method} {path}")).or_default() += 1;
}

/// The requests by kind: KV reads of the shared key, of the own keys, health, anything else.
fn by_kind(counts: &Counts, before: &Counts) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (path, &n) in &counts.by_path {
        let n = n - before.by_path.get(path).copied().unwrap_or(0);
        let kind = match path.as_str() {
            "GET /v1/kv/app/config" => "kv app/config",
            p if p.starts_with("GET /v1/kv/app/") => "kv app/N",
            p if p.starts_with("GET /v1/health/service/") => "health/service",
            other => other,
        };
        *kinds.entry(kind).or_default() += n;
    }
    kinds
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `watchers` templates in one process through the counting proxy: requests in the first 10 s
/// and during 20 changes.
fn watchers_bench(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    tools: &[Tool; 2],
    watchers: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let dests: Vec<PathBuf> = (0..watchers)
        .map(|n| dir.path().join(format!("out/{n}.cfg")))
        .collect();
    let templates: Vec<String> = (0..watchers)
        .map(|n| {
            let source = dir.path().join(format!("{n}.ctmpl"));
            std::fs::write(
                &source,
                format!(
                    "{SERVICE_TEMPLATE}config={{{{ key \"app/config\" }}}}\nown={{{{ key \"app/{n}\" }}}}\n"
                ),
            )
            .unwrap();
            format!("{}:{}", source.display(), dests[n].display())
        })
        .collect();
    let behind = |done: &dyn Fn(&str) -> bool| {
        dests
            .iter()
            .filter(|d| !std::fs::read_to_string(d).is_ok_and(|t| done(&t)))
            .count()
    };
    // Polls every file each 10 ms until all hold; how long since `t0`.
    let wait_all = |t0: Instant, limit: Duration, done: &dyn Fn(&str) -> bool| -> Duration {
        loop {
            let left = behind(done);
            if left == 0 {
                break;
            }
            assert!(
                t0.elapsed() < limit,
                "{left} of {watchers} files not updated within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        t0.elapsed()
    };

    let mut initial = [Duration::ZERO; 2];
    let mut first_10s = [0usize; 2];
    let mut during = [0usize; 2];
    let mut bytes = [(0usize, 0usize); 2];
    let mut accepted = [0usize; 2];
    let mut max_open = [0usize; 2];
    let mut change_times: [Vec<Duration>; 2] = Default::default();
    let mut rss = [0u64; 2];
    let mut kinds: [(String, String); 2] = Default::default();
    for (t, tool) in tools.iter().enumerate() {
        // A fresh agent for each tool: a killed client's blocking queries stay open in Consul
        // 1.8 until they answer (terad waits 5 min, consul-template 1 min), and with ~100 of
        // them the next tool would start over Consul's 200 connections per client address
        // (`http_max_conns_per_client`; everything here is 127.0.0.1) and be refused.
        let server = ConsulServer::start(runtime);
        register_instances(runtime, client, &server, "web", 10);
        kv_put(runtime, client, &server, "app/config", "v0");
        for n in 0..watchers {
            kv_put(
                runtime,
                client,
                &server,
                &format!("app/{n}"),
                &format!("own-{n}"),
            );
        }
        let mut config = 0;
        for d in &dests {
            let _ = std::fs::remove_file(d);
        }
        let proxy = CountingProxy::start(server.url.trim_start_matches("http://"));
        let t0 = Instant::now();
        let mut daemon = tool.watch(&proxy.addr, &templates);
        let pid = daemon.id();
        let value = format!("config=v{config}\n");
        initial[t] = wait_all(t0, Duration::from_secs(60), &|text| {
            text.contains(&value) && text.contains("server web-000009 ")
        });
        std::thread::sleep(Duration::from_secs(10).saturating_sub(t0.elapsed()));
        let start = proxy.counts();
        first_10s[t] = start.requests;

        // 20 changes, each waited for in every file: 10 puts to app/config, then 10 flips.
        for _ in 0..10 {
            config += 1;
            let value = format!("config=v{config}\n");
            let t0 = Instant::now();
            kv_put(
                runtime,
                client,
                &server,
                "app/config",
                &format!("v{config}"),
            );
            change_times[t].push(wait_all(t0, Duration::from_secs(30), &|text| {
                text.contains(&value)
            }));
        }
        for i in 0..10 {
            let k = i / 2;
            let failing = i % 2 == 0;
            let line = format!("server web-{k:06} ");
            let t0 = Instant::now();
            flip(runtime, client, &server, k, failing);
            change_times[t].push(wait_all(t0, Duration::from_secs(30), &|text| {
                text.contains(&line) != failing
            }));
        }
        // What the last change still causes (a re-read after it) belongs to it.
        std::thread::sleep(Duration::from_secs(1));
        let end = proxy.counts();
        during[t] = end.requests - start.requests;
        bytes[t] = (
            start.answered_bytes,
            end.answered_bytes - start.answered_bytes,
        );
        accepted[t] = end.accepted;
        max_open[t] = end.max_open;
        rss[t] = memory_kb(pid).0;
        kinds[t] = (by_kind(&start, &Counts::default()), by_kind(&end, &start));
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
    let change_times = change_times.map(sorted);
    // Both below are polled every 10 ms, too coarse to rank the tools: for reference.
    println!(
        "| {watchers} templates in one process: all rendered after (polled) | {} | {} | | |",
        ms(initial[0]),
        ms(initial[1]),
    );
    row(
        &format!("{watchers} templates: Consul requests in the first 10 s"),
        first_10s[0] as f64,
        first_10s[1] as f64,
        show_count,
        true,
    );
    row(
        &format!("{watchers} templates: Consul requests during 20 changes"),
        during[0] as f64,
        during[1] as f64,
        show_count,
        true,
    );
    row(
        &format!("{watchers} templates: bytes of Consul's answers in the first 10 s"),
        bytes[0].0 as f64,
        bytes[1].0 as f64,
        show_kib,
        true,
    );
    row(
        &format!("{watchers} templates: bytes of Consul's answers during the changes"),
        bytes[0].1 as f64,
        bytes[1].1 as f64,
        show_kib,
        true,
    );
    row(
        &format!("{watchers} templates: connections to Consul (most open at once)"),
        max_open[0] as f64,
        max_open[1] as f64,
        show_count,
        true,
    );
    println!(
        "| {watchers} templates: connections opened in all | {} | {} | | |",
        accepted[0], accepted[1]
    );
    println!(
        "| {watchers} templates: change → all {watchers} files p50 (20 changes, polled) | {} | {} | | |",
        ms(percentile(&change_times[0], 50)),
        ms(percentile(&change_times[1], 50)),
    );
    row(
        &format!("{watchers} templates: RSS after the changes"),
        rss[0] as f64,
        rss[1] as f64,
        show_mib,
        true,
    );
    println!();
    for (t, tool) in tools.iter().enumerate() {
        println!(
            "- {} requests, first 10 s: {}; during the changes: {}",
            tool.name, kinds[t].0, kinds[t].1
        );
    }
}
