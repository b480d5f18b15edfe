//! Member failures in real 3-member clusters (issue 15): a watching terad renders the HAProxy
//! example from every member (`--node` for each) while members are killed, frozen, wiped,
//! replaced and quorum is lost. Throughout, a sampler reads the destination every few
//! milliseconds and checks that it always holds a complete render of some committed state:
//! the servers web1..webK for some K, never fewer than were already there, never an empty or
//! partial pool. After each fault a write goes to the cluster and the time until terad's file
//! has it is measured from the moment the cluster accepted the write (printed as `FAILOVER`
//! lines, recorded in BENCHMARKS.md); the only timed assertions are the bounds: 2 s when
//! a member dies or quorum returns, 5 s when the member terad talks to hangs.
//!
//! The example's own `wait = "2s:10s"` (quiescence for registrations arriving one by one) is
//! left out here: it would add its 2 s to every figure, and what is measured is the failover.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::consul_cluster::{CLIENT, ConsulCluster};
use crate::support::etcd_cluster::EtcdCluster;
use crate::support::{Daemon, Fixture, free_port, http_get};

const DEST: &str = "out/haproxy.cfg";
/// The bound when a member dies or quorum returns.
const DEAD_BOUND: Duration = Duration::from_secs(2);
/// The bound when the member terad talks to hangs.
const HUNG_BOUND: Duration = Duration::from_secs(5);
const READY_TIMEOUT: &str = "2s";

/// How long quorum stays lost. The issue asks for 30 s; the suite holds it 8 s to stay inside
/// CI's time (nothing in terad changes after `--ready-timeout` and a few failed retries).
/// `QUORUM_LOSS_SECS=30 cargo nextest run -E 'test(quorum)'` runs the length.
fn quorum_loss() -> Duration {
    let seconds = std::env::var("QUORUM_LOSS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    Duration::from_secs(seconds)
}

/// The repository's HAProxy example as a fixture: its template and resource (check with
/// `haproxy -c`, `min_keys = 2`, `strict_values`), the reload counted in `reloads.log`.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.template(
        "haproxy.cfg.tmpl",
        include_str!("../../templates/haproxy.cfg.tmpl"),
    );
    let resource = include_str!("../../conf.d/haproxy.toml");
    assert!(resource.contains("min_keys = 2") && resource.contains("strict_values = true"));
    fx.resource(
        "haproxy.toml",
        &format!(
            "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\n\
             check_cmd = \"haproxy -c -f {{{{.src}}}}\"\n\
             reload_cmd = \"echo reload >> {}\"\nmin_keys = 2\nstrict_values = true\n",
            fx.path(DEST).display(),
            fx.path("reloads.log").display()
        ),
    );
    fx
}

/// What the sampler saw.
#[derive(Default)]
struct Seen {
    /// (when, servers) for each distinct content of the destination.
    states: Vec<(Instant, usize)>,
    violations: Vec<String>,
}

