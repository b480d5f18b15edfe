//! The sync pipeline end to end through the terad binary, with real files and real commands
//! (the file backend needs no server).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use crate::support::{Daemon, Fixture, modified, run, stderr, stdout, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

/// A fixture with one resource rendering `/app/*` into `out/app.conf`, reload logging to
/// `reloads.log`, and `extra` appended to the `[template]` table.
fn app_fixture(extra: &str) -> Fixture {
    let fx = Fixture::new();
    fx.template(
        "app.conf.tmpl",
        "name = {{ getv(key=\"/app/name\") }}\n{% for kv in gets(pattern=\"/app/upstream/*\") %}upstream {{ kv.key | base }} {{ kv.value }}\n{% endfor %}",
    );
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.conf.tmpl\"\ndest = \"{dest}\"\nkeys = [\"/app\"]\nmode = \"0640\"\nreload_cmd = \"echo reloaded >> {log}\"\n{extra}",
            dest = fx.path("out/app.conf").display(),
            log = fx.path("reloads.log").display(),
        ),
    );
    fx.write(
        "keys.yaml",
        "app:\n  name: shop\n  upstream:\n    web1: 10.0.0.1:80\n    web2: 10.0.0.2:80\n",
    );
    fx
}

const RENDERED: &str = "name = shop\nupstream web1 10.0.0.1:80\nupstream web2 10.0.0.2:80\n";

