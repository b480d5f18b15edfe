//! The Consul backend against a real Consul agent.

use std::time::Duration;

use crate::support::consul::{Consul, MASTER_TOKEN, terad};
use crate::support::{Daemon, Fixture, run, stderr, wait_content, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

/// One resource listing `/app/upstream/*` into `out/app.conf`; reloads counted.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.template(
        "upstreams.tmpl",
        "{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.key | base }}={{ kv.value }}\n{% endfor %}",
    );
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{}\"\nkeys = [\"/app/upstream\"]\nreload_cmd = \"echo app >> {}\"\n",
            fx.path("out/app.conf").display(),
            fx.path("reloads.log").display()
        ),
    );
    fx
}

#[test]
fn initial_render_then_puts_and_deletes_propagate() {
    let consul = Consul::start_dev(false);
    consul.put("/app/upstream/a", "10.0.0.1:80");
    let fx = fixture();
    // One reload per change is counted below: no spacing between reloads.
    let daemon = Daemon::start(
        &mut terad(&fx, &consul, &["--watch", "--reload-interval", "0s"]),
        fx.path("terad.log"),
    );
    wait_content(&fx, &daemon, "the initial render", "a=10.0.0.1:80\n");
    consul.put("/app/upstream/b", "10.0.0.2:80");
    wait_content(&fx, &daemon, "the put", "a=10.0.0.1:80\nb=10.0.0.2:80\n");
    consul.delete("/app/upstream/a");
    wait_content(&fx, &daemon, "the delete", "b=10.0.0.2:80\n");
    wait_for("3 reloads", LIMIT, || fx.reload_count("reloads.log") >= 3);
    assert_eq!(fx.reload_count("reloads.log"), 3);
    assert!(daemon.stop().success());
}

#[test]
fn a_prefix_that_starts_empty_is_watched_until_keys_arrive() {
    let consul = Consul::start_dev(false);
    let fx = fixture();
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_content(&fx, &daemon, "the empty initial render", "");
    consul.put("/app/upstream/first", "10.0.0.7:80");
    wait_content(&fx, &daemon, "the first key", "first=10.0.0.7:80\n");
}

#[test]
fn writes_outside_the_watched_keys_render_nothing() {
    let consul = Consul::start_dev(false);
    consul.put("/app/upstream/a", "1");
    let fx = fixture();
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_content(&fx, &daemon, "the initial render", "a=1\n");
    wait_for("the first reload", LIMIT, || {
        fx.reload_count("reloads.log") >= 1
    });
    let before = crate::support::modified(&fx.path("out/app.conf"));

    // Siblings, a longer name sharing the prefix, and the parent: none is under `keys`.
    consul.put("/app/other/x", "1");
    consul.put("/app/upstream2/x", "1");
    consul.put("/app/name", "shop");
    consul.put("/unrelated", "1");
    std::thread::sleep(Duration::from_millis(500));
    consul.put("/app/upstream/z", "26");
    wait_content(&fx, &daemon, "the in-scope put", "a=1\nz=26\n");
    wait_for("the second reload", LIMIT, || {
        fx.reload_count("reloads.log") >= 2
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fx.reload_count("reloads.log"),
        2,
        "only the in-scope write rendered"
    );
    assert_ne!(crate::support::modified(&fx.path("out/app.conf")), before);
}

#[test]
fn acl_default_deny_needs_a_valid_token() {
    let consul = Consul::start_dev(true);
    consul.put("/app/upstream/a", "secret-backend");
    let fx = fixture();

    // No token: a clear refusal, not an empty backend list.
    fx.write("out/app.conf", "previous\n");
    let output = run(&mut terad(&fx, &consul, &["--onetime"]), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("consul refused access"), "{err}");
    assert!(err.contains("give an ACL token"), "{err}");
    assert_eq!(fx.read("out/app.conf"), "previous\n");

    // A wrong token: refused too, and the token is not echoed.
    let mut command = terad(&fx, &consul, &["--onetime"]);
    command.env("CONSUL_HTTP_TOKEN", "not-a-real-token-1234");
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("not-a-real-token-1234"),
        "{}",
        stderr(&output)
    );

    // A token allowed to read the prefix, from a file.
    let token = consul.read_token("app/upstream");
    fx.write("token", &format!("{token}\n"));
    let token_file = fx.path("token").display().to_string();
    let output = run(
        &mut terad(
            &fx,
            &consul,
            &["--onetime", "--auth-token-file", &token_file],
        ),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a=secret-backend\n");
    assert!(!stderr(&output).contains(&token), "token leaked");

    // The master token through the environment, in watch mode.
    std::fs::remove_file(fx.path("out/app.conf")).unwrap();
    let mut command = terad(&fx, &consul, &["--watch"]);
    command.env("CONSUL_HTTP_TOKEN", MASTER_TOKEN);
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_content(
        &fx,
        &daemon,
        "the render with a token",
        "a=secret-backend\n",
    );
    consul.put("/app/upstream/b", "2");
    wait_content(
        &fx,
        &daemon,
        "a put seen with a token",
        "a=secret-backend\nb=2\n",
    );
    assert!(
        !daemon.log().contains(MASTER_TOKEN),
        "token leaked into the log"
    );
}

#[test]
fn agent_killed_and_restarted_keeps_the_last_good_file_and_catches_up() {
    let mut consul = Consul::start_persistent();
    consul.put("/app/upstream/a", "1");
    let fx = fixture();
    let mut daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_content(&fx, &daemon, "the initial render", "a=1\n");

    consul.kill();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        fx.read("out/app.conf"),
        "a=1\n",
        "last good content kept during the outage"
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "terad keeps running"
    );

    consul.restart();
    consul.put("/app/upstream/b", "2");
    wait_content(&fx, &daemon, "catching up after the restart", "a=1\nb=2\n");
    assert!(
        daemon.log().contains("keeping the last good files"),
        "{}",
        daemon.log()
    );
}

