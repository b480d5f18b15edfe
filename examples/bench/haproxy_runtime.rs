//! `haproxy-runtime [CHANGES] [HOLD_EVERY]` (default 1000 10): HAProxy following etcd with and
//! without its runtime API (`[template.haproxy]`), everything real: etcd, `terad --watch` with
//! the repository's HAProxy template and `check_cmd = "haproxy -c -f …"`, HAProxy 2.6 in
//! master-worker mode, HTTP backends on 127.0.0.1, and `packaging/haproxy/reload-haproxy.sh`
//! as the reload (it returns once HAProxy can take the next one, so none is lost), unspaced
//! (`reload_interval = "0s"`): each change is awaited with its reload before the next, and
//! the default spacing would only make the reload way wait up to a second more per change.
//!
//! CHANGES membership changes, alternately a server added (its key put) and the oldest one
//! removed (its key deleted), each awaited before the next (and its reload too). For an addition, the latency from
//! the put to the first request through HAProxy that the new backend answers (the client
//! polls with one request per connection). Every HOLD_EVERY changes a long-lived request is
//! opened (a response that trickles a byte every 2 s, to one of two servers that never leave)
//! and held to the end, as websockets or long polls hold theirs: with reloads, each one keeps
//! the worker it started on alive. At the end: HAProxy's processes and their memory (RSS and
//! PSS of the master and every worker, from /proc), the reloads run, the failed requests; and
//! from terad's log the median reload (`reload_cmd`) or runtime change (commands and read-back),
//! beside `haproxy -c` alone on the final file, the check every change runs first.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use terad::backend::etcd::api::etcdserverpb::DeleteRangeRequest;

use crate::haproxy_support::{Haproxy, http_get, local_template};
use crate::harness::{memory_kb, ms, percentile, pss_kb, terad_binary};
use crate::stores::{EtcdServer, etcd_put};

/// Backends that come and go; more than are ever live at once, so that an added server always
/// points at a backend nobody is answering from.
const CHURN: usize = 6;
/// Servers that come and go live besides the two that stay, at least: then additions and
/// removals alternate.
const LIVE_CHURN: usize = 2;

pub fn run(changes: usize, hold_every: usize) {
    println!(
        "| way | changes | add → served p50 | p99 | max | reload / runtime change, median | `haproxy -c` median | reload_cmd runs | HAProxy processes | RSS, master + workers | PSS | long requests open | failed requests |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for runtime_api in [false, true] {
        let result = one_way(changes, hold_every.max(1), runtime_api);
        println!(
            "| {} | {changes} | {} | {} | {} | {} | {} | {} | {} | {:.1} MiB | {:.1} MiB | {} | {} |",
            if runtime_api { "runtime API" } else { "reload" },
            ms(percentile(&result.latencies, 50)),
            ms(percentile(&result.latencies, 99)),
            ms(*result.latencies.last().unwrap()),
            // terad logs whole milliseconds.
            match result.step {
                step if step < Duration::from_millis(1) => "< 1 ms".to_owned(),
                step => ms(step),
            },
            ms(result.check),
            result.reloads,
            result.processes,
            result.rss_kb as f64 / 1024.0,
            result.pss_kb as f64 / 1024.0,
            result.held,
            result.failed,
        );
    }
}

struct Figures {
    /// Sorted.
    latencies: Vec<Duration>,
    /// The median `reload_cmd` run (terad's "reloaded" lines), or the median change through
    /// the runtime API, commands and read-back included.
    step: Duration,
    /// `haproxy -c` alone on the final file, the median of 20: the check every change runs.
    check: Duration,
    reloads: usize,
    processes: usize,
    rss_kb: u64,
    pss_kb: u64,
    held: usize,
    failed: usize,
}

