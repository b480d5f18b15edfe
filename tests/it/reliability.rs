//! Faults injected for real: SIGKILL mid-write, read-only and full filesystems, a destination
//! that is a directory, backends paused, killed and restarted empty, hanging commands, and
//! secrets that must not leak into any output.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::consul::{Consul, MASTER_TOKEN};
use crate::support::etcd::Etcd;
use crate::support::{Daemon, Fixture, free_port, run, stderr, stdout, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

/// Stage files (`.<name>.<10 random>`) in a directory.
fn stage_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// The big template's output for value `v`: 25 000 lines.
fn big_render(v: &str) -> String {
    (0..25_000).map(|i| format!("line {i} {v}\n")).collect()
}

#[test]
fn sigkill_at_100_moments_never_leaves_a_torn_file_and_stage_files_do_not_pile_up() {
    let fx = Fixture::new();
    fx.template(
        "big.tmpl",
        "{% set v = getv(key=\"/v\") %}{% for i in range(end=25000) %}line {{ i }} {{ v }}\n{% endfor %}",
    );
    fx.resource(
        "big.toml",
        &format!(
            "[template]\nsrc = \"big.tmpl\"\ndest = \"{}\"\nkeys = [\"/v\"]\n",
            fx.path("out/big.conf").display()
        ),
    );
    let onetime = |value: &str| {
        fx.write("keys.yaml", &format!("v: {value}\n"));
        let mut command = fx.terad();
        command
            .args([
                "--onetime",
                "--log-level",
                "error",
                "--backend",
                "file",
                "--file",
            ])
            .arg(fx.path("keys.yaml"));
        command
    };
    // Kill points spread over one uninterrupted run's duration, measured here: a loaded machine
    // (CI, a parallel build) takes longer, and a fixed window would miss the rename.
    let started = Instant::now();
    assert!(run(&mut onetime("A"), LIMIT).status.success());
    let window = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    // Twice the measured run: the load on the machine varies while the rounds run, and a
    // window that a slower round outlasts would put every kill before the rename.
    let window = window.saturating_mul(2);
    let (a, b) = (big_render("A"), big_render("B"));
    assert_eq!(fx.read("out/big.conf"), a);

    let mut rng = fastrand::Rng::with_seed(7);
    let (mut old_seen, mut new_seen, mut stage_seen) = (0, 0, 0);
    let mut expected_old = a.clone();
    for round in 0..100 {
        let value = if round % 2 == 0 { "B" } else { "A" };
        let new = if value == "B" { &b } else { &a };
        let mut child = onetime(value)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill points spread over the whole run (start-up, render, write, rename, exit).
        std::thread::sleep(Duration::from_micros(rng.u64(0..window)));
        let _ = child.kill();
        let _ = child.wait();
        let content = std::fs::read_to_string(fx.path("out/big.conf")).unwrap();
        if content == expected_old {
            old_seen += 1;
        } else if content == *new {
            new_seen += 1;
            expected_old = new.clone();
        } else {
            panic!("round {round}: torn destination ({} bytes)", content.len());
        }
        stage_seen += stage_files(&fx.path("out")).len();
        // Each start sweeps the stage files a crash left: they never pile up.
        assert!(
            stage_files(&fx.path("out")).len() <= 1,
            "stage files piled up: {:?}",
            stage_files(&fx.path("out"))
        );
    }
    // The kill points covered both sides of the rename.
    assert!(
        old_seen > 0 && new_seen > 0,
        "old {old_seen}, new {new_seen}"
    );
    eprintln!(
        "100 kill points: {old_seen} kept the old file, {new_seen} the new one, {stage_seen} left a stage file behind"
    );

    // A clean run removes whatever is left.
    assert!(run(&mut onetime("C"), LIMIT).status.success());
    assert!(
        stage_files(&fx.path("out")).is_empty(),
        "{:?}",
        stage_files(&fx.path("out"))
    );
    assert_eq!(fx.read("out/big.conf"), big_render("C"));
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop. Needs root (CI runs
/// the suite as root); without it the tests that need one say so and stop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot mount a tmpfs (this test needs root, as CI has): skipped");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        assert!(
            Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(self.path())
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

/// Two resources from one keys file: `bad` writes to `bad_dest`, `good` to out/good.conf.
/// Returns the fixture; `keys.yaml` holds `v`.
fn two_resources(bad_dest: &std::path::Path, big: bool) -> Fixture {
    let fx = Fixture::new();
    let body = if big {
        "{% for i in range(end=20000) %}line {{ i }} {{ getv(key=\"/v\") }}\n{% endfor %}"
    } else {
        "v={{ getv(key=\"/v\") }}\n"
    };
    fx.template("t.tmpl", body);
    for (name, dest) in [
        ("bad", bad_dest.to_owned()),
        ("good", fx.path("out/good.conf")),
    ] {
        fx.resource(
            &format!("{name}.toml"),
            &format!(
                "[template]\nsrc = \"t.tmpl\"\ndest = \"{}\"\nkeys = [\"/v\"]\n",
                dest.display()
            ),
        );
    }
    fx.write("keys.yaml", "v: one\n");
    fx
}

fn watch_file(fx: &Fixture) -> Daemon {
    let mut command = fx.terad();
    command
        .args(["--watch", "--backend", "file", "--file"])
        .arg(fx.path("keys.yaml"));
    Daemon::start(&mut command, fx.path("terad.log"))
}

#[test]
fn a_read_only_destination_directory_fails_clearly_and_other_resources_keep_working() {
    let Some(tmpfs) = Tmpfs::mount("1m") else {
        return;
    };
    let dest = tmpfs.path().join("app.conf");
    std::fs::write(&dest, "previous\n").unwrap();
    tmpfs.remount_read_only();
    let fx = two_resources(&dest, false);
    let daemon = watch_file(&fx);
    wait_for("the good resource", LIMIT, || {
        fx.read("out/good.conf") == "v=one\n"
    });
    wait_for("the error", LIMIT, || {
        daemon.log().contains("Read-only file system")
    });
    let log = daemon.log();
    assert!(
        log.contains(&tmpfs.path().display().to_string()),
        "the path is named: {log}"
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "previous\n");
    assert!(stage_files(tmpfs.path()).is_empty());
    // terad keeps serving: the other resource follows changes.
    fx.write("keys.yaml", "v: two\n");
    wait_for("the good resource's update", LIMIT, || {
        fx.read("out/good.conf") == "v=two\n"
    });
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "previous\n");
}

#[test]
fn a_full_disk_fails_clearly_cleans_the_stage_file_and_keeps_the_destination() {
    let Some(tmpfs) = Tmpfs::mount("128k") else {
        return;
    };
    let dest = tmpfs.path().join("app.conf");
    std::fs::write(&dest, "previous\n").unwrap();
    // 20 000 lines (~400 KB) cannot fit in 128 KiB.
    let fx = two_resources(&dest, true);
    let daemon = watch_file(&fx);
    wait_for("the good resource", LIMIT, || {
        fx.read("out/good.conf").starts_with("line 0 one\n")
    });
    wait_for("the error", LIMIT, || {
        daemon.log().contains("No space left on device")
    });
    assert!(
        daemon.log().contains(&tmpfs.path().display().to_string()),
        "{}",
        daemon.log()
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "previous\n");
    assert!(
        stage_files(tmpfs.path()).is_empty(),
        "stage file cleaned: {:?}",
        stage_files(tmpfs.path())
    );
    fx.write("keys.yaml", "v: two\n");
    wait_for("the good resource's update", LIMIT, || {
        fx.read("out/good.conf").starts_with("line 0 two\n")
    });
}

#[test]
fn a_destination_that_is_a_directory_fails_clearly() {
    let fx = Fixture::new();
    let dest = fx.path("out/iamadir");
    std::fs::create_dir_all(dest.join("inside")).unwrap();
    let fx2 = two_resources(&dest, false);
    let output = run(&mut fx2.onetime(), LIMIT);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!(
            "destination {:?} is a directory",
            dest.display().to_string()
        )),
        "{}",
        stderr(&output)
    );
    assert!(dest.join("inside").is_dir(), "the directory is untouched");
    assert_eq!(
        fx2.read("out/good.conf"),
        "v=one\n",
        "the other resource was written"
    );
    drop(fx);
}

