//! [`Settings`]: what the command line, the environment and the configuration file decide for a
//! whole run, as validated values ([`crate::config::validate`] builds them).

use std::path::PathBuf;
use std::time::Duration;

use super::coordination;
use super::resource::EngineChoice;
use super::value::ValueError;
use crate::logging::LogFormat;

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
pub fn parse_wait(text: &str) -> Result<WaitSpec, ValueError> {
    let parse = |part: &str| {
        humantime::parse_duration(part.trim()).map_err(|source| ValueError::Wait {
            text: text.to_owned(),
            source,
        })
    };
    let (min, max) = match text.split_once(':') {
        Some((min, max)) => (parse(min)?, parse(max)?),
        None => {
            let min = parse(text)?;
            (min, min * 4)
        }
    };
    if max < min {
        return Err(ValueError::WaitOrder(text.to_owned()));
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
    /// What stops it before SIGKILL: SIGTERM (consul-template: SIGINT, or `-exec-kill-signal`).
    pub kill_signal: nix::sys::signal::Signal,
    /// The longest random delay before it is signalled or restarted for changed files
    /// (consul-template's `-exec-splay`), so that a fleet does not reload at once.
    pub splay: Duration,
    /// Exit with the service instead of restarting it.
    pub exit_with_child: bool,
}

/// Parses a signal name: `SIGHUP`, `HUP` or `hup`.
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal, ValueError> {
    let upper = text.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse()
        .map_err(|_| ValueError::Signal(text.to_owned()))
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
    /// Why `nodes` is the default endpoint, when it is: said when it cannot be reached.
    pub endpoint_note: Option<String>,
    /// Files and directories of the file backend.
    pub files: Vec<PathBuf>,
    pub confdir: PathBuf,
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Where a configuration file was looked for.
    pub config_candidates: Vec<PathBuf>,
    /// Global key prefix, joined in front of every resource's prefix.
    pub prefix: String,
    pub noop: bool,
    pub sync_only: bool,
    pub keep_stage_file: bool,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
    /// The template language of resources that do not name one.
    pub template_engine: EngineChoice,
    pub tls: TlsSettings,
    pub auth: AuthSettings,
    pub backend_timeout: Duration,
    pub consul: ConsulSettings,
    /// Global quiescence; a resource's own `wait` wins.
    pub wait: Option<WaitSpec>,
    /// The least time between two runs of one reload, when set; a resource's own wins.
    pub reload_interval: Option<Duration>,
    /// Address of the health and metrics endpoint.
    pub listen: Option<std::net::SocketAddr>,
    /// How long the backend may be unreachable before /ready turns false.
    pub ready_timeout: Duration,
    pub watch_config: bool,
    /// How long an in-flight write, check or reload may take to finish at shutdown.
    pub shutdown_timeout: Duration,
    pub exec: Option<ExecSettings>,
    /// confd settings (from a confd.toml or confd's flags) that terad accepts but does not use,
    /// for a warning.
    pub ignored: Vec<String>,
    /// What loading the settings accepted with a warning (logged at start and on reload).
    pub warnings: Vec<super::Warning>,
    /// What differs under the name terad runs under.
    pub rules: crate::cli::Rules,
    /// This instance's name in coordination slots and halt markers.
    pub instance: String,
    /// The coordination of resources that have no `[template.coordination]` of their own.
    pub coordination: Option<coordination::Coordination>,
    /// Where to write the process id while terad runs (consul-template's `-pid-file`).
    pub pid_file: Option<PathBuf>,
    /// Load the configuration and the templates, then exit (consul-template's `-parse-only`).
    pub parse_only: bool,
    /// The templates consul-template's flags and files give, made resources of by
    /// [`super::load`] instead of `conf.d`.
    pub consul_templates: Vec<super::consul_template::given::TemplateSpec>,
}

impl Settings {
    /// Logs which configuration file was read, or where none was found.
    pub fn log_origin(&self) {
        match &self.config_file {
            Some(file) => tracing::info!(
                file = %file.display(),
                confdir = %self.confdir.display(),
                "configuration file loaded"
            ),
            None => tracing::info!(
                looked_for = crate::logging::json(&self.config_candidates),
                confdir = %self.confdir.display(),
                "no configuration file; using the command line, the environment and the defaults"
            ),
        }
    }

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
