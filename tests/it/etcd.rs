//! The etcd backend and the shared watch runtime against a real etcd.

use std::process::Command;
use std::time::Duration;

use crate::support::etcd::Etcd;
use crate::support::tls::TestCa;
use crate::support::{Daemon, Fixture, free_port, modified, run, stderr, wait_content, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

/// A confdir with one resource listing `/app/upstream/*` as `name=value` lines into
/// `out/app.conf`, reloads counted in `reloads.log`.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.template(
        "upstreams.tmpl",
        "{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.key | base }}={{ kv.value }}\n{% endfor %}",
    );
    add_resource(&fx, "app", "/app", "out/app.conf");
    fx
}

fn add_resource(fx: &Fixture, name: &str, keys: &str, dest: &str) {
    fx.resource(
        &format!("{name}.toml"),
        &format!(
            "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{}\"\nkeys = [\"{keys}\"]\nreload_cmd = \"echo {name} >> {}\"\n",
            fx.path(dest).display(),
            fx.path("reloads.log").display()
        ),
    );
}

fn terad(fx: &Fixture, etcd: &Etcd, mode: &[&str]) -> Command {
    let mut command = fx.terad();
    command
        .args(mode)
        .args(["--backend", "etcd", "--node"])
        .arg(etcd.url());
    command
}

fn watch(fx: &Fixture, etcd: &Etcd) -> Daemon {
    Daemon::start(&mut terad(fx, etcd, &["--watch"]), fx.path("terad.log"))
}

#[test]
fn initial_render_then_puts_and_deletes_propagate() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "10.0.0.1:80");
    let fx = fixture();
    // One reload per change is counted below: no spacing between reloads.
    let daemon = Daemon::start(
        terad(&fx, &etcd, &["--watch"]).args(["--reload-interval", "0s"]),
        fx.path("terad.log"),
    );
    wait_content(&fx, &daemon, "the initial render", "a=10.0.0.1:80\n");

    etcd.put("/app/upstream/b", "10.0.0.2:80");
    wait_content(&fx, &daemon, "the put", "a=10.0.0.1:80\nb=10.0.0.2:80\n");
    etcd.put("/app/upstream/a", "10.0.0.9:80");
    wait_content(&fx, &daemon, "the update", "a=10.0.0.9:80\nb=10.0.0.2:80\n");
    etcd.delete("/app/upstream/a");
    wait_content(&fx, &daemon, "the delete", "b=10.0.0.2:80\n");
    // Deleting the last key empties the resource: by default that is refused (a store that
    // restarted empty looks the same) and the last good file stays.
    etcd.delete("/app/upstream/b");
    wait_for("the refusal", LIMIT, || {
        daemon.log().contains("went from 1 to none")
    });
    assert_eq!(fx.read("out/app.conf"), "b=10.0.0.2:80\n");
    assert_eq!(fx.reload_count("reloads.log"), 4);
    assert!(daemon.stop().success());
}

/// Issue 27: 200 puts in one second made 197 reloads of the service. By default a burst
/// reloads at once and then at most once a second, and the last change is always reloaded.
#[test]
fn a_burst_of_changes_reloads_at_most_once_a_second_and_always_the_last_change() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "0");
    let fx = Fixture::new();
    fx.template(
        "upstreams.tmpl",
        "{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.key | base }}={{ kv.value }}\n{% endfor %}",
    );
    // Each reload records the file it loaded.
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{dest}\"\nkeys = [\"/app/upstream\"]\nreload_cmd = \"cat {dest} >> {log}\"\n",
            dest = fx.path("out/app.conf").display(),
            log = fx.path("reloads.log").display()
        ),
    );
    let daemon = watch(&fx, &etcd);
    wait_content(&fx, &daemon, "the initial render", "a=0\n");
    wait_for("the first reload", LIMIT, || {
        fx.reload_count("reloads.log") == 1
    });

    // 20 changes over about 2 s (etcdctl takes some 30 ms per put, plus 70 ms between).
    let started = std::time::Instant::now();
    for value in 1..=20 {
        etcd.put("/app/upstream/a", &value.to_string());
        std::thread::sleep(Duration::from_millis(70));
    }
    let burst = started.elapsed();
    wait_content(&fx, &daemon, "the last change", "a=20\n");
    wait_for("the last change reloaded", LIMIT, || {
        fx.read("reloads.log").lines().last() == Some("a=20")
    });
    // Nothing more comes after the last change is reloaded.
    std::thread::sleep(Duration::from_millis(1500));
    let reloads = fx.reload_count("reloads.log") - 1;
    // One at once, then at most one per started second of the burst, and the trailing one.
    let most = burst.as_secs() as usize + 2;
    assert!(
        (2..=most).contains(&reloads),
        "{reloads} reloads for 20 changes over {burst:?}:\n{}",
        fx.read("reloads.log")
    );
    assert_eq!(fx.read("reloads.log").lines().last(), Some("a=20"));
    assert!(daemon.stop().success());
}

