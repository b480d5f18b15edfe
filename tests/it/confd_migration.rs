//! What a confd user moving a confdir meets, with terad run as `confd` against a real etcd:
//! confd's environment variables, its global prefix, its keep-stage-file, and confd's own
//! integration suite (`integration/` in confd's repository) reproduced fact for fact.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::etcd::Etcd;
use crate::support::tls::TestCa;
use crate::support::{Fixture, run, stderr};

const LIMIT: Duration = Duration::from_secs(30);

/// A link named `confd` to the terad binary, in a directory of its own.
struct ConfdBinary {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfdBinary {
    fn new() -> ConfdBinary {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confd");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_terad"), &path).unwrap();
        ConfdBinary { _dir: dir, path }
    }

    /// `confd` with none of the developer's terad, Consul, etcd or confd variables.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.path);
        for (name, _) in std::env::vars() {
            if ["TERAD_", "CONSUL_", "CONFD_", "ETCDCTL_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                command.env_remove(name);
            }
        }
        command.env_remove("RUST_LOG");
        command
    }
}

/// `confd -onetime -confdir <fx>` with the fixture's empty `confd.toml`, so that nothing of
/// the machine's /etc/confd is read.
fn onetime(confd: &ConfdBinary, fx: &Fixture) -> Command {
    let config = fx.path("confd.toml");
    if !config.exists() {
        fx.write("confd.toml", "");
    }
    let mut command = confd.command();
    command
        .args(["-onetime", "-confdir"])
        .arg(fx.root())
        .arg("-config-file")
        .arg(config);
    command
}

fn upstreams(fx: &Fixture, dest: &Path, extra: &str) {
    fx.template(
        "upstreams.tmpl",
        "{{ range gets \"/upstream/*\" }}{{ base .Key }}={{ .Value }}\n{{ end }}",
    );
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"upstreams.tmpl\"\ndest = \"{}\"\nkeys = [\"/upstream\"]\n{extra}",
            dest.display()
        ),
    );
}

