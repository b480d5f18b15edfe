//! Settings: layering, precedence and validation, as an operator meets them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::cli::Cli;
use clap::Parser;

fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["terad"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn defaults_match_confd() {
    let settings = Settings::load(&cli(&["--confdir", "/nonexistent"]), no_env).unwrap();
    assert_eq!(
        settings.mode,
        Mode::Poll {
            interval: DEFAULT_INTERVAL
        }
    );
    assert_eq!(settings.backend, BackendKind::Etcd);
    assert_eq!(settings.nodes, ["http://127.0.0.1:2379"]);
    assert_eq!(settings.prefix, "");
    assert_eq!(settings.log_level, tracing::Level::INFO);
    assert_eq!(settings.backend_timeout, DEFAULT_BACKEND_TIMEOUT);
}

#[test]
fn command_line_wins_over_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("terad.toml");
    std::fs::write(
        &file,
        "backend = \"consul\"\nnodes = [\"10.0.0.1:8500\"]\nprefix = \"/file\"\nwatch = true\nlog-level = \"debug\"\n",
    )
    .unwrap();
    let from_file =
        Settings::load(&cli(&["--confdir", dir.path().to_str().unwrap()]), no_env).unwrap();
    assert_eq!(from_file.backend, BackendKind::Consul);
    assert_eq!(from_file.nodes, ["http://10.0.0.1:8500"]);
    assert_eq!(from_file.prefix, "/file");
    assert_eq!(from_file.mode, Mode::Watch { reconcile: None });
    assert_eq!(from_file.log_level, tracing::Level::DEBUG);
    assert_eq!(from_file.config_file.as_deref(), Some(file.as_path()));

    let overridden = Settings::load(
        &cli(&[
            "--confdir",
            dir.path().to_str().unwrap(),
            "--backend",
            "etcd",
            "--node",
            "https://e1:2379,e2:2379",
            "--prefix",
            "/flag",
            "--onetime",
            "--watch=false",
            "--log-level",
            "warn",
        ]),
        no_env,
    )
    .unwrap();
    assert_eq!(overridden.backend, BackendKind::Etcd);
    assert_eq!(overridden.nodes, ["https://e1:2379", "http://e2:2379"]);
    assert_eq!(overridden.prefix, "/flag");
    assert_eq!(overridden.mode, Mode::Onetime);
    assert_eq!(overridden.log_level, tracing::Level::WARN);
}