#[test]
fn onetime_renders_sets_mode_and_reloads_once() {
    let fx = app_fixture("");
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), RENDERED);
    let mode = std::fs::metadata(fx.path("out/app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
    assert_eq!(fx.reload_count("reloads.log"), 1);
    assert!(
        stderr(&output).contains("config updated"),
        "{}",
        stderr(&output)
    );
    // No stage file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(fx.path("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["app.conf"]);
}

#[test]
fn unchanged_render_writes_nothing_and_does_not_reload() {
    let fx = app_fixture("");
    assert!(run(&mut fx.onetime(), LIMIT).status.success());
    let before = modified(&fx.path("out/app.conf"));
    let inode = std::fs::metadata(fx.path("out/app.conf")).unwrap().ino();
    std::thread::sleep(Duration::from_millis(20));

    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(modified(&fx.path("out/app.conf")), before, "mtime changed");
    assert_eq!(
        std::fs::metadata(fx.path("out/app.conf")).unwrap().ino(),
        inode,
        "file was replaced"
    );
    assert_eq!(
        fx.reload_count("reloads.log"),
        1,
        "unchanged content must not reload"
    );
}

#[test]
fn mode_drift_is_resynced() {
    let fx = app_fixture("");
    assert!(run(&mut fx.onetime(), LIMIT).status.success());
    std::fs::set_permissions(
        fx.path("out/app.conf"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    let mode = std::fs::metadata(fx.path("out/app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
    assert_eq!(fx.reload_count("reloads.log"), 2);
}

#[test]
fn owner_drift_is_resynced() {
    if !crate::support::root_or_skip("owner_drift_is_resynced", "chown") {
        return;
    }
    let fx = app_fixture("uid = 0\ngid = 0\n");
    assert!(run(&mut fx.onetime(), LIMIT).status.success());
    std::os::unix::fs::chown(fx.path("out/app.conf"), Some(1), Some(1)).unwrap();
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    let metadata = std::fs::metadata(fx.path("out/app.conf")).unwrap();
    assert_eq!((metadata.uid(), metadata.gid()), (0, 0));
    assert_eq!(fx.reload_count("reloads.log"), 2);
}

#[test]
fn failing_check_leaves_destination_byte_identical_and_skips_reload() {
    let fx = app_fixture(
        "check_cmd = \"grep -q web3 {{.src}} || { echo 'web3 missing from' {{.src}} >&2; exit 4; }\"\n",
    );
    fx.write("out/app.conf", "previous content\n");
    let output = run(&mut fx.onetime(), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "previous content\n");
    assert_eq!(fx.reload_count("reloads.log"), 0);
    let err = stderr(&output);
    assert!(err.contains("check_cmd rejected the new content"), "{err}");
    assert!(err.contains("exit status: 4"), "{err}");
    assert!(
        err.contains("web3 missing from"),
        "stderr of the check is in the error: {err}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(fx.path("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["app.conf"], "stage file removed");
}

#[test]
fn check_runs_against_the_staged_file_with_its_final_content_and_mode() {
    let fx = Fixture::new();
    let seen = fx.path("seen");
    std::fs::create_dir_all(&seen).unwrap();
    let fx = app_fixture(&format!(
        "check_cmd = \"cp {{{{.src}}}} {s}/content && stat -c %a {{{{.src}}}} > {s}/mode && dirname {{{{.src}}}} > {s}/dir && echo {{{{.dest}}}} > {s}/dest\"\n",
        s = seen.display()
    ));
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    let read = |name: &str| std::fs::read_to_string(seen.join(name)).unwrap();
    assert_eq!(read("content"), RENDERED);
    assert_eq!(
        read("mode").trim(),
        "640",
        "mode is applied before the check"
    );
    assert_eq!(
        read("dir").trim(),
        fx.path("out").display().to_string(),
        "staged next to the destination"
    );
    assert_eq!(
        read("dest").trim(),
        fx.path("out/app.conf").display().to_string()
    );
}

#[test]
fn missing_key_exits_1_names_the_key_and_leaves_destination_untouched() {
    let fx = app_fixture("");
    fx.write("keys.yaml", "app:\n  upstream:\n    web1: 10.0.0.1:80\n");
    fx.write("out/app.conf", "previous content\n");
    let output = run(&mut fx.onetime(), LIMIT);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("key \\\"/app/name\\\" not found")
            || err.contains("key \"/app/name\" not found"),
        "{err}"
    );
    assert!(
        err.contains("app.conf.tmpl:1:"),
        "template position named: {err}"
    );
    assert_eq!(fx.read("out/app.conf"), "previous content\n");
    assert_eq!(fx.reload_count("reloads.log"), 0);
}

#[test]
fn noop_prints_a_diff_and_writes_nothing() {
    let fx = app_fixture("check_cmd = \"echo checked >> checks.log\"\n");
    fx.write("out/app.conf", "name = shop\nupstream web1 10.0.0.1:80\n");
    std::fs::set_permissions(
        fx.path("out/app.conf"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let before = modified(&fx.path("out/app.conf"));
    let output = run(fx.onetime().arg("--noop"), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    let diff = stdout(&output);
    assert!(
        diff.contains("(current)") && diff.contains("(rendered)"),
        "{diff}"
    );
    assert!(diff.contains("+upstream web2 10.0.0.2:80"), "{diff}");
    assert!(diff.contains("mode of"), "mode change shown: {diff}");
    assert_eq!(
        fx.read("out/app.conf"),
        "name = shop\nupstream web1 10.0.0.1:80\n"
    );
    assert_eq!(modified(&fx.path("out/app.conf")), before);
    assert_eq!(fx.reload_count("reloads.log"), 0);
    assert!(!fx.path("checks.log").exists(), "noop runs no command");
    assert_eq!(std::fs::read_dir(fx.path("out")).unwrap().count(), 1);
}

#[test]
fn sync_only_writes_but_runs_neither_command() {
    let fx = app_fixture(&format!("check_cmd = \"echo checked >> {}\"\n", "CHECKS"));
    // Put the real path in: the check would append to checks.log.
    let resource = fx
        .read("conf.d/app.toml")
        .replace("CHECKS", &fx.path("checks.log").display().to_string());
    fx.write("conf.d/app.toml", &resource);
    let output = run(fx.onetime().arg("--sync-only"), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), RENDERED);
    assert!(!fx.path("checks.log").exists());
    assert_eq!(fx.reload_count("reloads.log"), 0);

    // And without --sync-only both commands run.
    std::fs::remove_file(fx.path("out/app.conf")).unwrap();
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.reload_count("checks.log"), 1);
    assert_eq!(fx.reload_count("reloads.log"), 1);
}

#[test]
fn configuration_errors_exit_2_list_all_and_touch_nothing() {
    let fx = app_fixture("");
    fx.write("out/app.conf", "previous content\n");
    fx.resource(
        "bad-mode.toml",
        "[template]\nsrc = \"app.conf.tmpl\"\ndest = \"/tmp/x\"\nmode = \"rw\"\n",
    );
    fx.resource("bad-toml.toml", "[template\n");
    fx.resource(
        "unknown.toml",
        "[template]\nsrc = \"app.conf.tmpl\"\ndest = \"/tmp/y\"\nfoo = 1\n",
    );
    fx.template("broken.tmpl", "{% for %}");
    fx.resource(
        "broken.toml",
        "[template]\nsrc = \"broken.tmpl\"\ndest = \"/tmp/z\"\n",
    );
    let output = run(&mut fx.onetime(), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("4 configuration errors"), "{err}");
    for want in [
        "bad-mode.toml:4:8",
        "invalid mode \"rw\"",
        "bad-toml.toml:1:",
        "unknown.toml:4:1",
        "unknown field `foo`",
        "broken.tmpl:1:",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
    assert_eq!(fx.read("out/app.conf"), "previous content\n");
    assert_eq!(fx.reload_count("reloads.log"), 0);
}

#[test]
fn environment_variables_configure_terad_and_flags_win() {
    let fx = app_fixture("");
    let mut command = fx.terad();
    command
        .env("TERAD_ONETIME", "true")
        .env("TERAD_BACKEND", "env")
        .env("APP_NAME", "from-env")
        .env("APP_UPSTREAM_WEB9", "10.9.9.9:80");
    let output = run(&mut command, LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        fx.read("out/app.conf"),
        "name = from-env\nupstream web9 10.9.9.9:80\n"
    );

    // The flag wins over TERAD_BACKEND.
    let mut command = fx.terad();
    command
        .env("TERAD_ONETIME", "true")
        .env("TERAD_BACKEND", "env")
        .args(["--backend", "file", "--file"])
        .arg(fx.path("keys.yaml"));
    let output = run(&mut command, LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), RENDERED);
}

#[test]
fn failures_in_one_resource_do_not_stop_the_others() {
    let fx = app_fixture("");
    fx.template("other.tmpl", "{{ getv(key=\"/missing\") }}");
    fx.resource(
        "0-other.toml",
        &format!(
            "[template]\nsrc = \"other.tmpl\"\ndest = \"{}\"\nkeys = [\"/missing\"]\n",
            fx.path("out/other").display()
        ),
    );
    let output = run(&mut fx.onetime(), LIMIT);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        fx.read("out/app.conf"),
        RENDERED,
        "the good resource was still written"
    );
    assert!(!fx.path("out/other").exists());
}

#[test]
fn watch_mode_follows_the_keys_file() {
    let fx = app_fixture("");
    let mut command = fx.terad();
    // One reload per change is counted below: no spacing between reloads.
    command
        .args([
            "--watch",
            "--reload-interval",
            "0s",
            "--backend",
            "file",
            "--file",
        ])
        .arg(fx.path("keys.yaml"));
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_for("first render", LIMIT, || {
        fx.read("out/app.conf") == RENDERED
    });

    // Replace the keys file the way an editor or a ConfigMap does: write aside, rename over.
    fx.write(
        ".keys.yaml.tmp",
        "app:\n  name: shop\n  upstream:\n    web1: 10.0.0.1:80\n",
    );
    std::fs::rename(fx.path(".keys.yaml.tmp"), fx.path("keys.yaml")).unwrap();
    wait_for("the deleted upstream to go", LIMIT, || {
        fx.read("out/app.conf") == "name = shop\nupstream web1 10.0.0.1:80\n"
    });

    // A broken save keeps the last good file.
    fx.write("keys.yaml", "app: [broken\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fx.read("out/app.conf"),
        "name = shop\nupstream web1 10.0.0.1:80\n"
    );
    fx.write("keys.yaml", "app:\n  name: fixed\n");
    wait_for("recovery after the fix", LIMIT, || {
        fx.read("out/app.conf") == "name = fixed\n"
    });
    wait_for("the third reload", LIMIT, || {
        fx.reload_count("reloads.log") >= 3
    });
    assert_eq!(fx.reload_count("reloads.log"), 3);
    let status = daemon.stop();
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");
}

#[test]
fn busy_neighbours_of_the_keys_file_do_not_hold_back_its_changes() {
    let fx = app_fixture("");
    let mut command = fx.terad();
    command
        .args(["--watch", "--backend", "file", "--file"])
        .arg(fx.path("keys.yaml"));
    let _daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_for("first render", LIMIT, || {
        fx.read("out/app.conf") == RENDERED
    });
    // Next to the keys file: one process reads a file every 2 ms, another appends to a log
    // every 10 ms, both without pause until the change has arrived.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = [2u64, 10]
        .into_iter()
        .map(|pause| {
            let done = std::sync::Arc::clone(&done);
            let path = fx.path("neighbour.log");
            std::thread::spawn(move || {
                use std::io::Write;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if pause == 2 {
                        let _ = std::fs::read(&path);
                    } else if let Ok(mut log) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                    {
                        let _ = writeln!(log, "busy");
                    }
                    std::thread::sleep(Duration::from_millis(pause));
                }
            })
        })
        .collect();
    fx.write("keys.yaml", "app:\n  name: changed\n");
    wait_for("the change despite the neighbours", LIMIT, || {
        fx.read("out/app.conf") == "name = changed\n"
    });
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for thread in busy {
        thread.join().unwrap();
    }
}

#[test]
fn symlinked_destination_replaces_the_target_and_keeps_the_link() {
    let fx = app_fixture("");
    std::fs::create_dir_all(fx.path("real")).unwrap();
    fx.write("real/app.conf", "old\n");
    std::fs::remove_dir_all(fx.path("out")).unwrap();
    std::fs::create_dir_all(fx.path("out")).unwrap();
    std::os::unix::fs::symlink(fx.path("real/app.conf"), fx.path("out/app.conf")).unwrap();
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        std::fs::symlink_metadata(fx.path("out/app.conf"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fx.read("real/app.conf"), RENDERED);
}
