//! What every mode of the benchmark shares: terad's binary, a Consul agent in dev mode and its
//! API, memory and timing readings from `/proc`, percentiles, and waiting for a destination
//! file to change.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The release build of terad: BENCH_TERAD, else the one in the target directory this benchmark
/// was built in (so a `CARGO_TARGET_DIR` elsewhere works), else `target/release/terad`.
pub fn terad_binary() -> PathBuf {
    // BENCH_TERAD: another build (a debug one to try a mode out; the figures are release's).
    if let Some(binary) = std::env::var_os("BENCH_TERAD") {
        return PathBuf::from(binary);
    }
    // This example runs from `<target>/<profile>/examples/bench`.
    let beside = std::env::current_exe().ok().and_then(|exe| {
        let target = exe.parent()?.parent()?.parent()?.to_owned();
        Some(target.join("release/terad"))
    });
    if let Some(binary) = beside.filter(|b| b.exists()) {
        return binary;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/release/terad");
    assert!(binary.exists(), "build it first: cargo build --release");
    binary
}

pub fn server_address(i: usize) -> String {
    format!(
        "10.{}.{}.{}:8080",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Peak RSS of one run of `command` under GNU time, in KiB.
pub fn peak_rss_kb(command: &mut Command) -> u64 {
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(program)
        .args(args)
        .output()
        .expect("GNU time (apt-get install time)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .trim()
        .lines()
        .last()
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Runs the one-shot `runs` times, removing the destination first each time (a fresh
/// container has no file yet), and returns the sorted wall times.
pub fn time_onetime(mut make: impl FnMut() -> Command, dest: &Path, runs: usize) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let _ = std::fs::remove_file(dest);
            let started = Instant::now();
            let output = make().output().expect("run the one-shot");
            let elapsed = started.elapsed();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            elapsed
        })
        .collect();
    times.sort();
    times
}

/// A Consul agent in dev mode on free loopback ports.
pub struct ConsulServer {
    child: Child,
    pub url: String,
}

impl ConsulServer {
    pub fn start(runtime: &tokio::runtime::Runtime) -> ConsulServer {
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let http = port();
        let child = Command::new("consul")
            .args([
                "agent",
                "-dev",
                "-bind=127.0.0.1",
                "-client=127.0.0.1",
                "-dns-port=-1",
                "-grpc-port=-1",
                "-log-level=error",
            ])
            .arg(format!("-http-port={http}"))
            .arg(format!("-serf-lan-port={}", port()))
            .arg(format!("-serf-wan-port={}", port()))
            .arg(format!("-server-port={}", port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("consul installed (scripts/install-deps.sh)");
        let server = ConsulServer {
            child,
            url: format!("http://127.0.0.1:{http}"),
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = runtime.block_on(async {
                match client
                    .put(format!("{}/v1/kv/bench-ready", server.url))
                    .body("1")
                    .send()
                    .await
                {
                    Ok(response) => response.status().is_success(),
                    Err(_) => false,
                }
            });
            if ready {
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "consul did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ConsulServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts many keys through Consul transactions (at most 64 operations each).
pub async fn consul_put_many(url: &str, client: &reqwest::Client, entries: Vec<(String, String)>) {
    use base64::Engine as _;
    for chunk in entries.chunks(64) {
        let ops: Vec<String> = chunk
            .iter()
            .map(|(key, value)| {
                format!(
                    "{{\"KV\":{{\"Verb\":\"set\",\"Key\":\"{}\",\"Value\":\"{}\"}}}}",
                    key.trim_start_matches('/'),
                    base64::engine::general_purpose::STANDARD.encode(value)
                )
            })
            .collect();
        let response = client
            .put(format!("{url}/v1/txn"))
            .body(format!("[{}]", ops.join(",")))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap_or_default()
        );
    }
}

/// Two `Name:   N kB` fields of a file under `/proc/PID/`, in KiB (0 when missing).
pub fn proc_kb(pid: u32, file: &str, names: [&str; 2]) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field(names[0]), field(names[1]))
}

/// Resident and peak memory of a running process, in KiB.
pub fn memory_kb(pid: u32) -> (u64, u64) {
    proc_kb(pid, "status", ["VmRSS:", "VmHWM:"])
}

/// Proportional set size and anonymous memory of a process, in KiB (`/proc/PID/smaps_rollup`):
/// PSS charges each shared page (the binary's code, mapped by every instance of a fleet) to its
/// processes in equal parts, where RSS charges it to each in full.
pub fn pss_kb(pid: u32) -> (u64, u64) {
    proc_kb(pid, "smaps_rollup", ["Pss:", "Anonymous:"])
}

/// Threads and open file descriptors of a process.
pub fn threads_and_fds(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (threads, fds)
}

/// A request to a Consul agent's HTTP API; panics unless it answers 200.
pub fn consul_api(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    server: &ConsulServer,
    method: reqwest::Method,
    path: &str,
    body: String,
) {
    let response = runtime
        .block_on(
            client
                .request(method, format!("{}{path}", server.url))
                .body(body)
                .send(),
        )
        .unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "{path}: {status} {}",
        runtime.block_on(response.text()).unwrap_or_default()
    );
}

/// Registers `count` instances of `service` with the agent, each with a TTL check
/// `check-<service>-<i>` that starts passing.
pub fn register_instances(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    server: &ConsulServer,
    service: &str,
    count: usize,
) {
    for i in 0..count {
        let body = format!(
            "{{\"ID\": \"{service}-{i:06}\", \"Name\": \"{service}\", \"Address\": \"{}\", \"Port\": 8080, \
             \"Check\": {{\"CheckID\": \"check-{service}-{i}\", \"Name\": \"ttl\", \"TTL\": \"24h\", \"Status\": \"passing\"}}}}",
            server_address(i).trim_end_matches(":8080")
        );
        consul_api(
            runtime,
            client,
            server,
            reqwest::Method::PUT,
            "/v1/agent/service/register",
            body,
        );
    }
}

/// A GET over a new HTTP/1.0 connection to `addr`: the answer's `X-Consul-Index` and the moment
/// its last byte arrived.
pub fn raw_get(addr: &str, path: &str) -> (u64, Instant) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to consul");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let done = Instant::now();
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..head_end]);
    let index = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("X-Consul-Index")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (index, done)
}

/// Events on one directory (inotify), so a benchmark can wake on the rename of a destination
/// into place instead of polling it.
pub struct DirEvents {
    // Kept alive: dropping the watcher ends the events.
    _watcher: notify::RecommendedWatcher,
    events: Receiver<Instant>,
}

impl DirEvents {
    pub fn watch(dir: &Path) -> DirEvents {
        use notify::Watcher;
        let (events_tx, events) = std::sync::mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    let _ = events_tx.send(Instant::now());
                }
            })
            .unwrap();
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .unwrap();
        DirEvents {
            _watcher: watcher,
            events,
        }
    }

    /// Forgets the events so far (those of an earlier change).
    pub fn drain(&self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Waits for events until `done` holds for the text of `file` (checked at each event);
    /// returns the moment of the event after which it held. Panics after `limit` without one.
    pub fn until(&self, file: &Path, limit: Duration, done: impl Fn(&str) -> bool) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let at = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{} not updated within {limit:?}", file.display()));
            if std::fs::read_to_string(file).is_ok_and(|t| done(&t)) {
                return at;
            }
        }
    }
}

/// Polls `file` every 5 ms until `done` holds for its text; panics after `limit`.
pub fn wait_for_file(file: &Path, limit: Duration, what: &str, done: impl Fn(&str) -> bool) {
    let started = Instant::now();
    while !std::fs::read_to_string(file).is_ok_and(|t| done(&t)) {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
