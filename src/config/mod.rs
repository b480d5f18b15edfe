//! Configuration: the command line, the environment and the configuration file layered into
//! validated [`Settings`]; the template resources of `conf.d`; the templates they use.
//!
//! Precedence is command line > `TERAD_*` environment variable > configuration file > default
//! (clap resolves the first two; this module adds the file and the defaults). The file may be a
//! `terad.toml` or an existing `confd.toml`, which loads unchanged.

pub mod coordination;
mod error;
mod file;
pub mod resource;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors, line_and_column};
pub use resource::{Resource, load_resources, parse_mode};

use crate::cli::Cli;
use crate::template::Templates;
use file::RawConfigFile;

/// Where terad looks for `conf.d/`, `templates/` and `terad.toml` unless told otherwise.
pub const DEFAULT_CONFDIR: &str = "/etc/terad";
/// confd's polling interval when neither `--onetime` nor `--watch` is given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);
/// How long `--onetime` retries an unreachable backend.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a Consul blocking query waits unless told otherwise (Consul's own default).
pub const DEFAULT_CONSUL_WAIT: Duration = Duration::from_secs(300);

/// How terad runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Render everything once and exit.
    Onetime,
    /// Re-list the backend every `interval`.
    Poll { interval: Duration },
    /// Follow changes; with `reconcile`, also re-list periodically.
    Watch { reconcile: Option<Duration> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Etcd,
    Consul,
    File,
    Env,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Etcd => "etcd",
            BackendKind::Consul => "consul",
            BackendKind::File => "file",
            BackendKind::Env => "env",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret (password, token) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it to the backend.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// TLS to the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Skip certificate verification (explicit opt-in, logged as a warning).
    pub insecure: bool,
}

/// Quiescence before a render: a change arms `min`, each further change re-arms it, and `max`
/// caps the total delay since the first change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitSpec {
    pub min: Duration,
    pub max: Duration,
}

/// Parses `MIN[:MAX]` (`"100ms:1s"`, `"2s"`); MAX defaults to 4×MIN, as in consul-template.
pub fn parse_wait(text: &str) -> Result<WaitSpec, String> {
    let parse = |part: &str| {
        humantime::parse_duration(part.trim())
            .map_err(|e| format!("invalid wait {text:?}: {e} (write MIN[:MAX], e.g. \"100ms:1s\")"))
    };
    let (min, max) = match text.split_once(':') {
        Some((min, max)) => (parse(min)?, parse(max)?),
        None => {
            let min = parse(text)?;
            (min, min * 4)
        }
    };
    if max < min {
        return Err(format!("invalid wait {text:?}: MAX is shorter than MIN"));
    }
    Ok(WaitSpec { min, max })
}

/// `--exec`: a supervised service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSettings {
    pub command: String,
    /// Sent when the service's files change; `None` restarts it instead.
    pub reload_signal: Option<nix::sys::signal::Signal>,
    pub kill_timeout: Duration,
    /// Exit with the service instead of restarting it.
    pub exit_with_child: bool,
}

/// Parses a signal name: `SIGHUP`, `HUP` or `hup`.
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal, String> {
    let upper = text.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse()
        .map_err(|_| format!("unknown signal {text:?}; use a name such as SIGHUP or SIGUSR2"))
}

/// Consul's read consistency (`?stale`, `?consistent`, or neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    #[default]
    Default,
    Stale,
    Consistent,
}

/// Consul-only settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulSettings {
    /// How long a blocking query waits.
    pub wait: Duration,
    pub consistency: Consistency,
    pub datacenter: Option<String>,
}

/// Credentials for the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthSettings {
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub basic_auth: bool,
    pub token: Option<Secret>,
}

/// The validated global settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub backend: BackendKind,
    /// Backend endpoints as URLs (`scheme://host:port`).
    pub nodes: Vec<String>,
    /// Files and directories of the file backend.
    pub files: Vec<PathBuf>,
    pub confdir: PathBuf,
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Global key prefix, joined in front of every resource's prefix.
    pub prefix: String,
    pub noop: bool,
    pub sync_only: bool,
    pub keep_stage_file: bool,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
    pub tls: TlsSettings,
    pub auth: AuthSettings,
    pub backend_timeout: Duration,
    pub consul: ConsulSettings,
    /// Global quiescence; a resource's own `wait` wins.
    pub wait: Option<WaitSpec>,
    /// Address of the health and metrics endpoint.
    pub listen: Option<std::net::SocketAddr>,
    /// How long the backend may be unreachable before /ready turns false.
    pub ready_timeout: Duration,
    pub watch_config: bool,
    /// How long an in-flight write, check or reload may take to finish at shutdown.
    pub shutdown_timeout: Duration,
    pub exec: Option<ExecSettings>,
    /// Settings from a confd.toml that terad accepts but does not use, for a warning.
    pub ignored: Vec<String>,
    /// This instance's name in coordination slots and halt markers.
    pub instance: String,
    /// The coordination of resources that have no `[template.coordination]` of their own.
    pub coordination: Option<coordination::Coordination>,
}

