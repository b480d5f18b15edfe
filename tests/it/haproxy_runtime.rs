//! terad's HAProxy runtime API module against a real HAProxy 2.6 in master-worker mode, its
//! stats socket at level admin, serving small HTTP backends on 127.0.0.1: server changes are
//! made in the running worker (no reload), verified, and what HAProxy refuses is reported.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use terad::haproxy::{
    self, LiveServer, Plan, RuntimeAddress, RuntimeApi, RuntimeError, ServerChange,
};

use crate::support::free_port;
use crate::support::haproxy::{Haproxy, NamedBackend, Traffic, http_get};

const LIMIT: Duration = Duration::from_secs(10);

/// One HAProxy with its directory, its socket and the client for it.
struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    api: RuntimeApi,
    runtime: tokio::runtime::Runtime,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let address = RuntimeAddress::Unix(dir.path().join("admin.sock"));
        Setup {
            port: free_port(),
            api: RuntimeApi::new(address, Duration::from_secs(2), Duration::from_secs(2)),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            dir,
        }
    }

    /// A configuration like the repository's template renders, with `backend nodes` holding
    /// `servers` and `extra` appended.
    fn config(&self, servers: &str, extra: &str) -> String {
        format!(
            "global
    stats socket {dir}/admin.sock mode 600 level admin expose-fd listeners
    stats timeout 10s

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    default-server check inter 500ms
{servers}
{extra}",
            dir = self.dir.path().display(),
            port = self.port,
        )
    }

    fn write(&self, config: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Writes `config` as the live file and starts HAProxy on it.
    fn start(&self, config: &str) -> Haproxy {
        let path = self.write(config);
        Haproxy::start(&path, self.dir.path())
    }

    fn apply(&self, plan: &Plan) -> Result<terad::haproxy::Applied, RuntimeError> {
        self.runtime.block_on(self.api.apply(plan))
    }

    fn command(&self, command: &str) -> String {
        self.runtime
            .block_on(self.api.command(command))
            .unwrap_or_else(|error| panic!("{command}: {error}"))
    }

    fn servers(&self, backend: &str) -> Vec<LiveServer> {
        self.runtime
            .block_on(self.api.servers_state(backend))
            .unwrap_or_else(|error| panic!("show servers state {backend}: {error}"))
    }

    /// The worker's PID, from the worker itself (the stats socket is the worker's).
    fn worker_pid(&self) -> u32 {
        let info = self.command("show info");
        info.lines()
            .find_map(|line| line.strip_prefix("Pid: "))
            .and_then(|pid| pid.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Pid in show info:\n{info}"))
    }
}

/// `haproxy -c`, as terad's `check_cmd` runs it on the staged file.
fn check(path: &Path) {
    let output = std::process::Command::new("haproxy")
        .args(["-c", "-q", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "haproxy -c refused the file:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(path).unwrap()
    );
}

/// The `server` lines for `servers` (name → backend index), in name order.
fn server_lines(servers: &BTreeMap<String, usize>, backends: &[NamedBackend]) -> String {
    servers
        .iter()
        .map(|(name, at)| format!("    server {name} {}\n", backends[*at].addr))
        .collect()
}

/// Sends requests until one is answered by `name`; fails after [`LIMIT`].
fn wait_answer_from(port: u16, name: &str, context: &dyn Fn() -> String) {
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
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn twenty_membership_changes_under_traffic_need_no_reload() {
    let backends: Vec<NamedBackend> = (0..6)
        .map(|i| NamedBackend::start(&format!("b{i}")))
        .collect();
    let setup = Setup::new();
    let mut servers: BTreeMap<String, usize> = [("s0".to_owned(), 0), ("s1".to_owned(), 1)].into();
    let mut live = setup.config(&server_lines(&servers, &backends), "");
    let haproxy = setup.start(&live);
    let worker = setup.worker_pid();
    let context = || {
        format!(
            "--- file:\n{}\n--- haproxy log:\n{}",
            std::fs::read_to_string(setup.dir.path().join("haproxy.cfg")).unwrap_or_default(),
            haproxy.log()
        )
    };
    wait_answer_from(setup.port, "b0", &context);
    wait_answer_from(setup.port, "b1", &context);

    // A client sends requests one after the other, a new connection each, all along.
    let traffic = Traffic::start(setup.port, Duration::from_secs(120));

    // (what, server, Some(backend) to add or re-point it, None to remove it)
    let steps: [(&str, Option<usize>); 20] = [
        ("s2", Some(2)),
        ("s3", Some(3)),
        ("s0", Some(4)),
        ("s1", None),
        ("s1", Some(5)),
        ("s2", Some(0)),
        ("s3", None),
        ("web-4.a", Some(3)),
        ("s1", Some(1)),
        ("s0", None),
        ("s0", Some(2)),
        ("web-4.a", Some(4)),
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
        let existed = servers.contains_key(*server);
        match target {
            Some(at) => servers.insert(server.to_string(), *at),
            None => servers.remove(*server),
        };
        let rendered = setup.config(&server_lines(&servers, &backends), "");
        // The pipeline's order: check the staged file, change HAProxy, then commit the file.
        check(&setup.write(&rendered));
        let plan = haproxy::plan(&live, &rendered)
            .unwrap_or_else(|error| panic!("step {number}: {error}"));
        let kinds = plan.backends()[0].changes.as_slice();
        match (target, existed) {
            (Some(_), false) => {
                added += 1;
                assert!(matches!(kinds, [ServerChange::Add { .. }]), "{kinds:?}");
            }
            (Some(_), true) => {
                repointed += 1;
                assert!(
                    matches!(kinds, [ServerChange::Readdress { .. }]),
                    "{kinds:?}"
                );
            }
            (None, _) => {
                removed += 1;
                assert!(matches!(kinds, [ServerChange::Remove { .. }]), "{kinds:?}");
            }
        }
        if let Err(error) = setup.apply(&plan) {
            panic!(
                "step {number} ({server} → {target:?}): {error}\n{}",
                context()
            );
        }
        live = rendered;

        // HAProxy lists what the file says…
        let mut listed: Vec<(String, String)> = setup
            .servers("nodes")
            .into_iter()
            .map(|s| (s.name, format!("{}:{}", s.address, s.port)))
            .collect();
        listed.sort();
        let expected: Vec<(String, String)> = servers
            .iter()
            .map(|(name, at)| (name.clone(), backends[*at].addr.to_string()))
            .collect();
        assert_eq!(listed, expected, "step {number}\n{}", context());
        // …and an added or re-pointed server answers.
        if let Some(at) = target {
            wait_answer_from(setup.port, &format!("b{at}"), &context);
        }
    }
    let traffic = traffic.stop();
    assert_eq!((added, repointed, removed), (8, 6, 6));
    assert!(
        traffic.failures.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        traffic.failures.len(),
        traffic.ok + traffic.failures.len(),
        traffic.failures,
        context()
    );
    assert!(
        traffic.ok > 100,
        "only {} requests went through",
        traffic.ok
    );
    assert_eq!(
        setup.worker_pid(),
        worker,
        "the worker is the same: no reload"
    );
    assert_eq!(haproxy.loads(), 1, "haproxy loaded its configuration once");
    assert_eq!(haproxy.processes(), 2, "the master and one worker");
    eprintln!("{} requests, none failed", traffic.ok);
}

/// What a reload makes of the same file, compared with what the runtime API made: the servers
/// added at runtime must run as a restart would configure them.
#[test]
fn servers_added_at_runtime_match_what_a_reload_makes_of_the_file() {
    let a = NamedBackend::start("a");
    let b = NamedBackend::start("b");
    let setup = Setup::new();
    // default-server options from both the defaults (init-addr, which HAProxy 2.6 refuses on
    // `add server` but which means nothing for an IP address) and the backend (check, weight).
    let first = setup
        .config(&format!("    server a {}\n", a.addr), "")
        .replace(
            "    timeout server 10s\n",
            "    timeout server 10s\n    default-server init-addr last,libc,none\n",
        )
        .replace(
            "    default-server check inter 500ms\n",
            "    default-server check inter 500ms weight 5\n",
        );
    let haproxy = setup.start(&first);
    let second = first.replace(
        &format!("    server a {}\n", a.addr),
        &format!(
            "    server a {} weight 3\n    server b {} maxconn 50 slowstart 1s\n    server c {} disabled\n",
            a.addr, b.addr, b.addr
        ),
    );
    check(&setup.write(&second));
    let plan = haproxy::plan(&first, &second).unwrap();
    assert_eq!(
        plan.commands(),
        [
            format!(
                "add server nodes/b {} check inter 500ms maxconn 50 slowstart 1s weight 5",
                b.addr
            ),
            "enable health nodes/b".to_owned(),
            "enable server nodes/b".to_owned(),
            format!(
                "add server nodes/c {} check inter 500ms weight 5 disabled",
                b.addr
            ),
            "enable health nodes/c".to_owned(),
            "set weight nodes/a 3".to_owned(),
        ]
    );
    setup
        .apply(&plan)
        .unwrap_or_else(|error| panic!("{error}\n{}", haproxy.log()));
    // The columns of `show servers state` that come from the configuration, not from the
    // server's life: ids and timings differ between a runtime addition and a fresh start. So
    // does srv_iweight after `set weight`, which changes the weight in use (srv_uweight) but
    // not the initial one; see the assertion at the end.
    let configured = || -> Vec<String> {
        let state = setup.command("show servers state nodes");
        let mut lines = state.lines().skip(1);
        let header: Vec<&str> = lines.next().unwrap()[1..].split_whitespace().collect();
        let columns = [
            "srv_name",
            "srv_addr",
            "srv_port",
            "srv_admin_state",
            "srv_uweight",
            "srv_check_state",
            "srv_use_ssl",
            "srv_check_port",
        ];
        lines
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                columns
                    .iter()
                    .map(|column| {
                        let at = header.iter().position(|h| h == column).unwrap();
                        format!("{column}={}", fields[at])
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let at_runtime = configured();
    let iweight = |server: &str| {
        setup
            .command("show servers state nodes")
            .lines()
            .find(|line| line.split_whitespace().nth(3) == Some(server))
            .and_then(|line| line.split_whitespace().nth(8))
            .map(str::to_owned)
    };
    assert_eq!(
        iweight("a").as_deref(),
        Some("5"),
        "the initial weight stays the one of the start"
    );
    let worker = setup.worker_pid();

    // Reload: a new worker reads the file.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(haproxy.master_pid() as i32),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();
    haproxy.wait_loaded(2, LIMIT).unwrap();
    let started = Instant::now();
    while setup.worker_pid() == worker {
        assert!(
            started.elapsed() < LIMIT,
            "the new worker never took the socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let reloaded = configured();
    assert_eq!(at_runtime, reloaded);
    assert_eq!(at_runtime.len(), 3);
    // The server disabled in the file is in maintenance both ways (0x01 forced, 0x04 by the
    // configuration), with its health check configured and enabled but paused.
    assert!(
        at_runtime[2].contains("srv_admin_state=5") && at_runtime[2].contains("srv_check_state=14"),
        "{at_runtime:#?}"
    );
    assert_eq!(iweight("a").as_deref(), Some("3"));
}

#[test]
fn a_missing_socket_is_unreachable() {
    let setup = Setup::new();
    let current = setup.config("    server a 127.0.0.1:1\n", "");
    let rendered = setup.config("    server a 127.0.0.1:1\n    server b 127.0.0.1:2\n", "");
    let plan = haproxy::plan(&current, &rendered).unwrap();
    let error = setup.apply(&plan).unwrap_err();
    assert_eq!(error.reason(), "unreachable");
    let socket = setup.dir.path().join("admin.sock");
    assert_eq!(
        error.to_string(),
        format!(
            "cannot reach haproxy's runtime api at {:?}: No such file or directory (os error 2)",
            socket.display().to_string()
        )
    );
}

#[test]
fn a_socket_that_never_answers_times_out() {
    let setup = Setup::new();
    let _listener =
        std::os::unix::net::UnixListener::bind(setup.dir.path().join("admin.sock")).unwrap();
    let started = Instant::now();
    let error = setup
        .runtime
        .block_on(setup.api.command("show info"))
        .unwrap_err();
    assert_eq!(error.reason(), "timeout");
    assert!(
        error
            .to_string()
            .ends_with("did not answer \"show info\" within 2s"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn what_haproxy_refuses_is_refused_with_its_answer() {
    let n = NamedBackend::start("n");
    let setup = Setup::new();
    // `balance static-rr` and `balance source` (map-based hashing) are static algorithms:
    // HAProxy 2.6 adds no server to them at runtime. The file is valid; only the change fails.
    let fixed = |servers: &str| format!("backend fixed\n    balance static-rr\n{servers}");
    let current = setup.config(&format!("    server a {}\n", n.addr), &fixed(""));
    let haproxy = setup.start(&current);
    let rendered = setup.config(
        &format!("    server a {}\n", n.addr),
        &fixed(&format!("    server x {}\n", n.addr)),
    );
    check(&setup.write(&rendered));
    let plan = haproxy::plan(&current, &rendered).unwrap();
    let error = setup.apply(&plan).unwrap_err();
    assert_eq!(error.reason(), "refused");
    assert_eq!(
        error.to_string(),
        format!(
            "haproxy refused \"add server fixed/x {}\": \"Backend must use a dynamic load balancing to support dynamic servers.\"",
            n.addr
        )
    );
    assert!(setup.servers("fixed").is_empty(), "nothing was added");

    // The live file lags behind HAProxy (a change was applied, its file not committed): the
    // same addition again finds the server there.
    let rendered = setup.config(
        &format!("    server a {}\n    server b {}\n", n.addr, n.addr),
        &fixed(""),
    );
    let plan = haproxy::plan(&current, &rendered).unwrap();
    setup.apply(&plan).unwrap();
    let error = setup.apply(&plan).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "haproxy refused \"add server nodes/b {} check inter 500ms\": \"Already exists a server with the same name in backend.\"",
            n.addr
        )
    );

    // What the planner keeps off the runtime path, HAProxy 2.6 does refuse.
    for (option, answer) in [
        (
            "cookie b",
            "'cookie' option is not accepted for dynamic server",
        ),
        (
            "redir http://a",
            "'redir' option is not accepted for dynamic server",
        ),
        (
            "init-addr none",
            "'init-addr' option is not accepted for dynamic server",
        ),
        (
            "no-check",
            "'no-check' option is not accepted for dynamic server",
        ),
    ] {
        let answer_now = setup.command(&format!("add server nodes/probe {} {option}", n.addr));
        assert_eq!(answer_now.trim(), answer, "{option}");
    }
    let with_cookie = setup.config(
        &format!(
            "    server a {}\n    server c {} cookie c\n",
            n.addr, n.addr
        ),
        &fixed(""),
    );
    assert!(plan_error(&current, &with_cookie).contains("haproxy 2.6 takes no \"cookie\""));
    drop(haproxy);
}

fn plan_error(current: &str, rendered: &str) -> String {
    haproxy::plan(current, rendered).unwrap_err().to_string()
}

#[test]
fn a_server_changed_behind_terads_back_is_a_mismatch() {
    let n = NamedBackend::start("n");
    let setup = Setup::new();
    let current = setup.config(&format!("    server a {}\n", n.addr), "");
    let _haproxy = setup.start(&current);
    // An operator halves a's weight by hand; then terad adds b.
    assert_eq!(setup.command("set weight nodes/a 0").trim(), "");
    let rendered = setup.config(
        &format!("    server a {}\n    server b {}\n", n.addr, n.addr),
        "",
    );
    let error = setup
        .apply(&haproxy::plan(&current, &rendered).unwrap())
        .unwrap_err();
    assert_eq!(error.reason(), "mismatch");
    assert_eq!(
        error.to_string(),
        format!(
            "backend \"nodes\": server \"a\" is \"{0} weight 0 ready\" after the change, the file says \"{0} weight 1 ready\"",
            n.addr
        )
    );
}

#[test]
fn structural_changes_name_the_line() {
    let setup = Setup::new();
    let current = setup.config("    server a 127.0.0.1:1\n", "");
    for (rendered, message) in [
        (
            current.replace("timeout server 10s", "timeout server 40s"),
            "defaults: \"timeout server 10s\" changed to \"timeout server 40s\"",
        ),
        (
            current.replace("balance roundrobin", "balance leastconn"),
            "backend \"nodes\": \"balance roundrobin\" changed to \"balance leastconn\"",
        ),
        (
            current.replace("server a 127.0.0.1:1", "server a 127.0.0.1:1 inter 2s"),
            "backend \"nodes\": \"server a 127.0.0.1:1\" changed to \"server a 127.0.0.1:1 inter 2s\"",
        ),
        (
            current.replace(
                "default-server check inter 500ms",
                "default-server check inter 1s",
            ),
            "backend \"nodes\": \"default-server check inter 500ms\" changed to \"default-server check inter 1s\"",
        ),
        (
            format!("{current}backend api\n    server x 127.0.0.1:2\n"),
            "backend \"api\" added",
        ),
        (
            current.replace(
                "server a 127.0.0.1:1",
                "server a 127.0.0.1:1\n    server b web.internal:80",
            ),
            "backend \"nodes\": server \"b\" added: address \"web.internal:80\" is no IP address, and haproxy resolves no names for servers added at runtime",
        ),
    ] {
        assert_eq!(plan_error(&current, &rendered), message);
    }
}

/// An HTTP server on 127.0.0.1 that answers "slow" `delay` after each request. Its threads
/// end with the test process.
fn slow_backend(delay: Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        // A health check connects and closes.
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                std::thread::sleep(delay);
                let _ = stream.write_all(
                    b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
                );
            });
        }
    });
    addr
}

/// Starts HAProxy with one slow server, sends a request to it, and removes that server (adding
/// another) while the request runs, with `drain` as the drain timeout. The request's outcome
/// and how long it took, and what `apply` said.
fn remove_during_a_request(
    drain: Duration,
    delay: Duration,
) -> (
    Result<(u16, String), String>,
    Duration,
    terad::haproxy::Applied,
) {
    let other = NamedBackend::start("other");
    let setup = Setup::new();
    let slow = slow_backend(delay);
    let current = setup.config(&format!("    server slow {slow}\n"), "");
    let _haproxy = setup.start(&current);
    let port = setup.port;
    let request = std::thread::spawn(move || {
        let started = Instant::now();
        (http_get(port), started.elapsed())
    });
    // The request has reached the slow server once HAProxy counts its session.
    let started = Instant::now();
    while !setup
        .command("show stat nodes 4 -1")
        .lines()
        .any(|line| line.starts_with("nodes,slow,0,0,1,"))
    {
        assert!(
            started.elapsed() < LIMIT,
            "the request never reached the slow server"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let rendered = setup.config(&format!("    server other {}\n", other.addr), "");
    let api = RuntimeApi::new(
        RuntimeAddress::Unix(setup.dir.path().join("admin.sock")),
        Duration::from_secs(2),
        drain,
    );
    let plan = haproxy::plan(&current, &rendered).unwrap();
    let applied = setup.runtime.block_on(api.apply(&plan)).unwrap();
    let (answer, took) = request.join().unwrap();
    let names: Vec<String> = setup.servers("nodes").into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["other"]);
    (answer, took, applied)
}

#[test]
fn a_removed_server_finishes_its_requests_within_the_drain_timeout() {
    let (answer, took, applied) =
        remove_during_a_request(Duration::from_secs(5), Duration::from_millis(800));
    assert_eq!(answer, Ok((200, "slow".to_owned())));
    assert_eq!(applied.sessions_shut_down, 0);
    assert!(
        applied.elapsed >= Duration::from_millis(500),
        "apply waited for the request: {applied:?} ({took:?})"
    );
}

#[test]
fn sessions_left_at_the_drain_timeout_are_shut_down() {
    let (answer, took, applied) =
        remove_during_a_request(Duration::from_millis(300), Duration::from_secs(5));
    assert!(!matches!(answer, Ok((200, _))), "{answer:?}");
    assert_eq!(applied.sessions_shut_down, 1);
    assert!(
        took < Duration::from_secs(4),
        "the session was cut, not waited for: {took:?}"
    );
}
