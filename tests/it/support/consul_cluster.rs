//! A real Consul 1.8 cluster on loopback for the fault tests: three servers
//! (`-bootstrap-expect=3`) and one client agent, as deployed beside a sidecar, each with its own
//! `-http-port`, `-server-port`, `-serf-lan-port`, `-serf-wan-port` and `-dns-port`, all bound to
//! 127.0.0.1 and joined with `-retry-join`. Raft runs at dev speed (`raft_multiplier = 1`).
//! Agents can be killed, frozen (SIGSTOP), thawed, restarted, restarted with an empty data
//! directory (same node name and node id: a lost disk) and replaced by a new server on the same
//! HTTP address (new name, id and server ports; the old one removed from Raft). Everything is killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

const SETTLE: Duration = Duration::from_secs(45);

pub use super::etcd_cluster::State;

/// Where the consul binary is: where install-deps.sh puts it, or on PATH.
fn binary() -> PathBuf {
    for candidate in ["/usr/local/bin/consul", "/usr/bin/consul"] {
        if std::path::Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("consul")
}

struct Agent {
    name: String,
    node_id: String,
    server: bool,
    /// Whether it is one of the three that bootstrap the cluster (`-bootstrap-expect=3`).
    bootstrap: bool,
    http: u16,
    rpc: u16,
    serf_lan: u16,
    serf_wan: u16,
    dns: u16,
    child: Option<Child>,
    state: State,
}

pub struct ConsulCluster {
    dir: tempfile::TempDir,
    /// Servers 0..3, then the client agent.
    agents: Vec<Agent>,
    generation: usize,
}

/// The index of the client agent among the agents.
pub const CLIENT: usize = 3;

fn node_id() -> String {
    let mut rng = fastrand::Rng::new();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        rng.u16(..0x1000),
        rng.u64(..1 << 48)
    )
}

impl ConsulCluster {
    /// Three servers and a client agent; returns once a leader is elected, the three servers
    /// are Raft voters and a write through the client agent works.
    pub fn start() -> ConsulCluster {
        Self::start_with("")
    }