/// confd reads `CONFD_CLIENT_CAKEYS`, `CONFD_CLIENT_CERT` and `CONFD_CLIENT_KEY`, and takes the
/// etcd backend's nodes from `ETCDCTL_PEERS` when none is given.
#[test]
fn confds_environment_variables_reach_a_tls_etcd() {
    let ca = TestCa::generate();
    let (ca_cert, client_cert, client_key) = (
        ca.ca_cert.clone(),
        ca.client_cert.clone(),
        ca.client_key.clone(),
    );
    let etcd = Etcd::start_with(Some(ca), &[]);
    etcd.put("/upstream/a", "10.0.0.1:80");
    let fx = Fixture::new();
    upstreams(&fx, &fx.path("out/app.conf"), "");
    let confd = ConfdBinary::new();

    let output = run(
        onetime(&confd, &fx)
            .env("ETCDCTL_PEERS", etcd.url())
            .env("CONFD_CLIENT_CAKEYS", &ca_cert)
            .env("CONFD_CLIENT_CERT", &client_cert)
            .env("CONFD_CLIENT_KEY", &client_key),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a=10.0.0.1:80\n");

    // Without the client certificate the server refuses: the variables were what made it work.
    std::fs::remove_file(fx.path("out/app.conf")).unwrap();
    let output = run(
        onetime(&confd, &fx)
            .args(["-backend-timeout", "2s"])
            .env("ETCDCTL_PEERS", etcd.url())
            .env("CONFD_CLIENT_CAKEYS", &ca_cert),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!fx.path("out/app.conf").exists());
}

/// confd's global prefix replaces a resource's own `prefix`: a confdir whose resources name a
/// prefix for development and run with `-prefix /production` reads `/production/…` only.
#[test]
fn a_global_prefix_replaces_the_resources_prefix_as_in_confd() {
    let etcd = Etcd::start();
    etcd.put("/production/upstream/a", "10.0.0.1:80");
    etcd.put("/development/upstream/a", "127.0.0.1:80");
    etcd.put("/production/development/upstream/a", "joined");
    let fx = Fixture::new();
    upstreams(&fx, &fx.path("out/app.conf"), "prefix = \"/development\"\n");
    let confd = ConfdBinary::new();

    let output = run(
        onetime(&confd, &fx).args(["-backend", "etcdv3", "-node", &etcd.url()]),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a=127.0.0.1:80\n");

    for prefix in [&["-prefix", "/production"][..], &["-prefix=production"]] {
        let output = run(
            onetime(&confd, &fx)
                .args(["-backend", "etcdv3", "-node", &etcd.url()])
                .args(prefix),
            LIMIT,
        );
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(fx.read("out/app.conf"), "a=10.0.0.1:80\n", "{prefix:?}");
    }
    // The same prefix from confd.toml.
    fx.write("confd.toml", "prefix = \"/production\"\n");
    std::fs::remove_file(fx.path("out/app.conf")).unwrap();
    let output = run(
        onetime(&confd, &fx).args(["-backend", "etcdv3", "-node", &etcd.url()]),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a=10.0.0.1:80\n");

    // terad's own name joins the two.
    let output = run(
        fx.terad()
            .args(["--onetime", "--config-file"])
            .arg(fx.path("confd.toml"))
            .args(["--backend", "etcd", "--node", &etcd.url()]),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a=joined\n");
}

// confd's own integration suite (`integration/` in confd's repository): one confdir of five
// resources, four backends loaded with the same keys, one confd command line per backend, and
// four expected files compared byte for byte (`integration/expect/check.sh`). The test below
// states the same facts in terad's test harness: the same resources and templates, the same
// keys, the same command lines (only the destinations move from /tmp/confd-*.conf into the
// test's own directory, so that the backends can run in parallel), the same expected bytes, and
// confd's exit status 0, which the suite's Makefile requires.

/// The keys every backend is loaded with (etcdv3, consul and env; the file backend has them as
/// YAML), except `/nested/…`, which only consul has.
const SUITE_KEYS: &[(&str, &str)] = &[
    ("/key", "foobar"),
    ("/database/host", "127.0.0.1"),
    ("/database/password", "p@sSw0rd"),
    ("/database/port", "3306"),
    ("/database/username", "confd"),
    ("/upstream/app1", "10.0.1.10:8080"),
    ("/upstream/app2", "10.0.1.11:8080"),
    ("/prefix/database/host", "127.0.0.1"),
    ("/prefix/database/password", "p@sSw0rd"),
    ("/prefix/database/port", "3306"),
    ("/prefix/database/username", "confd"),
    ("/prefix/upstream/app1", "10.0.1.10:8080"),
    ("/prefix/upstream/app2", "10.0.1.11:8080"),
];

const SUITE_DATABASE_KEYS: [&str; 4] = [
    "/database/host",
    "/database/password",
    "/database/port",
    "/database/username",
];

/// What `integration/expect/basic.conf` holds (for both the basic and the manykeys resource).
const EXPECT_BASIC: &str = "hostname: localhost\n[database]\nhost=127.0.0.1\n\
                            password=p@sSw0rd\nport=3306\nusername=confd\n";
/// `integration/expect/exists-test.conf`.
const EXPECT_EXISTS: &str = "value: foobar\n";

/// The nginx server block both iteration templates end with.
const SERVER_BLOCK: &str = "server {
    server_name  www.example.com;
    location / {
        proxy_pass        http://app;
        proxy_redirect    off;
        proxy_set_header  Host             $host;
        proxy_set_header  X-Real-IP        $remote_addr;
        proxy_set_header  X-Forwarded-For  $proxy_add_x_forwarded_for;
   }
}
";

/// `integration/expect/iteration.conf`.
fn expect_iteration() -> String {
    format!(
        "upstream app {{\n  server 10.0.1.10:8080;\n  server 10.0.1.11:8080;\n}}\n\n{SERVER_BLOCK}"
    )
}

/// `integration/confdir`: the five resources and four templates, destinations in `out/`.
fn suite_confdir() -> Fixture {
    let fx = Fixture::new();
    fx.template(
        "basic.conf.tmpl",
        "hostname: {{ getenv \"HOSTNAME\" }}\n[database]\nhost={{ getv \"/database/host\" }}\n\
         password={{ getv \"/database/password\" }}\nport={{ getv \"/database/port\" }}\n\
         username={{ getv \"/database/username\" }}\n",
    );
    fx.template(
        "exists-test.conf.tmpl",
        "{{ if exists \"/key\" }}value: {{ getv \"/key\" }}{{ end }}\n\
         {{- if exists \"/doesnotexist\" }}This line will not be printed value: {{ getv \"/key\" }}{{ end }}\n",
    );
    fx.template(
        "iteration.conf.tmpl",
        &format!(
            "upstream app {{\n{{{{- range gets \"/upstream/*\" }}}}\n  server {{{{ .Value }}}};\n\
             {{{{- end }}}}\n}}\n\n{SERVER_BLOCK}"
        ),
    );
    fx.template(
        "nested.conf.tmpl",
        &format!(
            "upstream app {{\n{{{{ range gets \"/nested/*\" }}}}\n  {{{{ range gets .Key }}}}\n    \
             server {{{{ .Value }}}};\n  {{{{ end }}}}\n{{{{ end }}}}\n}}\n\n{SERVER_BLOCK}"
        ),
    );
    let resource = |name: &str, src: &str, dest: &str, keys: &[&str]| {
        let keys: Vec<String> = keys.iter().map(|key| format!("  \"{key}\",")).collect();
        fx.resource(
            &format!("{name}.toml"),
            &format!(
                "[template]\nmode = \"0644\"\nsrc = \"{src}\"\ndest = \"{}\"\nkeys = [\n{}\n]\n",
                fx.path(&format!("out/{dest}")).display(),
                keys.join("\n")
            ),
        );
    };
    resource(
        "basic",
        "basic.conf.tmpl",
        "confd-basic-test.conf",
        &SUITE_DATABASE_KEYS,
    );
    resource(
        "exists",
        "exists-test.conf.tmpl",
        "confd-exists-test.conf",
        &["/key"],
    );
    resource(
        "iteration",
        "iteration.conf.tmpl",
        "confd-iteration-test.conf",
        &["/upstream"],
    );
    // The same four keys, 48 times over.
    let many: Vec<&str> = SUITE_DATABASE_KEYS.repeat(48);
    resource(
        "manykeys",
        "basic.conf.tmpl",
        "confd-manykeys-test.conf",
        &many,
    );
    resource(
        "nested",
        "nested.conf.tmpl",
        "confd-nested-test.conf",
        &["/nested"],
    );
    fx
}

/// Runs one backend's command line of the suite as `confd` in the suite's working directory and
/// checks what `integration/expect/check.sh` checks.
fn run_suite_backend(fx: &Fixture, args: &[String], env: &[(String, String)]) {
    let confd = ConfdBinary::new();
    let mut command = confd.command();
    command
        .current_dir(fx.root())
        .env("HOSTNAME", "localhost")
        .envs(env.iter().map(|(name, value)| (name, value)))
        .args(args);
    let output = run(&mut command, LIMIT);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        stderr(&output)
    );
    for (file, expected) in [
        ("confd-basic-test.conf", EXPECT_BASIC.to_owned()),
        ("confd-exists-test.conf", EXPECT_EXISTS.to_owned()),
        ("confd-iteration-test.conf", expect_iteration()),
        ("confd-manykeys-test.conf", EXPECT_BASIC.to_owned()),
    ] {
        assert_eq!(
            fx.read(&format!("out/{file}")),
            expected,
            "{file} ({args:?}):\n{}",
            stderr(&output)
        );
    }
}

fn suite_args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn confds_integration_suite_etcdv3() {
    let etcd = Etcd::start();
    for (key, value) in SUITE_KEYS {
        etcd.put(key, value);
    }
    let fx = suite_confdir();
    let node = etcd.url();
    run_suite_backend(
        &fx,
        &suite_args(&format!(
            "--onetime --log-level debug --confdir {} --backend etcdv3 --node {node} --watch",
            fx.root().display()
        )),
        &[],
    );
}

#[test]
fn confds_integration_suite_consul() {
    let consul = crate::support::consul::Consul::start_dev(false);
    for (key, value) in SUITE_KEYS {
        consul.put(key, value);
    }
    consul.put("/nested/east/app1", "10.0.1.10:8080");
    consul.put("/nested/west/app2", "10.0.1.11:8080");
    consul.put("/prefix/nested/east/app1", "10.0.1.10:8080");
    consul.put("/prefix/nested/west/app2", "10.0.1.11:8080");
    let fx = suite_confdir();
    run_suite_backend(
        &fx,
        &suite_args(&format!(
            "--onetime --log-level debug --confdir {} --backend consul --node {}",
            fx.root().display(),
            consul.address()
        )),
        &[],
    );
}

#[test]
fn confds_integration_suite_file() {
    let fx = suite_confdir();
    fx.write(
        "backends1/1.yaml",
        "key: foobar\ndatabase:\n  host: 127.0.0.1\n  password: p@sSw0rd\n  port: \"3306\"\n  \
         username: confd\n",
    );
    fx.write(
        "backends1/2.yaml",
        "upstream:\n  app1: 10.0.1.10:8080\n  app2: 10.0.1.11:8080\n",
    );
    fx.write(
        "backends2/1.yaml",
        "nested:\n  app1: 10.0.1.10:8080\n  app2: 10.0.1.11:8080\n",
    );
    fx.write(
        "backends2/2.yaml",
        "prefix:\n  database:\n    host: 127.0.0.1\n    password: p@sSw0rd\n    port: \"3306\"\n    \
         username: confd\n  upstream:\n    app1: 10.0.1.10:8080\n    app2: 10.0.1.11:8080\n",
    );
    // Relative directories, as the suite gives them.
    run_suite_backend(
        &fx,
        &suite_args(&format!(
            "--onetime --log-level debug --confdir {} --backend file --file backends1/ --file \
             backends2/ --watch",
            fx.root().display()
        )),
        &[],
    );
}

#[test]
fn confds_integration_suite_env() {
    let fx = suite_confdir();
    let env: Vec<(String, String)> = SUITE_KEYS
        .iter()
        .map(|(key, value)| {
            let name = key.trim_start_matches('/').replace('/', "_").to_uppercase();
            (name, (*value).to_owned())
        })
        .collect();
    assert!(env.iter().any(|(name, _)| name == "PREFIX_DATABASE_HOST"));
    run_suite_backend(
        &fx,
        &suite_args(&format!(
            "--onetime --log-level debug --confdir {} --interval 5 --backend env",
            fx.root().display()
        )),
        &env,
    );
}

/// A template that cannot be used (a syntax error, an unknown function) takes only its resource
/// out of a watching run: the others are served, and the broken one is named in the log, by
/// `/ready` and by `terad_resource_broken`, at start and after a configuration reload.
#[test]
fn a_broken_template_takes_only_its_resource_out_of_a_watching_run() {
    use crate::support::{free_port, http_get, wait_for};
    let etcd = Etcd::start();
    etcd.put("/upstream/a", "10.0.0.1:80");
    let fx = Fixture::new();
    upstreams(&fx, &fx.path("out/app.conf"), "");
    fx.template(
        "broken.tmpl",
        "{{ range nosuchfunc \"/upstream/*\" }}{{ end }}\n",
    );
    fx.resource(
        "broken.toml",
        &format!(
            "[template]\nsrc = \"broken.tmpl\"\ndest = \"{}\"\nkeys = [\"/upstream\"]\n",
            fx.path("out/broken.conf").display()
        ),
    );
    fx.write("confd.toml", "");
    let confd = ConfdBinary::new();
    let port = free_port();
    let daemon = watching_confd(&confd, &fx, &etcd, port);
    let limit = Duration::from_secs(30);
    wait_for("the valid resource", limit, || {
        fx.read("out/app.conf") == "a=10.0.0.1:80\n"
    });
    etcd.put("/upstream/b", "10.0.0.2:80");
    wait_for("the valid resource to follow the store", limit, || {
        fx.read("out/app.conf") == "a=10.0.0.1:80\nb=10.0.0.2:80\n"
    });
    assert!(!fx.path("out/broken.conf").exists());
    let log = daemon.log();
    assert!(
        log.lines().any(|line| line.contains("ERROR")
            && line.contains("resource=broken")
            && line.contains("nosuchfunc")
            && line.contains("its template cannot be used")),
        "{log}"
    );
    let (status, body) = http_get(port, "/ready").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("broken: its template cannot be used:") && body.contains("nosuchfunc"),
        "{body}"
    );
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("terad_resource_broken{resource=\"broken\"} 1"),
        "{metrics}"
    );

    // Fixed, and the configuration reloaded: the resource runs, nothing is broken any more.
    fx.template(
        "broken.tmpl",
        "{{ range gets \"/upstream/*\" }}{{ .Value }} {{ end }}\n",
    );
    let pid = nix::unistd::Pid::from_raw(daemon.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("the fixed resource", limit, || {
        fx.read("out/broken.conf") == "10.0.0.1:80 10.0.0.2:80 \n"
    });
    wait_for("ready", limit, || {
        http_get(port, "/ready").is_some_and(|(status, _)| status == 200)
    });
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(!metrics.contains("terad_resource_broken{"), "{metrics}");

    // Broken again while it runs: the last good template stays.
    fx.template("broken.tmpl", "{{ if }}\n");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("the last good template to be kept", limit, || {
        daemon
            .log()
            .contains("renders with its last good template until the template is fixed")
    });
    etcd.put("/upstream/c", "10.0.0.3:80");
    wait_for("the last good template to render the change", limit, || {
        fx.read("out/broken.conf") == "10.0.0.1:80 10.0.0.2:80 10.0.0.3:80 \n"
    });
    let (status, body) = http_get(port, "/ready").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("broken: its template cannot be used:"),
        "{body}"
    );
    drop(daemon);
}

