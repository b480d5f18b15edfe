//! HAProxy without reloads, end to end: a real etcd, the repository's HAProxy example with
//! `[template.haproxy]` turned on (and nothing else changed but paths, the frontend's address
//! and `wait`), terad in `--watch` mode, a real HAProxy 2.6 in master-worker mode with the
//! template's stats socket (level admin, `expose-fd listeners`), and small HTTP backends on
//! 127.0.0.1. `reload_cmd` counts its runs in `reloads.log` before signalling the master.
//!
//! What HAProxy runs is read back from its own socket (`show servers state`, `show info`) and
//! compared with the file terad committed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use terad::haproxy::{RuntimeAddress, RuntimeApi};

use crate::support::etcd::Etcd;
use crate::support::haproxy::{
    EXAMPLE_SOCKET, Haproxy, NamedBackend, Traffic, http_get, local_template,
};
use crate::support::{Daemon, Fixture, free_port, run, stderr, stdout, wait_for};

const LIMIT: Duration = Duration::from_secs(30);
const DEST: &str = "out/haproxy.cfg";

/// A shipped resource (`conf.d/haproxy.toml`) with its `[template.haproxy]` block uncommented
/// and pointed at `socket`, the destination and the pidfile in the fixture, a reload that
/// counts its runs, no `wait` (each put is one change), and `extra` keys of `[template]`.
fn resource(shipped: &str, fx: &Fixture, socket: &str, extra: &str) -> String {
    let reload = format!(
        "reload_cmd = \"echo reload >> {}; kill -USR2 $(cat {})\"",
        fx.path("reloads.log").display(),
        fx.path("haproxy.pid").display()
    );
    let mut lines = Vec::new();
    for line in shipped.lines() {
        let line = match line {
            l if l.starts_with("dest = ") => format!("dest = \"{}\"", fx.path(DEST).display()),
            l if l.starts_with("reload_cmd = ") => reload.clone(),
            l if l.starts_with("wait = ") => "wait = \"0s\"".to_owned(),
            "strict_values = true" => format!("strict_values = true\n{extra}"),
            "# [template.haproxy]" => "[template.haproxy]".to_owned(),
            l if l == format!("# runtime_api = \"{EXAMPLE_SOCKET}\"") => {
                format!("runtime_api = \"{socket}\"")
            }
            other => other.to_owned(),
        };
        lines.push(line);
    }
    let resource = lines.join("\n") + "\n";
    assert!(
        resource.contains("\n[template.haproxy]\nruntime_api = "),
        "the shipped resource shows [template.haproxy]:\n{shipped}"
    );
    resource
}

/// Everything of one scenario: etcd, HAProxy, terad, and a client for HAProxy's socket.
struct Stack {
    etcd: Etcd,
    fx: Fixture,
    /// HAProxy's frontend.
    port: u16,
    /// terad's `--listen`, for /metrics.
    listen: u16,
    haproxy: Haproxy,
    terad: Daemon,
    api: RuntimeApi,
    runtime: tokio::runtime::Runtime,
}

