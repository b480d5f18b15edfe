//! A real HAProxy (Debian's 2.6, installed by scripts/install-deps.sh) in master-worker mode,
//! small HTTP backends that answer with their own name, and a one-request HTTP client.
//!
//! HAProxy runs in its own process group; dropping [`Haproxy`] sends SIGTERM to the group (the
//! master and every worker, old or new), waits for the master, then SIGKILLs whatever is left.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

pub struct Haproxy {
    child: Child,
    pub pidfile: PathBuf,
    /// HAProxy's own messages (master and workers): stderr.
    pub log: PathBuf,
}

impl Haproxy {
    /// `haproxy -W -db -f <config> -p <pidfile>`, with its pidfile and logs in `dir`. Returns
    /// once the first worker has loaded and the master accepts reloads ([`Haproxy::wait_loaded`]).
    pub fn start(config: &Path, dir: &Path) -> Haproxy {
        let pidfile = dir.join("haproxy.pid");
        let log = dir.join("haproxy.log");
        let child = Command::new("haproxy")
            .arg("-W")
            .arg("-db")
            .arg("-f")
            .arg(config)
            .arg("-p")
            .arg(&pidfile)
            .stdin(Stdio::null())
            // The configuration logs requests to stdout; nobody needs them.
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            // Its own process group, so that dropping it reaches every worker too.
            .process_group(0)
            .spawn()
            .expect("haproxy (apt-get install haproxy) is installed");
        let haproxy = Haproxy {
            child,
            pidfile,
            log,
        };
        if let Err(err) = haproxy.wait_loaded(1, Duration::from_secs(10)) {
            panic!("haproxy did not start: {err}");
        }
        assert!(haproxy.pidfile.exists(), "haproxy wrote no pidfile");
        haproxy
    }

    /// Waits until the master has loaded `loads` configurations (1 + reloads) and is ready for
    /// the next SIGUSR2; an error with HAProxy's log after `limit` or if the master exits.
    ///
    /// HAProxy 2.6's master re-executes itself at start and at every reload, and until the new
    /// image has installed its handler SIGUSR2 is ignored: a reload requested then is lost. It
    /// prints "Loading success." before that, so the log alone does not say a reload would be
    /// honoured; the handler, visible in /proc as a caught signal, does.
    pub fn wait_loaded(&self, loads: usize, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        while self.loads() < loads || !self.accepts_reload() {
            if !self.running() {
                return Err(format!("haproxy exited:\n{}", self.log()));
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "haproxy did not reach {loads} loaded configuration(s) within {limit:?} \
                     (at {}, SIGUSR2 handled: {}):\n{}",
                    self.loads(),
                    self.accepts_reload(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Whether the master currently catches SIGUSR2.
    pub fn accepts_reload(&self) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (Signal::SIGUSR2 as u64 - 1)) != 0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Configurations the master loaded successfully: 1 after the start, +1 per reload.
    pub fn loads(&self) -> usize {
        self.log().matches("Loading success.").count()
    }

    /// Whether the master is still running (and not a zombie).
    pub fn running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                // The state follows the parenthesised command name.
                let (_, rest) = stat.rsplit_once(')')?;
                rest.split_whitespace().next().map(|state| state != "Z")
            })
            .unwrap_or(false)
    }

    /// Live (non-zombie) processes in HAProxy's process group: the master and its workers.
    pub fn processes(&self) -> usize {
        group_members(self.child.id())
    }

    pub fn master_pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let started = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Workers left behind by a master that did not stop (or an old worker still draining).
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Live (non-zombie) processes whose process group is `group`.
pub fn group_members(group: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.parse::<u32>().ok()?;
            std::fs::read_to_string(format!("/proc/{}/stat", name.to_str()?)).ok()
        })
        .filter(|stat| {
            // pid (comm) state ppid pgrp …
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string()
        })
        .count()
}

/// The stats socket of the repository's HAProxy templates (the runtime API).
pub const EXAMPLE_SOCKET: &str = "/run/haproxy/admin.sock";

