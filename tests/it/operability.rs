//! Operability with real processes: quiescence and coalesced reloads, configuration reloads,
//! graceful shutdown, /health /ready /metrics, JSON logs and the --exec supervisor.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::etcd::Etcd;
use crate::support::{Daemon, Fixture, free_port, http_get, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

const UPSTREAMS: &str = "{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.key | base }}={{ kv.value }}\n{% endfor %}";

/// A confdir with `count` resources rendering `/app/upstream/*` into `out/rN.conf`, all sharing
/// one reload command that logs its start and end with timestamps into `reloads.log`.
fn fixture(count: usize, extra: &str, reload_seconds: f64) -> Fixture {
    let fx = Fixture::new();
    fx.template("upstreams.tmpl", UPSTREAMS);
    let log = fx.path("reloads.log");
    for i in 0..count {
        fx.resource(
            &format!("r{i}.toml"),
            &format!(
                "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{dest}\"\nkeys = [\"/app\"]\nreload_cmd = \"echo start $(date +%s%N) >> {log}; sleep {reload_seconds}; echo end $(date +%s%N) >> {log}\"\n{extra}",
                dest = fx.path(&format!("out/r{i}.conf")).display(),
                log = log.display(),
            ),
        );
    }
    fx
}

fn terad(fx: &Fixture, etcd: &Etcd, args: &[&str]) -> Command {
    let mut command = fx.terad();
    command
        .args(["--watch", "--backend", "etcd", "--node"])
        .arg(etcd.url())
        .args(args);
    command
}

/// (start, end) pairs of reload runs, in nanoseconds.
fn reload_runs(fx: &Fixture) -> Vec<(u128, u128)> {
    let text = fx.read("reloads.log");
    let mut runs = Vec::new();
    let mut start = None;
    for line in text.lines() {
        let (kind, at) = line.split_once(' ').expect("kind and time");
        let at: u128 = at.trim().parse().expect("nanoseconds");
        match kind {
            "start" => start = Some(at),
            "end" => runs.push((start.take().expect("start before end"), at)),
            other => panic!("unexpected line {other:?}"),
        }
    }
    runs
}

fn assert_no_overlap(runs: &[(u128, u128)]) {
    for pair in runs.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "reloads overlapped: {pair:?}");
    }
}

#[test]
fn a_burst_of_200_updates_with_wait_gives_at_most_3_reloads_and_the_final_state() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/k", "start");
    let fx = fixture(1, "", 0.05);
    let daemon = Daemon::start(
        &mut terad(&fx, &etcd, &["--wait", "100ms:1s"]),
        fx.path("terad.log"),
    );
    wait_for("the first render", LIMIT, || {
        fx.read("out/r0.conf") == "k=start\n"
    });
    wait_for("the first reload", LIMIT, || reload_runs(&fx).len() == 1);

    // 200 updates spread over about one second.
    let started = Instant::now();
    let entries: Vec<(String, String)> = (0..200)
        .map(|i| ("/app/upstream/k".to_owned(), format!("v{i:03}")))
        .collect();
    etcd.put_paced(entries, Duration::from_millis(5));
    let burst = started.elapsed();
    wait_for("the final value", LIMIT, || {
        fx.read("out/r0.conf") == "k=v199\n"
    });
    std::thread::sleep(Duration::from_millis(1500));
    let runs = reload_runs(&fx);
    let during_burst = runs.len() - 1;
    // `wait` renders at most once per `max` (1 s) while changes keep coming, plus once at the
    // end: 3 for the intended one-second burst, more only when a loaded machine stretched it.
    let allowed = burst.as_secs_f64().ceil() as usize + 1;
    assert!(
        during_burst <= allowed.max(3),
        "{during_burst} reloads for a {burst:?} burst of 200 updates:\n{}",
        daemon.log()
    );
    assert!(during_burst >= 1);
    assert_eq!(
        fx.read("out/r0.conf"),
        "k=v199\n",
        "the final file is the final store's render"
    );
    assert_no_overlap(&runs);
}

