//! Fleet choreography with three terad processes on one machine against a real etcd and a real
//! Consul: coordinated reloads never overlap, a dead slot holder's slot frees itself within the
//! TTL, a failing health check rolls one instance back and halts the group until
//! `terad rollout resume`, and `terad register` keys live exactly as long as their process.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::consul::Consul;
use crate::support::etcd::Etcd;
use crate::support::{Daemon, Fixture, run, stderr, stdout, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

/// The store under test, for code that reads the same against both.
enum Store {
    Etcd(Etcd),
    Consul(Consul),
}

impl Store {
    fn etcd() -> Store {
        Store::Etcd(Etcd::start())
    }

    fn consul() -> Store {
        Store::Consul(Consul::start_dev(false))
    }

    fn backend(&self) -> &'static str {
        match self {
            Store::Etcd(_) => "etcd",
            Store::Consul(_) => "consul",
        }
    }

    fn url(&self) -> String {
        match self {
            Store::Etcd(etcd) => etcd.url(),
            Store::Consul(consul) => consul.url(),
        }
    }

    fn put(&self, key: &str, value: &str) {
        match self {
            Store::Etcd(etcd) => etcd.put(key, value),
            Store::Consul(consul) => consul.put(key, value),
        }
    }

    /// The value of `key`, `None` when it does not exist.
    fn get(&self, key: &str) -> Option<String> {
        match self {
            Store::Etcd(etcd) => {
                let out = etcd.ctl(&["get", "--print-value-only", key]);
                let value = out.strip_suffix('\n').unwrap_or(&out);
                (!out.is_empty()).then(|| value.to_owned())
            }
            Store::Consul(consul) => {
                let output = consul.kv(&["get", key.trim_start_matches('/')]);
                output
                    .status
                    .success()
                    .then(|| stdout(&output).trim_end_matches('\n').to_owned())
            }
        }
    }

    /// `terad` subcommand or watcher against this store.
    fn terad(&self, fx: &Fixture) -> Command {
        let mut command = fx.terad();
        command
            .args(["--backend", self.backend(), "--node"])
            .arg(self.url());
        command
    }
}

/// One member of a group: its fixture, with a resource rendering `/app/v` into `out/app.conf`.
/// `reload_cmd` may use terad's `{{.dest}}`; `DEST` in `health_cmd` becomes the destination.
fn member(group: &str, ttl: &str, reload_cmd: &str, health_cmd: Option<&str>) -> Fixture {
    let fx = Fixture::new();
    fx.template("app.tmpl", "v={{ getv(key=\"/app/v\") }}\n");
    let dest = fx.path("out/app.conf").display().to_string();
    let health = health_cmd
        .map(|cmd| {
            format!(
                "health_cmd = '{}'\nhealth_retries = 1\nhealth_interval = \"100ms\"\n",
                cmd.replace("DEST", &dest)
            )
        })
        .unwrap_or_default();
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{dest}\"\nkeys = [\"/app\"]\nreload_cmd = '{reload_cmd}'\nreload_timeout = \"60s\"\n{health}\n[template.coordination]\ngroup = \"{group}\"\nmax_concurrent = 1\nttl = \"{ttl}\"\njitter = \"20ms\"\n",
            dest = fx.path("out/app.conf").display(),
        ),
    );
    fx
}

fn start(store: &Store, fx: &Fixture, name: &str) -> Daemon {
    let mut command = store.terad(fx);
    command.args(["--watch", "--instance", name, "--log-level", "debug"]);
    Daemon::start(&mut command, fx.path("terad.log"))
}

/// Reload intervals recorded by `reload_cmd`s of the form written by [`recording_reload`]:
/// (start, end, instance), sorted by start.
fn intervals(log: &std::path::Path) -> Vec<(f64, f64, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut open = std::collections::HashMap::new();
    let mut runs = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(at), Some(kind), Some(who)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("bad line {line:?}");
        };
        let at: f64 = at.parse().unwrap();
        match kind {
            "start" => {
                assert!(
                    open.insert(who.to_owned(), at).is_none(),
                    "{who} started twice"
                );
            }
            "end" => runs.push((
                open.remove(who).expect("start before end"),
                at,
                who.to_owned(),
            )),
            other => panic!("unexpected {other:?}"),
        }
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs
}