#[test]
fn allow_empty_renders_an_empty_list_when_the_last_key_goes() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "10.0.0.1:80");
    let fx = fixture();
    let resource = fx.read("conf.d/app.toml") + "allow_empty = true\n";
    fx.write("conf.d/app.toml", &resource);
    let daemon = watch(&fx, &etcd);
    wait_content(&fx, &daemon, "the initial render", "a=10.0.0.1:80\n");
    etcd.delete("/app/upstream/a");
    wait_content(&fx, &daemon, "the empty render", "");
}

#[test]
fn keys_match_on_segment_boundaries_and_unrelated_writes_render_nothing() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    etcd.put("/app2/upstream/b", "2");
    etcd.put("/app-x/upstream/c", "3");
    let fx = Fixture::new();
    fx.template(
        "all.tmpl",
        "{% for kv in gets(pattern=\"/*/upstream/*\") %}{{ kv.key }}={{ kv.value }}\n{% endfor %}",
    );
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"all.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nreload_cmd = \"echo app >> {}\"\n",
            fx.path("out/app.conf").display(),
            fx.path("reloads.log").display()
        ),
    );
    let daemon = watch(&fx, &etcd);
    wait_content(&fx, &daemon, "the initial render", "/app/upstream/a=1\n");
    let before = modified(&fx.path("out/app.conf"));

    etcd.put("/app2/upstream/b", "changed");
    etcd.put("/app-x/upstream/new", "x");
    etcd.put("/ap", "x");
    // A write under the resource's keys after them proves the earlier ones were seen and skipped.
    etcd.put("/app/upstream/z", "26");
    wait_content(
        &fx,
        &daemon,
        "the in-scope put",
        "/app/upstream/a=1\n/app/upstream/z=26\n",
    );
    wait_for("the second reload", LIMIT, || {
        fx.reload_count("reloads.log") >= 2
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fx.reload_count("reloads.log"),
        2,
        "only the in-scope write re-rendered"
    );
    assert_ne!(modified(&fx.path("out/app.conf")), before);
    drop(daemon);
}