#[test]
fn a_confd_toml_loads_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("confd.toml");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "x").unwrap();
    std::fs::write(
        &file,
        format!(
            r#"backend = "etcdv3"
confdir = "{confdir}"
log-level = "debug"
interval = 60
nodes = ["127.0.0.1:2379", "http://127.0.0.2:2379"]
prefix = "/production"
scheme = "http"
watch = true
noop = false
sync-only = false
client_cert = ""
client_key = ""
client_cakeys = "{ca}"
client_insecure = false
basic_auth = false
username = "root"
password = "hunter2"
auth_token = "t0ken"
auth_type = ""
table = ""
separator = ""
app_id = ""
user_id = ""
role_id = ""
secret_id = ""
filter = ""
path = ""
file = ["/etc/keys.yaml"]
"#,
            confdir = dir.path().display(),
            ca = ca.display()
        ),
    )
    .unwrap();
    let settings = Settings::load(&cli(&["--config-file", file.to_str().unwrap()]), no_env);
    // Empty client_cert/key in confd.toml mean "not set".
    let settings = settings.unwrap();
    assert_eq!(settings.backend, BackendKind::Etcd);
    assert_eq!(settings.confdir, dir.path());
    assert_eq!(
        settings.mode,
        Mode::Watch {
            reconcile: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(
        settings.nodes,
        ["http://127.0.0.1:2379", "http://127.0.0.2:2379"]
    );
    assert_eq!(settings.auth.username.as_deref(), Some("root"));
    assert_eq!(
        settings.auth.password.as_ref().map(Secret::expose),
        Some("hunter2")
    );
    assert_eq!(settings.files, [PathBuf::from("/etc/keys.yaml")]);
    assert_eq!(settings.tls.ca.as_deref(), Some(ca.as_path()));
    assert!(
        !format!("{settings:?}").contains("hunter2"),
        "secrets never print"
    );
}

#[test]
fn every_settings_error_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let errors = Settings::load(
        &cli(&[
            "--confdir",
            dir.path().to_str().unwrap(),
            "--backend",
            "redis",
            "--onetime",
            "--watch",
            "--interval",
            "0",
            "--log-level",
            "loud",
            "--log-format",
            "xml",
            "--node",
            "ftp://x",
            "--client-cert",
            "/no/cert.pem",
            "--password",
            "p",
            "--backend-timeout",
            "forever",
        ]),
        no_env,
    )
    .unwrap_err()
    .to_string();
    for want in [
        "\"--backend\": unsupported backend \"redis\"",
        "\"--onetime\": cannot be combined with --watch",
        "\"--interval\": must be at least 1 second",
        "\"--log-level\": unknown level \"loud\"",
        "\"--log-format\": unknown format \"xml\"",
        "\"--client-cert\": file \"/no/cert.pem\" not found",
        "\"--client-cert\": a client certificate and its key go together",
        "\"--password\": a password needs a --username",
        "\"--backend-timeout\": invalid duration \"forever\"",
    ] {
        assert!(errors.contains(want), "missing {want:?} in\n{errors}");
    }
    let errors = Settings::load(&cli(&["--backend", "file", "--node", "ftp://x"]), no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("\"--file\": the file backend needs at least one --file"),
        "{errors}"
    );
}

#[test]
fn fleet_commands_refuse_a_local_backend_by_name() {
    for backend in ["file", "env"] {
        let errors = Settings::load(
            &cli(&[
                "--backend",
                backend,
                "register",
                "--key",
                "/k",
                "--value",
                "v",
            ]),
            no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            errors.contains(&format!(
                "\"--backend\": \"{backend}\" cannot hold fleet state; register and rollout need etcd or consul"
            )),
            "{errors}"
        );
        assert!(!errors.contains("--file\":"), "{errors}");
    }
}

#[test]
fn explicit_config_file_must_exist_and_parse() {
    let errors = Settings::load(&cli(&["--config-file", "/no/such/terad.toml"]), no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("/no/such/terad.toml: cannot read"),
        "{errors}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, "backend = \"file\"\nbogus = 1\n").unwrap();
    let errors = Settings::load(&cli(&["--config-file", file.to_str().unwrap()]), no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("t.toml:2:1: unknown field `bogus`"),
        "{errors}"
    );
}

#[test]
fn wait_specs_parse_and_default_max_to_four_times_min() {
    assert_eq!(
        parse_wait("100ms:1s"),
        Ok(WaitSpec {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1)
        })
    );
    assert_eq!(
        parse_wait("2s"),
        Ok(WaitSpec {
            min: Duration::from_secs(2),
            max: Duration::from_secs(8)
        })
    );
    assert!(
        parse_wait("1s:100ms")
            .unwrap_err()
            .to_string()
            .contains("MAX is shorter than MIN")
    );
    assert!(
        parse_wait("soon")
            .unwrap_err()
            .to_string()
            .contains("invalid wait \"soon\"")
    );
}

#[test]
fn signals_parse_with_or_without_sig() {
    use nix::sys::signal::Signal;
    assert_eq!(parse_signal("SIGHUP"), Ok(Signal::SIGHUP));
    assert_eq!(parse_signal("usr2"), Ok(Signal::SIGUSR2));
    assert!(parse_signal("SIGNOPE").is_err());
}