/// A reload command that appends its start and end time (with `who`) to `log`, 50 ms apart.
fn recording_reload(log: &std::path::Path, who: &str) -> String {
    let log = log.display();
    format!(
        "echo \"$(date +%s.%N) start {who}\" >> {log}; sleep 0.05; echo \"$(date +%s.%N) end {who}\" >> {log}"
    )
}

fn reloads_never_overlap(store: Store, changes: usize) {
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("reloads.log");
    store.put("/app/v", "0");
    let names = ["a", "b", "c"];
    let members: Vec<Fixture> = names
        .iter()
        .map(|who| member("edge", "10s", &recording_reload(&log, who), None))
        .collect();
    let daemons: Vec<Daemon> = members
        .iter()
        .zip(names)
        .map(|(fx, name)| start(&store, fx, name))
        .collect();
    let all_at = |value: &str| {
        let want = format!("v={value}\n");
        members.iter().all(|fx| fx.read("out/app.conf") == want)
    };
    wait_for("the first render everywhere", LIMIT, || all_at("0"));
    for change in 1..=changes {
        store.put("/app/v", &change.to_string());
        wait_for(&format!("change {change} everywhere"), LIMIT, || {
            all_at(&change.to_string())
        });
    }
    // The last reloads finish after the files are written.
    wait_for("every reload recorded", LIMIT, || {
        intervals(&log).len() >= 3 * (changes + 1)
    });
    let runs = intervals(&log);
    assert_eq!(
        runs.len(),
        3 * (changes + 1),
        "one reload per instance per change: {runs:?}"
    );
    for pair in runs.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "reloads overlap: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    // Every instance took part.
    for name in names {
        assert!(runs.iter().filter(|r| r.2 == name).count() == changes + 1);
    }
    drop(daemons);
}

#[test]
fn coordinated_reloads_never_overlap_across_three_instances_on_etcd() {
    reloads_never_overlap(Store::etcd(), 20);
}

#[test]
fn coordinated_reloads_never_overlap_across_three_instances_on_consul() {
    reloads_never_overlap(Store::consul(), 20);
}

