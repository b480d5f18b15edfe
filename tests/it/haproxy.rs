//! HAProxy sidecar end to end: etcd or Consul, terad in `--watch` mode and a real HAProxy 2.6 in
//! master-worker mode, with the repository's HAProxy template, serving two or three small HTTP
//! backends on 127.0.0.1. Every step is checked through HAProxy itself.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::consul::Consul;
use crate::support::etcd::Etcd;
use crate::support::haproxy::{Haproxy, NamedBackend, group_members, http_get, local_template};
use crate::support::{Daemon, Fixture, free_port, run, stderr, wait_for};

const LIMIT: Duration = Duration::from_secs(30);
const DEST: &str = "out/haproxy.cfg";

/// The key-value store under test, as the scenario sees it.
trait Store {
    fn put(&self, key: &str, value: &str);
    fn delete(&self, key: &str);
    /// `--backend … --node …` for terad.
    fn terad_args(&self) -> Vec<String>;
}

impl Store for Etcd {
    fn put(&self, key: &str, value: &str) {
        Etcd::put(self, key, value);
    }
    fn delete(&self, key: &str) {
        Etcd::delete(self, key);
    }
    fn terad_args(&self) -> Vec<String> {
        vec![
            "--backend".into(),
            "etcd".into(),
            "--node".into(),
            self.url(),
        ]
    }
}

impl Store for Consul {
    fn put(&self, key: &str, value: &str) {
        Consul::put(self, key, value);
    }
    fn delete(&self, key: &str) {
        Consul::delete(self, key);
    }
    fn terad_args(&self) -> Vec<String> {
        vec![
            "--backend".into(),
            "consul".into(),
            "--node".into(),
            self.address(),
        ]
    }
}

/// The repository's HAProxy example (conf.d/haproxy.toml, templates/haproxy.cfg.tmpl), with the
/// frontend bound to 127.0.0.1 instead of every interface, its stats socket in the fixture, the
/// destination in the fixture and the reload signalling this test's HAProxy master through its
/// pidfile.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    let template = include_str!("../../templates/haproxy.cfg.tmpl");
    assert!(template.contains("bind *:"), "the example binds *:PORT");
    fx.template("haproxy.cfg.tmpl", &local_template(template, fx.root()));
    let resource = include_str!("../../conf.d/haproxy.toml");
    assert!(resource.contains("check_cmd = \"haproxy -c -f {{.src}}\""));
    fx.resource(
        "haproxy.toml",
        &format!(
            "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\nmode = \"0644\"\n\
             check_cmd = \"haproxy -c -f {{{{.src}}}}\"\n\
             reload_cmd = \"kill -USR2 $(cat {})\"\n",
            fx.path(DEST).display(),
            fx.path("haproxy.pid").display()
        ),
    );
    fx
}

/// Everything a failure message needs to be understood.
fn logs(terad: &Daemon, haproxy: &Haproxy, fx: &Fixture) -> String {
    format!(
        "--- rendered file:\n{}\n--- terad log:\n{}\n--- haproxy log:\n{}",
        fx.read(DEST),
        terad.log(),
        haproxy.log()
    )
}

/// Sends requests until the last `window` answers satisfy `good`, or fails after `LIMIT`.
/// Reloads finish asynchronously (the old worker serves until the new one is up), so a step's
/// effect is awaited, then checked again on fresh requests by the caller.
fn wait_answers(
    port: u16,
    what: &str,
    window: usize,
    context: impl Fn() -> String,
    good: impl Fn(&[String]) -> bool,
) {
    let started = Instant::now();
    let mut recent: Vec<String> = Vec::new();
    loop {
        let answer = match http_get(port) {
            Ok((200, body)) => body,
            Ok((status, _)) => status.to_string(),
            Err(err) => err,
        };
        recent.push(answer);
        if recent.len() > window {
            recent.remove(0);
        }
        if recent.len() == window && good(&recent) {
            return;
        }
        if started.elapsed() > LIMIT {
            panic!(
                "timed out waiting for {what}; last answers {recent:?}\n{}",
                context()
            );
        }
    }
}

/// `n` fresh answers through HAProxy, each `200 OK`; the bodies.
fn answers(port: u16, n: usize, context: impl Fn() -> String) -> Vec<String> {
    (0..n)
        .map(|_| match http_get(port) {
            Ok((200, body)) => body,
            other => panic!("request through haproxy: {other:?}\n{}", context()),
        })
        .collect()
}