#[test]
fn consul_token_falls_back_to_consuls_own_variables() {
    let env = |name: &str| (name == "CONSUL_HTTP_TOKEN").then(|| "from-consul-env".to_owned());
    let settings = Settings::load(&cli(&["--backend", "consul"]), env).unwrap();
    assert_eq!(
        settings.auth.token.as_ref().map(Secret::expose),
        Some("from-consul-env")
    );
    let settings =
        Settings::load(&cli(&["--backend", "consul", "--auth-token", "flag"]), env).unwrap();
    assert_eq!(
        settings.auth.token.as_ref().map(Secret::expose),
        Some("flag")
    );
}

fn in_dir(dir: &Path, args: &[&str]) -> Cli {
    let mut all = vec!["--confdir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    cli(&all)
}

#[test]
fn a_confd_toml_in_the_confdir_is_read_when_there_is_no_terad_toml() {
    let dir = tempfile::tempdir().unwrap();
    let confd = dir.path().join("confd.toml");
    std::fs::write(&confd, "backend = \"file\"\nfile = [\"/k.yaml\"]\n").unwrap();
    let settings = Settings::load(&in_dir(dir.path(), &[]), no_env).unwrap();
    assert_eq!(settings.config_file.as_deref(), Some(confd.as_path()));
    assert_eq!(settings.backend, BackendKind::File);
    assert_eq!(
        settings.config_candidates,
        [dir.path().join("terad.toml"), confd.clone()]
    );

    // terad.toml, when there is one, is the configuration file.
    let terad = dir.path().join("terad.toml");
    std::fs::write(&terad, "backend = \"env\"\n").unwrap();
    let settings = Settings::load(&in_dir(dir.path(), &[]), no_env).unwrap();
    assert_eq!(settings.config_file.as_deref(), Some(terad.as_path()));
    assert_eq!(settings.backend, BackendKind::Env);
}

#[test]
fn under_the_name_confd_the_defaults_are_confds() {
    let mut confd = cli(&[]);
    confd.flavour = crate::cli::Flavour::Confd;
    let settings = Settings::load(&confd, no_env).unwrap();
    assert_eq!(settings.confdir, Path::new("/etc/confd"));
    assert_eq!(
        settings.config_candidates,
        [Path::new("/etc/confd/confd.toml")]
    );
    // confd reads /etc/confd/confd.toml wherever -confdir points.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("confd.toml"), "backend = \"file\"\n").unwrap();
    let mut confd = in_dir(dir.path(), &[]);
    confd.flavour = crate::cli::Flavour::Confd;
    let settings = Settings::load(&confd, no_env).unwrap();
    assert_eq!(settings.config_file, None);
    assert_eq!(settings.confdir, dir.path());

    let terad = Settings::load(&cli(&[]), no_env).unwrap();
    assert_eq!(terad.confdir, Path::new("/etc/terad"));
    assert_eq!(
        terad.config_candidates,
        [
            Path::new("/etc/terad/terad.toml"),
            Path::new("/etc/terad/confd.toml")
        ]
    );
}

#[test]
fn srv_discovery_is_refused_naming_the_key_that_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("confd.toml");
    std::fs::write(&file, "srv_domain = \"example.com\"\n").unwrap();
    let errors = Settings::load(&in_dir(dir.path(), &[]), no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains(&format!(
            "{}: \"srv_domain\": discovering nodes through DNS SRV records is not supported",
            file.display()
        )),
        "{errors}"
    );
    assert!(
        errors.contains("`dig +short SRV _etcd._tcp.example.com` shows them"),
        "{errors}"
    );
    assert!(!errors.contains("srv_record"), "{errors}");

    let errors = Settings::load(
        &cli(&["--srv-record", "_etcd-client._tcp.example.com"]),
        no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("\"--srv-record\": discovering nodes through DNS SRV records"),
        "{errors}"
    );
    assert!(
        errors.contains("`dig +short SRV _etcd-client._tcp.example.com`"),
        "{errors}"
    );
}

