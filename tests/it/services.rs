//! Consul's service catalog in templates (issue 14, part 1), against a real Consul 1.8 agent in
//! `-dev` mode: `service(name="web")` follows the instances' health, HAProxy fed by it keeps
//! serving while an instance fails and returns, and the errors (an unknown service, an ACL
//! refusal, Consul down, another backend) say what they are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::consul::{Consul, MASTER_TOKEN, terad};
use crate::support::haproxy::{CheckedBackend, Haproxy, http_get};
use crate::support::{Daemon, Fixture, free_port, run, stderr, stdout, wait_content, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

/// One resource rendering `template` into `out/app.conf`, reading `keys`, with a reload
/// counted in `reloads.log`, and `extra` TOML lines.
fn fixture(template: &str, keys: &[&str], extra: &str) -> Fixture {
    let fx = Fixture::new();
    fx.template("app.tmpl", template);
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = {keys:?}\nreload_cmd = \"echo app >> {}\"\n{extra}",
            fx.path("out/app.conf").display(),
            fx.path("reloads.log").display()
        ),
    );
    fx
}

/// `id@address:port` for each instance: what the test templates render.
const INSTANCES: &str =
    "{% for s in service(name=\"web\") %}{{ s.id }}@{{ s.address }}:{{ s.port }}\n{% endfor %}";

/// A TTL check, critical until set (`Status` starts it passing).
fn ttl_check(id: &str, passing: bool) -> String {
    format!(
        "\"Check\": {{\"CheckID\": \"{id}\", \"Name\": \"{id}\", \"TTL\": \"1h\", \"Status\": \"{}\"}}",
        if passing { "passing" } else { "critical" }
    )
}

#[test]
fn instances_follow_their_health_checks_in_watch_mode() {
    let consul = Consul::start_dev(false);
    consul.register("web-1", "web", "10.0.0.1", 80, &ttl_check("c1", true));
    // No address of its own: the node's (the agent's 127.0.0.1).
    consul.register("web-2", "web", "", 81, &ttl_check("c2", true));
    let fx = fixture(INSTANCES, &[], "");
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_content(
        &fx,
        &daemon,
        "both instances",
        "web-1@10.0.0.1:80\nweb-2@127.0.0.1:81\n",
    );

    consul.set_ttl("c1", false);
    wait_content(&fx, &daemon, "web-1 failing", "web-2@127.0.0.1:81\n");
    consul.set_ttl("c1", true);
    wait_content(
        &fx,
        &daemon,
        "web-1 back",
        "web-1@10.0.0.1:80\nweb-2@127.0.0.1:81\n",
    );
    consul.register("web-3", "web", "10.0.0.3", 82, "");
    wait_content(
        &fx,
        &daemon,
        "web-3 registered",
        "web-1@10.0.0.1:80\nweb-2@127.0.0.1:81\nweb-3@10.0.0.3:82\n",
    );
    consul.deregister("web-2");
    wait_content(
        &fx,
        &daemon,
        "web-2 gone",
        "web-1@10.0.0.1:80\nweb-3@10.0.0.3:82\n",
    );
    // Reloads coalesce while one runs: wait until they settle.
    let mut reloads = 0;
    wait_for("the reloads to settle", LIMIT, || {
        let now = fx.reload_count("reloads.log");
        let settled = now == reloads && now >= 2;
        reloads = now;
        std::thread::sleep(Duration::from_millis(300));
        settled
    });
    // A check that passes again with the same output changes nothing in the list.
    consul.set_ttl("c1", true);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fx.reload_count("reloads.log"), reloads, "{}", daemon.log());
    let log = daemon.log();
    assert!(
        !log.contains("render failed"),
        "no render before the data was there:\n{log}"
    );
    assert!(daemon.stop().success());
}

/// Watch mode reads the catalog and the failing checks apart (two blocking queries, see
/// `backend::consul::health`): an instance registered with a failing check, or whose check
/// moves from critical to warning, must still never reach a render of the passing instances.
/// Every staged render goes through the check command, which keeps a copy.
#[test]
fn an_instance_registered_failing_or_moving_to_warning_never_renders_as_passing() {
    let consul = Consul::start_dev(false);
    consul.register("good-00", "web", "10.0.0.1", 80, &ttl_check("g00", true));
    let fx = Fixture::new();
    fx.template("app.tmpl", INSTANCES);
    let renders = fx.path("renders.log");
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\ncheck_cmd = \"sh -c 'cat {{{{.src}}}} >> {}; echo --- >> {}'\"\n",
            fx.path("out/app.conf").display(),
            renders.display(),
            renders.display()
        ),
    );
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_content(&fx, &daemon, "the first instance", "good-00@10.0.0.1:80\n");

    // Each failing instance comes with a passing one, so every registration renders.
    let mut want = String::from("good-00@10.0.0.1:80\n");
    for i in 1..=20 {
        consul.register(
            &format!("bad-{i:02}"),
            "web",
            "10.0.1.1",
            80,
            &ttl_check(&format!("b{i:02}"), false),
        );
        consul.register(
            &format!("good-{i:02}"),
            "web",
            "10.0.0.1",
            80,
            &ttl_check(&format!("g{i:02}"), true),
        );
        want.push_str(&format!("good-{i:02}@10.0.0.1:80\n"));
    }
    wait_content(&fx, &daemon, "the twenty passing instances", &want);
    for i in 1..=20 {
        let (status, answer) = consul.api("PUT", &format!("/v1/agent/check/warn/b{i:02}"), "");
        assert_eq!(status, 200, "{answer}");
        // A passing instance leaving and coming back makes renders around each move.
        consul.set_ttl(&format!("g{i:02}"), false);
        consul.set_ttl(&format!("g{i:02}"), true);
    }
    consul.register("good-21", "web", "10.0.0.1", 80, &ttl_check("g21", true));
    want.push_str("good-21@10.0.0.1:80\n");
    wait_content(&fx, &daemon, "the last passing instance", &want);

    let renders = std::fs::read_to_string(&renders).unwrap();
    assert!(
        renders.matches("---").count() >= 3,
        "the check command saw the renders:\n{renders}"
    );
    assert!(
        !renders.contains("bad-"),
        "a failing instance was rendered as passing:\n{renders}"
    );
    assert!(daemon.stop().success());
}