fn wait_file(fx: &Fixture, terad: &Daemon, what: &str, holds: impl Fn(&str) -> bool) {
    let started = Instant::now();
    while !holds(&fx.read(DEST)) {
        if started.elapsed() > LIMIT {
            panic!(
                "timed out waiting for {what}:\n{}\n--- terad log:\n{}",
                fx.read(DEST),
                terad.log()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for HAProxy to have loaded `loads` configurations, then checks there was not one more.
fn wait_loads(haproxy: &Haproxy, what: &str, loads: usize, context: impl Fn() -> String) {
    if let Err(err) = haproxy.wait_loaded(loads, LIMIT) {
        panic!(
            "waiting for haproxy to load {what}: {err}\n--- terad and file:\n{}",
            context()
        );
    }
    assert_eq!(
        haproxy.loads(),
        loads,
        "one reload for {what}\n{}",
        context()
    );
}

/// What the client loop of step 5 saw.
#[derive(Default)]
struct Traffic {
    ok: usize,
    failures: Vec<String>,
    /// Answers from backend C, the one that comes and goes.
    from_c: usize,
}

fn scenario(store: &dyn Store) {
    let a = NamedBackend::start("A");
    let b = NamedBackend::start("B");
    let c = NamedBackend::start("C");
    let port = free_port();
    let fx = fixture();
    store.put("/proxy/port", &port.to_string());

    // Bootstrap, as an init container would: render once without check or reload (there is no
    // HAProxy to reload yet). No server registered: an empty backend, which HAProxy accepts and
    // answers with 503.
    let bootstrap = run(
        fx.terad()
            .args(["--onetime", "--sync-only"])
            .args(store.terad_args()),
        LIMIT,
    );
    assert!(bootstrap.status.success(), "{}", stderr(&bootstrap));
    let first = fx.read(DEST);
    assert!(first.contains(&format!("bind 127.0.0.1:{port}")), "{first}");
    assert!(
        !first.lines().any(|l| l.trim_start().starts_with("server ")),
        "{first}"
    );
    let haproxy = Haproxy::start(&fx.path(DEST), fx.root());
    assert_eq!(
        http_get(port).map(|(status, _)| status),
        Ok(503),
        "an empty backend answers 503\n{}",
        haproxy.log()
    );

    let mut command = fx.terad();
    command.arg("--watch").args(store.terad_args());
    let terad = Daemon::start(&mut command, fx.path("terad.log"));
    let context = || logs(&terad, &haproxy, &fx);

    // (1) A registers: HAProxy reloads and sends every request to A.
    store.put("/proxy/frontend/a", &a.addr.to_string());
    wait_file(&fx, &terad, "server a", |cfg| {
        cfg.contains(&format!("server a {} check", a.addr))
    });
    wait_loads(&haproxy, "registering A", 2, context);
    wait_answers(port, "A to answer", 5, context, |r| {
        r.iter().all(|x| x == "A")
    });
    assert!(answers(port, 10, context).iter().all(|x| x == "A"));

    // (2) B registers: round robin over both.
    store.put("/proxy/frontend/b", &b.addr.to_string());
    wait_file(&fx, &terad, "server b", |cfg| {
        cfg.contains(&format!("server b {} check", b.addr))
    });
    wait_loads(&haproxy, "registering B", 3, context);
    wait_answers(port, "A and B in turn", 4, context, |r| {
        r.iter().any(|x| x == "A") && r.iter().any(|x| x == "B")
    });
    let both = answers(port, 20, context);
    let from_a = both.iter().filter(|x| *x == "A").count();
    let from_b = both.iter().filter(|x| *x == "B").count();
    assert_eq!(from_a + from_b, 20, "{both:?}");
    assert!(
        from_a >= 8 && from_b >= 8,
        "round robin over A and B: {both:?}"
    );

    // (3) A leaves: only B answers.
    store.delete("/proxy/frontend/a");
    wait_file(&fx, &terad, "server a removed", |cfg| {
        !cfg.contains("server a ") && cfg.contains("server b ")
    });
    wait_loads(&haproxy, "removing A", 4, context);
    wait_answers(port, "only B", 5, context, |r| r.iter().all(|x| x == "B"));
    assert!(answers(port, 10, context).iter().all(|x| x == "B"));

    // (4) An invalid value: check_cmd rejects it, the live file stays byte for byte, HAProxy is
    // not reloaded and keeps serving, and terad says why.
    let live = std::fs::read(fx.path(DEST)).unwrap();
    // (The template's own host_port check passes it: it looks like host:port.)
    store.put("/proxy/frontend/bad", "999.999.999.999:80");
    let started = Instant::now();
    while !terad.log().contains("check_cmd rejected") {
        if started.elapsed() > LIMIT {
            panic!("terad did not report the rejected render\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = terad.log();
    assert!(
        log.contains("haproxy -c -f") && log.contains(&fx.path(DEST).display().to_string()),
        "the log names the check and the destination:\n{log}"
    );
    assert_eq!(
        std::fs::read(fx.path(DEST)).unwrap(),
        live,
        "live file untouched"
    );
    let stray: Vec<String> = std::fs::read_dir(fx.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "haproxy.cfg")
        .collect();
    assert!(stray.is_empty(), "stage files left behind: {stray:?}");
    assert!(answers(port, 10, context).iter().all(|x| x == "B"));
    assert_eq!(haproxy.loads(), 4, "no reload for a rejected render");
    assert!(haproxy.running());
    store.delete("/proxy/frontend/bad");

    // (5) Ten reloads under traffic: a client sends sequential requests, one connection each,
    // while C is added and removed five times. Not one request may fail.
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let traffic = traffic.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let answer = http_get(port);
                let mut traffic = traffic.lock().unwrap();
                match answer {
                    Ok((200, body)) if body == "B" || body == "C" => {
                        traffic.ok += 1;
                        if body == "C" {
                            traffic.from_c += 1;
                        }
                    }
                    other => traffic.failures.push(format!("{other:?}")),
                }
            }
        })
    };
    // The deletion of the bad key reloads nothing: the render equals the live file.
    let mut loads = 4;
    for round in 0..10 {
        if round % 2 == 0 {
            let seen = traffic.lock().unwrap().from_c;
            store.put("/proxy/frontend/c", &c.addr.to_string());
            wait_file(&fx, &terad, "server c", |cfg| {
                cfg.contains(&format!("server c {} check", c.addr)) && !cfg.contains("server bad")
            });
            loads += 1;
            wait_loads(
                &haproxy,
                &format!("adding C (round {round})"),
                loads,
                context,
            );
            wait_for("C to answer", LIMIT, || {
                traffic.lock().unwrap().from_c > seen
            });
        } else {
            store.delete("/proxy/frontend/c");
            wait_file(&fx, &terad, "server c removed", |cfg| {
                !cfg.contains("server c ")
            });
            loads += 1;
            wait_loads(
                &haproxy,
                &format!("removing C (round {round})"),
                loads,
                context,
            );
        }
    }
    // Some traffic after the last reload too.
    let after = traffic.lock().unwrap().ok;
    wait_for("requests after the last reload", LIMIT, || {
        traffic.lock().unwrap().ok >= after + 20
    });
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    let traffic = traffic.lock().unwrap();
    assert!(
        traffic.failures.is_empty(),
        "{} of {} requests failed during 10 reloads: {:?}\n{}",
        traffic.failures.len(),
        traffic.ok + traffic.failures.len(),
        &traffic.failures[..traffic.failures.len().min(10)],
        context()
    );
    assert!(traffic.ok > 0, "the client made requests");
    assert!(traffic.from_c > 0);
    assert_eq!(haproxy.loads(), 14, "{}", haproxy.log());
    assert!(!haproxy.log().contains("Loading failure"));
    assert!(haproxy.running());
    eprintln!(
        "{} requests through 10 reloads, {} answered by C",
        traffic.ok, traffic.from_c
    );
    drop(traffic);

    assert!(terad.stop().success());
}

#[test]
fn haproxy_follows_etcd_and_reloads_without_dropping_requests() {
    let etcd = Etcd::start();
    scenario(&etcd);
}

#[test]
fn haproxy_follows_consul_and_reloads_without_dropping_requests() {
    let consul = Consul::start_dev(false);
    scenario(&consul);
}

/// No process of this test's HAProxy survives it: the master and all workers are gone after
/// the drop, including an old worker still holding a connection open during a reload.
#[test]
fn dropping_haproxy_kills_the_master_and_every_worker() {
    let fx = fixture();
    let a = NamedBackend::start("A");
    let port = free_port();
    fx.write(
        DEST,
        &format!(
            "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
             frontend f\n    bind 127.0.0.1:{port}\n    default_backend b\n\
             backend b\n    server a {} \n",
            a.addr
        ),
    );
    let haproxy = Haproxy::start(&fx.path(DEST), fx.root());
    assert_eq!(http_get(port), Ok((200, "A".to_owned())));
    // An idle client connection keeps the first worker alive (draining) across a reload.
    let idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let master = std::fs::read_to_string(&haproxy.pidfile).unwrap();
    assert!(
        Command::new("kill")
            .args(["-USR2", master.trim()])
            .status()
            .unwrap()
            .success()
    );
    wait_loads(&haproxy, "the reload", 2, || haproxy.log());
    wait_for("master, old and new worker", LIMIT, || {
        haproxy.processes() >= 3
    });
    let group = haproxy.master_pid();
    drop(haproxy);
    wait_for("no haproxy process left", LIMIT, || {
        group_members(group) == 0
    });
    drop(idle);
}

/// packaging/haproxy/reload-haproxy.sh returns only when HAProxy can take the next reload, so
/// reloads sent back to back all happen and the last file is the one served. A configuration
/// HAProxy cannot load makes it fail instead of hanging.
#[test]
fn the_reload_script_makes_back_to_back_reloads_reliable() {
    const SCRIPT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/haproxy/reload-haproxy.sh"
    );
    let fx = Fixture::new();
    let port = free_port();
    let backends: Vec<NamedBackend> = ["A", "B", "C", "D"]
        .iter()
        .map(|name| NamedBackend::start(name))
        .collect();
    let config = |server: &NamedBackend| {
        format!(
            "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
             frontend f\n    bind 127.0.0.1:{port}\n    default_backend b\n\
             backend b\n    server s {}\n",
            server.addr
        )
    };
    fx.write(DEST, &config(&backends[0]));
    let haproxy = Haproxy::start(&fx.path(DEST), fx.root());
    let reload = |timeout: &str| {
        run(
            Command::new(SCRIPT).arg(&haproxy.pidfile).arg(timeout),
            LIMIT,
        )
    };
    for (i, server) in backends.iter().enumerate().skip(1) {
        fx.write(DEST, &config(server));
        let output = reload("10");
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(haproxy.loads(), i + 1, "{}", haproxy.log());
        assert!(haproxy.accepts_reload());
    }
    wait_answers(
        port,
        "the last configuration",
        3,
        || haproxy.log(),
        |r| r.iter().all(|x| x == "D"),
    );

    fx.write(DEST, "frontend f\n    bind 127.0.0.1:1 invalid-keyword\n");
    let output = reload("1");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("did not finish reloading within 1s"),
        "{}",
        stderr(&output)
    );
    assert!(haproxy.running(), "the old worker keeps serving");
    assert_eq!(http_get(port), Ok((200, "D".to_owned())));

    // No pidfile: an error, unless HAProxy is allowed not to be running yet.
    let missing = fx.path("not-started.pid");
    let output = run(Command::new(SCRIPT).arg(&missing), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let output = run(
        Command::new(SCRIPT).arg("--if-running").arg(&missing),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("nothing to reload"));

    // A stale pidfile naming another program: refused, and that program is not signalled.
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    let stale = fx.write("stale.pid", &format!("{}\n", other.id()));
    let output = run(Command::new(SCRIPT).arg(&stale), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is 'sleep', not haproxy"),
        "{}",
        stderr(&output)
    );
    assert!(
        other.try_wait().unwrap().is_none(),
        "sleep was not signalled"
    );
    let _ = other.kill();
    let _ = other.wait();
}

/// `haproxy -c -q` hid HAProxy's reason: terad's error said only "failed with exit status: 1".
/// With the example resource as shipped, a render HAProxy rejects is reported with HAProxy's
/// own ALERT, which names the staged file and the line.
#[test]
fn a_render_haproxy_rejects_is_reported_with_haproxys_alert_and_line() {
    let fx = Fixture::new();
    fx.template(
        "haproxy.cfg.tmpl",
        include_str!("../../templates/haproxy.cfg.tmpl"),
    );
    let resource = include_str!("../../conf.d/haproxy.toml");
    assert!(resource.contains("dest = \"/etc/haproxy/haproxy.cfg\""));
    fx.resource(
        "haproxy.toml",
        &resource.replace(
            "/etc/haproxy/haproxy.cfg",
            &fx.path(DEST).display().to_string(),
        ),
    );
    fx.write(
        "keys.yaml",
        // host:port to the template's own check, an address only HAProxy can refuse.
        "proxy:\n  port: \"8080\"\n  frontend:\n    web1: 999.999.999.999:8080\n",
    );
    let output = run(&mut fx.onetime(), LIMIT);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(!fx.path(DEST).exists(), "nothing written");
    // [ALERT]    (123) : config : [/tmp/…/out/.haproxy.cfg.AbC:21] : 'server nodes/web1' : could not resolve address '999.999.999.999'.
    let stage = format!("{}/.haproxy.cfg.", fx.path("out").display());
    let alert = log
        .split("[ALERT]")
        .skip(1)
        .find(|alert| alert.contains("999.999.999.999"))
        .unwrap_or_else(|| panic!("no ALERT naming the bad address in terad's error:\n{log}"));
    let at = alert
        .find(&stage)
        .unwrap_or_else(|| panic!("the ALERT names the staged file: {alert}"));
    let line = alert[at + stage.len()..]
        .split_once(':')
        .and_then(|(_, rest)| rest.split(']').next())
        .and_then(|line| line.parse::<u32>().ok());
    assert!(line.is_some(), "the ALERT has a line number: {alert}");
    assert!(alert.contains("'server nodes/web1'"), "{alert}");
}

/// The classic confd HAProxy template, unchanged, with a confd resource file and confd's
/// command line: what terad writes from a real store in watch mode is byte for byte what the
/// real confd wrote for the same keys (`tests/conformance/cases/haproxy_classic`, produced by
/// running confd), and HAProxy's own check passes it.
fn confd_classic_template_renders_what_confd_wrote(store: &dyn Store) {
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/cases/haproxy_classic");
    let read = |file: &str| std::fs::read_to_string(case.join(file)).unwrap();
    let confd_wrote = read("expected");
    for (name, address) in [
        ("web1", "10.0.0.1:8080"),
        ("web2", "10.0.0.2:8080"),
        ("web3", "10.0.0.3:8080"),
    ] {
        store.put(&format!("/proxy/frontend/{name}"), address);
    }
    let fx = Fixture::new();
    fx.template("haproxy.cfg.tmpl", &read("template.tmpl"));
    // A confd resource file: no terad key in it.
    fx.resource(
        "haproxy.toml",
        &format!(
            "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\n  \"/proxy/frontend\",\n]\ncheck_cmd = \"haproxy -c -f {{{{.src}}}}\"\nreload_cmd = \"true\"\n",
            fx.path(DEST).display()
        ),
    );
    let mut command = fx.terad();
    // confd's spelling of every flag.
    let args = store.terad_args();
    command.args([
        "-watch",
        &args[0].replacen("--", "-", 1),
        &args[1],
        "-node",
        &args[3],
        "-log-level",
        "info",
    ]);
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_for("the first render", LIMIT, || fx.read(DEST) == confd_wrote);
    assert!(
        daemon.log().contains("engine=\"go\" how=\"detected\""),
        "the template was recognised as Go:\n{}",
        daemon.log()
    );

    // A container goes away: its line goes, the rest stays as confd printed it.
    store.delete("/proxy/frontend/web2");
    let without_web2 = confd_wrote.replace("    server web2 10.0.0.2:8080 check\n", "");
    wait_for("web2 removed", LIMIT, || fx.read(DEST) == without_web2);
}

#[test]
fn a_confd_template_from_etcd_renders_byte_for_byte_what_confd_wrote() {
    confd_classic_template_renders_what_confd_wrote(&Etcd::start());
}

#[test]
fn a_confd_template_from_consul_renders_byte_for_byte_what_confd_wrote() {
    confd_classic_template_renders_what_confd_wrote(&Consul::start_dev(false));
}