/// Reads the destination every 2 ms and checks each new content.
struct Sampler {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The number of servers in a complete render of web1..webK, or why `content` is not one.
fn servers_in(content: &str) -> Result<usize, String> {
    if !content.starts_with("global") || !content.contains("backend nodes") {
        return Err("not a complete render".to_owned());
    }
    if !content.contains("bind *:8080") {
        return Err("the port is missing".to_owned());
    }
    let mut names: Vec<usize> = content
        .lines()
        .filter_map(|line| line.trim().strip_prefix("server web"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    names.sort_unstable();
    let k = names.len();
    if k == 0 || names != (1..=k).collect::<Vec<_>>() {
        return Err(format!("servers {names:?} are not web1..webK"));
    }
    Ok(k)
}

impl Sampler {
    fn start(path: std::path::PathBuf) -> Sampler {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = String::new();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(content) = std::fs::read_to_string(&path)
                        && content != last
                    {
                        let now = Instant::now();
                        let mut seen = seen.lock().unwrap();
                        match servers_in(&content) {
                            Ok(k) => {
                                if let Some(&(_, before)) = seen.states.last()
                                    && k < before
                                {
                                    seen.violations
                                        .push(format!("went back from {before} to {k} servers"));
                                }
                                seen.states.push((now, k));
                            }
                            Err(why) => seen.violations.push(format!("{why}:\n{content}")),
                        }
                        last = content;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Sampler {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// When the destination first held `k` servers (or more).
    fn reached(&self, k: usize) -> Option<Instant> {
        let seen = self.seen.lock().unwrap();
        seen.states
            .iter()
            .find(|(_, servers)| *servers >= k)
            .map(|(at, _)| *at)
    }

    fn violations(&self) -> Vec<String> {
        self.seen.lock().unwrap().violations.clone()
    }

    fn renders(&self) -> usize {
        self.seen.lock().unwrap().states.len()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A store under test as the scenarios use it.
trait Cluster {
    fn kind(&self) -> &'static str;
    /// Writes through any member that takes it; returns when committed.
    fn put(&self, key: &str, value: &str) -> Instant;
    /// `--backend … --node …` for terad: every member.
    fn terad_args(&self) -> Vec<String>;
    fn logs(&self) -> String;
}

impl Cluster for EtcdCluster {
    fn kind(&self) -> &'static str {
        "etcd"
    }
    fn put(&self, key: &str, value: &str) -> Instant {
        EtcdCluster::put(self, key, value)
    }
    fn terad_args(&self) -> Vec<String> {
        let mut args = vec!["--backend".to_owned(), "etcd".to_owned()];
        for url in self.urls() {
            args.extend(["--node".to_owned(), url]);
        }
        args
    }
    fn logs(&self) -> String {
        EtcdCluster::logs(self)
    }
}

impl Cluster for ConsulCluster {
    fn kind(&self) -> &'static str {
        "consul"
    }
    fn put(&self, key: &str, value: &str) -> Instant {
        ConsulCluster::put(self, key, value)
    }
    fn terad_args(&self) -> Vec<String> {
        let mut args = vec!["--backend".to_owned(), "consul".to_owned()];
        for url in self.terad_nodes() {
            args.extend(["--node".to_owned(), url]);
        }
        args
    }
    fn logs(&self) -> String {
        ConsulCluster::logs(self)
    }
}

/// terad watching a cluster, the sampler on its destination, and the servers written so far.
struct Watched {
    fx: Fixture,
    daemon: Daemon,
    sampler: Sampler,
    listen: u16,
    servers: usize,
    /// Writes that changed the render since terad started.
    changes: usize,
    /// (fault, seconds) measured.
    failovers: Vec<(String, f64)>,
}

impl Watched {
    /// Writes the port and two servers, starts terad on every member and waits for its render.
    fn start(cluster: &dyn Cluster, extra: &[&str]) -> Watched {
        cluster.put("/proxy/port", "8080");
        cluster.put("/proxy/frontend/web1", "127.0.0.1:10001");
        cluster.put("/proxy/frontend/web2", "127.0.0.1:10002");
        let fx = fixture();
        let listen = free_port();
        let mut command = fx.terad();
        command
            .args(["--watch", "--log-level", "debug", "--listen"])
            .arg(format!("127.0.0.1:{listen}"))
            .args(["--ready-timeout", READY_TIMEOUT])
            .args(cluster.terad_args())
            .args(extra);
        let daemon = Daemon::start(&mut command, fx.path("terad.log"));
        let sampler = Sampler::start(fx.path(DEST));
        let watched = Watched {
            fx,
            daemon,
            sampler,
            listen,
            servers: 2,
            changes: 0,
            failovers: Vec::new(),
        };
        watched.wait_servers(2, Duration::from_secs(30), cluster);
        // The file is written before the resource counts as synced: a fault injected in
        // between saw /ready false at once, then true.
        watched.wait_ready(true, Duration::from_secs(10));
        watched
    }

    fn log(&self) -> String {
        self.daemon.log()
    }

    fn wait_servers(&self, k: usize, limit: Duration, cluster: &dyn Cluster) -> Instant {
        let started = Instant::now();
        loop {
            if let Some(at) = self.sampler.reached(k) {
                return at;
            }
            if started.elapsed() > limit {
                panic!(
                    "terad's file never reached {k} servers within {limit:?} (has {:?})\nterad log:\n{}\n{}",
                    servers_in(&self.fx.read(DEST)),
                    self.log(),
                    cluster.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Adds the next server through the cluster and measures how long after the cluster
    /// committed it terad's file has it; asserts `bound`.
    fn change(&mut self, cluster: &dyn Cluster, fault: &str, bound: Duration) -> Duration {
        self.servers += 1;
        let k = self.servers;
        let committed = cluster.put(
            &format!("/proxy/frontend/web{k}"),
            &format!("127.0.0.1:{}", 10_000 + k),
        );
        self.changes += 1;
        let seen = self.wait_servers(k, Duration::from_secs(60), cluster);
        let took = seen.saturating_duration_since(committed);
        eprintln!(
            "FAILOVER {} {fault}: {:.2}s",
            cluster.kind(),
            took.as_secs_f64()
        );
        self.failovers.push((fault.to_owned(), took.as_secs_f64()));
        assert!(
            took <= bound,
            "{fault}: the change reached the file {took:?} after the cluster committed it (bound {bound:?})\nterad log:\n{}",
            self.log()
        );
        took
    }

    /// `/ready`: 200 or 503.
    fn ready(&self) -> Option<bool> {
        http_get(self.listen, "/ready").map(|(status, _)| status == 200)
    }

    fn wait_ready(&self, want: bool, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.ready() == Some(want) {
                return started.elapsed();
            }
            if started.elapsed() > limit {
                panic!(
                    "/ready did not become {want} within {limit:?}\nterad log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The member terad last said it uses.
    fn member_in_use(&self) -> String {
        let log = self.log();
        log.lines()
            .rev()
            .find(|line| line.contains("member in use"))
            .and_then(|line| field(line, "member"))
            .unwrap_or_else(|| panic!("terad named no member in use:\n{log}"))
    }

    /// Lines of the log from `since` (a byte offset) on that contain every one of `words`.
    fn lines_with(&self, since: usize, words: &[&str]) -> usize {
        let log = self.log();
        log.get(since..)
            .unwrap_or("")
            .lines()
            .filter(|line| words.iter().all(|word| line.contains(word)))
            .count()
    }

    fn log_len(&self) -> usize {
        self.log().len()
    }

    /// The invariants that hold for every scenario, checked at its end.
    fn finish(self, cluster: &dyn Cluster) {
        // One last change, to see terad still follows.
        let violations = self.sampler.violations();
        assert!(
            violations.is_empty(),
            "the destination held something other than a complete render of a committed state:\n{}\nterad log:\n{}",
            violations.join("\n"),
            self.log()
        );
        let reloads = self.fx.reload_count("reloads.log");
        assert!(
            reloads <= 1 + self.changes,
            "{reloads} reloads for {} content changes (and the first render)\nterad log:\n{}",
            self.changes,
            self.log()
        );
        assert!(self.sampler.renders() >= 1);
        let panics = self.lines_with(0, &["panicked"]);
        assert_eq!(panics, 0, "{}", self.log());
        eprintln!(
            "{} scenario: {} changes, {reloads} reloads, failovers {:?}",
            cluster.kind(),
            self.changes,
            self.failovers
        );
    }
}

/// How a log line names a member (the field, so that a line naming it as the next one to try
/// does not count).
fn member_field(url: &str) -> String {
    format!("member={url} ")
}

/// `key=value` (or `key="value"`) from a log line in terad's text format.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next()?
    } else {
        rest.split_whitespace().next()?
    };
    Some(value.to_owned())
}

// ---------------------------------------------------------------------------------------------
// etcd

fn etcd_member_in_use(cluster: &EtcdCluster, watched: &Watched) -> usize {
    let url = watched.member_in_use();
    cluster
        .index_of(&url)
        .unwrap_or_else(|| panic!("{url} is not a member"))
}

#[test]
fn etcd_leader_killed() {
    let mut cluster = EtcdCluster::start(3);
    let mut watched = Watched::start(&cluster, &[]);
    let leader = cluster.leader().expect("a leader");
    let in_use = etcd_member_in_use(&cluster, &watched);
    let mark = watched.log_len();
    cluster.kill(leader);
    watched.change(&cluster, "leader killed", DEAD_BOUND);
    if leader == in_use {
        assert_eq!(
            watched.lines_with(
                mark,
                &["member failed", &member_field(&cluster.url(leader))]
            ),
            1,
            "{}",
            watched.log()
        );
    }
    watched.change(&cluster, "after the election", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn etcd_member_in_use_killed() {
    let mut cluster = EtcdCluster::start(3);
    let mut watched = Watched::start(&cluster, &[]);
    let in_use = etcd_member_in_use(&cluster, &watched);
    let mark = watched.log_len();
    cluster.kill(in_use);
    // Long enough for a retry loop to show in the log, were there one.
    std::thread::sleep(Duration::from_secs(1));
    watched.change(&cluster, "member in use killed", DEAD_BOUND);
    watched.change(&cluster, "member in use killed (second write)", DEAD_BOUND);
    let url = cluster.url(in_use);
    assert_eq!(
        watched.lines_with(mark, &["member failed", &member_field(&url)]),
        1,
        "the member and its fault once:\n{}",
        watched.log()
    );
    assert_ne!(etcd_member_in_use(&cluster, &watched), in_use);
    // The member comes back; nothing more is logged about it until it is used again.
    cluster.restart(in_use);
    cluster.wait_healthy();
    watched.change(&cluster, "member back", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn etcd_member_in_use_hangs() {
    let mut cluster = EtcdCluster::start(3);
    let mut watched = Watched::start(&cluster, &[]);
    let in_use = etcd_member_in_use(&cluster, &watched);
    let mark = watched.log_len();
    cluster.freeze(in_use);
    let frozen = Instant::now();
    watched.change(&cluster, "member in use hangs", HUNG_BOUND);
    // The write itself may wait for an election when the frozen member led: the time from the
    // freeze is the other figure worth knowing.
    eprintln!(
        "FAILOVER etcd hung member: the file current {:.2}s after the freeze",
        frozen.elapsed().as_secs_f64()
    );
    // Frozen for longer than the watch's progress interval and timeout together.
    while frozen.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(100));
    }
    watched.change(&cluster, "member in use still hung", DEAD_BOUND);
    let url = cluster.url(in_use);
    assert_eq!(
        watched.lines_with(mark, &["member failed", &member_field(&url)]),
        1,
        "the hung member once:\n{}",
        watched.log()
    );
    assert!(
        watched.lines_with(mark, &["member failed", &member_field(&url), "hangs"]) == 1
            || watched.lines_with(mark, &["member failed", &member_field(&url), "no answer"]) == 1,
        "the fault named:\n{}",
        watched.log()
    );
    cluster.thaw(in_use);
    cluster.wait_healthy();
    watched.change(&cluster, "member thawed", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn etcd_member_restarted_empty_rejoins() {
    let mut cluster = EtcdCluster::start(3);
    let mut watched = Watched::start(&cluster, &[]);
    let in_use = etcd_member_in_use(&cluster, &watched);
    cluster.restart_empty(in_use);
    watched.change(&cluster, "member in use restarted empty", DEAD_BOUND);
    cluster.wait_healthy();
    // The rejoined member has caught up: it serves the same revision as the others.
    let revisions: Vec<i64> = (0..3)
        .filter_map(|i| cluster.status(i).map(|(_, _, rev)| rev))
        .collect();
    assert_eq!(revisions.len(), 3, "{revisions:?}");
    watched.change(&cluster, "after the rejoin", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn etcd_rolling_replacement_of_every_member() {
    let mut cluster = EtcdCluster::start(3);
    let mut watched = Watched::start(&cluster, &[]);
    for i in 0..cluster.len() {
        cluster.replace(i);
        watched.change(&cluster, &format!("member {i} replaced"), DEAD_BOUND);
        cluster.wait_healthy();
    }
    watched.change(&cluster, "all replaced", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn etcd_quorum_lost_and_restored() {
    let mut cluster = EtcdCluster::start(3);
    let mut watched = Watched::start(&cluster, &[]);
    let in_use = etcd_member_in_use(&cluster, &watched);
    // The two others go: terad's member stays, alone and without a leader.
    let others: Vec<usize> = (0..3).filter(|&i| i != in_use).collect();
    let mark = watched.log_len();
    for &i in &others {
        cluster.kill(i);
    }
    let lost = Instant::now();
    let not_ready_after = watched.wait_ready(false, Duration::from_secs(20));
    eprintln!(
        "FAILOVER etcd /ready false {:.1}s after quorum was lost (--ready-timeout {READY_TIMEOUT})",
        not_ready_after.as_secs_f64()
    );
    while lost.elapsed() < quorum_loss() {
        assert_eq!(watched.ready(), Some(false), "{}", watched.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    for &i in &others {
        cluster.restart(i);
    }
    watched.change(&cluster, "quorum restored", DEAD_BOUND);
    let ready_after = watched.wait_ready(true, Duration::from_secs(10));
    eprintln!(
        "FAILOVER etcd /ready true {:.1}s after the change",
        ready_after.as_secs_f64()
    );
    // Once per episode: each member's fault, and the outage, whatever the retries.
    for i in 0..3 {
        let lines = watched.lines_with(mark, &["member failed", &member_field(&cluster.url(i))]);
        assert!(
            lines <= 1,
            "member {i} logged {lines} times:\n{}",
            watched.log()
        );
    }
    let outage = watched.lines_with(mark, &["WARN", "watch interrupted"])
        + watched.lines_with(mark, &["WARN", "backend unavailable"]);
    assert!(
        outage <= 2,
        "the outage logged {outage} times:\n{}",
        watched.log()
    );
    watched.finish(&cluster);
}

// ---------------------------------------------------------------------------------------------
// Consul: terad is given the client agent first (as deployed beside it), then every server.

fn consul_node_in_use(cluster: &ConsulCluster, watched: &Watched) -> usize {
    let log = watched.log();
    let url = log
        .lines()
        .rev()
        .find(|line| line.contains("consul node in use"))
        .and_then(|line| field(line, "node"))
        .unwrap_or_else(|| panic!("terad named no node in use:\n{log}"));
    cluster
        .index_of(&url)
        .unwrap_or_else(|| panic!("{url} is not an agent"))
}

fn node_field(url: &str) -> String {
    format!("node={url} ")
}

#[test]
fn consul_leader_killed() {
    let mut cluster = ConsulCluster::start();
    let mut watched = Watched::start(&cluster, &[]);
    let leader = cluster.leader().expect("a leader");
    cluster.kill(leader);
    watched.change(&cluster, "leader killed", DEAD_BOUND);
    watched.change(&cluster, "after the election", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn consul_agent_in_use_killed() {
    let mut cluster = ConsulCluster::start();
    let mut watched = Watched::start(&cluster, &[]);
    assert_eq!(consul_node_in_use(&cluster, &watched), CLIENT);
    let mark = watched.log_len();
    cluster.kill(CLIENT);
    std::thread::sleep(Duration::from_secs(1));
    watched.change(&cluster, "agent in use killed", DEAD_BOUND);
    watched.change(&cluster, "agent in use killed (second write)", DEAD_BOUND);
    let url = cluster.url(CLIENT);
    assert_eq!(
        watched.lines_with(mark, &["node failed", &node_field(&url)]),
        1,
        "the node and its fault once:\n{}",
        watched.log()
    );
    assert_ne!(consul_node_in_use(&cluster, &watched), CLIENT);
    cluster.restart(CLIENT);
    cluster.wait_healthy();
    watched.change(&cluster, "agent back", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn consul_agent_in_use_hangs() {
    let mut cluster = ConsulCluster::start();
    let mut watched = Watched::start(&cluster, &[]);
    assert_eq!(consul_node_in_use(&cluster, &watched), CLIENT);
    let mark = watched.log_len();
    cluster.freeze(CLIENT);
    let frozen = Instant::now();
    watched.change(&cluster, "agent in use hangs", HUNG_BOUND);
    eprintln!(
        "FAILOVER consul hung agent: the file current {:.2}s after the freeze",
        frozen.elapsed().as_secs_f64()
    );
    while frozen.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(100));
    }
    watched.change(&cluster, "agent in use still hung", DEAD_BOUND);
    let url = cluster.url(CLIENT);
    assert_eq!(
        watched.lines_with(mark, &["node failed", &node_field(&url), "hangs"]),
        1,
        "the hung node once:\n{}",
        watched.log()
    );
    cluster.thaw(CLIENT);
    cluster.wait_healthy();
    watched.change(&cluster, "agent thawed", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn consul_server_restarted_empty_rejoins() {
    let mut cluster = ConsulCluster::start();
    let mut watched = Watched::start(&cluster, &[]);
    let leader = cluster.leader().expect("a leader");
    cluster.restart_empty(leader);
    watched.change(&cluster, "leader restarted empty", DEAD_BOUND);
    cluster.wait_healthy();
    watched.change(&cluster, "after the rejoin", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn consul_rolling_replacement_of_every_server() {
    let mut cluster = ConsulCluster::start();
    let mut watched = Watched::start(&cluster, &[]);
    for i in 0..3 {
        let started = Instant::now();
        cluster.replace(i);
        let replaced = started.elapsed();
        watched.change(&cluster, &format!("server {i} replaced"), DEAD_BOUND);
        cluster.wait_healthy();
        eprintln!(
            "server {i}: replaced in {:.1}s, voter after {:.1}s",
            replaced.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    watched.change(&cluster, "all replaced", DEAD_BOUND);
    watched.finish(&cluster);
}

#[test]
fn consul_quorum_lost_and_restored() {
    let mut cluster = ConsulCluster::start();
    let mut watched = Watched::start(&cluster, &[]);
    let leader = cluster.leader().expect("a leader");
    // The leader and one more server go: one server and the client agent remain.
    let gone = [leader, (leader + 1) % 3];
    let mark = watched.log_len();
    for &i in &gone {
        cluster.kill(i);
    }
    let lost = Instant::now();
    let not_ready_after = watched.wait_ready(false, Duration::from_secs(20));
    eprintln!(
        "FAILOVER consul /ready false {:.1}s after quorum was lost (--ready-timeout {READY_TIMEOUT})",
        not_ready_after.as_secs_f64()
    );
    while lost.elapsed() < quorum_loss() {
        assert_eq!(watched.ready(), Some(false), "{}", watched.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    for &i in &gone {
        cluster.restart(i);
    }
    watched.change(&cluster, "quorum restored", DEAD_BOUND);
    let ready_after = watched.wait_ready(true, Duration::from_secs(10));
    eprintln!(
        "FAILOVER consul /ready true {:.1}s after the change",
        ready_after.as_secs_f64()
    );
    for url in cluster.terad_nodes() {
        let lines = watched.lines_with(mark, &["node failed", &node_field(&url)]);
        assert!(lines <= 1, "{url} logged {lines} times:\n{}", watched.log());
    }
    let outage = watched.lines_with(mark, &["WARN", "watch interrupted"])
        + watched.lines_with(mark, &["WARN", "backend unavailable"]);
    assert!(
        outage <= 2,
        "the outage logged {outage} times:\n{}",
        watched.log()
    );
    watched.finish(&cluster);
}