/// One broken template holds back nothing else: while a running resource renders with its last
/// good template, an edit of another resource's template goes live, and a new resource starts.
#[test]
fn a_broken_template_keeps_its_last_good_one_while_other_edits_go_live() {
    use crate::support::{Daemon, free_port, http_get, wait_file, wait_for};
    let etcd = Etcd::start();
    etcd.put("/upstream/a", "10.0.0.1:80");
    let fx = Fixture::new();
    upstreams(&fx, &fx.path("out/app.conf"), "");
    fx.template("other.tmpl", "{{ getv \"/upstream/a\" }}\n");
    fx.resource(
        "other.toml",
        &format!(
            "[template]\nsrc = \"other.tmpl\"\ndest = \"{}\"\nkeys = [\"/upstream\"]\n",
            fx.path("out/other.conf").display()
        ),
    );
    let port = free_port();
    let mut command = fx.terad();
    command
        .args(["--watch", "--backend", "etcd", "--node", &etcd.url()])
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    let daemon = Daemon::start(&mut command, fx.path("terad.log"));
    let limit = Duration::from_secs(30);
    wait_for("the first renders", limit, || {
        fx.read("out/app.conf") == "a=10.0.0.1:80\n" && fx.read("out/other.conf") == "10.0.0.1:80\n"
    });
    let edit = |name: &str, body: &str| {
        let temporary = fx.path(&format!("templates/.{name}.swp"));
        std::fs::write(&temporary, body).unwrap();
        std::fs::rename(&temporary, fx.path(&format!("templates/{name}"))).unwrap();
    };

    edit(
        "upstreams.tmpl",
        "{{ range gets \"/upstream/*\" }}server {{ .Value }\n",
    );
    wait_for("the broken edit to be reported", limit, || {
        http_get(port, "/ready").is_some_and(|(status, body)| {
            status == 503 && body.contains("app: its template cannot be used:")
        })
    });
    // Another template edited, and a resource added, while the first stays broken.
    edit("other.tmpl", "other {{ getv \"/upstream/a\" }}\n");
    fx.template("new.tmpl", "new {{ getv \"/upstream/a\" }}\n");
    fx.resource(
        "new.toml",
        &format!(
            "[template]\nsrc = \"new.tmpl\"\ndest = \"{}\"\nkeys = [\"/upstream\"]\n",
            fx.path("out/new.conf").display()
        ),
    );
    std::process::Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status()
        .unwrap();
    wait_file(
        &fx,
        &daemon,
        "the other edited template",
        "out/other.conf",
        "other 10.0.0.1:80\n",
    );
    wait_file(
        &fx,
        &daemon,
        "the new resource",
        "out/new.conf",
        "new 10.0.0.1:80\n",
    );
    // The broken one renders a change with its last good template.
    etcd.put("/upstream/b", "10.0.0.2:80");
    wait_file(
        &fx,
        &daemon,
        "the last good template to render the change",
        "out/app.conf",
        "a=10.0.0.1:80
b=10.0.0.2:80
",
    );
    let log = daemon.log();
    assert!(
        log.contains("renders with its last good template until the template is fixed"),
        "{log}"
    );

    // Repaired: its new template is used and nothing is reported any more.
    edit(
        "upstreams.tmpl",
        "{{ range gets \"/upstream/*\" }}{{ .Value }} {{ end }}\n",
    );
    wait_file(
        &fx,
        &daemon,
        "the repaired template",
        "out/app.conf",
        "10.0.0.1:80 10.0.0.2:80 \n",
    );
    wait_for("ready", limit, || {
        http_get(port, "/ready").is_some_and(|(status, _)| status == 200)
    });
}