#[test]
fn onetime_renders_and_an_unreachable_agent_exits_1() {
    let consul = Consul::start_dev(false);
    consul.put("/app/upstream/a", "x y z");
    consul.put("/app/upstream/ünï", "unicode");
    let fx = fixture();
    let output = run(&mut terad(&fx, &consul, &["--onetime"]), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a=x y z\nünï=unicode\n");

    let port = crate::support::free_port();
    let mut command = fx.terad();
    command
        .args([
            "--onetime",
            "--backend",
            "consul",
            "--backend-timeout",
            "1s",
            "--node",
        ])
        .arg(format!("127.0.0.1:{port}"));
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("http://127.0.0.1:{port}")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_resumed_watch_that_finds_the_same_keys_sends_nothing_again() {
    let mut consul = Consul::start_persistent();
    consul.put("/app/upstream/a", "1");
    let fx = fixture();
    let daemon = Daemon::start(
        &mut terad(&fx, &consul, &["--watch", "--log-level", "debug"]),
        fx.path("terad.log"),
    );
    wait_content(&fx, &daemon, "the initial render", "a=1\n");
    assert!(
        !daemon.log().contains("nothing new under the prefix"),
        "the first read of a prefix delivers it: {}",
        daemon.log()
    );

    // The agent comes back with the same data: the watch resumes from its cursor, finds the
    // keys it delivered before and says only that it answers again.
    consul.kill();
    std::thread::sleep(Duration::from_millis(500));
    consul.restart();
    wait_for("the resumed watch", LIMIT, || {
        daemon
            .log()
            .contains("consul watch resumed; nothing new under the prefix")
    });
    consul.put("/app/upstream/b", "2");
    wait_content(&fx, &daemon, "a change after the resume", "a=1\nb=2\n");
}

/// Several prefixes are listed in one transaction, whose `get-tree` matches keys as text: each
/// prefix must still get exactly the keys on its `/` boundaries (`/svc/1` is not `/svc/10`),
/// an empty prefix must be watched from where the listing left it, and each resource must
/// then follow its own prefix.
#[test]
fn prefixes_listed_together_keep_their_boundaries_and_are_followed() {
    let consul = Consul::start_dev(false);
    consul.put("/svc/1/port", "81");
    consul.put("/svc/10/port", "810");
    consul.put("/svc/1x", "not mine");
    let fx = Fixture::new();
    for name in ["1", "10", "2"] {
        fx.template(
            &format!("svc{name}.tmpl"),
            &format!(
                "{{% for kv in gets(pattern=\"/svc/{name}/*\") %}}{{{{ kv.key }}}}={{{{ kv.value }}}}\n{{% endfor %}}"
            ),
        );
        fx.resource(
            &format!("svc{name}.toml"),
            &format!(
                "[template]\nsrc = \"svc{name}.tmpl\"\ndest = \"{}\"\nkeys = [\"/svc/{name}\"]\nallow_empty = true\n",
                fx.path(&format!("out/svc{name}.conf")).display()
            ),
        );
    }
    let daemon = Daemon::start(
        &mut terad(&fx, &consul, &["--watch", "--log-level", "debug"]),
        fx.path("terad.log"),
    );
    wait_for("the first renders", Duration::from_secs(30), || {
        fx.read("out/svc1.conf") == "/svc/1/port=81\n"
            && fx.read("out/svc10.conf") == "/svc/10/port=810\n"
            && fx.path("out/svc2.conf").exists()
    });
    assert_eq!(fx.read("out/svc2.conf"), "");

    consul.put("/svc/2/port", "82");
    wait_for(
        "the empty prefix to be followed",
        Duration::from_secs(30),
        || fx.read("out/svc2.conf") == "/svc/2/port=82\n",
    );
    consul.put("/svc/10/port", "811");
    wait_for(
        "a change to its own prefix",
        Duration::from_secs(30),
        || fx.read("out/svc10.conf") == "/svc/10/port=811\n",
    );
    assert_eq!(
        fx.read("out/svc1.conf"),
        "/svc/1/port=81\n",
        "{}",
        daemon.log()
    );
}

/// Prefixes listed together under ACLs: a token that may read one prefix but not the other
/// is refused naming the key it may not read, never given an empty list for it; with a token
/// for both, the listing goes through.
#[test]
fn prefixes_listed_together_report_the_one_the_token_may_not_read() {
    let consul = Consul::start_dev(true);
    consul.put("/app/upstream/a", "10.0.0.1:80");
    consul.put("/secret/db", "hidden");
    let fx = fixture();
    fx.template("secret.tmpl", "{{ getv(key=\"/secret/db\") }}\n");
    fx.resource(
        "secret.toml",
        &format!(
            "[template]\nsrc = \"secret.tmpl\"\ndest = \"{}\"\nkeys = [\"/secret\"]\n",
            fx.path("out/secret.conf").display()
        ),
    );
    let token = consul.read_token("app/upstream");
    let mut command = terad(&fx, &consul, &["--onetime"]);
    command.env("CONSUL_HTTP_TOKEN", &token);
    let output = run(&mut command, LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("consul refused access"), "{err}");
    assert!(err.contains("\"secret\""), "names the key: {err}");
    assert!(!fx.path("out/secret.conf").exists());

    let mut command = terad(&fx, &consul, &["--onetime"]);
    command.env("CONSUL_HTTP_TOKEN", MASTER_TOKEN);
    let output = run(&mut command, LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/secret.conf"), "hidden\n");
    assert_eq!(fx.read("out/app.conf"), "a=10.0.0.1:80\n");
}