#[test]
fn a_file_filter_is_refused_for_the_file_backend_and_ignored_for_others() {
    let errors = Settings::load(
        &cli(&["--backend", "file", "--file", "/k", "--filter", "*.yaml"]),
        no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("\"--filter\": \"*.yaml\" is not supported: terad has no file filter"),
        "{errors}"
    );
    // confd's default, every file, is what terad does.
    let settings = Settings::load(
        &cli(&["--backend", "file", "--file", "/k", "--filter", "*"]),
        no_env,
    )
    .unwrap();
    assert!(settings.ignored.is_empty());
    // confd uses it for the file backend only.
    let settings = Settings::load(&cli(&["--filter", "*.yaml"]), no_env).unwrap();
    assert_eq!(settings.ignored, ["--filter"]);
}

#[test]
fn settings_of_confd_backends_terad_lacks_are_reported_as_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("terad.toml"),
        "table = \"t\"\napp_id = \"a\"\n",
    )
    .unwrap();
    let settings = Settings::load(
        &in_dir(dir.path(), &["--separator", ":", "--secret-id", "s"]),
        no_env,
    )
    .unwrap();
    assert_eq!(
        settings.ignored,
        ["--secret-id", "--separator", "table", "app_id"]
    );
}

#[test]
fn a_bad_value_that_a_higher_layer_overrides_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("terad.toml"),
        "log-level = \"loud\"\nbackend-timeout = \"forever\"\n",
    )
    .unwrap();
    let settings = Settings::load(
        &in_dir(
            dir.path(),
            &["--log-level", "debug", "--backend-timeout", "3s"],
        ),
        no_env,
    )
    .unwrap();
    assert_eq!(settings.log_level, tracing::Level::DEBUG);
    assert_eq!(settings.backend_timeout, Duration::from_secs(3));
    let errors = Settings::load(&in_dir(dir.path(), &[]), no_env)
        .unwrap_err()
        .to_string();
    assert!(errors.contains("unknown level \"loud\""), "{errors}");
}

#[test]
fn a_password_on_the_command_line_beats_any_file_and_a_file_beats_a_password_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-file\nignored\n").unwrap();
    std::fs::write(
        dir.path().join("terad.toml"),
        format!(
            "username = \"u\"\npassword = \"from-toml\"\npassword_file = \"{}\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let password = |args: &[&str]| {
        Settings::load(&in_dir(dir.path(), args), no_env)
            .unwrap()
            .auth
            .password
            .map(|p| p.expose().to_owned())
    };
    assert_eq!(password(&[]).as_deref(), Some("from-file"));
    assert_eq!(
        password(&["--password", "from-flag"]).as_deref(),
        Some("from-flag")
    );
    std::fs::write(
        dir.path().join("terad.toml"),
        "username = \"u\"\npassword = \"from-toml\"\n",
    )
    .unwrap();
    assert_eq!(password(&[]).as_deref(), Some("from-toml"));
    let secret = secret.to_str().unwrap();
    assert_eq!(
        password(&["--password-file", secret]).as_deref(),
        Some("from-file")
    );
}

#[test]
fn the_default_endpoint_says_why_it_was_used() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::load(&in_dir(dir.path(), &[]), no_env).unwrap();
    assert_eq!(settings.nodes, ["http://127.0.0.1:2379"]);
    assert_eq!(
        settings.endpoint_note,
        Some(format!(
            "the default endpoint: no --backend or --node was given and no configuration \
             file was found at {} or {}",
            dir.path().join("terad.toml").display(),
            dir.path().join("confd.toml").display()
        ))
    );
    let settings = Settings::load(&in_dir(dir.path(), &["--backend", "consul"]), no_env).unwrap();
    assert!(
        settings
            .endpoint_note
            .unwrap()
            .starts_with("the default endpoint: no --node was given"),
    );
    std::fs::write(dir.path().join("confd.toml"), "prefix = \"/p\"\n").unwrap();
    let settings = Settings::load(&in_dir(dir.path(), &[]), no_env).unwrap();
    assert_eq!(
        settings.endpoint_note,
        Some(format!(
            "the default endpoint: neither the command line nor {} sets `backend` or `nodes`",
            dir.path().join("confd.toml").display()
        ))
    );
    let settings =
        Settings::load(&in_dir(dir.path(), &["--node", "10.0.0.1:2379"]), no_env).unwrap();
    assert_eq!(settings.endpoint_note, None);
}