fn etcd_fixture(extra: &str) -> Fixture {
    let fx = Fixture::new();
    fx.template(
        "upstreams.tmpl",
        "{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.key | base }}={{ kv.value }}\n{% endfor %}",
    );
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{}\"\nkeys = [\"/app/upstream\"]\n{extra}",
            fx.path("out/app.conf").display()
        ),
    );
    fx
}

fn watch_etcd(fx: &Fixture, etcd: &Etcd) -> Daemon {
    let mut command = fx.terad();
    command
        .args(["--watch", "--backend", "etcd", "--node"])
        .arg(etcd.url());
    Daemon::start(&mut command, fx.path("terad.log"))
}

#[test]
fn etcd_paused_keeps_the_last_good_file_and_a_one_shot_gives_up_in_time() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = etcd_fixture("");
    let daemon = watch_etcd(&fx, &etcd);
    wait_for("the first render", LIMIT, || {
        fx.read("out/app.conf") == "a=1\n"
    });
    let pid = etcd.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );

    // A one-shot against the frozen etcd gives up after its backend timeout, naming it.
    let other = etcd_fixture("");
    let mut command = other.terad();
    command
        .args([
            "--onetime",
            "--backend",
            "etcd",
            "--backend-timeout",
            "2s",
            "--node",
        ])
        .arg(etcd.url());
    let started = Instant::now();
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr(&output).contains(&etcd.url()), "{}", stderr(&output));

    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        fx.read("out/app.conf"),
        "a=1\n",
        "last good file kept while etcd is frozen"
    );
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    etcd.put("/app/upstream/b", "2");
    wait_for("catching up after the pause", LIMIT, || {
        fx.read("out/app.conf") == "a=1\nb=2\n"
    });
    drop(daemon);
}