#[test]
fn the_first_render_is_not_delayed_by_wait() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture(1, "wait = \"5s\"\n", 0.0);
    let started = Instant::now();
    let daemon = Daemon::start(&mut terad(&fx, &etcd, &[]), fx.path("terad.log"));
    wait_for("the first render", LIMIT, || {
        fx.read("out/r0.conf") == "a=1\n"
    });
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "first render waited for `wait`"
    );
    // A later change does wait at least MIN.
    let changed = Instant::now();
    etcd.put("/app/upstream/a", "2");
    wait_for("the delayed render", LIMIT, || {
        fx.read("out/r0.conf") == "a=2\n"
    });
    assert!(
        changed.elapsed() >= Duration::from_secs(5),
        "rendered before MIN: {:?}",
        changed.elapsed()
    );
    drop(daemon);
}

#[test]
fn resources_sharing_a_reload_changed_together_reload_once_and_never_concurrently() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture(3, "", 0.3);
    let daemon = Daemon::start(&mut terad(&fx, &etcd, &[]), fx.path("terad.log"));
    let all = |expected: &str| (0..3).all(|i| fx.read(&format!("out/r{i}.conf")) == expected);
    wait_for("three first renders", LIMIT, || all("a=1\n"));
    wait_for("the first reload to end", LIMIT, || {
        reload_runs(&fx).len() == 1
    });
    assert_eq!(
        reload_runs(&fx).len(),
        1,
        "three resources, one shared reload"
    );

    // One change touching all three: one reload.
    etcd.put("/app/upstream/b", "2");
    wait_for("three re-renders", LIMIT, || all("a=1\nb=2\n"));
    wait_for("the second reload", LIMIT, || reload_runs(&fx).len() >= 2);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(reload_runs(&fx).len(), 2, "{}", daemon.log());

    // Changes while a reload runs: exactly one more afterwards, never overlapping.
    etcd.put("/app/upstream/c", "3");
    std::thread::sleep(Duration::from_millis(100));
    etcd.put("/app/upstream/d", "4");
    etcd.put("/app/upstream/e", "5");
    wait_for("the last render", LIMIT, || {
        all("a=1\nb=2\nc=3\nd=4\ne=5\n")
    });
    std::thread::sleep(Duration::from_millis(1500));
    let runs = reload_runs(&fx);
    assert!(runs.len() == 3 || runs.len() == 4, "{runs:?}");
    assert_no_overlap(&runs);
}

#[test]
fn a_rejected_render_is_not_checked_again_until_the_data_changes() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "good");
    let fx = Fixture::new();
    fx.template("upstreams.tmpl", UPSTREAMS);
    fx.template(
        "other.tmpl",
        "{{ getv(key=\"/app/other\", default=\"\") }}\n",
    );
    let checks = fx.path("checks.log");
    fx.resource(
        "r.toml",
        &format!(
            "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{}\"\nkeys = [\"/app/upstream\"]\ncheck_cmd = \"echo check >> {}; ! grep -q bad {{{{.src}}}}\"\n",
            fx.path("out/r.conf").display(),
            checks.display()
        ),
    );
    let daemon = Daemon::start(&mut terad(&fx, &etcd, &[]), fx.path("terad.log"));
    wait_for("the first render", LIMIT, || {
        fx.read("out/r.conf") == "a=good\n"
    });
    etcd.put("/app/upstream/a", "bad");
    wait_for("the rejected check", LIMIT, || {
        fx.read("checks.log").lines().count() == 2
    });
    // Keys under the resource that the template does not print: the render is the same
    // rejected content, and it is not checked again.
    etcd.put("/app/upstream/nested/x", "1");
    etcd.put("/app/upstream/nested/y", "2");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(fx.read("checks.log").lines().count(), 2, "{}", daemon.log());
    assert_eq!(fx.read("out/r.conf"), "a=good\n");
    // New data: checked again.
    etcd.put("/app/upstream/a", "fine");
    wait_for("the new render", LIMIT, || {
        fx.read("out/r.conf") == "a=fine\n"
    });
    assert_eq!(fx.read("checks.log").lines().count(), 3);
}