/// consul-template's spelling in a Go template (no engine declared: detected): the shipped Go
/// HAProxy example (`range service "web"`, `.ID`, `.Address`, `.Port`) follows a health change,
/// each file checked by the real HAProxy before it is written.
#[test]
fn a_go_template_in_consul_templates_spelling_follows_health() {
    let consul = Consul::start_dev(false);
    consul.put("/proxy/port", "8000");
    consul.register("web-1", "web", "10.0.0.1", 8080, &ttl_check("c1", true));
    consul.register("web-2", "web", "", 8081, &ttl_check("c2", true));
    let fx = fixture(
        include_str!("../../examples/consul-services/templates/haproxy-services-go.cfg.tmpl"),
        &["/proxy/port"],
        "check_cmd = \"haproxy -c -f {{.src}}\"\n",
    );
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    let servers = |what: &str, lines: &[&str]| {
        let mut want = String::from("    option forwardfor\n");
        for line in lines {
            want.push_str(&format!("    server {line} check\n"));
        }
        wait_for(what, LIMIT, || {
            let file = fx.read("out/app.conf");
            file.ends_with(&want) && file.contains("    bind *:8000\n")
        });
    };
    let both = ["web-1 10.0.0.1:8080", "web-2 127.0.0.1:8081"];
    servers("both instances", &both);
    consul.set_ttl("c1", false);
    servers("web-1 failing", &["web-2 127.0.0.1:8081"]);
    consul.set_ttl("c1", true);
    servers("web-1 back", &both);
    let log = daemon.log();
    assert!(
        log.contains("engine=\"go\"") || log.contains("engine=go"),
        "the template is Go:\n{log}"
    );
    assert!(
        !log.contains("render failed") && !log.contains("check failed"),
        "every file rendered and passed haproxy -c:\n{log}"
    );
    assert!(daemon.stop().success());
}

/// The filters, the catalog's services and nodes, in a one-shot run.
#[test]
fn tags_statuses_services_and_nodes_in_a_one_shot_render() {
    let consul = Consul::start_dev(false);
    consul.register(
        "web-1",
        "web",
        "10.0.0.1",
        80,
        &format!(
            "\"Tags\": [\"v1\"], \"Meta\": {{\"zone\": \"a\"}}, {}",
            ttl_check("c1", true)
        ),
    );
    consul.register(
        "web-2",
        "web",
        "10.0.0.2",
        80,
        &format!("\"Tags\": [\"v2\"], {}", ttl_check("c2", false)),
    );
    consul.register("api-1", "api", "10.0.1.1", 90, "\"Tags\": [\"x\"]");
    let fx = fixture(
        "passing:{% for s in service(name=\"web\") %} {{ s.id }}/{{ s.status }}/{{ s.meta.zone }}{% endfor %}\n\
         any:{% for s in service(name=\"web\", status=\"any\") %} {{ s.id }}/{{ s.status }}{% endfor %}\n\
         critical:{% for s in service(name=\"web\", status=[\"critical\"]) %} {{ s.id }}{% endfor %}\n\
         v2:{% for s in service(name=\"web\", tag=\"v2\", status=\"any\") %} {{ s.id }}{% endfor %}\n\
         services:{% for s in services() %} {{ s.name }}[{{ s.tags | join(sep=\",\") }}]{% endfor %}\n\
         {% set n = nodes() %}nodes: {{ n | length }} {{ n[0].address }}\n",
        &[],
        "",
    );
    let output = run(&mut terad(&fx, &consul, &["--onetime"]), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        fx.read("out/app.conf"),
        "passing: web-1/passing/a\n\
         any: web-1/passing web-2/critical\n\
         critical: web-2\n\
         v2: web-2\n\
         services: api[x] consul[] web[v1,v2]\n\
         nodes: 1 127.0.0.1\n"
    );
}

/// A service name read from a key is only known at render: the first render waits for its data
/// instead of writing an empty list, in watch mode and in a one-shot run.
#[test]
fn a_service_named_by_a_key_is_found_at_render_without_an_empty_first_file() {
    let consul = Consul::start_dev(false);
    consul.put("/app/service", "api");
    consul.register("api-1", "api", "10.0.1.1", 90, "");
    let fx = fixture(
        "{% for s in service(name=getv(key=\"/app/service\")) %}{{ s.id }}\n{% endfor %}",
        &["/app"],
        "",
    );
    let output = run(&mut terad(&fx, &consul, &["--onetime"]), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "api-1\n");

    std::fs::remove_file(fx.path("out/app.conf")).unwrap();
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    // The first file there is is the full one.
    let started = Instant::now();
    loop {
        match std::fs::read_to_string(fx.path("out/app.conf")) {
            Ok(first) => {
                assert_eq!(first, "api-1\n", "{}", daemon.log());
                break;
            }
            Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::NotFound),
        }
        assert!(started.elapsed() < LIMIT, "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(1));
    }
    let log = daemon.log();
    assert!(
        log.contains("the template asks for services not watched yet"),
        "{log}"
    );
    assert!(!log.contains("render failed"), "{log}");
    // The new service is followed from then on.
    consul.register("api-2", "api", "10.0.1.2", 90, "");
    wait_content(&fx, &daemon, "api-2", "api-1\napi-2\n");
    // And a key naming another service switches to it.
    consul.register("db-1", "db", "10.0.2.1", 5432, "");
    consul.put("/app/service", "db");
    wait_content(&fx, &daemon, "the db service", "db-1\n");
}