impl Stack {
    /// `servers` registered, the example rendered once (as an init container would), HAProxy
    /// started on it, then terad watching. `socket`: where terad's resource says the runtime
    /// API is (`None`: the template's own socket, in the fixture). `template` edits the
    /// example's template.
    fn start(
        servers: &[(&str, SocketAddr)],
        socket: Option<&str>,
        extra: &str,
        template: impl Fn(String) -> String,
    ) -> Stack {
        let etcd = Etcd::start();
        let port = free_port();
        etcd.put("/proxy/port", &port.to_string());
        for (name, addr) in servers {
            etcd.put(&format!("/proxy/frontend/{name}"), &addr.to_string());
        }
        let fx = Fixture::new();
        let example = include_str!("../../templates/haproxy.cfg.tmpl");
        fx.template(
            "haproxy.cfg.tmpl",
            &template(local_template(example, fx.root())),
        );
        let own_socket = fx.path("admin.sock").display().to_string();
        fx.resource(
            "haproxy.toml",
            &resource(
                include_str!("../../conf.d/haproxy.toml"),
                &fx,
                socket.unwrap_or(&own_socket),
                extra,
            ),
        );
        let bootstrap = run(
            fx.terad()
                .args(["--onetime", "--sync-only", "--backend", "etcd", "--node"])
                .arg(etcd.url()),
            LIMIT,
        );
        assert!(bootstrap.status.success(), "{}", stderr(&bootstrap));
        let haproxy = Haproxy::start(&fx.path(DEST), fx.root());
        let listen = free_port();
        let mut command = fx.terad();
        command
            .args(["--watch", "--log-level", "info", "--backend", "etcd"])
            .args(["--node", &etcd.url()])
            .args(["--listen", &format!("127.0.0.1:{listen}")]);
        let terad = Daemon::start(&mut command, fx.path("terad.log"));
        let stack = Stack {
            api: RuntimeApi::new(
                RuntimeAddress::Unix(fx.path("admin.sock")),
                Duration::from_secs(2),
                Duration::from_secs(2),
            ),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            etcd,
            fx,
            port,
            listen,
            haproxy,
            terad,
        };
        wait_for("terad's first sync", LIMIT, || {
            crate::support::http_get(stack.listen, "/ready")
                .is_some_and(|(status, _)| status == 200)
        });
        stack
    }

    fn context(&self) -> String {
        format!(
            "--- file:\n{}\n--- terad log:\n{}\n--- haproxy log:\n{}",
            self.fx.read(DEST),
            self.terad.log(),
            self.haproxy.log()
        )
    }

    /// The servers of `backend nodes` in the file: name → address.
    fn file_servers(&self) -> BTreeMap<String, String> {
        file_servers(&self.fx.read(DEST), "nodes")
    }

    /// The servers HAProxy's worker runs in `backend nodes`: name → address.
    fn live_servers(&self) -> BTreeMap<String, String> {
        live_servers(&self.runtime, &self.api, "nodes")
            .unwrap_or_else(|error| panic!("{error}\n{}", self.context()))
    }