#[test]
fn etcd_restarted_empty_does_not_render_an_empty_config_and_recovers() {
    let mut etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    etcd.put("/app/upstream/b", "2");
    let fx = etcd_fixture("");
    let daemon = watch_etcd(&fx, &etcd);
    wait_for("the first render", LIMIT, || {
        fx.read("out/app.conf") == "a=1\nb=2\n"
    });

    etcd.restart_empty();
    wait_for("the guard", LIMIT, || {
        daemon.log().contains("went from 2 to none")
    });
    assert_eq!(
        fx.read("out/app.conf"),
        "a=1\nb=2\n",
        "an emptied store does not empty the file"
    );

    // Registrations come back: the file follows the new store.
    etcd.put("/app/upstream/c", "3");
    wait_for("the render of the new store", LIMIT, || {
        fx.read("out/app.conf") == "c=3\n"
    });
}

#[test]
fn consul_restarted_empty_does_not_render_an_empty_config_and_recovers() {
    let mut consul = Consul::start_dev(false);
    consul.put("/app/upstream/a", "1");
    let fx = etcd_fixture("");
    let mut command = fx.terad();
    command
        .args([
            "--watch",
            "--backend",
            "consul",
            "--consul-wait",
            "2s",
            "--node",
        ])
        .arg(consul.address());
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_for("the first render", LIMIT, || {
        fx.read("out/app.conf") == "a=1\n"
    });

    // A dev agent keeps nothing: the restart comes back empty, with a smaller index.
    consul.restart();
    wait_for("the guard", LIMIT, || {
        daemon.log().contains("went from 1 to none")
    });
    assert_eq!(fx.read("out/app.conf"), "a=1\n");
    consul.put("/app/upstream/z", "26");
    wait_for("the render of the new store", LIMIT, || {
        fx.read("out/app.conf") == "z=26\n"
    });
}

#[test]
fn min_keys_refuses_a_one_shot_on_a_short_store() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = etcd_fixture("min_keys = 2\n");
    fx.write("out/app.conf", "previous\n");
    let mut command = fx.terad();
    command
        .args(["--onetime", "--backend", "etcd", "--node"])
        .arg(etcd.url());
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("refusing to render with 1 keys: min_keys is 2"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fx.read("out/app.conf"), "previous\n");
}

#[test]
fn hanging_check_and_reload_are_killed_at_their_timeout_and_the_runtime_goes_on() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = Fixture::new();
    fx.template("t.tmpl", "{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.key | base }}={{ kv.value }}\n{% endfor %}");
    let attempts = fx.path("attempts.log");
    // The check hangs for values containing "hang"; the reload always hangs.
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"t.tmpl\"\ndest = \"{}\"\nkeys = [\"/app/upstream\"]\ncheck_cmd = \"if grep -q hang {{{{.src}}}}; then sleep 60; fi\"\ncheck_timeout = \"500ms\"\nreload_cmd = \"echo reload >> {}; sleep 60\"\nreload_timeout = \"500ms\"\n",
            fx.path("out/app.conf").display(),
            attempts.display()
        ),
    );
    let daemon = watch_etcd(&fx, &etcd);
    wait_for("the first render", LIMIT, || {
        fx.read("out/app.conf") == "a=1\n"
    });
    wait_for("the reload timeout", LIMIT, || {
        daemon.log().contains("timed out after 0.5s")
    });
    assert!(daemon.log().contains("reload failed"), "{}", daemon.log());

    etcd.put("/app/upstream/a", "hang");
    wait_for("the check timeout", LIMIT, || {
        daemon.log().contains("check_cmd rejected")
    });
    assert_eq!(fx.read("out/app.conf"), "a=1\n");
    // No `sleep 60` survives its timeout: the process groups were killed. (The failed reload
    // is retried with backoff, so one may be running now, inside its 0.5 s.)
    let sleeping = Command::new("pgrep")
        .args(["-f", "sleep 60"])
        .output()
        .unwrap();
    let survivors: Vec<String> = String::from_utf8_lossy(&sleeping.stdout)
        .lines()
        .filter(|pid| {
            let age = Command::new("ps")
                .args(["-o", "etimes=", "-p", pid])
                .output()
                .unwrap();
            String::from_utf8_lossy(&age.stdout)
                .trim()
                .parse::<u64>()
                .is_ok_and(|seconds| seconds >= 2)
        })
        .map(str::to_owned)
        .collect();
    assert!(survivors.is_empty(), "surviving sleeps: {survivors:?}");

    // Still serving, and the failed reload is retried, without waiting for a change.
    wait_for("the retried reload", LIMIT, || {
        fx.read("attempts.log").lines().count() >= 2
    });
    etcd.put("/app/upstream/a", "2");
    wait_for("the next render", LIMIT, || {
        fx.read("out/app.conf") == "a=2\n"
    });
}