/// Two resources on two services: a health change re-renders (and reloads) only the one using
/// that service; both share one query when they use the same.
#[test]
fn a_health_change_reaches_only_the_resources_using_that_service() {
    let consul = Consul::start_dev(false);
    consul.register("web-1", "web", "10.0.0.1", 80, &ttl_check("w1", true));
    consul.register("web-2", "web", "10.0.0.2", 80, &ttl_check("w2", true));
    consul.register("api-1", "api", "10.0.1.1", 90, &ttl_check("a1", true));
    let fx = Fixture::new();
    for (name, service) in [("web", "web"), ("web-too", "web"), ("api", "api")] {
        fx.template(
            &format!("{name}.tmpl"),
            &format!("{{% for s in service(name=\"{service}\") %}}{{{{ s.id }}}} {{% endfor %}}"),
        );
        fx.resource(
            &format!("{name}.toml"),
            &format!(
                "[template]\nsrc = \"{name}.tmpl\"\ndest = \"{}\"\nreload_cmd = \"echo {name} >> {}\"\n",
                fx.path(&format!("out/{name}.conf")).display(),
                fx.path(&format!("{name}.log")).display()
            ),
        );
    }
    let daemon = Daemon::start(
        // One reload per change is counted below: no spacing between reloads.
        &mut terad(
            &fx,
            &consul,
            &["--watch", "--log-level", "debug", "--reload-interval", "0s"],
        ),
        fx.path("terad.log"),
    );
    wait_for("three renders", LIMIT, || {
        ["web", "web-too", "api"]
            .iter()
            .all(|name| fx.reload_count(&format!("{name}.log")) == 1)
    });
    assert!(
        daemon.log().contains("\"services\":2") || daemon.log().contains("services=2"),
        "two distinct queries for three resources:\n{}",
        daemon.log()
    );
    consul.set_ttl("w2", false);
    wait_for("web re-rendered", LIMIT, || {
        fx.read("out/web.conf") == "web-1 " && fx.read("out/web-too.conf") == "web-1 "
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fx.reload_count("api.log"), 1, "{}", daemon.log());
    consul.set_ttl("a1", false);
    // api-1 was the only instance: the guard keeps the file.
    wait_for("the guard", LIMIT, || {
        daemon
            .log()
            .contains("refusing to render: service \"api\" went from 1 to none")
    });
    assert_eq!(fx.read("out/api.conf"), "api-1 ");
    assert_eq!(fx.reload_count("web.log"), 2);
    consul.set_ttl("a1", true);
    wait_for("released", LIMIT, || {
        daemon.log().contains("the empty-store guard releases")
    });
    assert_eq!(fx.read("out/api.conf"), "api-1 ");
}

/// An unknown service is an empty list, and the empty-store guard applies to it: `min_keys`
/// counts instances, and a service that had instances and has none keeps the last file.
#[test]
fn an_unknown_service_is_an_empty_list_under_the_guard() {
    let consul = Consul::start_dev(false);
    let fx = fixture(INSTANCES, &[], "");
    let output = run(&mut terad(&fx, &consul, &["--onetime"]), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(fx.path("out/app.conf").exists());
    assert_eq!(fx.read("out/app.conf"), "");

    let fx = fixture(INSTANCES, &[], "min_keys = 1\n");
    let output = run(&mut terad(&fx, &consul, &["--onetime"]), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("refusing to render with 0 keys: min_keys is 1"),
        "{}",
        stderr(&output)
    );
    assert!(!fx.path("out/app.conf").exists());

    // Watch mode: the service appears, then every instance leaves.
    let fx = fixture(INSTANCES, &[], "");
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_content(&fx, &daemon, "the empty list", "");
    consul.register("web-1", "web", "10.0.0.1", 80, "");
    wait_content(&fx, &daemon, "web-1", "web-1@10.0.0.1:80\n");
    consul.deregister("web-1");
    wait_for("the guard", LIMIT, || {
        daemon
            .log()
            .contains("refusing to render: service \"web\" went from 1 to none")
    });
    assert_eq!(fx.read("out/app.conf"), "web-1@10.0.0.1:80\n");
}

/// Consul answers a query the token may not read with an empty list; terad reports which
/// permission is missing instead of rendering it.
#[test]
fn acl_denied_names_the_missing_permission_never_an_empty_list() {
    let consul = Consul::start_dev(true);
    consul.register("web-1", "web", "10.0.0.1", 80, "");
    let fx = fixture(INSTANCES, &[], "");
    fx.write("out/app.conf", "previous\n");

    // No token at all.
    let output = run(&mut terad(&fx, &consul, &["--onetime"]), LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("consul refused access"), "{err}");
    assert!(
        err.contains("lacks service:read on \"web\" and node:read"),
        "{err}"
    );
    assert!(err.contains("give an ACL token"), "{err}");
    assert_eq!(fx.read("out/app.conf"), "previous\n");

    // service:read but no node:read.
    let token = consul.token_with("services-only", "service_prefix \"\" { policy = \"read\" }");
    let mut command = terad(&fx, &consul, &["--onetime"]);
    command.env("CONSUL_HTTP_TOKEN", &token);
    let output = run(&mut command, LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("the ACL token lacks node:read"), "{err}");
    assert!(!err.contains(&token), "token leaked: {err}");
    assert_eq!(fx.read("out/app.conf"), "previous\n");

    // A token that is not one: Consul's own 403.
    let mut command = terad(&fx, &consul, &["--onetime"]);
    command.env("CONSUL_HTTP_TOKEN", "00000000-0000-0000-0000-000000000000");
    let output = run(&mut command, LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("consul refused access"),
        "{}",
        stderr(&output)
    );

    // Watch mode without the rights: the error, not an empty file; the rights granted through a
    // token that can read both, in a new run.
    let mut command = terad(&fx, &consul, &["--watch"]);
    command.env("CONSUL_HTTP_TOKEN", &token);
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_for("the refusal", LIMIT, || {
        daemon.log().contains("lacks node:read")
    });
    assert_eq!(fx.read("out/app.conf"), "previous\n");
    drop(daemon);
    let both = consul.token_with(
        "services-and-nodes",
        "service_prefix \"\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }",
    );
    let mut command = terad(&fx, &consul, &["--watch"]);
    command.env("CONSUL_HTTP_TOKEN", &both);
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    wait_content(&fx, &daemon, "the render", "web-1@10.0.0.1:80\n");
    assert!(!daemon.log().contains(&both), "token leaked");
    assert!(!daemon.log().contains(MASTER_TOKEN), "token leaked");
}

/// Consul killed: the last good file stays and terad keeps running; back, with new instances,
/// the file catches up.
#[test]
fn consul_down_keeps_the_last_good_file_and_catches_up() {
    let mut consul = Consul::start_persistent();
    consul.register("web-1", "web", "10.0.0.1", 80, "");
    let fx = fixture(INSTANCES, &[], "");
    let mut daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_content(&fx, &daemon, "the first render", "web-1@10.0.0.1:80\n");

    consul.kill();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fx.read("out/app.conf"), "web-1@10.0.0.1:80\n");
    assert!(daemon.child.try_wait().unwrap().is_none(), "terad runs");

    consul.restart();
    consul.register("web-2", "web", "10.0.0.2", 80, "");
    wait_content(
        &fx,
        &daemon,
        "catching up",
        "web-1@10.0.0.1:80\nweb-2@10.0.0.2:80\n",
    );
    let log = daemon.log();
    assert!(log.contains("keeping its last answer"), "{log}");
    assert!(!log.contains("render failed"), "{log}");
}

/// The catalog is Consul's: another backend refuses a template that calls it at start, with a
/// configuration error (exit 2) naming the template line; literal mistakes are caught there too.
#[test]
fn service_calls_need_the_consul_backend_and_valid_literals_at_start() {
    let fx = fixture(
        "port={{ getv(key=\"/app/port\") }}\n{% for s in service(name=\"web\") %}{% endfor %}",
        &["/app"],
        "",
    );
    fx.write("keys.yaml", "app:\n  port: \"80\"\n");
    let output = run(&mut fx.onetime(), LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "the template calls service() at {}:2:13, which reads Consul's service catalog: it needs --backend consul, not file",
            fx.path("templates/app.tmpl").display()
        )),
        "{err}"
    );
    assert!(!fx.path("out/app.conf").exists());

    let fx = fixture(
        "{{ service(name=\"web\", status=\"up\") | length }}",
        &[],
        "",
    );
    let output = run(
        fx.terad()
            .args(["--onetime", "--backend", "consul", "--node"])
            .arg(format!("127.0.0.1:{}", free_port())),
        LIMIT,
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("app.tmpl:1:4: service(): unknown status \"up\""),
        "{err}"
    );

    // The same in a Go template, in consul-template's spelling.
    let fx = fixture("{{range service \"web\"}}{{.Address}}{{end}}", &[], "");
    fx.write("keys.yaml", "app:\n  port: \"80\"\n");
    let output = run(&mut fx.onetime(), LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "the template calls service() at {}:1:9, which reads Consul's service catalog: it needs --backend consul, not file",
            fx.path("templates/app.tmpl").display()
        )),
        "{err}"
    );
    let fx = fixture("{{range service \"web\" \"up\"}}{{end}}", &[], "");
    let output = run(
        fx.terad()
            .args(["--onetime", "--backend", "consul", "--node"])
            .arg(format!("127.0.0.1:{}", free_port())),
        LIMIT,
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("app.tmpl:1:9: service: unknown status \"up\""),
        "{err}"
    );
}

