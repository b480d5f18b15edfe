//! A real etcd (Debian's `etcd-server`) for tests: started on free loopback ports with a
//! temporary data directory, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use terad::backend::etcd::api::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};
use terad::backend::etcd::client::{Client, ConnectOptions};

use super::free_port;
use super::tls::TestCa;

pub struct Etcd {
    child: Option<Child>,
    data: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<TestCa>,
    extra: Vec<String>,
}

impl Etcd {
    /// Starts a plain-HTTP etcd.
    pub fn start() -> Etcd {
        Etcd::start_with(None, &[])
    }

    /// Starts etcd, with TLS and client-certificate authentication when `tls` is given.
    pub fn start_with(tls: Option<TestCa>, extra: &[&str]) -> Etcd {
        let mut etcd = Etcd {
            child: None,
            data: tempfile::tempdir().unwrap(),
            client_port: free_port(),
            peer_port: free_port(),
            tls,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        etcd.spawn();
        etcd
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("etcd is running").id()
    }

    fn spawn(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        command
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.data.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            // Large values must get through; etcd's own default request limit is 1.5 MiB.
            .arg("--max-request-bytes=16777216")
            .arg("--log-level=error")
            .arg("--logger=zap")
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.data.path().join("etcd.log")).unwrap(),
            ));
        if let Some(ca) = &self.tls {
            command
                .arg(format!("--cert-file={}", ca.server_cert.display()))
                .arg(format!("--key-file={}", ca.server_key.display()))
                .arg(format!("--trusted-ca-file={}", ca.ca_cert.display()))
                .arg("--client-cert-auth");
        }
        self.child = Some(
            command
                .spawn()
                .expect("etcd (apt-get install etcd-server) is installed"),
        );
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let health = self.etcdctl(&["endpoint", "health"]);
            if health.status.success() {
                return;
            }
            if started.elapsed() > Duration::from_secs(20) {
                panic!(
                    "etcd did not become healthy: {}\n{}",
                    String::from_utf8_lossy(&health.stderr),
                    std::fs::read_to_string(self.data.path().join("etcd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `etcdctl` (API v3) against this etcd.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.url()))
            .arg("--command-timeout=5s");
        if let Some(ca) = &self.tls {
            command
                .arg(format!("--cacert={}", ca.ca_cert.display()))
                .arg(format!("--cert={}", ca.client_cert.display()))
                .arg(format!("--key={}", ca.client_key.display()));
        }
        command
            .args(args)
            .output()
            .expect("etcdctl (apt-get install etcd-client) is installed")
    }

    /// Runs `etcdctl` and fails the test if it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let output = self.etcdctl(args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]);
    }

    /// Puts many (or large) values through the Rust client: etcdctl cannot send values over
    /// 2 MiB and starts one process per key.
    pub fn put_all(&self, entries: Vec<(String, String)>) {
        let url = self.url();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let client = Client::connect(&url, &ConnectOptions::default())
                    .await
                    .unwrap()
                    .max_encoding_message_size(64 * 1024 * 1024);
                // etcd accepts at most 128 operations per transaction.
                for chunk in entries.chunks(128) {
                    let success = chunk
                        .iter()
                        .map(|(key, value)| RequestOp {
                            request: Some(request_op::Request::RequestPut(put(key, value))),
                        })
                        .collect();
                    let txn = TxnRequest {
                        success,
                        ..TxnRequest::default()
                    };
                    client.txn(txn).await.unwrap();
                }
            });
    }

    /// Puts entries one by one (one revision each), pausing `pause` between them.
    pub fn put_paced(&self, entries: Vec<(String, String)>, pause: Duration) {
        let url = self.url();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let client = Client::connect(&url, &ConnectOptions::default())
                    .await
                    .unwrap();
                for (key, value) in entries {
                    client.put(put(&key, &value)).await.unwrap();
                    tokio::time::sleep(pause).await;
                }
            });
    }

    /// Puts raw bytes (for values that are not UTF-8).
    pub fn put_bytes(&self, key: &str, value: &[u8]) {
        let (url, key, value) = (self.url(), key.to_owned(), value.to_vec());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let client = Client::connect(&url, &ConnectOptions::default())
                    .await
                    .unwrap();
                client.put(put(&key, &value)).await.unwrap();
            });
    }

    pub fn delete(&self, key: &str) {
        self.ctl(&["del", key]);
    }

    /// The current revision of the store.
    pub fn revision(&self) -> i64 {
        let out = self.ctl(&["endpoint", "status", "--write-out=fields"]);
        out.lines()
            .find_map(|line| line.strip_prefix("\"Revision\" : "))
            .and_then(|v| v.trim().parse().ok())
            .expect("etcdctl endpoint status reports a revision")
    }

    /// A gauge from etcd's Prometheus metrics (plain-HTTP etcd only).
    pub fn metric(&self, name: &str) -> f64 {
        let text = http_get_metrics(self.client_port);
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found"))
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts again on the same ports with an empty data directory.
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.data.path().join("data"));
        self.spawn();
    }

    pub fn tls(&self) -> Option<&TestCa> {
        self.tls.as_ref()
    }

    pub fn log_path(&self) -> PathBuf {
        self.data.path().join("etcd.log")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A put of `value` at `key`.
fn put(key: &str, value: impl AsRef<[u8]>) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_ref().to_vec(),
        ..PutRequest::default()
    }
}

/// A plain HTTP GET of /metrics over a TCP socket.
fn http_get_metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}