/// `cli(args)` run under the name `confd`, with `dir` as its confdir and `dir/confd.toml` as
/// its configuration file.
fn as_confd(dir: &Path, args: &[&str]) -> Cli {
    let config = dir.join("confd.toml");
    let mut all = vec![
        "--confdir",
        dir.to_str().unwrap(),
        "--config-file",
        config.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let mut cli = cli(&all);
    cli.flavour = crate::cli::Flavour::Confd;
    cli
}

#[test]
fn as_confd_onetime_with_watch_runs_once_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("confd.toml"), "").unwrap();
    let settings =
        Settings::load(&as_confd(dir.path(), &["--onetime", "--watch"]), no_env).unwrap();
    assert_eq!(settings.mode, Mode::Onetime);
    assert_eq!(settings.warnings, [Warning::OnetimeOverWatch]);
    // Also when the file asks for the watch.
    std::fs::write(dir.path().join("confd.toml"), "watch = true\n").unwrap();
    let settings = Settings::load(&as_confd(dir.path(), &["--onetime"]), no_env).unwrap();
    assert_eq!(settings.mode, Mode::Onetime);
    assert!(settings.warnings.contains(&Warning::OnetimeOverWatch));
    // terad's own name refuses it.
    assert!(Settings::load(&cli(&["--onetime", "--watch"]), no_env).is_err());
}