/// What the client loop saw through HAProxy.
#[derive(Default)]
struct Traffic {
    ok: usize,
    from_b: usize,
    /// Answers from B while it was out of the file and not serving.
    from_b_while_out: usize,
    failures: Vec<String>,
}

/// HAProxy fed by `service(name="web")` in watch mode (the shipped example,
/// examples/consul-services/templates/haproxy-services.cfg.tmpl): two backends with HTTP health checks; while one's
/// check fails it leaves the file within the check interval plus `wait`, and returns; not one
/// request fails through it all; with no healthy instance left the guard keeps the last file.
#[test]
fn haproxy_follows_a_services_health_without_dropping_requests() {
    const DEST: &str = "out/haproxy.cfg";
    const CHECK_INTERVAL: Duration = Duration::from_secs(1);
    const WAIT_MAX: Duration = Duration::from_secs(1);
    let consul = Consul::start_dev(false);
    let a = CheckedBackend::start("A");
    let b = CheckedBackend::start("B");
    let port = free_port();
    consul.put("/proxy/port", &port.to_string());
    for (id, backend) in [("web-a", &a), ("web-b", &b)] {
        consul.register(
            id,
            "web",
            "127.0.0.1",
            backend.addr.port(),
            &format!(
                "\"Check\": {{\"Name\": \"http\", \"HTTP\": \"http://{}/health\", \"Interval\": \"1s\", \"Timeout\": \"1s\"}}",
                backend.addr
            ),
        );
    }
    wait_for("both instances passing", LIMIT, || {
        let (_, body) = consul.api("GET", "/v1/health/service/web?passing", "");
        serde_json::from_str::<Vec<serde_json::Value>>(&body).is_ok_and(|list| list.len() == 2)
    });

    let fx = Fixture::new();
    let template =
        include_str!("../../examples/consul-services/templates/haproxy-services.cfg.tmpl");
    assert!(template.contains("bind *:"));
    fx.template(
        "haproxy-services.cfg.tmpl",
        &crate::support::haproxy::local_template(template, fx.root()),
    );
    let shipped = include_str!("../../examples/consul-services/conf.d/haproxy-services.toml");
    assert!(shipped.contains("min_keys = 2"));
    fx.resource(
        "haproxy.toml",
        &shipped
            .replace(
                "/etc/haproxy/haproxy.cfg",
                &fx.path(DEST).display().to_string(),
            )
            .replace(
                "/run/haproxy.pid",
                &fx.path("haproxy.pid").display().to_string(),
            )
            .replace("wait = \"500ms:5s\"", "wait = \"200ms:1s\""),
    );

    // Bootstrap as an init container would, then HAProxy, then terad following.
    let bootstrap = run(
        &mut terad(&fx, &consul, &["--onetime", "--sync-only"]),
        LIMIT,
    );
    assert!(bootstrap.status.success(), "{}", stderr(&bootstrap));
    let first = fx.read(DEST);
    assert!(
        first.contains(&format!("server web-a {} check", a.addr))
            && first.contains(&format!("server web-b {} check", b.addr)),
        "{first}"
    );
    let haproxy = Haproxy::start(&fx.path(DEST), fx.root());
    let terad = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    let context = || {
        format!(
            "--- file:\n{}\n--- terad log:\n{}\n--- haproxy log:\n{}",
            fx.read(DEST),
            terad.log(),
            haproxy.log()
        )
    };
    let consecutive = |what: &str, n: usize, want: &str| {
        let started = Instant::now();
        let mut run = 0;
        while run < n {
            match http_get(port) {
                Ok((200, body)) if body == want => run += 1,
                _ => run = 0,
            }
            assert!(
                started.elapsed() < LIMIT,
                "waiting for {what}\n{}",
                context()
            );
        }
    };

    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let b_out = Arc::new(AtomicBool::new(false));
    let client = {
        let (traffic, stop, b_out) = (traffic.clone(), stop.clone(), b_out.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let answer = http_get(port);
                let mut traffic = traffic.lock().unwrap();
                match answer {
                    Ok((200, body)) if body == "A" || body == "B" => {
                        traffic.ok += 1;
                        if body == "B" {
                            traffic.from_b += 1;
                            if b_out.load(Ordering::SeqCst) {
                                traffic.from_b_while_out += 1;
                            }
                        }
                    }
                    other => traffic.failures.push(format!("{other:?}")),
                }
            }
        })
    };
    wait_for("answers from B", LIMIT, || {
        traffic.lock().unwrap().from_b > 5
    });

    // B's check fails; B keeps serving meanwhile (a drain), so no request fails.
    let loads = haproxy.loads();
    let failed_at = Instant::now();
    b.set_healthy(false);
    let started = Instant::now();
    while fx.read(DEST).contains("server web-b ") {
        assert!(started.elapsed() < LIMIT, "B never left\n{}", context());
        std::thread::sleep(Duration::from_millis(5));
    }
    let left_after = failed_at.elapsed();
    assert!(fx.read(DEST).contains("server web-a "), "{}", context());
    // Consul runs the check every second, times it out after one, and may take a moment to
    // record the result; then terad's `wait` (1 s at most) and the render.
    assert!(
        left_after <= CHECK_INTERVAL * 2 + WAIT_MAX + Duration::from_secs(2),
        "B left the file after {left_after:?}\n{}",
        context()
    );
    haproxy
        .wait_loaded(loads + 1, LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", context()));
    consecutive("only A", 10, "A");
    // B now goes away for real: HAProxy must not send it anything.
    b.set_serving(false);
    b_out.store(true, Ordering::SeqCst);
    let ok = traffic.lock().unwrap().ok;
    wait_for("traffic while B is out", LIMIT, || {
        traffic.lock().unwrap().ok >= ok + 50
    });

    // B returns.
    b_out.store(false, Ordering::SeqCst);
    b.set_serving(true);
    let loads = haproxy.loads();
    let seen_b = traffic.lock().unwrap().from_b;
    b.set_healthy(true);
    wait_for("B back in the file", LIMIT, || {
        fx.read(DEST)
            .contains(&format!("server web-b {} check", b.addr))
    });
    haproxy
        .wait_loaded(loads + 1, LIMIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", context()));
    wait_for("answers from B again", LIMIT, || {
        traffic.lock().unwrap().from_b > seen_b + 5
    });
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    let traffic = traffic.lock().unwrap();
    assert!(
        traffic.failures.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        traffic.failures.len(),
        traffic.ok + traffic.failures.len(),
        &traffic.failures[..traffic.failures.len().min(10)],
        context()
    );
    assert_eq!(traffic.from_b_while_out, 0, "{}", context());
    eprintln!(
        "{} requests, {} answered by B; B left the file {left_after:?} after its check started failing",
        traffic.ok, traffic.from_b
    );
    drop(traffic);

    // No healthy instance at all: the guard keeps the last good file and HAProxy serving.
    a.set_healthy(false);
    b.set_healthy(false);
    wait_for("the guard", LIMIT, || {
        terad.log().contains("refusing to render")
    });
    let kept = fx.read(DEST);
    assert!(kept.contains("server web-"), "{kept}");
    assert!(haproxy.running());
    assert!(!haproxy.log().contains("Loading failure"));
    assert!(terad.stop().success());
}

/// Coordination that counts unhealthy peers (issue 14 part 2, first increment): with another
/// instance of `api` critical and `max_unavailable = 1`, a change waits and says for whom; once
/// the peer passes, the change goes live with this instance in maintenance mode during the
/// reload (seen from the reload command through Consul's API), and out of it afterwards.
#[test]
fn a_change_waits_for_unhealthy_peers_and_drains_its_own_instance() {
    let consul = Consul::start_dev(false);
    // api-1 is this terad's, the one instance of `api` on its agent; api-2 is another node's,
    // written into the catalog directly with the health its own agent would report.
    consul.register("api-1", "api", "127.0.0.1", 9001, &ttl_check("a1", true));
    let api_2 = |status: &str| {
        let body = format!(
            "{{\"Node\": \"vm2\", \"Address\": \"10.0.0.2\", \"Service\": {{\"ID\": \"api-2\", \"Service\": \"api\", \"Port\": 9002}}, \"Check\": {{\"CheckID\": \"a2\", \"Name\": \"a2\", \"ServiceID\": \"api-2\", \"Status\": \"{status}\"}}}}"
        );
        let (code, answer) = consul.api("PUT", "/v1/catalog/register", &body);
        assert_eq!(code, 200, "{answer}");
    };
    api_2("critical");
    consul.put("/app/v", "1");
    let fx = Fixture::new();
    fx.template("app.tmpl", "v={{ getv(key=\"/app/v\") }}\n");
    let during = fx.path("during.json");
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nreload_cmd = 'curl -s {}/v1/health/checks/api | tr -d \"\\\\n\" >> {}; echo >> {}'\n\n[template.coordination]\ngroup = \"api\"\nservice = \"api\"\njitter = \"10ms\"\n",
            fx.path("out/app.conf").display(),
            consul.url(),
            during.display(),
            during.display()
        ),
    );
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_for("terad to wait for api-2", LIMIT, || {
        let log = daemon.log();
        log.contains("waiting: other instances of the service are unavailable")
            && log.contains("api-2 on vm2 (critical)")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !fx.path("out/app.conf").exists(),
        "nothing applied while api-2 is critical:\n{}",
        daemon.log()
    );

    api_2("passing");
    wait_content(&fx, &daemon, "the change once api-2 passes", "v=1\n");
    let reloads = |n: usize| {
        wait_for("the reload command", LIMIT, || {
            std::fs::read_to_string(&during).is_ok_and(|seen| seen.lines().count() >= n)
        });
        std::fs::read_to_string(&during).unwrap()
    };
    let seen = reloads(1);
    assert!(
        seen.contains("_service_maintenance:api-1") && seen.contains("terad: app"),
        "api-1 in maintenance during the reload: {seen}\n{}",
        daemon.log()
    );
    let in_maintenance = || {
        let (_, body) = consul.api("GET", "/v1/health/checks/api", "");
        body.contains("_service_maintenance")
    };
    wait_for("api-1 out of maintenance", LIMIT, || !in_maintenance());

    // With every peer passing, the next change goes through at once, drained the same way.
    consul.put("/app/v", "2");
    wait_content(&fx, &daemon, "the second change", "v=2\n");
    let seen = reloads(2);
    wait_for("api-1 out of maintenance again", LIMIT, || {
        !in_maintenance()
    });
    assert_eq!(
        seen.lines()
            .filter(|reload| reload.contains("_service_maintenance:api-1"))
            .count(),
        2,
        "one line per reload, each with api-1 in maintenance: {seen}"
    );
    assert!(daemon.stop().success());
}