#[test]
fn a_killed_slot_holder_frees_its_slot_within_the_ttl() {
    let store = Store::etcd();
    store.put("/app/v", "0");
    let shared = tempfile::tempdir().unwrap();
    let holding = shared.path().join("holding");
    // `a` hangs in its reload of v=1, holding the group's only slot.
    let hang = format!(
        "grep -q v=1 {{{{.dest}}}} && touch {} && sleep 30; true",
        holding.display()
    );
    let a = member("pool", "3s", &hang, None);
    let b = member("pool", "3s", "true", None);
    let mut daemon_a = start(&store, &a, "a");
    let daemon_b = start(&store, &b, "b");
    wait_for("both synced", LIMIT, || {
        a.read("out/app.conf") == "v=0\n" && b.read("out/app.conf") == "v=0\n"
    });

    store.put("/app/v", "1");
    wait_for("a holding the slot in its reload", LIMIT, || {
        holding.exists()
    });
    // b wants the slot for the next change and has to wait for a.
    store.put("/app/v", "2");
    wait_for("b waiting for the slot held by a", LIMIT, || {
        let log = daemon_b.log();
        log.contains("waiting for a coordination slot") && log.contains("a (app)")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(
        b.read("out/app.conf"),
        "v=2\n",
        "b applied while a held the slot"
    );

    let killed = Instant::now();
    daemon_a.child.kill().unwrap();
    let _ = daemon_a.child.wait();
    wait_for("b applying v=2 once a's lease expired", LIMIT, || {
        b.read("out/app.conf") == "v=2\n"
    });
    let freed = killed.elapsed();
    eprintln!("slot freed {freed:?} after SIGKILL of its holder (TTL 3 s)");
    assert!(
        freed <= Duration::from_secs(4),
        "the slot took {freed:?} to free, TTL 3 s:\n{}",
        daemon_b.log()
    );
    let _ = Command::new("pkill")
        .args(["-f", &holding.display().to_string()])
        .status();
}

fn health_failure_halts_the_group(store: Store) {
    store.put("/app/v", "good");
    let names = ["a", "b", "c"];
    let shared = tempfile::tempdir().unwrap();
    let log = shared.path().join("reloads.log");
    // Every instance's service is unhealthy on v=bad; whichever goes first finds out.
    let members: Vec<Fixture> = names
        .iter()
        .map(|who| {
            member(
                "web",
                "10s",
                &recording_reload(&log, who),
                Some("! grep -q bad DEST"),
            )
        })
        .collect();
    let daemons: Vec<Daemon> = members
        .iter()
        .zip(names)
        .map(|(fx, name)| start(&store, fx, name))
        .collect();
    wait_for("the first render everywhere", LIMIT, || {
        members
            .iter()
            .all(|fx| fx.read("out/app.conf") == "v=good\n")
    });

    store.put("/app/v", "bad");
    wait_for(
        "one instance rolling back and halting the group",
        LIMIT,
        || {
            daemons
                .iter()
                .any(|d| d.log().contains("group halted; clear with"))
        },
    );
    let failed: Vec<usize> = (0..3)
        .filter(|&i| daemons[i].log().contains("rolling back"))
        .collect();
    assert_eq!(failed.len(), 1, "exactly one instance tried the change");
    let first = failed[0];
    wait_for("the previous file restored", LIMIT, || {
        members[first].read("out/app.conf") == "v=good\n"
    });
    assert_eq!(
        std::fs::read_to_string(members[first].path("out/.app.conf.terad-backup")).unwrap(),
        "v=good\n"
    );
    let halt = store
        .get("/terad/coordination/web/halt")
        .expect("halt marker");
    assert!(halt.contains(names[first]), "{halt}");

    // A newer, healthy value does not go out while the group is halted.
    store.put("/app/v", "fixed");
    std::thread::sleep(Duration::from_secs(2));
    for fx in &members {
        assert_eq!(fx.read("out/app.conf"), "v=good\n", "applied while halted");
    }
    let status = run(
        store.terad(&members[0]).args(["rollout", "status", "web"]),
        LIMIT,
    );
    assert!(stdout(&status).contains("halted:"), "{}", stdout(&status));

    let resumed = run(
        store.terad(&members[0]).args(["rollout", "resume", "web"]),
        LIMIT,
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(stdout(&resumed).contains("resumed"));
    wait_for(
        "every instance applying the fixed value after resume",
        LIMIT,
        || {
            members
                .iter()
                .all(|fx| fx.read("out/app.conf") == "v=fixed\n")
        },
    );
    assert!(store.get("/terad/coordination/web/halt").is_none());
    // The instance that failed reloaded for the bad render and again for the rollback; the
    // reloads after resume finish after the files are written.
    wait_for("the reloads after resume", LIMIT, || {
        intervals(&log).len() >= 8
    });
    let runs = intervals(&log);
    let count = |who: &str| runs.iter().filter(|r| r.2 == who).count();
    assert_eq!(count(names[first]), 1 + 2 + 1, "{runs:?}");
    for (i, name) in names.iter().enumerate() {
        if i != first {
            assert_eq!(count(name), 2, "{name} applied only good renders: {runs:?}");
        }
    }
    drop(daemons);
}

#[test]
fn a_failing_health_check_rolls_back_and_halts_the_group_on_etcd() {
    health_failure_halts_the_group(Store::etcd());
}

#[test]
fn a_failing_health_check_rolls_back_and_halts_the_group_on_consul() {
    health_failure_halts_the_group(Store::consul());
}

fn registration(store: Store, ttl: Duration) {
    let fx = Fixture::new();
    let healthy = fx.path("healthy");
    std::fs::write(&healthy, "").unwrap();
    let key = "/proxy/frontend/web1";
    let register = |fx: &Fixture| {
        let mut command = store.terad(fx);
        command.args([
            "register",
            "--key",
            key,
            "--value",
            "10.0.0.1:8080",
            "--ttl",
            &format!("{}s", ttl.as_secs()),
            "--health-cmd",
            &format!("test -f {}", healthy.display()),
            "--health-interval",
            "200ms",
        ]);
        command
    };

    // SIGKILL: the key outlives the process by at most the TTL (+1 s).
    let mut daemon = Daemon::start(&mut register(&fx), fx.path("register.log"));
    wait_for("the key registered", LIMIT, || {
        store.get(key).as_deref() == Some("10.0.0.1:8080")
    });
    // Withdrawn while the health command fails, back when it passes.
    std::fs::remove_file(&healthy).unwrap();
    wait_for("the key withdrawn", LIMIT, || store.get(key).is_none());
    std::fs::write(&healthy, "").unwrap();
    wait_for("the key back", LIMIT, || store.get(key).is_some());

    let killed = Instant::now();
    daemon.child.kill().unwrap();
    let _ = daemon.child.wait();
    wait_for(
        "the key gone after SIGKILL",
        ttl + Duration::from_secs(10),
        || store.get(key).is_none(),
    );
    let gone = killed.elapsed();
    eprintln!("key gone {gone:?} after SIGKILL (TTL {ttl:?})");
    assert!(
        gone <= ttl + Duration::from_secs(1),
        "the key outlived its process by {gone:?}, TTL {ttl:?}"
    );

    // SIGTERM: gone at once.
    let daemon = Daemon::start(&mut register(&fx), fx.path("register2.log"));
    wait_for("the key registered again", LIMIT, || {
        store.get(key).is_some()
    });
    let stopped = Instant::now();
    assert!(daemon.stop().success());
    assert!(store.get(key).is_none(), "the key survived SIGTERM");
    assert!(stopped.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_registered_key_lives_as_long_as_its_process_on_etcd() {
    registration(Store::etcd(), Duration::from_secs(3));
}

#[test]
fn a_registered_key_lives_as_long_as_its_process_on_consul() {
    // Consul's shortest session TTL is 10 s and it waits twice the TTL: 20 s is the least.
    registration(Store::consul(), Duration::from_secs(20));
}

#[test]
fn without_a_group_a_failing_health_check_still_rolls_back_and_the_render_is_not_retried() {
    let fx = Fixture::new();
    fx.template("app.tmpl", "v={{ getv(key=\"/app/v\") }}\n");
    let dest = fx.path("out/app.conf");
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{dest}\"\nkeys = [\"/app\"]\nreload_cmd = \"echo reload >> {log}\"\nhealth_cmd = '! grep -q bad {dest}'\nhealth_retries = 0\n",
            dest = dest.display(),
            log = fx.path("reloads.log").display(),
        ),
    );
    fx.write("keys.yaml", "app:\n  v: good\n");
    let mut command = fx.terad();
    command
        .args(["--watch", "--backend", "file", "--file"])
        .arg(fx.path("keys.yaml"));
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_for("the first render", LIMIT, || {
        fx.read("out/app.conf") == "v=good\n"
    });
    wait_for("its reload", LIMIT, || fx.reload_count("reloads.log") == 1);

    fx.write("keys.yaml", "app:\n  v: bad\n");
    wait_for("the rollback", LIMIT, || {
        daemon.log().contains("previous file restored")
    });
    assert_eq!(fx.read("out/app.conf"), "v=good\n");
    assert_eq!(fx.read("out/.app.conf.terad-backup"), "v=good\n");
    // The bad render and the rollback each reloaded; no group, so no halt marker is needed.
    assert_eq!(fx.reload_count("reloads.log"), 3);
    assert!(!daemon.log().contains("group halted"));

    // The same data again (a rewrite of the same file) is not tried again.
    fx.write("keys.yaml", "app:\n  v: bad\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fx.reload_count("reloads.log"), 3, "{}", daemon.log());
    // New data goes out.
    fx.write("keys.yaml", "app:\n  v: better\n");
    wait_for("the next good render", LIMIT, || {
        fx.read("out/app.conf") == "v=better\n"
    });
    wait_for("its reload", LIMIT, || fx.reload_count("reloads.log") == 4);
}

/// Regression: a resource that gained `[template.coordination]` through SIGHUP was applied with
/// no slot at all (the coordinator was only built at start, and only for a configuration that
/// already had a coordinated resource).
#[test]
fn coordination_added_by_sighup_takes_a_slot() {
    let store = Store::etcd();
    store.put("/app/v", "0");
    let fx = member("late", "10s", "true", None);
    let coordinated = fx.read("conf.d/app.toml");
    let plain = coordinated[..coordinated.find("[template.coordination]").unwrap()].to_owned();
    // While the check runs, the slot is held: a 1 s check makes it observable.
    let checked = |text: &str| {
        text.replacen(
            "[template]\n",
            &format!(
                "[template]\ncheck_cmd = 'sleep 1; touch {}'\n",
                fx.path("checked").display()
            ),
            1,
        )
    };
    fx.resource("app.toml", &checked(&plain));
    let daemon = start(&store, &fx, "a");
    wait_for("the first render", LIMIT, || {
        fx.read("out/app.conf") == "v=0\n"
    });

    fx.resource("app.toml", &checked(&coordinated));
    let _ = Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status();
    wait_for("the reload", LIMIT, || {
        daemon.log().contains("configuration reloaded")
    });
    store.put("/app/v", "1");
    let Store::Etcd(etcd) = &store else {
        unreachable!()
    };
    let mut saw_slot = false;
    wait_for("the change", LIMIT, || {
        saw_slot |= !etcd
            .ctl(&[
                "get",
                "--prefix",
                "--keys-only",
                "/terad/coordination/late/slots/",
            ])
            .trim()
            .is_empty();
        fx.read("out/app.conf") == "v=1\n"
    });
    assert!(
        saw_slot,
        "the change was applied without a slot:\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("coordination slot taken"),
        "{}",
        daemon.log()
    );
}

/// Regression: a configuration reload that restarted a resource left its old member in the
/// reload group, so one reload was logged as `resources=["app", "app"]` and counted twice.
#[test]
fn a_restarted_resource_is_one_member_of_its_reload() {
    let store = Store::etcd();
    store.put("/app/v", "0");
    let fx = Fixture::new();
    fx.template("app.tmpl", "v={{ getv(key=\"/app/v\") }}\n");
    let resource = |mode: &str| {
        format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nmode = \"{mode}\"\nreload_cmd = 'true'\n",
            fx.path("out/app.conf").display()
        )
    };
    fx.resource("app.toml", &resource("0644"));
    let port = crate::support::free_port();
    let mut command = store.terad(&fx);
    command.args(["--watch", "--listen", &format!("127.0.0.1:{port}")]);
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_for("the first reload", LIMIT, || {
        daemon.log().contains("reloaded")
    });
    // A changed mode restarts the resource (and rewrites the file, which reloads).
    fx.resource("app.toml", &resource("0640"));
    let _ = Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status();
    wait_for("the reload after the restart", LIMIT, || {
        daemon.log().matches("reloaded resources").count() == 2
    });
    store.put("/app/v", "1");
    wait_for("the third reload", LIMIT, || {
        daemon.log().matches("reloaded resources").count() == 3
    });
    let log = daemon.log();
    for line in log.lines().filter(|l| l.contains("reloaded resources")) {
        assert!(line.contains("resources=[\"app\"]"), "{line}");
    }
    let (_, metrics) = crate::support::http_get(port, "/metrics").expect("metrics");
    let reloads: f64 = metrics
        .lines()
        .find(|l| l.starts_with("terad_reloads_total{") && l.contains("resource=\"app\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no reload counter in:\n{metrics}"));
    assert_eq!(reloads, 3.0, "{metrics}");
}

/// Regression: a slot whose lease expired mid-change was not noticed (the keeper stopped at the
/// first keep-alive error and the gate never looked), so the change went live while another
/// instance could hold the slot. Now a change whose slot is lost before the swap is aborted,
/// nothing is written, and it is retried with a new slot.
#[test]
fn a_slot_lost_before_the_swap_aborts_the_change_and_retries_it() {
    let store = Store::etcd();
    let Store::Etcd(etcd) = &store else {
        unreachable!()
    };
    store.put("/app/v", "0");
    let fx = member("lost", "3s", "true", None);
    let checking = fx.path("checking");
    let with_check = fx.read("conf.d/app.toml").replacen(
        "[template]\n",
        &format!(
            "[template]\ncheck_cmd = 'touch {}; sleep 3'\ncheck_timeout = \"20s\"\n",
            checking.display()
        ),
        1,
    );
    fx.resource("app.toml", &with_check);
    let daemon = start(&store, &fx, "a");
    wait_for("the first render", LIMIT, || {
        fx.read("out/app.conf") == "v=0\n"
    });
    let _ = std::fs::remove_file(&checking);

    store.put("/app/v", "1");
    wait_for("the check under a slot", LIMIT, || checking.exists());
    let slots = etcd.ctl(&[
        "get",
        "--prefix",
        "--keys-only",
        "/terad/coordination/lost/slots/",
    ]);
    let lease = slots
        .lines()
        .find(|line| !line.is_empty())
        .and_then(|key| key.rsplit('/').next())
        .expect("a slot key")
        .to_owned();
    // The lease goes while the check runs, as after a failover that outlasted its TTL.
    etcd.ctl(&["lease", "revoke", &lease]);
    wait_for("the abort", LIMIT, || {
        daemon.log().contains("change aborted")
    });
    assert_eq!(
        fx.read("out/app.conf"),
        "v=0\n",
        "a change whose slot was lost went live:\n{}",
        daemon.log()
    );
    wait_for("the retried change", LIMIT, || {
        fx.read("out/app.conf") == "v=1\n"
    });
    assert!(
        daemon.log().matches("coordination slot taken").count() >= 2,
        "{}",
        daemon.log()
    );
}