#[test]
fn sighup_applies_a_good_configuration_and_keeps_running_on_a_broken_one() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture(1, "", 0.0);
    let daemon = Daemon::start(&mut terad(&fx, &etcd, &[]), fx.path("terad.log"));
    wait_for("the first render", LIMIT, || {
        fx.read("out/r0.conf") == "a=1\n"
    });
    let pid = daemon.child.id().to_string();
    let hup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        )
    };

    // A good change: a new template and a new resource.
    fx.template(
        "upstreams.tmpl",
        "# v2\n{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.value }}\n{% endfor %}",
    );
    fx.resource(
        "new.toml",
        &format!(
            "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\n",
            fx.path("out/new.conf").display()
        ),
    );
    hup();
    wait_for("the new template", LIMIT, || {
        fx.read("out/r0.conf") == "# v2\n1\n"
    });
    wait_for("the new resource", LIMIT, || {
        fx.read("out/new.conf") == "# v2\n1\n"
    });

    // A broken change: logged in full, the running configuration stays.
    fx.template("upstreams.tmpl", "{% for %}");
    fx.resource(
        "bad.toml",
        "[template]\nsrc = \"upstreams.tmpl\"\nmode = \"99\"\n",
    );
    hup();
    wait_for("the rejection in the log", LIMIT, || {
        daemon.log().contains("new configuration rejected")
    });
    let log = daemon.log();
    assert!(
        log.contains("invalid mode \\\"99\\\"") || log.contains("invalid mode \"99\""),
        "{log}"
    );
    assert!(
        log.contains("upstreams.tmpl:1:"),
        "template error with position: {log}"
    );
    etcd.put("/app/upstream/b", "2");
    wait_for("rendering still works", LIMIT, || {
        fx.read("out/r0.conf") == "# v2\n1\n2\n"
    });
    let mut daemon = daemon;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "terad keeps running"
    );
}

#[test]
fn watch_config_reloads_when_a_resource_file_changes() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture(1, "", 0.0);
    let daemon = Daemon::start(
        &mut terad(&fx, &etcd, &["--watch-config"]),
        fx.path("terad.log"),
    );
    wait_for("the first render", LIMIT, || {
        fx.read("out/r0.conf") == "a=1\n"
    });
    fx.resource(
        "second.toml",
        &format!(
            "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\n",
            fx.path("out/second.conf").display()
        ),
    );
    wait_for("the resource added by a file change", LIMIT, || {
        fx.read("out/second.conf") == "a=1\n"
    });
    drop(daemon);
}

#[test]
fn sigterm_during_a_slow_reload_lets_it_finish_and_exits_0() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture(1, "", 2.0);
    let daemon = Daemon::start(&mut terad(&fx, &etcd, &[]), fx.path("terad.log"));
    wait_for("the first reload to start", LIMIT, || {
        fx.read("reloads.log").contains("start")
    });
    let status = daemon.stop();
    assert!(status.success(), "{status:?}");
    let runs = reload_runs(&fx);
    assert_eq!(
        runs.len(),
        1,
        "the reload ran to its end before exit: {:?}",
        fx.read("reloads.log")
    );
}

#[test]
fn ready_turns_true_after_the_first_sync_and_metrics_parse() {
    let mut etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    etcd.kill();
    let fx = fixture(1, "", 0.0);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(
        &mut terad(&fx, &etcd, &["--listen", &listen]),
        fx.path("terad.log"),
    );
    wait_for("the endpoint", LIMIT, || {
        http_get(port, "/health").is_some()
    });
    assert_eq!(http_get(port, "/health").unwrap(), (200, "ok\n".to_owned()));
    // The backend is down: nothing synced, not ready.
    assert_eq!(http_get(port, "/ready").unwrap().0, 503);
    // The failed first attempt is counted before the backend comes back.
    wait_for("a counted backend error", LIMIT, || {
        http_get(port, "/metrics")
            .is_some_and(|(_, body)| body.contains("terad_backend_errors_total{backend=\"etcd\"}"))
    });

    etcd.restart();
    wait_for("the first render", LIMIT, || {
        fx.read("out/r0.conf") == "a=1\n"
    });
    wait_for("ready", LIMIT, || {
        http_get(port, "/ready").map(|r| r.0) == Some(200)
    });

    // The reload runs after the file is written (and after ready): wait until it is counted.
    wait_for("the first reload counted", LIMIT, || {
        http_get(port, "/metrics")
            .is_some_and(|(_, body)| body.contains("terad_reloads_total{resource=\"r0\""))
    });
    let (status, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let sample = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(sample("terad_ready", None), Some(1.0));
    assert!(sample("terad_renders_total", Some(("resource", "r0"))).unwrap() >= 1.0);
    assert!(sample("terad_syncs_total", Some(("outcome", "updated"))).unwrap() >= 1.0);
    assert!(sample("terad_reloads_total", Some(("resource", "r0"))).unwrap() >= 1.0);
    assert!(sample("terad_backend_errors_total", Some(("backend", "etcd"))).unwrap() >= 1.0);
    assert!(sample("terad_store_revision", None).unwrap() > 0.0);
    assert_eq!(
        sample("terad_watched_prefixes", Some(("prefix", "/app"))),
        Some(1.0)
    );
    assert!(
        sample(
            "terad_last_successful_sync_timestamp_seconds",
            Some(("resource", "r0"))
        )
        .unwrap()
            > 1.7e9
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("terad_render_duration_seconds")),
        "render durations exported"
    );
    drop(daemon);
}