/// The service coordination needs Consul, and its keys are checked at start.
#[test]
fn service_coordination_keys_are_checked_at_start() {
    let fx = fixture(
        "v={{ getv(key=\"/app/v\") }}\n",
        &["/app"],
        "\n[template.coordination]\ngroup = \"api\"\nservice = \"api\"\nmax_unavailable = 0\n",
    );
    fx.write("keys.yaml", "app:\n  v: \"1\"\n");
    let output = run(&mut fx.onetime(), LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"coordination.max_unavailable\": 0 is not at least 1"),
        "{err}"
    );

    let fx = fixture(
        "v={{ getv(key=\"/app/v\") }}\n",
        &["/app"],
        "\n[template.coordination]\ngroup = \"api\"\nservice = \"api\"\n",
    );
    let output = run(
        fx.terad()
            .args(["--onetime", "--backend", "etcd", "--node"])
            .arg(format!("http://127.0.0.1:{}", free_port())),
        LIMIT,
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("service \"api\" counts the health of its instances in Consul: it needs --backend consul, not etcd"),
        "{err}"
    );
}

/// Which instance is this terad's: with several of the service on the agent and no
/// `service_id`, terad stops at start and says what to set.
#[test]
fn several_local_instances_need_a_service_id() {
    let consul = Consul::start_dev(false);
    consul.register("api-1", "api", "127.0.0.1", 9001, "");
    consul.register("api-3", "api", "127.0.0.1", 9003, "");
    consul.put("/app/v", "1");
    let fx = fixture(
        "v={{ getv(key=\"/app/v\") }}\n",
        &["/app"],
        "\n[template.coordination]\ngroup = \"api\"\nservice = \"api\"\n",
    );
    let output = run(&mut terad(&fx, &consul, &["--watch"]), LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("resource \"app\": several instances of service \"api\" are registered on the local Consul agent (api-1, api-3): set coordination.service_id"),
        "{err}"
    );
    assert!(!fx.path("out/app.conf").exists());
}