#[test]
fn as_confd_each_setting_the_command_line_overrides_in_the_file_is_warned_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("confd.toml");
    std::fs::write(
        &file,
        "noop = false\ninterval = 60\nsync-only = true\nlog-level = \"info\"\nnodes = [\"a:2379\"]\nprefix = \"/same\"\n",
    )
    .unwrap();
    let args = [
        "-noop",
        "-interval",
        "5",
        "-sync-only=false",
        "-log-level",
        "debug",
        "-node",
        "b:2379",
        "-prefix",
        "/same",
    ];
    let mut cli = crate::cli::try_parse_from(
        [
            "confd",
            "-confdir",
            dir.path().to_str().unwrap(),
            "-config-file",
        ]
        .into_iter()
        .chain([file.to_str().unwrap()])
        .chain(args),
    )
    .unwrap();
    let settings = Settings::load(&cli, no_env).unwrap();
    // The command line wins.
    assert!(settings.noop);
    assert_eq!(
        settings.mode,
        Mode::Poll {
            interval: Duration::from_secs(5)
        }
    );
    assert_eq!(settings.nodes, ["http://b:2379"]);
    let warned: Vec<(String, &str)> = settings
        .warnings
        .iter()
        .map(|warning| match warning {
            Warning::FileOverridden { flag, key, file: f } => {
                assert_eq!(f, &file);
                (flag.clone(), *key)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        warned,
        [
            ("--interval".to_owned(), "interval"),
            ("--node".to_owned(), "nodes"),
            ("--noop".to_owned(), "noop"),
            ("--sync-only".to_owned(), "sync_only"),
            ("--log-level".to_owned(), "log_level"),
        ]
    );
    assert_eq!(
        settings.warnings[0].to_string(),
        format!(
            "--interval on the command line overrides \"interval\" in {}: the command line wins, \
             where confd let the file win",
            file.display()
        )
    );
    // terad's own name: its documented precedence, no warning.
    cli.flavour = crate::cli::Flavour::Terad;
    assert!(Settings::load(&cli, no_env).unwrap().warnings.is_empty());
}

#[test]
fn as_confd_confds_environment_variables_are_read_below_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pem = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, "").unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (ca, cert, key, file_ca) = (pem("ca.pem"), pem("c.pem"), pem("k.pem"), pem("f.pem"));
    std::fs::write(
        dir.path().join("confd.toml"),
        format!("client_cakeys = \"{file_ca}\"\n"),
    )
    .unwrap();
    let env = |name: &str| match name {
        "CONFD_CLIENT_CAKEYS" => Some(ca.clone()),
        "CONFD_CLIENT_CERT" => Some(cert.clone()),
        "CONFD_CLIENT_KEY" => Some(key.clone()),
        "ETCDCTL_PEERS" => Some("http://p1:2379,http://p2:2379".to_owned()),
        _ => None,
    };
    let settings = Settings::load(&as_confd(dir.path(), &[]), env).unwrap();
    // The file wins over CONFD_CLIENT_CAKEYS, as in confd.
    assert_eq!(settings.tls.ca.as_deref(), Some(Path::new(&file_ca)));
    assert_eq!(settings.tls.cert.as_deref(), Some(Path::new(&cert)));
    assert_eq!(settings.tls.key.as_deref(), Some(Path::new(&key)));
    assert_eq!(settings.nodes, ["http://p1:2379", "http://p2:2379"]);
    // ETCDCTL_PEERS is the etcd backend's only, and only when no node is given.
    let settings =
        Settings::load(&as_confd(dir.path(), &["--node", "http://n:2379"]), env).unwrap();
    assert_eq!(settings.nodes, ["http://n:2379"]);
    let settings = Settings::load(&as_confd(dir.path(), &["--backend", "etcdv3"]), env).unwrap();
    assert_eq!(settings.nodes, ["https://127.0.0.1:2379"]);
    // terad's own name reads none of them.
    let mut terad = as_confd(dir.path(), &[]);
    terad.flavour = crate::cli::Flavour::Terad;
    let settings = Settings::load(&terad, env).unwrap();
    assert_eq!(settings.tls.cert, None);
    assert_eq!(settings.nodes, ["https://127.0.0.1:2379"]);
}

#[test]
fn as_confd_an_unknown_key_in_confd_toml_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("confd.toml"),
        "backend = \"env\"\nlog_levle = \"debug\"\n",
    )
    .unwrap();
    let settings = Settings::load(&as_confd(dir.path(), &[]), no_env).unwrap();
    assert_eq!(settings.backend, BackendKind::Env);
    let [
        Warning::UnknownKey {
            key,
            line,
            suggestion,
            valid,
            ..
        },
    ] = settings.warnings.as_slice()
    else {
        panic!("{:?}", settings.warnings);
    };
    assert_eq!((key.as_str(), *line), ("log_levle", 2));
    assert_eq!(suggestion.as_deref(), Some("log-level"));
    assert!(valid.contains(&"log-level") && valid.contains(&"sync-only"));
    let mut terad = as_confd(dir.path(), &[]);
    terad.flavour = crate::cli::Flavour::Terad;
    let errors = Settings::load(&terad, no_env).unwrap_err().to_string();
    assert!(errors.contains("unknown field `log_levle`"), "{errors}");
}

#[test]
fn as_confd_a_config_file_that_does_not_exist_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let cli = as_confd(dir.path(), &[]);
    let settings = Settings::load(&cli, no_env).unwrap();
    assert_eq!(settings.config_file, None);
    assert_eq!(settings.config_candidates, [dir.path().join("confd.toml")]);
    let mut terad = cli;
    terad.flavour = crate::cli::Flavour::Terad;
    let errors = Settings::load(&terad, no_env).unwrap_err().to_string();
    assert!(errors.contains("cannot read"), "{errors}");
}