/// `confd` (terad under that name) as `confd -watch` over `etcd`, on the fixture's confdir and `confd.toml`, serving
/// `/ready` and `/metrics` on `port`.
fn watching_confd(
    confd: &ConfdBinary,
    fx: &Fixture,
    etcd: &Etcd,
    port: u16,
) -> crate::support::Daemon {
    let mut command = confd.command();
    command
        .args([
            "-watch",
            "-backend",
            "etcdv3",
            "-node",
            &etcd.url(),
            "-confdir",
        ])
        .arg(fx.root())
        .arg("-config-file")
        .arg(fx.path("confd.toml"))
        .args(["-listen", &format!("127.0.0.1:{port}")]);
    crate::support::Daemon::start(&mut command, fx.path("confd.log"))
}

/// confd reads a template at every render, so an edit goes live without a signal: terad
/// follows its templates directory in a watching run, validates an edited template before
/// using it, and keeps the last good one when an edit is broken.
#[test]
fn an_edited_template_goes_live_without_a_signal_and_a_broken_edit_keeps_the_last_good_one() {
    use crate::support::{free_port, http_get, wait_for};
    let etcd = Etcd::start();
    etcd.put("/upstream/a", "10.0.0.1:80");
    let fx = Fixture::new();
    upstreams(&fx, &fx.path("out/app.conf"), "");
    fx.write("confd.toml", "");
    let confd = ConfdBinary::new();
    let port = free_port();
    let daemon = watching_confd(&confd, &fx, &etcd, port);
    let limit = Duration::from_secs(30);
    wait_for("the first render", limit, || {
        fx.read("out/app.conf") == "a=10.0.0.1:80\n"
    });

    // An edit, written as an editor does (a new file renamed over the old).
    let edit = |body: &str| {
        let temporary = fx.path("templates/.upstreams.tmpl.swp");
        std::fs::write(&temporary, body).unwrap();
        std::fs::rename(&temporary, fx.path("templates/upstreams.tmpl")).unwrap();
    };
    edit("{{ range gets \"/upstream/*\" }}server {{ .Value }};\n{{ end }}");
    wait_for("the edited template", limit, || {
        fx.read("out/app.conf") == "server 10.0.0.1:80;\n"
    });

    // A broken edit: reported, and the last good template keeps rendering.
    edit("{{ range gets \"/upstream/*\" }}server {{ .Value }\n");
    wait_for("the broken edit to be reported", limit, || {
        http_get(port, "/ready").is_some_and(|(status, body)| {
            status == 503 && body.contains("app: its template cannot be used:")
        })
    });
    etcd.put("/upstream/b", "10.0.0.2:80");
    wait_for("the last good template to render the change", limit, || {
        fx.read("out/app.conf") == "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n"
    });
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains("terad_resource_broken{resource=\"app\"} 1"),
        "{metrics}"
    );

    // Repaired: used, and nothing is reported any more.
    edit("{{ range gets \"/upstream/*\" }}{{ .Value }} {{ end }}\n");
    wait_for("the repaired template", limit, || {
        fx.read("out/app.conf") == "10.0.0.1:80 10.0.0.2:80 \n"
    });
    wait_for("ready", limit, || {
        http_get(port, "/ready").is_some_and(|(status, _)| status == 200)
    });
    let log = daemon.log();
    assert!(log.contains("templates changed; reloading"), "{log}");
}