/// A change that fails its health check is rolled back as before, the group halted, and the
/// instance leaves maintenance once the restored version passes the health check.
#[test]
fn a_rolled_back_change_leaves_maintenance_once_the_restored_version_is_healthy() {
    let consul = Consul::start_dev(false);
    consul.register("api-1", "api", "127.0.0.1", 9001, "");
    consul.put("/app/v", "1");
    let fx = fixture(
        "v={{ getv(key=\"/app/v\") }}\n",
        &["/app"],
        "health_retries = 0\n\n[template.coordination]\ngroup = \"api\"\nservice = \"api\"\njitter = \"10ms\"\n",
    );
    let dest = fx.path("out/app.conf");
    // Healthy while the file says v=1.
    let toml = fx.read("conf.d/app.toml").replace(
        "health_retries = 0\n",
        &format!(
            "health_retries = 0\nhealth_cmd = 'grep -q v=1 {}'\n",
            dest.display()
        ),
    );
    fx.resource("app.toml", &toml);
    let daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_content(&fx, &daemon, "the first version", "v=1\n");
    let in_maintenance = || {
        let (_, body) = consul.api("GET", "/v1/health/checks/api", "");
        body.contains("_service_maintenance")
    };
    wait_for("api-1 out of maintenance", LIMIT, || !in_maintenance());
    consul.put("/app/v", "2");
    wait_for("the rollback", LIMIT, || {
        daemon.log().contains("previous file restored")
    });
    assert_eq!(fx.read("out/app.conf"), "v=1\n");
    wait_for("api-1 out of maintenance after the rollback", LIMIT, || {
        daemon.log().contains("service instance out of maintenance")
            && daemon
                .log()
                .matches("service instance out of maintenance")
                .count()
                >= 2
    });
    assert!(!in_maintenance(), "{}", daemon.log());
    let (_, halt) = consul.api("GET", "/v1/kv/terad/coordination/api/halt", "");
    assert!(!halt.is_empty(), "the group is halted");
    assert!(daemon.stop().success());
}