    /// The PID of the worker that answers on the socket.
    fn worker_pid(&self) -> u32 {
        let info = self
            .runtime
            .block_on(self.api.command("show info"))
            .unwrap_or_else(|error| panic!("{error}\n{}", self.context()));
        info.lines()
            .find_map(|line| line.strip_prefix("Pid: "))
            .and_then(|pid| pid.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Pid in show info:\n{info}"))
    }

    fn reloads(&self) -> usize {
        self.fx.reload_count("reloads.log")
    }

    /// A sample of terad's /metrics, 0 when it is not there (yet).
    fn metric(&self, sample: &str) -> f64 {
        let (_, body) = crate::support::http_get(self.listen, "/metrics").expect("/metrics");
        body.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }

    /// Waits until the file lists exactly `servers`.
    fn wait_file(&self, what: &str, servers: &BTreeMap<String, String>) {
        let started = Instant::now();
        while self.file_servers() != *servers {
            if started.elapsed() > LIMIT {
                panic!(
                    "timed out waiting for {what}: want {servers:?}\n{}",
                    self.context()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until HAProxy has loaded `loads` configurations and a worker of the last one
    /// answers on the socket (the one before it may answer for a moment after the reload).
    fn wait_reloaded(&self, loads: usize, old_worker: u32) {
        self.haproxy
            .wait_loaded(loads, LIMIT)
            .unwrap_or_else(|error| panic!("{error}\n{}", self.context()));
        wait_for("the new worker on the socket", LIMIT, || {
            self.worker_pid() != old_worker
        });
    }

    /// Sends requests until one is answered by `name`.
    fn wait_answer_from(&self, port: u16, name: &str) {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            match http_get(port) {
                Ok((200, body)) if body == name => return,
                other => seen.push(format!("{other:?}")),
            }
            if started.elapsed() > LIMIT {
                seen.reverse();
                seen.truncate(10);
                panic!(
                    "{name} never answered; last answers {seen:?}\n{}",
                    self.context()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The servers of `backend` in an HAProxy file: name → address.
fn file_servers(file: &str, backend: &str) -> BTreeMap<String, String> {
    let header = format!("backend {backend}");
    file.lines()
        .skip_while(|line| *line != header)
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.first() == Some(&"server")).then(|| (words[1].into(), words[2].into()))
        })
        .collect()
}

/// The servers HAProxy's worker runs in `backend`: name → address.
fn live_servers(
    runtime: &tokio::runtime::Runtime,
    api: &RuntimeApi,
    backend: &str,
) -> Result<BTreeMap<String, String>, terad::haproxy::RuntimeError> {
    Ok(runtime
        .block_on(api.servers_state(backend))?
        .into_iter()
        .map(|server| (server.name, format!("{}:{}", server.address, server.port)))
        .collect())
}

/// 20 membership changes (8 servers added, 6 re-pointed, 6 removed) under continuous traffic:
/// no reload_cmd run, the same worker throughout, not one failed request, and after each change
/// HAProxy runs exactly the servers of the file. Then a structural change (the frontend's port)
/// reloads exactly once, and the next membership change goes through the runtime API again.
#[test]
fn membership_changes_reload_nothing_and_a_structural_change_reloads_once() {
    let backends: Vec<NamedBackend> = (0..6)
        .map(|i| NamedBackend::start(&format!("b{i}")))
        .collect();
    let mut servers: BTreeMap<String, String> = [
        ("s0".to_owned(), backends[0].addr.to_string()),
        ("s1".to_owned(), backends[1].addr.to_string()),
    ]
    .into();
    let stack = Stack::start(
        &[("s0", backends[0].addr), ("s1", backends[1].addr)],
        None,
        "",
        |template| template,
    );
    assert_eq!(stack.file_servers(), servers, "{}", stack.context());
    assert_eq!(stack.live_servers(), servers);
    let worker = stack.worker_pid();
    stack.wait_answer_from(stack.port, "b0");
    stack.wait_answer_from(stack.port, "b1");

    // A client sends requests one after the other, a new connection each, all along.
    let traffic = Traffic::start(stack.port, Duration::from_secs(300));

    // (server, Some(backend) to add or re-point it, None to remove it)
    let steps: [(&str, Option<usize>); 20] = [
        ("s2", Some(2)),
        ("s3", Some(3)),
        ("s0", Some(4)),
        ("s1", None),
        ("s1", Some(5)),
        ("s2", Some(0)),
        ("s3", None),
        ("web-4", Some(3)),
        ("s1", Some(1)),
        ("s0", None),
        ("s0", Some(2)),
        ("web-4", Some(4)),
        ("s2", None),
        ("s5", Some(5)),
        ("s5", Some(0)),
        ("s1", None),
        ("s6", Some(1)),
        ("s0", Some(3)),
        ("s5", None),
        ("s7", Some(5)),
    ];
    let (mut added, mut repointed, mut removed) = (0, 0, 0);
    for (number, (server, target)) in steps.iter().enumerate() {
        let key = format!("/proxy/frontend/{server}");
        match target {
            Some(at) => {
                let addr = backends[*at].addr.to_string();
                match servers.insert(server.to_string(), addr.clone()) {
                    Some(_) => repointed += 1,
                    None => added += 1,
                }
                stack.etcd.put(&key, &addr);
            }
            None => {
                servers.remove(*server);
                removed += 1;
                stack.etcd.delete(&key);
            }
        }
        stack.wait_file(&format!("step {number}"), &servers);
        // The file is committed after HAProxy took the change and it was verified: what the
        // file says, HAProxy runs already.
        assert_eq!(
            stack.live_servers(),
            servers,
            "step {number}: haproxy runs what the file says\n{}",
            stack.context()
        );
        if let Some(at) = target {
            stack.wait_answer_from(stack.port, &format!("b{at}"));
        }
    }
    // Some traffic after the last change too.
    let after = traffic.counts().ok;
    wait_for("requests after the last change", LIMIT, || {
        traffic.counts().ok >= after + 20
    });
    let traffic = traffic.stop();
    assert_eq!((added, repointed, removed), (8, 6, 6));
    assert!(
        traffic.failures.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        traffic.failures.len(),
        traffic.ok + traffic.failures.len(),
        &traffic.failures[..traffic.failures.len().min(10)],
        stack.context()
    );
    assert!(traffic.ok > 100, "only {} requests", traffic.ok);
    assert_eq!(stack.reloads(), 0, "no reload_cmd run\n{}", stack.context());
    assert_eq!(stack.haproxy.loads(), 1, "haproxy loaded its file once");
    assert_eq!(stack.worker_pid(), worker, "the same worker throughout");
    assert_eq!(stack.haproxy.processes(), 2, "the master and one worker");
    let log = stack.terad.log();
    assert_eq!(
        log.matches("haproxy's servers changed through its runtime api; no reload")
            .count(),
        20,
        "{log}"
    );
    assert_eq!(
        stack.metric("terad_haproxy_runtime_changes_total{resource=\"haproxy\"}"),
        20.0
    );
    assert!(!log.contains("falling back"), "{log}");
    eprintln!("{} requests through 20 changes, none failed", traffic.ok);
    drop(traffic);

    // A structural change: the frontend moves to another port. Exactly one reload.
    let moved = free_port();
    stack.etcd.put("/proxy/port", &moved.to_string());
    wait_for("the new port in the file", LIMIT, || {
        stack
            .fx
            .read(DEST)
            .contains(&format!("bind 127.0.0.1:{moved}\n"))
    });
    stack.wait_reloaded(2, worker);
    stack.wait_answer_from(moved, "b5");
    let log = stack.terad.log();
    let reason = log
        .lines()
        .find(|line| line.contains("haproxy reloads: the change is not one its runtime api makes"))
        .unwrap_or_else(|| panic!("no line naming the reason of the reload:\n{log}"));
    let line = stack
        .fx
        .read(DEST)
        .lines()
        .position(|line| line.contains(&format!("bind 127.0.0.1:{moved}")))
        .unwrap()
        + 1;
    assert!(
        reason.contains(&format!("line={line}"))
            && reason.contains(&format!(
                "change=frontend \"http-in\": \"bind 127.0.0.1:{port}\" changed to \"bind 127.0.0.1:{moved}\"",
                port = stack.port
            )),
        "the reason names the line: {reason}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        stack.reloads(),
        1,
        "exactly one reload\n{}",
        stack.context()
    );
    assert_eq!(stack.haproxy.loads(), 2);

    // The new worker takes the next membership change at runtime.
    let worker = stack.worker_pid();
    stack.etcd.delete("/proxy/frontend/s7");
    servers.remove("s7");
    stack.wait_file("s7 removed", &servers);
    assert_eq!(stack.live_servers(), servers, "{}", stack.context());
    assert_eq!(stack.reloads(), 1);
    assert_eq!(stack.worker_pid(), worker);
    // The outcome is counted once the commit is done, a moment after the file is in place.
    wait_for("the 21st runtime change counted", LIMIT, || {
        stack.metric("terad_haproxy_runtime_changes_total{resource=\"haproxy\"}") == 21.0
    });
}

/// The runtime API is not there (a wrong path, HAProxy without the socket): every change still
/// reaches HAProxy, by a reload, and terad says why.
#[test]
fn a_missing_socket_falls_back_to_a_reload_and_says_why() {
    let a = NamedBackend::start("a");
    let b = NamedBackend::start("b");
    let fx_socket = tempfile::tempdir().unwrap();
    let missing = fx_socket.path().join("missing.sock").display().to_string();
    let stack = Stack::start(&[("a", a.addr)], Some(&missing), "", |t| t);
    let worker = stack.worker_pid();
    stack.etcd.put("/proxy/frontend/b", &b.addr.to_string());
    let servers: BTreeMap<String, String> = [
        ("a".to_owned(), a.addr.to_string()),
        ("b".to_owned(), b.addr.to_string()),
    ]
    .into();
    stack.wait_file("b added", &servers);
    wait_for("the reload", LIMIT, || stack.reloads() == 1);
    stack.wait_reloaded(2, worker);
    assert_eq!(stack.live_servers(), servers, "{}", stack.context());
    stack.wait_answer_from(stack.port, "b");
    let log = stack.terad.log();
    let warning = log
        .lines()
        .find(|line| line.contains("haproxy's runtime api failed; falling back to a reload"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(
        warning.contains("WARN")
            && warning.contains("reason=\"unreachable\"")
            && warning.contains(&missing)
            && warning.contains("No such file or directory"),
        "{warning}"
    );
    assert_eq!(
        stack.metric(
            "terad_haproxy_runtime_fallbacks_total{resource=\"haproxy\",reason=\"unreachable\"}"
        ),
        1.0
    );
    assert_eq!(
        stack.metric("terad_haproxy_runtime_changes_total{resource=\"haproxy\"}"),
        0.0
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stack.reloads(), 1, "{}", stack.context());
}

/// A change HAProxy refuses (a server added to a `static-rr` backend, which HAProxy 2.6 takes
/// only from a file) falls back to a reload: afterwards the file and HAProxy agree, and the
/// warning carries HAProxy's own answer.
#[test]
fn a_change_haproxy_refuses_falls_back_and_file_and_haproxy_agree() {
    let a = NamedBackend::start("a");
    let b = NamedBackend::start("b");
    let stack = Stack::start(&[("a", a.addr)], None, "", |template| {
        assert!(template.contains("balance roundrobin"));
        template.replace("balance roundrobin", "balance static-rr")
    });
    let worker = stack.worker_pid();
    stack.etcd.put("/proxy/frontend/b", &b.addr.to_string());
    let servers: BTreeMap<String, String> = [
        ("a".to_owned(), a.addr.to_string()),
        ("b".to_owned(), b.addr.to_string()),
    ]
    .into();
    stack.wait_file("b added", &servers);
    wait_for("the reload", LIMIT, || stack.reloads() == 1);
    stack.wait_reloaded(2, worker);
    assert_eq!(
        stack.live_servers(),
        stack.file_servers(),
        "{}",
        stack.context()
    );
    assert_eq!(stack.live_servers(), servers);
    stack.wait_answer_from(stack.port, "b");
    let log = stack.terad.log();
    let warning = log
        .lines()
        .find(|line| line.contains("haproxy's runtime api failed; falling back to a reload"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(
        warning.contains("reason=\"refused\"")
            && warning.contains(&format!("add server nodes/b {} check", b.addr))
            && warning
                .contains("Backend must use a dynamic load balancing to support dynamic servers."),
        "{warning}"
    );
    assert_eq!(
        stack.metric(
            "terad_haproxy_runtime_fallbacks_total{resource=\"haproxy\",reason=\"refused\"}"
        ),
        1.0
    );
}

/// With a health check, a runtime change is a change like a reload: checked after it, and
/// rolled back when unhealthy (the previous file restored, and HAProxy reloaded onto it).
#[test]
fn a_health_gated_runtime_change_is_checked_and_rolled_back_by_a_reload() {
    let a = NamedBackend::start("a");
    let b = NamedBackend::start("b");
    let c = NamedBackend::start("c");
    let fx_flag = tempfile::tempdir().unwrap();
    let unhealthy = fx_flag.path().join("unhealthy");
    let health = format!(
        "health_cmd = \"test ! -e {}\"\nhealth_retries = 0\nhealth_timeout = \"2s\"\n",
        unhealthy.display()
    );
    let stack = Stack::start(&[("a", a.addr)], None, &health, |t| t);
    let worker = stack.worker_pid();

    // Healthy: at runtime, no reload.
    stack.etcd.put("/proxy/frontend/b", &b.addr.to_string());
    let good: BTreeMap<String, String> = [
        ("a".to_owned(), a.addr.to_string()),
        ("b".to_owned(), b.addr.to_string()),
    ]
    .into();
    stack.wait_file("b added", &good);
    wait_for("the health check", LIMIT, || {
        stack
            .terad
            .log()
            .contains("healthy after the runtime change")
    });
    assert_eq!(stack.live_servers(), good, "{}", stack.context());
    assert_eq!(stack.reloads(), 0, "{}", stack.context());
    assert_eq!(stack.worker_pid(), worker);

    // Unhealthy after the next one: the file goes back, and a reload makes HAProxy run it.
    std::fs::write(&unhealthy, "").unwrap();
    stack.etcd.put("/proxy/frontend/c", &c.addr.to_string());
    wait_for("the rollback", LIMIT, || {
        stack.terad.log().contains("previous file restored")
    });
    assert_eq!(stack.file_servers(), good, "{}", stack.context());
    assert_eq!(stack.reloads(), 1, "{}", stack.context());
    stack.wait_reloaded(2, worker);
    assert_eq!(stack.live_servers(), good, "{}", stack.context());
    assert!(
        stack
            .terad
            .log()
            .contains("unhealthy after the change; rolling back")
    );
}

/// `--noop` prints, under the diff, the commands it would send to the runtime API, or why
/// HAProxy would reload; it sends nothing and writes nothing.
#[test]
fn noop_prints_the_runtime_commands_or_why_it_would_reload() {
    let etcd = Etcd::start();
    etcd.put("/proxy/port", "18080");
    etcd.put("/proxy/frontend/a", "127.0.0.1:18001");
    let fx = Fixture::new();
    let example = include_str!("../../templates/haproxy.cfg.tmpl");
    fx.template("haproxy.cfg.tmpl", &local_template(example, fx.root()));
    // No HAProxy and no socket: noop must not need one.
    let socket = fx.path("admin.sock").display().to_string();
    let shipped = include_str!("../../conf.d/haproxy.toml");
    fx.resource("haproxy.toml", &resource(shipped, &fx, &socket, ""));
    let terad = |args: &[&str]| {
        let output = run(
            fx.terad()
                .args(args)
                .args(["--backend", "etcd", "--node"])
                .arg(etcd.url()),
            LIMIT,
        );
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    terad(&["--onetime", "--sync-only"]);
    let live = fx.read(DEST);

    etcd.put("/proxy/frontend/b", "127.0.0.1:18002");
    etcd.put("/proxy/frontend/a", "127.0.0.1:18003");
    let printed = terad(&["--onetime", "--noop"]);
    let expected = format!(
        "# haproxy: no reload; through the runtime api at {socket}:\n\
         add server nodes/b 127.0.0.1:18002 check\n\
         enable health nodes/b\n\
         enable server nodes/b\n\
         set server nodes/a addr 127.0.0.1 port 18003\n"
    );
    assert!(printed.contains(&expected), "{printed}");
    assert!(
        printed.find("+    server b 127.0.0.1:18002 check").unwrap()
            < printed.find(&expected).unwrap(),
        "the commands follow the diff: {printed}"
    );

    etcd.put("/proxy/port", "18081");
    let printed = terad(&["--onetime", "--noop"]);
    assert!(
        printed.contains(
            "# haproxy: a reload would be needed: frontend \"http-in\": \"bind 127.0.0.1:18080\" changed to \"bind 127.0.0.1:18081\"\n"
        ),
        "{printed}"
    );
    assert_eq!(fx.read(DEST), live, "noop wrote nothing");
    assert!(!fx.path("reloads.log").exists(), "and reloaded nothing");
}

/// The services example (examples/consul-services) with its `[template.haproxy]` block turned
/// on: an instance whose health check fails leaves HAProxy at runtime, and comes back the same
/// way, with no reload and the same worker.
#[test]
fn the_services_example_follows_health_at_runtime() {
    let consul = crate::support::consul::Consul::start_dev(false);
    let a = NamedBackend::start("A");
    let b = NamedBackend::start("B");
    let port = free_port();
    consul.put("/proxy/port", &port.to_string());
    for (id, backend) in [("web-a", &a), ("web-b", &b)] {
        consul.register(
            id,
            "web",
            "127.0.0.1",
            backend.addr.port(),
            &format!(
                "\"Check\": {{\"CheckID\": \"{id}\", \"TTL\": \"5m\", \"Status\": \"passing\"}}"
            ),
        );
    }
    let fx = Fixture::new();
    let template =
        include_str!("../../examples/consul-services/templates/haproxy-services.cfg.tmpl");
    fx.template(
        "haproxy-services.cfg.tmpl",
        &local_template(template, fx.root()),
    );
    let socket = fx.path("admin.sock").display().to_string();
    let shipped = include_str!("../../examples/consul-services/conf.d/haproxy-services.toml");
    fx.resource("haproxy.toml", &resource(shipped, &fx, &socket, ""));
    let terad = |args: &[&str]| crate::support::consul::terad(&fx, &consul, args);
    let bootstrap = run(&mut terad(&["--onetime", "--sync-only"]), LIMIT);
    assert!(bootstrap.status.success(), "{}", stderr(&bootstrap));
    let both: BTreeMap<String, String> = [
        ("web-a".to_owned(), a.addr.to_string()),
        ("web-b".to_owned(), b.addr.to_string()),
    ]
    .into();
    assert_eq!(
        file_servers(&fx.read(DEST), "web"),
        both,
        "{}",
        fx.read(DEST)
    );
    let haproxy = Haproxy::start(&fx.path(DEST), fx.root());
    let daemon = Daemon::start(&mut terad(&["--watch"]), fx.path("terad.log"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = RuntimeApi::new(
        RuntimeAddress::Unix(fx.path("admin.sock")),
        Duration::from_secs(2),
        Duration::from_secs(2),
    );
    let context = || {
        format!(
            "--- file:\n{}\n--- terad log:\n{}\n--- haproxy log:\n{}",
            fx.read(DEST),
            daemon.log(),
            haproxy.log()
        )
    };
    let worker = runtime.block_on(api.command("show info")).unwrap();
    let wait_servers = |what: &str, servers: &BTreeMap<String, String>| {
        let started = Instant::now();
        while file_servers(&fx.read(DEST), "web") != *servers {
            assert!(
                started.elapsed() < LIMIT,
                "waiting for {what}\n{}",
                context()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            live_servers(&runtime, &api, "web").unwrap(),
            *servers,
            "{what}: haproxy runs what the file says\n{}",
            context()
        );
    };

    consul.set_ttl("web-b", false);
    let only_a: BTreeMap<String, String> = [("web-a".to_owned(), a.addr.to_string())].into();
    wait_servers("web-b to leave", &only_a);
    consul.set_ttl("web-b", true);
    wait_servers("web-b to come back", &both);
    wait_for("B to answer", LIMIT, || {
        http_get(port) == Ok((200, "B".to_owned()))
    });

    assert_eq!(fx.reload_count("reloads.log"), 0, "{}", context());
    assert_eq!(haproxy.loads(), 1);
    let pid = |info: &str| {
        info.lines()
            .find(|l| l.starts_with("Pid: "))
            .map(str::to_owned)
    };
    let now = runtime.block_on(api.command("show info")).unwrap();
    assert_eq!(pid(&now), pid(&worker), "the same worker");
    assert_eq!(
        daemon
            .log()
            .matches("haproxy's servers changed through its runtime api; no reload")
            .count(),
        2,
        "{}",
        context()
    );
}