    /// [`ConsulCluster::start`] with `extra_hcl` added to every agent's configuration (the
    /// fleet benchmark's `telemetry` block).
    pub fn start_with(extra_hcl: &str) -> ConsulCluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("fast.hcl"),
            "performance {\n  raft_multiplier = 1\n}\n\
             autopilot {\n  server_stabilization_time = \"1s\"\n}\n",
        )
        .unwrap();
        // Every client here is 127.0.0.1, and Consul resets connections from one address
        // past `http_max_conns_per_client` (200): the fleet benchmark's 200 sidecars and its
        // writer share one agent, where a deployment gives each host its own.
        std::fs::write(
            dir.path().join("agents.hcl"),
            format!("limits {{\n  http_max_conns_per_client = 4096\n}}\n{extra_hcl}"),
        )
        .unwrap();
        let agent = |name: String, server: bool| Agent {
            name,
            node_id: node_id(),
            server,
            bootstrap: server,
            http: free_port(),
            rpc: free_port(),
            serf_lan: free_port(),
            serf_wan: free_port(),
            dns: free_port(),
            child: None,
            state: State::Dead,
        };
        let mut agents: Vec<Agent> = (0..3).map(|i| agent(format!("s{i}"), true)).collect();
        agents.push(agent("c0".to_owned(), false));
        let mut cluster = ConsulCluster {
            dir,
            agents,
            generation: 0,
        };
        for i in 0..cluster.agents.len() {
            cluster.spawn(i);
        }
        cluster.wait_healthy();
        cluster
    }

    /// Agent `i`'s HTTP address (`127.0.0.1:port`).
    pub fn address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.agents[i].http)
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.address(i))
    }

    /// terad's nodes: the client agent first (as deployed), then every server.
    pub fn terad_nodes(&self) -> Vec<String> {
        let mut nodes = vec![self.url(CLIENT)];
        nodes.extend((0..3).map(|i| self.url(i)));
        nodes
    }

    pub fn index_of(&self, url: &str) -> Option<usize> {
        (0..self.agents.len()).find(|&i| self.url(i) == url.trim_end_matches('/'))
    }

    pub fn state(&self, i: usize) -> State {
        self.agents[i].state
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}-data", self.agents[i].name))
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.agents[i].name))
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        let agent = &self.agents[i];
        let mut command = Command::new(binary());
        command
            .arg("agent")
            .arg(format!("-node={}", agent.name))
            .arg(format!("-node-id={}", agent.node_id))
            .arg(format!("-data-dir={}", self.data_dir(i).display()))
            .args(["-bind=127.0.0.1", "-client=127.0.0.1", "-grpc-port=-1"])
            .arg(format!("-http-port={}", agent.http))
            .arg(format!("-server-port={}", agent.rpc))
            .arg(format!("-serf-lan-port={}", agent.serf_lan))
            .arg(format!("-serf-wan-port={}", agent.serf_wan))
            .arg(format!("-dns-port={}", agent.dns))
            .arg("-log-level=warn")
            .arg("-retry-interval=1s")
            .arg(format!(
                "-config-file={}",
                self.dir.path().join("agents.hcl").display()
            ));
        if agent.server {
            command.arg("-server");
            if agent.bootstrap {
                command.arg("-bootstrap-expect=3");
            }
            command.arg(format!(
                "-config-file={}",
                self.dir.path().join("fast.hcl").display()
            ));
        }
        for (j, other) in self.agents.iter().enumerate() {
            if j != i && other.server {
                command.arg(format!("-retry-join=127.0.0.1:{}", other.serf_lan));
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("consul is installed (scripts/install-deps.sh)");
        self.agents[i].child = Some(child);
        self.agents[i].state = State::Running;
    }

    /// A plain HTTP request to agent `i`: (status, body), or `None` when it does not answer
    /// within `limit`.
    pub fn http(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: &str,
        limit: Duration,
    ) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let address: std::net::SocketAddr = self.address(i).parse().unwrap();
        let mut stream = std::net::TcpStream::connect_timeout(&address, limit).ok()?;
        stream.set_read_timeout(Some(limit)).ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    }

    /// The running agents' process ids (for the fleet benchmark's CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        self.agents
            .iter()
            .filter_map(|agent| agent.child.as_ref().map(Child::id))
            .collect()
    }

    /// The running agents' indexes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.agents.len())
            .filter(|&i| self.agents[i].state == State::Running)
            .collect()
    }

    /// Writes through agent `i` once: whether it took it.
    pub fn put_via(&self, i: usize, key: &str, value: &str) -> bool {
        let path = format!("/v1/kv/{}", key.trim_start_matches('/'));
        matches!(
            self.http(i, "PUT", &path, value, Duration::from_secs(5)),
            Some((200, body)) if body.trim() == "true"
        )
    }

    /// Writes through any running agent, retrying through an election; returns when the
    /// write is committed.
    pub fn put(&self, key: &str, value: &str) -> Instant {
        let started = Instant::now();
        loop {
            for i in self.running() {
                if self.put_via(i, key, value) {
                    return Instant::now();
                }
            }
            if started.elapsed() > SETTLE {
                panic!("no agent took a write of {key} within {SETTLE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server that leads, as the running agents see it.
    pub fn leader(&self) -> Option<usize> {
        self.running().into_iter().find_map(|i| {
            let (status, body) =
                self.http(i, "GET", "/v1/status/leader", "", Duration::from_secs(2))?;
            let address = body.trim().trim_matches('"').to_owned();
            if status != 200 || address.is_empty() {
                return None;
            }
            (0..3).find(|&s| address == format!("127.0.0.1:{}", self.agents[s].rpc))
        })
    }

    /// Raft voters as agent `i` reports them (a new server joins as a non-voter and is promoted
    /// once stable).
    fn voters(&self, i: usize) -> usize {
        self.http(
            i,
            "GET",
            "/v1/operator/raft/configuration",
            "",
            Duration::from_secs(2),
        )
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|json| {
            Some(
                json["Servers"]
                    .as_array()?
                    .iter()
                    .filter(|server| server["Voter"].as_bool() == Some(true))
                    .count(),
            )
        })
        .unwrap_or(0)
    }

    /// Waits for a leader, every running server a Raft voter, and a write through each running
    /// agent.
    pub fn wait_healthy(&self) {
        let started = Instant::now();
        let servers = self.running().into_iter().filter(|&i| i < 3).count();
        loop {
            let healthy = self.leader().is_some()
                && self.running().into_iter().all(|i| {
                    (i == CLIENT || self.voters(i) == servers)
                        && self.put_via(i, "terad-test/ready", "1")
                });
            if healthy {
                return;
            }
            if started.elapsed() > SETTLE {
                panic!(
                    "the Consul cluster did not become healthy:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        let child = self.agents[i].child.as_ref().expect("agent runs");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal consul");
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.agents[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.agents[i].state = State::Dead;
    }

    /// SIGSTOP: the agent hangs with its sockets open.
    pub fn freeze(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGSTOP);
        self.agents[i].state = State::Stopped;
    }

    pub fn thaw(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGCONT);
        self.agents[i].state = State::Running;
    }

    /// Starts a killed agent again with its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// The same server back with an empty data directory (same name and node id): it rejoins
    /// and the leader sends it a snapshot.
    pub fn restart_empty(&mut self, i: usize) {
        self.kill(i);
        let _ = std::fs::remove_dir_all(self.data_dir(i));
        self.spawn(i);
    }

    /// A new server (new name, node id and server ports, empty data) in place of server `i`
    /// on the same HTTP address, as an operator replaces a failed machine: the old one is killed and removed from
    /// Raft (`operator raft remove-peer`), then the new one joins and autopilot promotes it to
    /// voter ([`ConsulCluster::wait_healthy`] waits for that).
    pub fn replace(&mut self, i: usize) {
        assert!(i < 3, "only servers are replaced");
        self.kill(i);
        let old = self.agents[i].name.clone();
        let old_id = self.agents[i].node_id.clone();
        let _ = std::fs::remove_dir_all(self.data_dir(i));
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let through = self.running().into_iter().find(|&j| j < 3);
            let removed = through.is_some_and(|j| {
                let output = Command::new(binary())
                    .args(["operator", "raft", "remove-peer"])
                    .arg(format!("-http-addr={}", self.address(j)))
                    .arg(format!("-id={old_id}"))
                    .output()
                    .unwrap();
                last = String::from_utf8_lossy(&output.stderr).into_owned();
                output.status.success() || last.contains("not found")
            });
            if removed {
                break;
            }
            if started.elapsed() > SETTLE {
                panic!("cannot remove {old} from Raft: {last}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // The old name leaves the gossip pool too, before the new server takes its address:
        // a leave seen after that would drop the new server from the others' server lookup
        // (which goes by address), and a leader there would be "No cluster leader" to them.
        if let Some(j) = self.running().into_iter().find(|&j| j != i) {
            let _ = Command::new(binary())
                .arg("force-leave")
                .arg(format!("-http-addr={}", self.address(j)))
                .arg(&old)
                .output();
        }
        self.generation += 1;
        let agent = &mut self.agents[i];
        agent.name = format!("s{i}r{}", self.generation);
        agent.node_id = node_id();
        // It joins a cluster that exists, as an operator starts a replacement: with
        // -bootstrap-expect a fresh server first asks every server it knows from gossip
        // whether a cluster exists, the dead one it replaces included, and retries that with a
        // backoff growing to 32 s; the cluster then stayed without a voter to promote for
        // over 45 s in one of two runs (none in four runs without it).
        agent.bootstrap = false;
        // A new machine: new server and gossip addresses (Consul 1.8 looks servers up by their
        // RPC address, and one reused by another server confuses the others for a while);
        // the HTTP address terad knows stays, as a name in front of the new machine would.
        agent.rpc = free_port();
        agent.serf_lan = free_port();
        agent.serf_wan = free_port();
        agent.dns = free_port();
        self.spawn(i);
    }

    pub fn logs(&self) -> String {
        (0..self.agents.len())
            .map(|i| {
                format!(
                    "--- {} ({:?}):\n{}",
                    self.agents[i].name,
                    self.agents[i].state,
                    std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for ConsulCluster {
    fn drop(&mut self) {
        for i in 0..self.agents.len() {
            if self.agents[i].state == State::Stopped {
                self.signal(i, nix::sys::signal::Signal::SIGCONT);
            }
            self.kill(i);
        }
    }
}