/// A terad killed mid-change leaves its instance in maintenance, the safe state: `rollout
/// status` shows it, `rollout resume` leaves it alone while the killed terad's slot
/// still lives (a live terad could still be changing it), and clears it once the slot is gone.
#[test]
fn a_killed_terad_leaves_its_instance_in_maintenance_until_rollout_resume() {
    let consul = Consul::start_dev(false);
    consul.register("api-1", "api", "127.0.0.1", 9001, "");
    consul.put("/app/v", "1");
    let fx = Fixture::new();
    fx.template("app.tmpl", "v={{ getv(key=\"/app/v\") }}\n");
    let (reloading, release) = (fx.path("reloading"), fx.path("release"));
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nreload_cmd = 'touch {1}; while [ ! -e {2} ] && [ -e {1} ]; do sleep 0.1; done'\nreload_timeout = \"60s\"\n\n[template.coordination]\ngroup = \"api\"\nservice = \"api\"\njitter = \"10ms\"\n",
            fx.path("out/app.conf").display(),
            reloading.display(),
            release.display()
        ),
    );
    let mut daemon = Daemon::start(&mut terad(&fx, &consul, &["--watch"]), fx.path("terad.log"));
    wait_for("the reload to start", LIMIT, || reloading.exists());
    let in_maintenance = || {
        let (_, body) = consul.api("GET", "/v1/health/checks/api", "");
        body.contains("_service_maintenance:api-1")
    };
    assert!(in_maintenance(), "{}", daemon.log());
    let rollout = |args: &[&str]| {
        let output = run(
            fx.terad()
                .args(["--backend", "consul", "--node"])
                .arg(consul.address())
                .arg("rollout")
                .args(args),
            LIMIT,
        );
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    // The group's service comes from the configuration; --service names it explicitly.
    for status in [
        rollout(&["status", "api"]),
        rollout(&["status", "api", "--service", "api"]),
    ] {
        assert!(
            status.contains("api-1 on ")
                && status.contains("maintenance (in maintenance), holds a slot"),
            "{status}"
        );
    }
    let status = rollout(&["status", "api"]);
    assert!(
        status.contains("api-1 on ")
            && status.contains("maintenance (in maintenance), holds a slot"),
        "{status}"
    );

    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let resumed = rollout(&["resume", "api"]);
    assert!(!resumed.contains("out of maintenance"), "{resumed}");
    assert!(in_maintenance(), "a slot still held: left alone");

    // The killed terad's session expiring, without waiting for its TTL.
    let (_, sessions) = consul.api("GET", "/v1/session/list", "");
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&sessions).unwrap();
    for session in sessions {
        let id = session["ID"].as_str().unwrap();
        consul.api("PUT", &format!("/v1/session/destroy/{id}"), "");
    }
    let resumed = rollout(&["resume", "api"]);
    assert!(
        resumed.contains("service instance \"api-1\" out of maintenance"),
        "{resumed}"
    );
    assert!(!in_maintenance());
    std::fs::write(&release, "").unwrap();
}