#[test]
fn json_logs_are_one_object_per_line_with_fields() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture(1, "", 0.0);
    let mut command = fx.terad();
    command
        .args([
            "--onetime",
            "--log-format",
            "json",
            "--backend",
            "etcd",
            "--node",
        ])
        .arg(etcd.url());
    let output = crate::support::run(&mut command, LIMIT);
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let mut updated = false;
    for line in stderr.lines() {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            object.get("level").is_some() && object.get("timestamp").is_some(),
            "{line}"
        );
        if object["message"] == "config updated" {
            updated = true;
            assert_eq!(object["resource"], "r0");
            assert!(object["dest"].as_str().unwrap().ends_with("out/r0.conf"));
            assert_eq!(object["new_hash"].as_str().unwrap().len(), 16);
        }
    }
    assert!(updated, "{stderr}");
}

/// A service script that logs its starts and the reload signals it gets.
fn service(fx: &Fixture) -> String {
    let log = fx.path("service.log");
    fx.write(
        "service.sh",
        &format!(
            "trap 'echo reload >> {log}' HUP\ntrap 'echo stop >> {log}; exit 0' TERM\necho start $(cat {conf}) >> {log}\nwhile true; do sleep 0.05; done\n",
            log = log.display(),
            conf = fx.path("out/r0.conf").display()
        ),
    );
    format!("sh {}", fx.path("service.sh").display())
}

#[test]
fn exec_starts_after_the_first_sync_reloads_on_change_and_restarts_when_it_dies() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture(1, "", 0.0);
    let command = service(&fx);
    let daemon = Daemon::start(
        &mut terad(
            &fx,
            &etcd,
            &["--exec", &command, "--exec-reload-signal", "SIGHUP"],
        ),
        fx.path("terad.log"),
    );
    // Started on the rendered file, never before it.
    wait_for("the service start", LIMIT, || {
        fx.read("service.log").contains("start a=1")
    });
    etcd.put("/app/upstream/b", "2");
    wait_for("the reload signal", LIMIT, || {
        fx.read("service.log").contains("reload")
    });

    // The service dies: restarted.
    // Anchored: terad's own command line mentions the script too.
    let pattern = format!("^sh {}", fx.path("service.sh").display());
    let pids = Command::new("pgrep")
        .args(["-f", &pattern])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pids.stdout)
        .lines()
        .next()
        .expect("service pid")
        .to_owned();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for("the restart", LIMIT, || {
        fx.read("service.log").matches("start").count() == 2
    });

    // Shutdown stops it gracefully.
    assert!(daemon.stop().success());
    assert!(
        fx.read("service.log").ends_with("stop\n"),
        "{}",
        fx.read("service.log")
    );
}

#[test]
fn exec_without_a_reload_signal_restarts_on_change_and_can_exit_with_the_service() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture(1, "", 0.0);
    let command = service(&fx);
    let daemon = Daemon::start(
        &mut terad(&fx, &etcd, &["--exec", &command]),
        fx.path("terad.log"),
    );
    wait_for("the service start", LIMIT, || {
        fx.read("service.log").contains("start a=1")
    });
    etcd.put("/app/upstream/b", "2");
    wait_for("the restart on the new file", LIMIT, || {
        fx.read("service.log").contains("start a=1 b=2")
    });
    drop(daemon);

    // --exec-exit-with-child: terad exits with the service's status.
    let fx = fixture(1, "", 0.0);
    let mut command = terad(
        &fx,
        &etcd,
        &[
            "--exec",
            "sh -c 'sleep 0.2; exit 7'",
            "--exec-exit-with-child",
        ],
    );
    let output = crate::support::run(&mut command, LIMIT);
    assert_eq!(
        output.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
