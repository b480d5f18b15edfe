//! A real 3-member etcd 3.4 cluster on loopback for the fault tests: each member on its own
//! client and peer ports (from [`free_port`]), one `--initial-cluster`, its own data directory
//! and log. Members can be killed, frozen (SIGSTOP: the process hangs but its sockets stay open),
//! thawed, restarted, restarted with an empty data directory (removed from the cluster and added
//! again, as an operator replaces a lost disk) and replaced by a new member on the same client
//! address (a new machine behind the old name). Everything is killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// How long the harness waits for the cluster to settle (a leader, a member to join).
const SETTLE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    /// SIGSTOPped: hung, with its TCP connections still open.
    Stopped,
    Dead,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    state: State,
}

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    token: String,
    members: Vec<Member>,
    /// Names given so far, so a replacement gets a new one.
    generation: usize,
}

impl EtcdCluster {
    /// Starts `size` members as one new cluster and waits until it has a leader.
    pub fn start(size: usize) -> EtcdCluster {
        let dir = tempfile::tempdir().unwrap();
        let token = format!(
            "terad-test-{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
                state: State::Dead,
            })
            .collect();
        let mut cluster = EtcdCluster {
            dir,
            token,
            members,
            generation: 0,
        };
        let initial = cluster.initial_cluster();
        for i in 0..size {
            cluster.spawn(i, &initial, "new");
        }
        cluster.wait_healthy();
        cluster
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Member `i`'s client URL (kept by a replacement).
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member's client URL, as terad is given them.
    pub fn urls(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.url(i)).collect()
    }

    pub fn state(&self, i: usize) -> State {
        self.members[i].state
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.members[i].child.as_ref().expect("member runs").id()
    }

    /// The index of the member whose client URL is `url`.
    pub fn index_of(&self, url: &str) -> Option<usize> {
        (0..self.members.len()).find(|&i| self.url(i) == url.trim_end_matches('/'))
    }

    fn member_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    fn peer_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].peer_port)
    }

    fn initial_cluster(&self) -> String {
        (0..self.members.len())
            .map(|i| format!("{}={}", self.members[i].name, self.peer_url(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize, initial_cluster: &str, state: &str) {
        let client = self.url(i);
        let peer = self.peer_url(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .unwrap();
        let child = Command::new("etcd")
            .arg(format!("--name={}", self.members[i].name))
            .arg(format!("--data-dir={}", self.member_dir(i).display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg(format!("--initial-cluster-state={state}"))
            .arg(format!("--initial-cluster-token={}", self.token))
            .arg("--log-level=warn")
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("etcd (apt-get install etcd-server) is installed");
        self.members[i].child = Some(child);
        self.members[i].state = State::Running;
    }

    /// `etcdctl` against `endpoints`.
    pub fn etcdctl(endpoints: &[String], args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--command-timeout=5s")
            .arg("--dial-timeout=2s")
            .args(args)
            .output()
            .expect("etcdctl (apt-get install etcd-client) is installed")
    }

    /// The client URLs of the members that run (not killed, not frozen).
    pub fn running(&self) -> Vec<String> {
        (0..self.members.len())
            .filter(|&i| self.members[i].state == State::Running)
            .map(|i| self.url(i))
            .collect()
    }

    /// `etcdctl` through the running members, retried until it succeeds (an election or a
    /// member joining takes a moment); fails the test after [`SETTLE`].
    pub fn ctl(&self, args: &[&str]) -> String {
        let started = Instant::now();
        loop {
            let output = Self::etcdctl(&self.running(), args);
            if output.status.success() {
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            if started.elapsed() > SETTLE {
                panic!(
                    "etcdctl {args:?} kept failing: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes through member `i`, once; `Err` with etcdctl's complaint.
    pub fn put_via(&self, i: usize, key: &str, value: &str) -> Result<(), String> {
        let output = Self::etcdctl(&[self.url(i)], &["put", key, value]);
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Writes through whichever running member takes it, retrying through an election; returns
    /// when the write is committed (the moment the cluster can serve it).
    pub fn put(&self, key: &str, value: &str) -> Instant {
        let started = Instant::now();
        loop {
            for url in self.running() {
                let i = self.index_of(&url).unwrap();
                if self.put_via(i, key, value).is_ok() {
                    return Instant::now();
                }
            }
            if started.elapsed() > SETTLE {
                panic!("no member took a write of {key} within {SETTLE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `endpoint status` of member `i`: (its member id, the leader it knows, its revision).
    pub fn status(&self, i: usize) -> Option<(u64, u64, i64)> {
        let output = Self::etcdctl(&[self.url(i)], &["endpoint", "status", "-w", "json"]);
        if !output.status.success() {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        let status = &json.get(0)?["Status"];
        Some((
            status["header"]["member_id"].as_u64()?,
            status["leader"].as_u64()?,
            status["header"]["revision"].as_i64()?,
        ))
    }

    /// The member that leads, as the running members see it.
    pub fn leader(&self) -> Option<usize> {
        let running: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].state == State::Running)
            .collect();
        let statuses: Vec<(usize, u64, u64)> = running
            .iter()
            .filter_map(|&i| self.status(i).map(|(id, leader, _)| (i, id, leader)))
            .collect();
        let leader = statuses
            .iter()
            .find_map(|(_, _, leader)| (*leader != 0).then_some(*leader))?;
        statuses
            .iter()
            .find(|(_, id, _)| *id == leader)
            .map(|(i, _, _)| *i)
    }

    /// Waits until every running member answers and one of them leads.
    pub fn wait_healthy(&self) {
        let started = Instant::now();
        loop {
            let running = self.running();
            let healthy = running.iter().all(|url| {
                Self::etcdctl(std::slice::from_ref(url), &["endpoint", "health"])
                    .status
                    .success()
            });
            if healthy && self.leader().is_some() {
                return;
            }
            if started.elapsed() > SETTLE {
                let logs: String = (0..self.members.len())
                    .map(|i| {
                        format!(
                            "--- {}:\n{}",
                            self.members[i].name,
                            std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
                        )
                    })
                    .collect();
                panic!("the etcd cluster did not become healthy:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid(i) as i32);
        nix::sys::signal::kill(pid, signal).expect("signal etcd");
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self, i: usize) {
        // A stopped process dies on SIGKILL too.
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.members[i].state = State::Dead;
    }

    /// SIGSTOP: the member hangs, its sockets stay open and the kernel still accepts
    /// connections for it.
    pub fn freeze(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGSTOP);
        self.members[i].state = State::Stopped;
    }

    /// SIGCONT after [`EtcdCluster::freeze`].
    pub fn thaw(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGCONT);
        self.members[i].state = State::Running;
    }

    /// Starts a killed member again with its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let initial = self.initial_cluster();
        self.spawn(i, &initial, "existing");
    }

    /// The cluster's id for member `name`.
    fn member_id(&self, name: &str) -> Option<String> {
        let out = self.ctl(&["member", "list", "-w", "json"]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        json["members"].as_array()?.iter().find_map(|member| {
            (member["name"].as_str() == Some(name)
                || member["peerURLs"]
                    .as_array()
                    .is_some_and(|urls| urls.iter().any(|u| u.as_str() == Some(name))))
            .then(|| format!("{:x}", member["ID"].as_u64().unwrap()))
        })
    }

    /// Kills member `i`, removes it from the cluster, wipes its data and adds it back empty under
    /// `name` on `peer_port`; it catches up from the leader's snapshot and log.
    fn rejoin_empty(&mut self, i: usize, name: String, peer_port: u16) {
        let old_peer = self.peer_url(i);
        self.kill(i);
        if let Some(id) = self.member_id(&old_peer) {
            self.ctl(&["member", "remove", &id]);
        }
        let _ = std::fs::remove_dir_all(self.member_dir(i));
        self.members[i].name = name;
        self.members[i].peer_port = peer_port;
        let peer = self.peer_url(i);
        let name = self.members[i].name.clone();
        self.ctl(&["member", "add", &name, &format!("--peer-urls={peer}")]);
        let initial = self.initial_cluster();
        self.spawn(i, &initial, "existing");
    }

    /// The same member (name and ports) back with an empty data directory: removed from the
    /// cluster, added again, and started to catch up.
    pub fn restart_empty(&mut self, i: usize) {
        let (name, peer) = (self.members[i].name.clone(), self.members[i].peer_port);
        self.rejoin_empty(i, name, peer);
    }

    /// A new member (new name, new peer port, empty data) in place of member `i`, on the same
    /// client address: a replaced machine behind the old name.
    pub fn replace(&mut self, i: usize) {
        self.generation += 1;
        let name = format!("m{i}r{}", self.generation);
        self.rejoin_empty(i, name, free_port());
    }

    /// A member's log, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.members.len())
            .map(|i| {
                format!(
                    "--- {} ({:?}):\n{}",
                    self.members[i].name,
                    self.members[i].state,
                    std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].state == State::Stopped {
                self.signal(i, nix::sys::signal::Signal::SIGCONT);
            }
            self.kill(i);
        }
    }
}