impl Settings {
    pub fn conf_d(&self) -> PathBuf {
        self.confdir.join("conf.d")
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.confdir.join("templates")
    }

    /// Whether `other` talks to the same backend in the same way, so a configuration reload can
    /// keep the live store and the watch.
    pub fn same_backend(&self, other: &Settings) -> bool {
        self.backend == other.backend
            && self.nodes == other.nodes
            && self.files == other.files
            && self.prefix == other.prefix
            && self.tls == other.tls
            && self.auth == other.auth
            && self.consul == other.consul
            && self.mode == other.mode
    }
}

/// Everything a run needs, loaded and checked.
#[derive(Debug)]
pub struct Config {
    pub settings: Settings,
    pub resources: Vec<Resource>,
    pub templates: Templates,
}

/// Loads settings, resources and templates, reporting every problem at once.
pub fn load(cli: &Cli) -> Result<Config, ConfigErrors> {
    let settings = Settings::load(cli, |name| std::env::var(name).ok())?;
    let (mut resources, mut errors) = load_resources(
        &settings.conf_d(),
        &settings.templates_dir(),
        &settings.prefix,
    );
    for resource in &mut resources {
        if resource.coordination.is_none() {
            resource.coordination = settings.coordination.clone();
        }
        if resource.coordination.is_some()
            && matches!(settings.backend, BackendKind::File | BackendKind::Env)
        {
            errors.push(
                ConfigError::in_file(
                    &resource.file,
                    "needs a shared store (etcd or consul) to take turns through".to_owned(),
                )
                .with_key("coordination"),
            );
        }
    }
    let templates = match Templates::load(
        &settings.templates_dir(),
        resources.iter().map(|r| &r.template),
    ) {
        Ok(templates) => Some(templates),
        Err(template_errors) => {
            errors.extend(template_errors);
            None
        }
    };
    match templates {
        Some(templates) if errors.is_empty() => Ok(Config {
            settings,
            resources,
            templates,
        }),
        _ => Err(errors),
    }
}