/// The proof for coordination: three instances of `api`, each with a terad sidecar,
/// `max_unavailable = 1`. While one instance's check fails, the other two apply no change;
/// once it passes, each applies it in turn, and Consul's health, polled all along, never shows
/// more than one instance critical or in maintenance. Every instance ends on the new file and
/// out of maintenance.
#[test]
fn three_sidecars_take_turns_and_never_have_two_instances_unavailable() {
    let consul = Consul::start_dev(false);
    for i in 1..=3 {
        consul.register(
            &format!("api-{i}"),
            "api",
            "127.0.0.1",
            9000 + i,
            &ttl_check(&format!("a{i}"), true),
        );
    }
    consul.put("/app/v", "1");
    let members: Vec<Fixture> = (1..=3)
        .map(|i| {
            let fx = Fixture::new();
            fx.template("app.tmpl", "v={{ getv(key=\"/app/v\") }}\n");
            fx.resource(
                "app.toml",
                &format!(
                    "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nreload_cmd = 'sleep 0.5'\n\n[template.coordination]\ngroup = \"api\"\nservice = \"api\"\nservice_id = \"api-{i}\"\nmax_unavailable = 1\njitter = \"10ms\"\n",
                    fx.path("out/app.conf").display()
                ),
            );
            fx
        })
        .collect();
    let daemons: Vec<Daemon> = members
        .iter()
        .enumerate()
        .map(|(i, fx)| {
            let name = format!("sidecar-{}", i + 1);
            Daemon::start(
                &mut terad(fx, &consul, &["--watch", "--instance", &name]),
                fx.path("terad.log"),
            )
        })
        .collect();
    let logs = || {
        daemons
            .iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    };
    // wait_for, with every sidecar's log when it times out.
    let wait = |what: &str, condition: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !condition() {
            assert!(
                started.elapsed() < LIMIT,
                "timed out waiting for {what}\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let unavailable = || {
        let (_, body) = consul.api("GET", "/v1/health/service/api", "");
        let entries: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        entries
            .iter()
            .filter(|entry| {
                entry["Checks"].as_array().is_some_and(|checks| {
                    checks.iter().any(|check| {
                        check["Status"] != "passing"
                            || check["CheckID"]
                                .as_str()
                                .is_some_and(|id| id.starts_with("_service_maintenance"))
                    })
                })
            })
            .filter_map(|entry| entry["Service"]["ID"].as_str().map(str::to_owned))
            .collect::<Vec<String>>()
    };
    let all_on = |v: &str| members.iter().all(|fx| fx.read("out/app.conf") == v);
    wait("every instance on v=1", &|| all_on("v=1\n"));
    wait("no instance in maintenance", &|| unavailable().is_empty());

    // Poll Consul's health for the rest of the run.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let poller = {
        let (stop, seen) = (stop.clone(), seen.clone());
        let address = consul.address();
        std::thread::spawn(move || {
            // A plain HTTP/1.0 GET: cheap enough to sample every few milliseconds under load.
            let get = |address: &str| -> String {
                use std::io::{Read, Write};
                let Ok(mut stream) = std::net::TcpStream::connect(address) else {
                    return String::new();
                };
                let _ = write!(
                    stream,
                    "GET /v1/health/service/api HTTP/1.0\r\nHost: {address}\r\n\r\n"
                );
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                answer
                    .split_once("\r\n\r\n")
                    .map(|(_, body)| body.to_owned())
                    .unwrap_or_default()
            };
            while !stop.load(Ordering::SeqCst) {
                let body = get(&address);
                let entries: Vec<serde_json::Value> =
                    serde_json::from_str(&body).unwrap_or_default();
                let down: Vec<String> = entries
                    .iter()
                    .filter(|entry| {
                        entry["Checks"].as_array().is_some_and(|checks| {
                            checks.iter().any(|check| check["Status"] != "passing")
                        })
                    })
                    .filter_map(|entry| entry["Service"]["ID"].as_str().map(str::to_owned))
                    .collect();
                seen.lock().unwrap().push(down);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    consul.set_ttl("a3", false);
    wait("api-3 critical", &|| unavailable() == ["api-3"]);
    consul.put("/app/v", "2");
    // api-3 is already down: changing it takes nothing more away. The two others wait.
    wait("api-3 on v=2", &|| {
        members[2].read("out/app.conf") == "v=2\n"
    });
    std::thread::sleep(Duration::from_secs(2));
    for fx in &members[..2] {
        assert_eq!(
            fx.read("out/app.conf"),
            "v=1\n",
            "applied while api-3 was critical\n{}",
            logs()
        );
    }
    consul.set_ttl("a3", true);
    wait("every instance on v=2", &|| all_on("v=2\n"));
    wait("no instance in maintenance at the end", &|| {
        unavailable().is_empty()
    });
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 50, "the poller ran: {} samples", seen.len());
    let worst = seen.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        worst <= 1,
        "at most one instance unavailable at once; saw {:?}\n{}",
        seen.iter().find(|down| down.len() > 1),
        logs()
    );
    // Both of the others were drained for their change, one after the other.
    assert!(
        seen.iter().any(|down| down == &["api-1"]) && seen.iter().any(|down| down == &["api-2"]),
        "each of api-1 and api-2 was seen in maintenance ({} samples)\n{}",
        seen.len(),
        logs()
    );
    for daemon in daemons {
        assert!(daemon.stop().success());
    }
}