fn one_way(changes: usize, hold_every: usize, runtime_api: bool) -> Figures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let etcd = EtcdServer::start(&runtime);
    let mut client = etcd.client(&runtime);
    let stay: Vec<Backend> = (0..2)
        .map(|i| Backend::start(&format!("stay{i}"), true))
        .collect();
    let churn: Vec<Backend> = (0..CHURN)
        .map(|i| Backend::start(&format!("churn{i}"), false))
        .collect();
    let port = crate::ports::free_port();
    let put = |client: &mut terad::backend::etcd::client::Client, key: &str, value: &str| {
        runtime.block_on(client.put(etcd_put(key, value))).unwrap();
    };
    put(&mut client, "/proxy/port", &port.to_string());
    for (i, backend) in stay.iter().enumerate() {
        put(
            &mut client,
            &format!("/proxy/frontend/stay{i}"),
            &backend.addr.to_string(),
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["conf.d", "templates", "out"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let template = std::fs::read_to_string(root.join("templates/haproxy.cfg.tmpl")).unwrap();
    std::fs::write(
        dir.path().join("templates/haproxy.cfg.tmpl"),
        local_template(&template, dir.path()),
    )
    .unwrap();
    let dest = dir.path().join("out/haproxy.cfg");
    let reloads_log = dir.path().join("reloads.log");
    let mut resource = format!(
        "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\n\
         check_cmd = \"haproxy -c -f {{{{.src}}}}\"\n\
         reload_cmd = \"echo reload >> {}; {} {}\"\n\
         reload_interval = \"0s\"\n",
        dest.display(),
        reloads_log.display(),
        root.join("packaging/haproxy/reload-haproxy.sh").display(),
        dir.path().join("haproxy.pid").display(),
    );
    if runtime_api {
        resource.push_str(&format!(
            "\n[template.haproxy]\nruntime_api = \"{}\"\n",
            dir.path().join("admin.sock").display()
        ));
    }
    std::fs::write(dir.path().join("conf.d/haproxy.toml"), resource).unwrap();

    let terad = |mode: &str| {
        let mut command = std::process::Command::new(terad_binary());
        command
            .args([
                mode,
                "--log-level",
                "info",
                "--backend",
                "etcd",
                "--node",
                &etcd.url,
            ])
            .arg("--confdir")
            .arg(dir.path());
        command
    };
    let bootstrap = terad("--onetime").arg("--sync-only").output().unwrap();
    assert!(
        bootstrap.status.success(),
        "{}",
        String::from_utf8_lossy(&bootstrap.stderr)
    );
    let haproxy = Haproxy::start(&dest, dir.path());
    let mut daemon = terad("--watch")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(dir.path().join("terad.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let reloads = || {
        std::fs::read_to_string(&reloads_log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let failed = AtomicUsize::new(0);
    let answer = || match http_get(port) {
        Ok((200, body)) => Some(body),
        _ => {
            failed.fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    let deadline = |started: Instant, what: &str| {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} took over a minute\n{}",
            std::fs::read_to_string(dir.path().join("terad.log")).unwrap_or_default()
        );
    };
    let started = Instant::now();
    while answer().is_none() {
        deadline(started, "the first answer");
    }
    failed.store(0, Ordering::Relaxed);

    let mut held = Holds::default();
    let mut live: VecDeque<(String, usize)> = VecDeque::new();
    let mut latencies = Vec::new();
    let mut next = 0usize;
    for change in 0..changes {
        if change % hold_every == 0 {
            held.open(port);
        }
        let expected_reloads = if runtime_api { 0 } else { change + 1 };
        if live.len() < LIVE_CHURN || change % 2 == 0 {
            // An addition: a backend nobody answers from yet.
            let at = (0..CHURN)
                .map(|i| (next + i) % CHURN)
                .find(|i| live.iter().all(|(_, at)| at != i))
                .unwrap();
            let name = format!("c{change:05}");
            let started = Instant::now();
            put(
                &mut client,
                &format!("/proxy/frontend/{name}"),
                &churn[at].addr.to_string(),
            );
            let want = format!("churn{at}");
            while answer().as_deref() != Some(&want) {
                deadline(started, &format!("change {change}: {want} answering"));
            }
            latencies.push(started.elapsed());
            live.push_back((name, at));
            next = at + 1;
        } else {
            let (name, _) = live.pop_front().unwrap();
            let started = Instant::now();
            let key = format!("/proxy/frontend/{name}");
            runtime
                .block_on(client.delete_range(DeleteRangeRequest {
                    key: key.into_bytes(),
                    ..DeleteRangeRequest::default()
                }))
                .unwrap();
            while std::fs::read_to_string(&dest).is_ok_and(|t| t.contains(&format!(" {name} "))) {
                deadline(started, &format!("change {change}: {name} removed"));
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // A reload is done when reload-haproxy.sh returned; the next change waits for it, so
        // that each is measured alone.
        let started = Instant::now();
        while !runtime_api && reloads() < expected_reloads {
            deadline(started, &format!("change {change}: the reload"));
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Old workers finish their other requests; what is left holds the long requests.
    std::thread::sleep(Duration::from_secs(3));
    let pids = group_pids(haproxy.master_pid());
    let (rss_kb, pss_kb) = pids.iter().fold((0, 0), |(rss, pss), pid| {
        (rss + memory_kb(*pid).0, pss + pss_kb(*pid).0)
    });
    let log = std::fs::read_to_string(dir.path().join("terad.log")).unwrap_or_default();
    let step = if runtime_api {
        "haproxy's servers changed through its runtime api"
    } else {
        " INFO reloaded "
    };
    let mut steps: Vec<Duration> = log
        .lines()
        .filter(|line| line.contains(step))
        .filter_map(|line| {
            let value = line.split_once("took_ms=")?.1.split_whitespace().next()?;
            Some(Duration::from_millis(value.parse().ok()?))
        })
        .collect();
    steps.sort();
    assert!(
        !steps.is_empty(),
        "no {step:?} lines in terad's log:\n{log}"
    );
    let mut checks: Vec<Duration> = (0..20)
        .map(|_| {
            let started = Instant::now();
            let status = std::process::Command::new("haproxy")
                .args(["-c", "-q", "-f"])
                .arg(&dest)
                .status()
                .unwrap();
            assert!(status.success());
            started.elapsed()
        })
        .collect();
    checks.sort();
    let result = Figures {
        step: percentile(&steps, 50),
        check: percentile(&checks, 50),
        latencies: {
            latencies.sort();
            latencies
        },
        reloads: reloads(),
        processes: pids.len(),
        rss_kb,
        pss_kb,
        held: held.still_open(),
        failed: failed.load(Ordering::Relaxed),
    };
    held.close();
    let _ = daemon.kill();
    let _ = daemon.wait();
    drop(haproxy);
    result
}

/// The live processes of HAProxy's process group: the master and its workers, old and new.
fn group_pids(group: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string() {
            pids.push(pid);
        }
    }
    pids
}

/// An HTTP backend on 127.0.0.1: `GET /` answers its name; `GET /hold` on a backend that
/// `holds` is a response that never ends (a byte every 2 s until the client goes), on the others
/// its name like `/`.
struct Backend {
    addr: SocketAddr,
}

impl Backend {
    fn start(name: &str, holds: bool) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let name = name.to_owned();
        // Lives as long as the benchmark process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let name = name.clone();
                std::thread::spawn(move || serve(stream, &name, holds));
            }
        });
        Backend { addr }
    }
}

fn serve(mut stream: TcpStream, name: &str, holds: bool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            // A health check connects and closes.
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let hold = holds && request.starts_with(b"GET /hold ");
    if !hold {
        let _ = stream.write_all(
            format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            )
            .as_bytes(),
        );
        return;
    }
    if stream
        .write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nheld")
        .is_err()
    {
        return;
    }
    while stream.write_all(b".").is_ok() {
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The long requests opened so far, each read by its own thread until the end.
#[derive(Default)]
struct Holds {
    streams: Vec<(TcpStream, Arc<AtomicBool>)>,
}

impl Holds {
    /// Opens one long request through HAProxy: retried until round robin sends it to one of
    /// the backends that hold (the others answer at once).
    fn open(&mut self, port: u16) {
        for _ in 0..100 {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .write_all(b"GET /hold HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut head = Vec::new();
            let mut buffer = [0u8; 256];
            while !head.windows(4).any(|w| w == b"held") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            if !head.windows(4).any(|w| w == b"held") {
                continue;
            }
            let open = Arc::new(AtomicBool::new(true));
            let reader = stream.try_clone().unwrap();
            {
                let open = Arc::clone(&open);
                std::thread::spawn(move || drain(reader, &open));
            }
            self.streams.push((stream, open));
            return;
        }
        panic!("no long request reached a backend that holds");
    }

    fn still_open(&self) -> usize {
        self.streams
            .iter()
            .filter(|(_, open)| open.load(Ordering::SeqCst))
            .count()
    }

    fn close(self) {
        for (stream, _) in self.streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Reads a long response until it ends; `open` says whether it still runs.
fn drain(mut stream: TcpStream, open: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buffer = [0u8; 64];
    while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
    open.store(false, Ordering::SeqCst);
}