#[test]
fn fifty_resources_share_one_watch() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = Fixture::new();
    fx.template(
        "upstreams.tmpl",
        "{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.key | base }}={{ kv.value }}\n{% endfor %}",
    );
    for i in 0..50 {
        // Half watch the whole tree, half a sub-prefix it covers: still one watch.
        let keys = if i % 2 == 0 { "/app" } else { "/app/upstream" };
        add_resource(&fx, &format!("r{i:02}"), keys, &format!("out/r{i:02}.conf"));
    }
    let daemon = watch(&fx, &etcd);
    let all = |expected: &str| (0..50).all(|i| fx.read(&format!("out/r{i:02}.conf")) == expected);
    wait_for("50 initial renders", LIMIT, || all("a=1\n"));
    // The watch opens right after the initial render.
    wait_for("the watch", LIMIT, || {
        etcd.metric("etcd_debugging_mvcc_watcher_total") >= 1.0
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(etcd.metric("etcd_debugging_mvcc_watch_stream_total"), 1.0);
    assert_eq!(etcd.metric("etcd_debugging_mvcc_watcher_total"), 1.0);

    etcd.put("/app/upstream/b", "2");
    wait_for("50 re-renders", LIMIT, || all("a=1\nb=2\n"));
    // Each resource reloads once per change; reloads finish just after their file is in place.
    wait_for("100 reloads", LIMIT, || {
        fx.reload_count("reloads.log") >= 100
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fx.reload_count("reloads.log"), 100);
    drop(daemon);
}

#[test]
fn compaction_while_the_watch_is_behind_relists_and_loses_nothing() {
    let mut etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture();
    let daemon = watch(&fx, &etcd);
    wait_content(&fx, &daemon, "the initial render", "a=1\n");

    // Freeze terad so it cannot follow, break its connection by restarting etcd, then write and
    // compact away the history it would resume from.
    let pid = daemon.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    etcd.restart();
    etcd.put("/app/upstream/b", "2");
    etcd.delete("/app/upstream/a");
    etcd.put("/app/upstream/c", "3");
    let revision = etcd.revision();
    etcd.ctl(&["compact", &revision.to_string()]);
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );

    wait_content(&fx, &daemon, "catching up after compaction", "b=2\nc=3\n");
    assert!(
        daemon.log().contains("compacted"),
        "the re-list is logged:\n{}",
        daemon.log()
    );
    // And the watch is live again afterwards.
    etcd.put("/app/upstream/d", "4");
    wait_content(&fx, &daemon, "a put after the re-list", "b=2\nc=3\nd=4\n");
}

#[test]
fn compaction_under_a_live_watch_loses_no_update() {
    let etcd = Etcd::start();
    let fx = fixture();
    let daemon = watch(&fx, &etcd);
    wait_content(&fx, &daemon, "the initial (empty) render", "");
    let mut expected = String::new();
    for i in 0..20 {
        etcd.put(&format!("/app/upstream/k{i:02}"), &i.to_string());
        expected.push_str(&format!("k{i:02}={i}\n"));
        if i % 5 == 4 {
            let revision = etcd.revision();
            etcd.ctl(&["compact", &revision.to_string()]);
        }
    }
    wait_content(&fx, &daemon, "all 20 puts", &expected);
}

#[test]
fn etcd_killed_and_restarted_keeps_the_last_good_file_and_catches_up() {
    let mut etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture();
    let daemon = watch(&fx, &etcd);
    wait_content(&fx, &daemon, "the initial render", "a=1\n");
    let before = modified(&fx.path("out/app.conf"));

    etcd.kill();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        fx.read("out/app.conf"),
        "a=1\n",
        "last good content kept during the outage"
    );
    assert_eq!(
        modified(&fx.path("out/app.conf")),
        before,
        "not rewritten during the outage"
    );
    let mut daemon = daemon;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "terad keeps running"
    );

    etcd.restart();
    etcd.put("/app/upstream/b", "2");
    wait_content(&fx, &daemon, "catching up after the restart", "a=1\nb=2\n");
    assert!(
        daemon.log().contains("keeping the last good files"),
        "{}",
        daemon.log()
    );
    wait_for("the second reload", LIMIT, || {
        fx.reload_count("reloads.log") >= 2
    });
    assert_eq!(fx.reload_count("reloads.log"), 2);
}

#[test]
fn onetime_against_an_unreachable_etcd_exits_1_naming_the_endpoint() {
    let fx = fixture();
    fx.write("out/app.conf", "previous\n");
    let port = free_port();
    let mut command = fx.terad();
    command
        .args([
            "--onetime",
            "--backend",
            "etcd",
            "--backend-timeout",
            "1s",
            "--node",
        ])
        .arg(format!("127.0.0.1:{port}"));
    let started = std::time::Instant::now();
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "gave up after the backend timeout"
    );
    let err = stderr(&output);
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}")),
        "endpoint named: {err}"
    );
    assert_eq!(fx.read("out/app.conf"), "previous\n");
}