#[test]
fn secrets_never_appear_in_logs_errors_metrics_or_noop_output() {
    const PASSWORD: &str = "pw-Zq8VbN3x";
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    etcd.ctl(&["user", "add", &format!("root:{PASSWORD}")]);
    assert!(etcd.etcdctl(&["auth", "enable"]).status.success());
    let fx = etcd_fixture("");
    fx.write("out/app.conf", "previous\n");
    let port = free_port();

    // Watch mode, most verbose logging, JSON and text, /metrics scraped.
    let mut command = fx.terad();
    command
        .args([
            "--watch",
            "--log-level",
            "trace",
            "--backend",
            "etcd",
            "--username",
            "root",
            "--node",
        ])
        .arg(etcd.url())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("TERAD_PASSWORD", PASSWORD);
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_for("the render", LIMIT, || fx.read("out/app.conf") == "a=1\n");
    let metrics = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(stream, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).unwrap();
        body
    };
    let log = daemon.log();
    drop(daemon);

    // --noop with the password on the command line, and a wrong password.
    let noop = run(
        fx.terad()
            .args([
                "--onetime",
                "--noop",
                "--log-level",
                "trace",
                "--backend",
                "etcd",
                "--username",
                "root",
                "--password",
                PASSWORD,
                "--node",
            ])
            .arg(etcd.url()),
        LIMIT,
    );
    let wrong = run(
        fx.terad()
            .args([
                "--onetime",
                "--backend",
                "etcd",
                "--username",
                "root",
                "--node",
            ])
            .arg(etcd.url())
            .env("TERAD_PASSWORD", "wrong-Zq8VbN3x"),
        LIMIT,
    );
    assert_eq!(wrong.status.code(), Some(1));

    // Consul: the ACL token.
    let consul = Consul::start_dev(true);
    consul.put("/app/upstream/a", "1");
    let consul_run = run(
        fx.terad()
            .args([
                "--onetime",
                "--noop",
                "--log-level",
                "trace",
                "--backend",
                "consul",
                "--auth-token",
                MASTER_TOKEN,
                "--node",
            ])
            .arg(consul.address()),
        LIMIT,
    );
    assert!(consul_run.status.success(), "{}", stderr(&consul_run));

    for (what, text) in [
        ("watch log", log),
        ("metrics", metrics),
        ("noop stdout", stdout(&noop)),
        ("noop stderr", stderr(&noop)),
        ("wrong password stderr", stderr(&wrong)),
        ("consul stdout", stdout(&consul_run)),
        ("consul stderr", stderr(&consul_run)),
    ] {
        assert!(
            !text.is_empty() || what.contains("stdout"),
            "{what} is empty"
        );
        for secret in [PASSWORD, "wrong-Zq8VbN3x", MASTER_TOKEN] {
            assert!(!text.contains(secret), "{what} contains a secret:\n{text}");
        }
    }
}

/// Issue 13: the warnings of an outage just stopped; nothing said the backend was back. One info
/// line says so, with how long it was away and what it holds now.
#[test]
fn the_return_of_the_backend_is_said_once_with_the_outage_and_the_store() {
    let mut etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = etcd_fixture("");
    let daemon = watch_etcd(&fx, &etcd);
    wait_for("the first render", LIMIT, || {
        fx.read("out/app.conf") == "a=1\n"
    });
    etcd.kill();
    wait_for("the outage", LIMIT, || {
        daemon.log().contains("watch interrupted")
    });
    std::thread::sleep(Duration::from_millis(500));
    etcd.restart();
    wait_for("the return", LIMIT, || {
        daemon.log().contains("backend reachable again after")
    });
    etcd.put("/app/upstream/b", "2");
    wait_for("catching up", LIMIT, || {
        fx.read("out/app.conf") == "a=1\nb=2\n"
    });
    let log = daemon.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("backend reachable again after"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains(" INFO ")
            && lines[0].contains("keys=1")
            && lines[0].contains("revision="),
        "{}",
        lines[0]
    );
}
