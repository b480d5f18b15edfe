//! Shared test harness: a temporary confdir per test, the terad binary, and helpers to wait for
//! files to change. Real services (etcd, Consul, HAProxy) have their own modules next to this one.

#![allow(dead_code)]

pub mod consul;
pub mod consul_cluster;
pub mod etcd;
pub mod etcd_cluster;
pub mod haproxy;
pub mod tls;

mod ports;
pub use ports::free_port;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temporary confdir (`conf.d/`, `templates/`) plus a scratch area for destinations.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        Fixture { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the fixture.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, body: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        path
    }

    pub fn template(&self, name: &str, body: &str) -> &Self {
        self.write(&format!("templates/{name}"), body);
        self
    }

    pub fn resource(&self, name: &str, body: &str) -> &Self {
        self.write(&format!("conf.d/{name}"), body);
        self
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    /// The terad binary with `--confdir` set to this fixture.
    pub fn terad(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_terad"));
        command
            .arg("--confdir")
            .arg(self.root())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        // Tests never pick up terad settings from the developer's environment.
        for (name, _) in std::env::vars() {
            if name.starts_with("TERAD_") || name.starts_with("CONSUL_HTTP") {
                command.env_remove(name);
            }
        }
        command
    }

    /// `terad --onetime` over the file backend reading this fixture's `keys.yaml`.
    pub fn onetime(&self) -> Command {
        let mut command = self.terad();
        command
            .args(["--onetime", "--backend", "file", "--file"])
            .arg(self.path("keys.yaml"));
        command
    }

    /// Lines appended by a `reload_cmd` of `echo reloaded >> <log>`.
    pub fn reload_count(&self, log: &str) -> usize {
        self.read(log).lines().count()
    }
}

/// Runs a command to completion, failing the test after `limit`.
pub fn run(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn terad");
    wait_output(child, limit)
}

pub fn wait_output(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for terad"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("process {pid} did not finish within {limit:?}");
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Polls `condition` every 10 ms until it holds, failing the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `out/app.conf` exists with exactly `expected` (an empty render counts only once
/// the file is there), failing the test after 30 s with the daemon's log.
pub fn wait_content(fx: &Fixture, daemon: &Daemon, what: &str, expected: &str) {
    wait_file(fx, daemon, what, "out/app.conf", expected);
}

/// [`wait_content`] for the fixture's file `relative`.
pub fn wait_file(fx: &Fixture, daemon: &Daemon, what: &str, relative: &str, expected: &str) {
    let limit = Duration::from_secs(30);
    let path = fx.path(relative);
    let started = Instant::now();
    while !path.exists() || fx.read(relative) != expected {
        if started.elapsed() > limit {
            panic!(
                "timed out waiting for {what}: have {:?}, want {expected:?}\nterad log:\n{}",
                fx.read(relative),
                daemon.log()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running terad that is killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `command` with stderr going to `log`.
    pub fn start(command: &mut Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn terad");
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("terad did not stop within 10 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    /// SIGTERM first, so that terad stops what it supervises (an `--exec` child, a registered
    /// key) instead of leaving it orphaned past the test; SIGKILL when that takes over 2 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(2) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// A plain HTTP GET to terad's --listen address: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// Whether a test that needs root may run. Outside CI a test without root is skipped with a
/// note; under `CI=true` (where the suite runs as root) a missing root fails it, so that a test
/// cannot pass by never running.
pub fn root_or_skip(test: &str, why: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1") {
        panic!("{test} needs root ({why}), and CI runs the suite as root");
    }
    eprintln!("skipped {test}: needs root ({why}); CI runs it");
    false
}