#[test]
fn onetime_renders_large_values_and_many_keys_beyond_the_grpc_default_limit() {
    let etcd = Etcd::start();
    let fx = Fixture::new();
    fx.template(
        "sizes.tmpl",
        "{% for kv in gets(pattern=\"/big/*\") %}{{ kv.key | base }} {{ kv.value | length }}\n{% endfor %}{{ gets(pattern=\"/many/*\") | length }}\n",
    );
    fx.resource(
        "sizes.toml",
        &format!(
            "[template]\nsrc = \"sizes.tmpl\"\ndest = \"{}\"\nkeys = [\"/big\", \"/many\"]\n",
            fx.path("out/sizes").display()
        ),
    );
    // 5 MiB in one value, 6 MiB more in 24 values, and 5000 small keys: well past the 4 MiB a
    // gRPC message may carry by default.
    let mut puts = vec![("/big/huge".to_owned(), "x".repeat(5 * 1024 * 1024))];
    puts.extend((0..24).map(|i| (format!("/big/v{i:02}"), "y".repeat(256 * 1024))));
    puts.extend((0..5000).map(|i| (format!("/many/k{i:05}"), "v".to_owned())));
    etcd.put_all(puts);
    let output = run(&mut terad(&fx, &etcd, &["--onetime"]), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = fx.read("out/sizes");
    assert!(
        out.starts_with("huge 5242880\nv00 262144\n"),
        "{}",
        &out[..out.len().min(200)]
    );
    assert!(
        out.ends_with("v23 262144\n5000\n"),
        "{}",
        &out[out.len().saturating_sub(200)..]
    );
}

#[test]
fn tls_with_a_test_ca_and_client_certificates() {
    let ca = TestCa::generate();
    let (ca_cert, client_cert, client_key, other_ca) = (
        ca.ca_cert.clone(),
        ca.client_cert.clone(),
        ca.client_key.clone(),
        ca.other_ca_cert.clone(),
    );
    let etcd = Etcd::start_with(Some(ca), &[]);
    etcd.put("/app/upstream/a", "tls");
    let fx = fixture();

    let mut command = terad(&fx, &etcd, &["--onetime"]);
    command
        .arg("--client-ca-keys")
        .arg(&ca_cert)
        .arg("--client-cert")
        .arg(&client_cert)
        .arg("--client-key")
        .arg(&client_key);
    let output = run(&mut command, LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a=tls\n");

    // A CA that did not sign the server's certificate: verification fails, nothing is written.
    std::fs::remove_file(fx.path("out/app.conf")).unwrap();
    let mut command = terad(&fx, &etcd, &["--onetime", "--backend-timeout", "2s"]);
    command
        .arg("--client-ca-keys")
        .arg(&other_ca)
        .arg("--client-cert")
        .arg(&client_cert)
        .arg("--client-key")
        .arg(&client_key);
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!fx.path("out/app.conf").exists());

    // No client certificate: the server (client-cert-auth) refuses.
    let mut command = terad(&fx, &etcd, &["--onetime", "--backend-timeout", "2s"]);
    command.arg("--client-ca-keys").arg(&ca_cert);
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!fx.path("out/app.conf").exists());
}

#[test]
fn username_and_password_with_auth_enabled() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "auth");
    etcd.ctl(&["user", "add", "root:s3cret-pw"]);
    let enable = etcd.etcdctl(&["auth", "enable"]);
    assert!(
        enable.status.success(),
        "{}",
        String::from_utf8_lossy(&enable.stderr)
    );
    let fx = fixture();
    fx.write("password", "s3cret-pw\n");

    let password_file = fx.path("password").display().to_string();
    let with_password = [
        "--onetime",
        "--username",
        "root",
        "--password-file",
        &password_file,
    ];
    let output = run(&mut terad(&fx, &etcd, &with_password), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a=auth\n");

    // A wrong password is refused at once (no retrying for the whole timeout) and never logged.
    fx.write("password", "wrong-pw\n");
    let started = std::time::Instant::now();
    let output = run(&mut terad(&fx, &etcd, &with_password), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("refused access"), "{err}");
    assert!(
        !err.contains("wrong-pw") && !err.contains("s3cret"),
        "password leaked: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    // Without credentials the listing is refused too.
    let output = run(
        &mut terad(&fx, &etcd, &["--onetime", "--backend-timeout", "2s"]),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn interval_mode_relists_without_a_watch() {
    let etcd = Etcd::start();
    etcd.put("/app/upstream/a", "1");
    let fx = fixture();
    let daemon = Daemon::start(
        &mut terad(&fx, &etcd, &["--interval", "1"]),
        fx.path("terad.log"),
    );
    wait_content(&fx, &daemon, "the initial render", "a=1\n");
    assert_eq!(
        etcd.metric("etcd_debugging_mvcc_watcher_total"),
        0.0,
        "polling opens no watch"
    );
    etcd.put("/app/upstream/b", "2");
    wait_content(&fx, &daemon, "the next poll", "a=1\nb=2\n");
}