impl Settings {
    /// Layers the command line (which already holds the `TERAD_*` variables) over the
    /// configuration file and the defaults. `env` reads the few variables of other tools terad
    /// honours (`CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE`).
    pub fn load(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let confdir = cli
            .confdir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFDIR));

        // An explicit --config-file must exist; the default one is optional.
        let (config_file, raw) = match &cli.config_file {
            Some(path) => match RawConfigFile::read(path) {
                Ok(raw) => (Some(path.clone()), raw),
                Err(error) => {
                    errors.push(error);
                    (Some(path.clone()), RawConfigFile::default())
                }
            },
            None => {
                let default = confdir.join("terad.toml");
                if default.is_file() {
                    match RawConfigFile::read(&default) {
                        Ok(raw) => (Some(default), raw),
                        Err(error) => {
                            errors.push(error);
                            (Some(default), RawConfigFile::default())
                        }
                    }
                } else {
                    (None, RawConfigFile::default())
                }
            }
        };
        let file_error = |key: &str, message: String| match &config_file {
            Some(path) => ConfigError::in_file(path, message).with_key(key),
            None => ConfigError::option(key, message),
        };
        // The confdir given in a config file applies when the command line has none.
        let confdir = match (&cli.confdir, &raw.confdir) {
            (None, Some(dir)) => dir.clone(),
            _ => confdir,
        };

        let backend_name = cli
            .backend
            .clone()
            .or(raw.backend.clone())
            .unwrap_or_else(|| "etcd".to_owned());
        let backend = match backend_name.as_str() {
            "etcd" | "etcdv3" => Some(BackendKind::Etcd),
            "consul" => Some(BackendKind::Consul),
            "file" => Some(BackendKind::File),
            "env" => Some(BackendKind::Env),
            other => {
                errors.push(ConfigError::option(
                    "--backend",
                    format!(
                        "unsupported backend {other:?}; terad supports etcd, consul, file and env"
                    ),
                ));
                None
            }
        };
        // `register` and `rollout` publish to the fleet through the store; a local backend would
        // only fail later with an unrelated complaint (a missing --file).
        let fleet_command = cli.command.is_some();
        if fleet_command && matches!(backend, Some(BackendKind::File | BackendKind::Env)) {
            errors.push(ConfigError::option(
                "--backend",
                format!(
                    "{backend_name:?} cannot hold fleet state; register and rollout need etcd or consul"
                ),
            ));
        }

        let onetime = cli.onetime.or(raw.onetime).unwrap_or(false);
        let watch = cli.watch.or(raw.watch).unwrap_or(false);
        // An interval from the file does not turn a command-line --onetime into a poll loop.
        let interval = cli.interval.or(raw.interval);
        if interval == Some(0) {
            errors.push(ConfigError::option(
                "--interval",
                "must be at least 1 second",
            ));
        }
        let interval = interval.filter(|secs| *secs > 0).map(Duration::from_secs);
        let mode = match (onetime, watch) {
            (true, true) => {
                errors.push(ConfigError::option(
                    "--onetime",
                    "cannot be combined with --watch; choose one",
                ));
                Mode::Onetime
            }
            (true, false) => Mode::Onetime,
            (false, true) => Mode::Watch {
                reconcile: interval,
            },
            (false, false) => Mode::Poll {
                interval: interval.unwrap_or(DEFAULT_INTERVAL),
            },
        };

        // With TLS material configured, `host:port` nodes mean https.
        let tls_configured = cli.client_ca_keys.is_some()
            || cli.client_cert.is_some()
            || raw.client_cakeys.is_some()
            || raw.client_cert.is_some();
        let scheme = cli
            .scheme
            .clone()
            .or(raw.scheme.clone())
            .unwrap_or_else(|| if tls_configured { "https" } else { "http" }.to_owned());
        if scheme != "http" && scheme != "https" {
            errors.push(file_error(
                "scheme",
                format!("unsupported scheme {scheme:?}; use http or https"),
            ));
        }
        let raw_nodes = if cli.nodes.is_empty() {
            raw.nodes.clone().unwrap_or_default()
        } else {
            cli.nodes.clone()
        };
        let nodes = match backend {
            Some(BackendKind::Etcd) if raw_nodes.is_empty() => {
                vec![format!("{scheme}://127.0.0.1:2379")]
            }
            Some(BackendKind::Consul) if raw_nodes.is_empty() => {
                vec![format!("{scheme}://127.0.0.1:8500")]
            }
            _ => raw_nodes
                .iter()
                .filter_map(|node| match normalize_node(node, &scheme) {
                    Ok(url) => Some(url),
                    Err(message) => {
                        errors.push(ConfigError::option("--node", message));
                        None
                    }
                })
                .collect(),
        };

        let files = if cli.files.is_empty() {
            raw.file.clone().map(|f| f.into_vec()).unwrap_or_default()
        } else {
            cli.files.clone()
        };
        if backend == Some(BackendKind::File) && files.is_empty() && !fleet_command {
            errors.push(ConfigError::option(
                "--file",
                "the file backend needs at least one --file",
            ));
        }

        let log_level_text = cli
            .log_level
            .clone()
            .or(raw.log_level.clone())
            .unwrap_or_else(|| "info".to_owned());
        let log_level = match log_level_text.to_ascii_lowercase().as_str() {
            "trace" => tracing::Level::TRACE,
            "debug" => tracing::Level::DEBUG,
            "info" => tracing::Level::INFO,
            "warn" | "warning" => tracing::Level::WARN,
            // confd's panic and fatal levels only ever log errors.
            "error" | "panic" | "fatal" => tracing::Level::ERROR,
            other => {
                errors.push(ConfigError::option(
                    "--log-level",
                    format!("unknown level {other:?}; use trace, debug, info, warn or error"),
                ));
                tracing::Level::INFO
            }
        };
        let log_format = match cli
            .log_format
            .clone()
            .or(raw.log_format.clone())
            .unwrap_or_else(|| "text".to_owned())
            .as_str()
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                errors.push(ConfigError::option(
                    "--log-format",
                    format!("unknown format {other:?}; use text or json"),
                ));
                LogFormat::Text
            }
        };

        let tls = TlsSettings {
            ca: cli.client_ca_keys.clone().or(raw.client_cakeys.clone()),
            cert: cli.client_cert.clone().or(raw.client_cert.clone()),
            key: cli.client_key.clone().or(raw.client_key.clone()),
            insecure: cli.client_insecure.or(raw.client_insecure).unwrap_or(false),
        };
        for (key, path) in [
            ("--client-ca-keys", &tls.ca),
            ("--client-cert", &tls.cert),
            ("--client-key", &tls.key),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                errors.push(ConfigError::option(
                    key,
                    format!("file {:?} not found", path.display().to_string()),
                ));
            }
        }
        if tls.cert.is_some() != tls.key.is_some() {
            errors.push(ConfigError::option(
                "--client-cert",
                "a client certificate and its key go together; set both or neither",
            ));
        }
        if tls.insecure && tls.ca.is_some() {
            errors.push(ConfigError::option(
                "--client-insecure",
                "turns off the verification --client-ca-keys asks for; set one or the other",
            ));
        }

        let password = match (
            cli.password.clone(),
            cli.password_file.clone().or(raw.password_file.clone()),
            raw.password.clone(),
        ) {
            (Some(password), _, _) => Some(Secret::new(password)),
            (None, Some(path), _) => read_secret_file(&path, "--password-file", &mut errors),
            (None, None, password) => password.map(Secret::new),
        };
        let token = match (
            cli.auth_token.clone(),
            cli.auth_token_file.clone().or(raw.auth_token_file.clone()),
            raw.auth_token.clone(),
        ) {
            (Some(token), _, _) => Some(Secret::new(token)),
            (None, Some(path), _) => read_secret_file(&path, "--auth-token-file", &mut errors),
            (None, None, Some(token)) => Some(Secret::new(token)),
            // Consul's own variables, as every Consul tool reads them.
            (None, None, None) => match (env("CONSUL_HTTP_TOKEN"), env("CONSUL_HTTP_TOKEN_FILE")) {
                (Some(token), _) if !token.is_empty() => Some(Secret::new(token)),
                (_, Some(path)) if !path.is_empty() => {
                    read_secret_file(Path::new(&path), "CONSUL_HTTP_TOKEN_FILE", &mut errors)
                }
                _ => None,
            },
        };
        let auth = AuthSettings {
            username: cli.username.clone().or(raw.username.clone()),
            password,
            basic_auth: cli.basic_auth.or(raw.basic_auth).unwrap_or(false),
            token,
        };
        if auth.password.is_some() && auth.username.is_none() {
            errors.push(ConfigError::option(
                "--password",
                "a password needs a --username",
            ));
        }

        let mut duration = |option: &str, text: Option<String>, default: Duration| match text {
            None => default,
            Some(text) => match humantime::parse_duration(text.trim()) {
                Ok(duration) if !duration.is_zero() => duration,
                Ok(_) => {
                    errors.push(ConfigError::option(option, "must be longer than zero"));
                    default
                }
                Err(e) => {
                    errors.push(ConfigError::option(
                        option,
                        format!("invalid duration {text:?}: {e}"),
                    ));
                    default
                }
            },
        };
        let backend_timeout = duration(
            "--backend-timeout",
            cli.backend_timeout.clone().or(raw.backend_timeout.clone()),
            DEFAULT_BACKEND_TIMEOUT,
        );
        let consul_wait = duration(
            "--consul-wait",
            cli.consul_wait.clone().or(raw.consul_wait.clone()),
            DEFAULT_CONSUL_WAIT,
        );
        let ready_timeout = duration(
            "--ready-timeout",
            cli.ready_timeout.clone().or(raw.ready_timeout.clone()),
            Duration::from_secs(30),
        );
        let shutdown_timeout = duration(
            "--shutdown-timeout",
            cli.shutdown_timeout
                .clone()
                .or(raw.shutdown_timeout.clone()),
            Duration::from_secs(30),
        );
        let exec_kill_timeout = duration(
            "--exec-kill-timeout",
            cli.exec_kill_timeout
                .clone()
                .or(raw.exec_kill_timeout.clone()),
            Duration::from_secs(10),
        );
        let consistency = match cli
            .consistency
            .clone()
            .or(raw.consistency.clone())
            .as_deref()
        {
            None | Some("default") => Consistency::Default,
            Some("stale") => Consistency::Stale,
            Some("consistent") => Consistency::Consistent,
            Some(other) => {
                errors.push(ConfigError::option(
                    "--consistency",
                    format!("unknown mode {other:?}; use default, stale or consistent"),
                ));
                Consistency::Default
            }
        };

        let wait = match cli.wait.clone().or(raw.wait.clone()) {
            None => None,
            Some(text) => match parse_wait(&text) {
                Ok(wait) => Some(wait),
                Err(message) => {
                    errors.push(ConfigError::option("--wait", message));
                    None
                }
            },
        };
        let listen = match cli.listen.clone().or(raw.listen.clone()) {
            None => None,
            Some(text) => match text.parse::<std::net::SocketAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    errors.push(ConfigError::option(
                        "--listen",
                        format!("invalid address {text:?}; write IP:PORT, e.g. 127.0.0.1:9100"),
                    ));
                    None
                }
            },
        };
        let exec = match cli.exec.clone().or(raw.exec.clone()) {
            None => None,
            Some(command) => {
                let reload_signal = match cli
                    .exec_reload_signal
                    .clone()
                    .or(raw.exec_reload_signal.clone())
                {
                    None => None,
                    Some(text) => match parse_signal(&text) {
                        Ok(signal) => Some(signal),
                        Err(message) => {
                            errors.push(ConfigError::option("--exec-reload-signal", message));
                            None
                        }
                    },
                };
                if mode == Mode::Onetime {
                    errors.push(ConfigError::option(
                        "--exec",
                        "supervises a service, which a one-shot run does not do; use --watch or --interval",
                    ));
                }
                Some(ExecSettings {
                    command,
                    reload_signal,
                    kill_timeout: exec_kill_timeout,
                    exit_with_child: cli
                        .exec_exit_with_child
                        .or(raw.exec_exit_with_child)
                        .unwrap_or(false),
                })
            }
        };

        if raw.srv_domain.is_some() || raw.srv_record.is_some() {
            errors.push(file_error(
                "srv_record",
                "discovering nodes through DNS SRV records is not supported; list them in `nodes`"
                    .to_owned(),
            ));
        }

        let coordination = raw.coordination.as_ref().and_then(|table| {
            table.validate("coordination.", &mut |key, _span, message| {
                errors.push(file_error(key, message));
            })
        });
        if coordination.is_some() && matches!(backend, Some(BackendKind::File | BackendKind::Env)) {
            errors.push(file_error(
                "coordination",
                format!("needs a shared store (etcd or consul), not the {backend_name} backend"),
            ));
        }
        let instance = cli
            .instance
            .clone()
            .or(raw.instance.clone())
            .unwrap_or_else(default_instance);

        let prefix = cli
            .prefix
            .clone()
            .or(raw.prefix.clone())
            .unwrap_or_default();
        let settings = Settings {
            mode,
            backend: backend.unwrap_or(BackendKind::Etcd),
            nodes,
            files,
            confdir,
            config_file,
            prefix,
            noop: cli.noop.or(raw.noop).unwrap_or(false),
            sync_only: cli.sync_only.or(raw.sync_only).unwrap_or(false),
            keep_stage_file: cli.keep_stage_file.or(raw.keep_stage_file).unwrap_or(false),
            log_level,
            log_format,
            tls,
            auth,
            backend_timeout,
            consul: ConsulSettings {
                wait: consul_wait,
                consistency,
                datacenter: cli.datacenter.clone().or(raw.datacenter.clone()),
            },
            wait,
            listen,
            ready_timeout,
            watch_config: cli.watch_config.or(raw.watch_config).unwrap_or(false),
            shutdown_timeout,
            exec,
            ignored: raw.ignored_keys(),
            instance,
            coordination,
        };
        errors.into_result(settings)
    }
}

/// `<hostname>/<pid>`: unique per process on a host, readable in logs and markers.
fn default_instance() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}/{}", std::process::id())
}

/// `host:port` → `scheme://host:port`; URLs pass through after a sanity check.
fn normalize_node(node: &str, scheme: &str) -> Result<String, String> {
    let node = node.trim().trim_end_matches('/');
    let shown = crate::redact::url(node);
    if node.is_empty() {
        return Err("an empty node".to_owned());
    }
    let url = if node.contains("://") {
        node.to_owned()
    } else {
        format!("{scheme}://{node}")
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("node {shown:?} must be an http:// or https:// URL or host:port"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(format!("node {shown:?} must be host:port, without a path"));
    }
    Ok(url)
}

fn read_secret_file(path: &Path, option: &str, errors: &mut ConfigErrors) -> Option<Secret> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(Secret::new(text.lines().next().unwrap_or_default().trim())),
        Err(error) => {
            errors.push(ConfigError::option(
                option,
                format!("cannot read {:?}: {error}", path.display().to_string()),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
                .contains("MAX is shorter than MIN")
        );
        assert!(
            parse_wait("soon")
                .unwrap_err()
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
}
