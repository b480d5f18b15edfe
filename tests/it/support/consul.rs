//! A real Consul agent for tests (bullseye's `consul` 1.8, installed by scripts/install-deps.sh),
//! on free loopback ports, killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// The ACL master token of agents started with ACLs.
pub const MASTER_TOKEN: &str = "root-token";

pub struct Consul {
    child: Option<Child>,
    dir: tempfile::TempDir,
    http_port: u16,
    serf_lan: u16,
    serf_wan: u16,
    server: u16,
    acl: bool,
    /// A server with a data directory (survives restarts) instead of `-dev` (in memory).
    persistent: bool,
    /// The agent's node name and id, when a test needs them fixed (they are printed).
    node: Option<(String, String)>,
}

/// Where the consul binary is: on PATH, or where install-deps.sh puts it.
fn binary() -> PathBuf {
    for candidate in ["/usr/local/bin/consul", "/usr/bin/consul"] {
        if std::path::Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("consul")
}

impl Consul {
    /// `consul agent -dev`, optionally with ACLs enabled and default-deny.
    pub fn start_dev(acl: bool) -> Consul {
        Consul::start(acl, false)
    }

    /// A single-node server keeping its data across restarts.
    pub fn start_persistent() -> Consul {
        Consul::start(false, true)
    }

    /// `consul agent -dev` with a fixed node name and node id.
    pub fn start_dev_as(node: &str, node_id: &str) -> Consul {
        Consul::start_with(false, false, Some((node.to_owned(), node_id.to_owned())))
    }

    fn start(acl: bool, persistent: bool) -> Consul {
        Consul::start_with(acl, persistent, None)
    }

    fn start_with(acl: bool, persistent: bool, node: Option<(String, String)>) -> Consul {
        let mut consul = Consul {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            http_port: free_port(),
            serf_lan: free_port(),
            serf_wan: free_port(),
            server: free_port(),
            acl,
            persistent,
            node,
        };
        consul.spawn();
        consul
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    fn spawn(&mut self) {
        let mut command = Command::new(binary());
        command.arg("agent");
        if self.persistent {
            // Raft timers at dev speed, so start-up and restart elections take a second, not ten.
            let config = self.dir.path().join("fast.hcl");
            std::fs::write(&config, "performance {\n  raft_multiplier = 1\n}\n").unwrap();
            command
                .arg("-server")
                .arg("-bootstrap-expect=1")
                .arg(format!("-config-file={}", config.display()))
                .arg(format!(
                    "-data-dir={}",
                    self.dir.path().join("data").display()
                ));
        } else {
            command.arg("-dev");
        }
        if let Some((node, node_id)) = &self.node {
            command
                .arg(format!("-node={node}"))
                .arg(format!("-node-id={node_id}"));
        }
        command
            .args([
                "-bind=127.0.0.1",
                "-client=127.0.0.1",
                "-dns-port=-1",
                "-grpc-port=-1",
            ])
            .arg(format!("-http-port={}", self.http_port))
            .arg(format!("-serf-lan-port={}", self.serf_lan))
            .arg(format!("-serf-wan-port={}", self.serf_wan))
            .arg(format!("-server-port={}", self.server))
            .arg("-log-level=warn");
        if self.acl {
            let config = self.dir.path().join("acl.hcl");
            std::fs::write(
                &config,
                format!(
                    "acl {{\n  enabled = true\n  default_policy = \"deny\"\n  tokens {{\n    master = \"{MASTER_TOKEN}\"\n  }}\n}}\n"
                ),
            )
            .unwrap();
            command.arg(format!("-config-file={}", config.display()));
        }
        let log = std::fs::File::create(self.dir.path().join("consul.log")).unwrap();
        command
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        self.child = Some(
            command
                .spawn()
                .expect("consul is installed (scripts/install-deps.sh)"),
        );
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            // A leader and a writable KV store.
            if self.kv(&["put", "terad-test/ready", "1"]).status.success() {
                let _ = self.kv(&["delete", "terad-test/ready"]);
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "consul did not become ready:\n{}",
                    std::fs::read_to_string(self.dir.path().join("consul.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `consul kv …` against this agent (with the master token when ACLs are on).
    pub fn kv(&self, args: &[&str]) -> Output {
        let mut command = Command::new(binary());
        command
            .arg("kv")
            .arg(args[0])
            .arg(format!("-http-addr={}", self.address()));
        if self.acl {
            command.arg(format!("-token={MASTER_TOKEN}"));
        }
        command.args(&args[1..]).output().expect("run consul kv")
    }

    /// Consul keys have no leading `/`; this takes terad's spelling.
    pub fn put(&self, key: &str, value: &str) {
        let output = self.kv(&["put", key.trim_start_matches('/'), value]);
        assert!(
            output.status.success(),
            "consul kv put: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn delete(&self, key: &str) {
        let output = self.kv(&["delete", key.trim_start_matches('/')]);
        assert!(
            output.status.success(),
            "consul kv delete: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Creates a token allowed to read `prefix` (ACL agents only); returns its secret.
    pub fn read_token(&self, prefix: &str) -> String {
        let rules = self.dir.path().join("read.hcl");
        std::fs::write(
            &rules,
            format!("key_prefix \"{prefix}\" {{\n  policy = \"read\"\n}}\n"),
        )
        .unwrap();
        let acl = |args: &[&str]| {
            let output = Command::new(binary())
                .arg("acl")
                .args(&args[..1])
                .arg(args[1])
                .arg(format!("-http-addr={}", self.address()))
                .arg(format!("-token={MASTER_TOKEN}"))
                .args(&args[2..])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "consul acl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        acl(&[
            "policy",
            "create",
            "-name=terad-read",
            &format!("-rules=@{}", rules.display()),
        ]);
        let created = acl(&["token", "create", "-policy-name=terad-read", "-format=json"]);
        let secret = created
            .split("\"SecretID\":")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .expect("token secret in consul's answer");
        secret.to_owned()
    }

    /// A request to the agent's HTTP API (with the master token when ACLs are on): the status
    /// and body.
    pub fn api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        self.api_as(
            if self.acl { Some(MASTER_TOKEN) } else { None },
            method,
            path,
            body,
        )
    }

    /// [`Consul::api`] with `token` (or none).
    pub fn api_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.http_port))
            .unwrap_or_else(|e| panic!("connect to consul: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let token = token
            .map(|t| format!("X-Consul-Token: {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{token}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Registers a service instance with the agent (`/v1/agent/service/register`); `extra` is
    /// more JSON members (`"Check": {…}`, `"Tags": […]`), or empty.
    pub fn register(&self, id: &str, name: &str, address: &str, port: u16, extra: &str) {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        let body = format!(
            "{{\"ID\": \"{id}\", \"Name\": \"{name}\", \"Address\": \"{address}\", \"Port\": {port}{extra}}}"
        );
        let (status, answer) = self.api("PUT", "/v1/agent/service/register", &body);
        assert_eq!(status, 200, "registering {id}: {answer}");
    }

    pub fn deregister(&self, id: &str) {
        let (status, answer) = self.api("PUT", &format!("/v1/agent/service/deregister/{id}"), "");
        assert_eq!(status, 200, "deregistering {id}: {answer}");
    }

    /// Sets a TTL check (`"Check": {"CheckID": …, "TTL": "…"}`) to passing or critical.
    pub fn set_ttl(&self, check: &str, passing: bool) {
        let verb = if passing { "pass" } else { "fail" };
        let (status, answer) = self.api("PUT", &format!("/v1/agent/check/{verb}/{check}"), "");
        assert_eq!(status, 200, "check {check} {verb}: {answer}");
    }

    /// Creates a token with these ACL rules (ACL agents only); returns its secret.
    pub fn token_with(&self, name: &str, rules: &str) -> String {
        let body = format!("{{\"Name\": \"{name}\", \"Rules\": {rules:?}}}");
        let (status, answer) = self.api("PUT", "/v1/acl/policy", &body);
        assert_eq!(status, 200, "creating policy {name}: {answer}");
        let body = format!("{{\"Policies\": [{{\"Name\": \"{name}\"}}]}}");
        let (status, answer) = self.api("PUT", "/v1/acl/token", &body);
        assert_eq!(status, 200, "creating a token for {name}: {answer}");
        answer
            .split("\"SecretID\":")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .expect("token secret in consul's answer")
            .to_owned()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

impl Drop for Consul {
    fn drop(&mut self) {
        self.kill();
    }
}

/// terad against `consul` with `args`, in `fx`'s confdir. Short blocking queries keep the
/// restart tests quick (the default wait is 5m).
pub fn terad(fx: &super::Fixture, consul: &Consul, args: &[&str]) -> Command {
    let mut command = fx.terad();
    command
        .args(args)
        .args(["--backend", "consul", "--node"])
        .arg(consul.address())
        .args(["--consul-wait", "5s"]);
    command
}