/// One of the repository's HAProxy templates made to run in a test: the frontend bound to
/// 127.0.0.1 instead of every interface, and the stats socket in `dir` instead of
/// /run/haproxy, which tests running side by side would share (and which may not be writable).
pub fn local_template(template: &str, dir: &Path) -> String {
    assert!(
        template.contains(EXAMPLE_SOCKET),
        "the example has a stats socket"
    );
    template.replace("bind *:", "bind 127.0.0.1:").replace(
        EXAMPLE_SOCKET,
        &dir.join("admin.sock").display().to_string(),
    )
}

/// An HTTP server on 127.0.0.1 that answers every request with `200 OK` and its name as the
/// body. Stopped when dropped.
pub struct NamedBackend {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NamedBackend {
    pub fn start(name: &str) -> NamedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let response = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
            name.len()
        );
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let response = response.clone();
                    std::thread::spawn(move || answer_with(stream, |_| response.clone()));
                }
            })
        };
        NamedBackend {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for NamedBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP server on 127.0.0.1 for a Consul service instance: `/health` answers 200 while
/// [`CheckedBackend::set_healthy`] says so (503 otherwise), for the instance's HTTP check;
/// every other path answers its name while it serves ([`CheckedBackend::set_serving`]), 503
/// when it does not. Stopped when dropped.
pub struct CheckedBackend {
    pub addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    serving: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CheckedBackend {
    pub fn start(name: &str) -> CheckedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let serving = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (healthy, serving, stop) = (healthy.clone(), serving.clone(), stop.clone());
            let name = name.to_owned();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (healthy, serving, name) = (healthy.clone(), serving.clone(), name.clone());
                    std::thread::spawn(move || {
                        answer_with(stream, |path| {
                            let up = if path == "/health" {
                                healthy.load(Ordering::SeqCst)
                            } else {
                                serving.load(Ordering::SeqCst)
                            };
                            let (status, body) = if up {
                                ("200 OK", name.as_str())
                            } else {
                                ("503 Service Unavailable", "down")
                            };
                            format!(
                                "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                        })
                    });
                }
            })
        };
        CheckedBackend {
            addr,
            healthy,
            serving,
            stop,
            thread: Some(thread),
        }
    }

    /// What `/health` answers from now on.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Whether requests other than `/health` are answered (200 with the name) or refused (503).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }
}

impl Drop for CheckedBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head and answers with `respond(path)`; a connection closed without a
/// request (HAProxy's TCP health checks) gets nothing.
fn answer_with(mut stream: TcpStream, respond: impl Fn(&str) -> String) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
        if request.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&request);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let _ = stream.write_all(respond(path).as_bytes());
}

/// `GET /` over a new connection (HTTP/1.0, `Connection: close`): the status code and body, or
/// a description of what went wrong.
pub fn http_get(port: u16) -> Result<(u16, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("receive: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// A client sending requests through HAProxy one after the other, a new connection each, for as
/// long as it runs (at most `limit`): what a membership change must not disturb.
pub struct Traffic {
    counts: Arc<std::sync::Mutex<Counts>>,
    stop: Arc<AtomicBool>,
    client: Option<std::thread::JoinHandle<()>>,
}

/// What the client saw: requests answered 200 by a backend, and every other outcome.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub ok: usize,
    pub failures: Vec<String>,
}

impl Traffic {
    pub fn start(port: u16, limit: Duration) -> Traffic {
        let counts = Arc::new(std::sync::Mutex::new(Counts::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let (counts, stop) = (Arc::clone(&counts), Arc::clone(&stop));
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::SeqCst) && started.elapsed() < limit {
                    let answer = http_get(port);
                    let mut counts = counts.lock().unwrap();
                    match answer {
                        Ok((200, body)) if body.starts_with('b') => counts.ok += 1,
                        other => counts.failures.push(format!("{other:?}")),
                    }
                }
            })
        };
        Traffic {
            counts,
            stop,
            client: Some(client),
        }
    }

    /// What the client has seen so far.
    pub fn counts(&self) -> Counts {
        self.counts.lock().unwrap().clone()
    }

    /// Stops the client and returns what it saw.
    pub fn stop(mut self) -> Counts {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(client) = self.client.take() {
            client.join().unwrap();
        }
        self.counts()
    }
}
