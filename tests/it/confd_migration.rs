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
