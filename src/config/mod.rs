//! Configuration: the command line, the environment and the configuration file layered into
//! validated [`Settings`]; the template resources of `conf.d`; the templates they use.
//!
//! Precedence is command line > `TERAD_*` environment variable > configuration file > other
//! tools' variables (`CONSUL_HTTP_TOKEN`) > default. clap resolves the first two into one
//! layer; [`layer`] reads the others, and [`Settings::load`] combines them once and then
//! validates the result. The file is `terad.toml` or, when there is none, an existing
//! `confd.toml`, which loads unchanged.

pub mod coordination;
mod error;
mod file;
mod layer;
pub mod resource;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors, line_and_column};
pub use resource::{Resource, load_resources, parse_mode};

use crate::cli::Cli;
use crate::template::{EngineChoice, EngineKind, Templates};
use file::RawConfigFile;
use layer::{ConfdOnly, Credential, Layer, Source};
pub use layer::{ConfigFiles, Defaults};

/// Where terad looks for `conf.d/`, `templates/` and `terad.toml` unless told otherwise.
pub const DEFAULT_CONFDIR: &str = "/etc/terad";
/// The confdir when terad runs under the name `confd`, as confd's.
pub const CONFD_CONFDIR: &str = "/etc/confd";
/// The configuration file when terad runs under the name `confd`, as confd's (wherever the
/// confdir is).
pub const CONFD_CONFIG_FILE: &str = "/etc/confd/confd.toml";
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
    /// This instance's name in coordination slots and halt markers.
    pub instance: String,
    /// The coordination of resources that have no `[template.coordination]` of their own.
    pub coordination: Option<coordination::Coordination>,
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
        resource.template.engine = resource.engine.unwrap_or(settings.template_engine);
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
        if let Some(service) = resource
            .coordination
            .as_ref()
            .and_then(|c| c.service.as_ref())
            && settings.backend != BackendKind::Consul
        {
            errors.push(
                ConfigError::in_file(
                    &resource.file,
                    format!(
                        "service {:?} counts the health of its instances in Consul: it needs --backend consul, not {}",
                        service.name,
                        settings.backend.name()
                    ),
                )
                .with_key("coordination.service"),
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
    if let Some(templates) = &templates {
        for resource in &resources {
            check_literal_lookups(resource, templates, &settings.templates_dir(), &mut errors);
        }
        // From here on a resource names the engine that renders it (`auto` is decided).
        for resource in &mut resources {
            resource.template.engine = match templates.engine_of(&resource.template) {
                EngineKind::Tera => EngineChoice::Tera,
                EngineKind::Go => EngineChoice::Go,
            };
        }
        check_service_calls(&settings, &resources, templates, &mut errors);
    }
    match templates {
        Some(templates) if errors.is_empty() => Ok(Config {
            settings,
            resources,
            templates,
        }),
        _ => Err(errors),
    }
}

/// A literal lookup outside the resource's keys (`getv(key="/other/port")` with
/// `keys = ["/proxy"]`) can never work: a configuration error at start, with file and line,
/// whether or not it has a default.
fn check_literal_lookups(
    resource: &Resource,
    templates: &Templates,
    templates_dir: &std::path::Path,
    errors: &mut ConfigErrors,
) {
    use crate::store::{Glob, KeyStore, LookupError, View};
    let empty = KeyStore::new();
    let view = View::new(&empty, &resource.prefix, &resource.keys);
    for found in templates.literal_lookups(&resource.template) {
        let lookup = &found.lookup;
        let problem = if lookup.is_pattern {
            match Glob::new(&lookup.literal) {
                Ok(glob) => view.check_pattern(&glob).err().map(|e| e.to_string()),
                Err(error) => Some(error.to_string()),
            }
        } else {
            match view.lookup(&lookup.literal) {
                Err(error @ LookupError::OutOfScope { .. }) => Some(error.to_string()),
                _ => None,
            }
        };
        if let Some(problem) = problem {
            let mut error = ConfigError::in_file(
                &templates_dir.join(&found.file),
                format!(
                    "{}: {problem} (resource {:?}, {})",
                    lookup.function,
                    resource.name,
                    resource.file.display()
                ),
            );
            error.position = Some((found.line, found.column));
            errors.push(error);
        }
    }
}

/// The catalog functions (`service()`, `services()`, `nodes()`) read Consul: with another
/// backend a template that calls one is refused at start, as is a call whose literal arguments
/// can never work (an unknown status, a misspelt argument).
fn check_service_calls(
    settings: &Settings,
    resources: &[Resource],
    templates: &Templates,
    errors: &mut ConfigErrors,
) {
    let mut reported = std::collections::BTreeSet::new();
    for resource in resources {
        for call in templates.service_calls(&resource.template) {
            let path = settings.templates_dir().join(&call.template);
            if settings.backend != BackendKind::Consul {
                errors.push(
                    ConfigError::in_file(
                        &resource.file,
                        format!(
                            "the template calls {}() at {}:{}:{}, which reads Consul's service catalog: it needs --backend consul, not {}",
                            call.function,
                            path.display(),
                            call.line,
                            call.column,
                            settings.backend.name()
                        ),
                    )
                    .with_key("src"),
                );
            } else if let Err(message) = &call.query
                && reported.insert((path.clone(), call.line, call.column))
            {
                errors.push(ConfigError {
                    file: Some(path),
                    position: Some((call.line, call.column)),
                    key: None,
                    message: message.clone(),
                });
            }
        }
    }
}

impl Settings {
    /// Reads every layer (the command line, the configuration file, other tools' variables
    /// through `env`), combines them once, higher over lower, and validates the result over the
    /// [`Defaults`] of the name terad runs under, collecting every error.
    pub fn load(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let defaults = Defaults::of(cli.flavour);
        let mut command_line = Layer::command_line(cli);
        let lookup = ConfigFileLookup::run(
            cli.config_file.as_deref(),
            command_line.confdir.as_deref().unwrap_or(&defaults.confdir),
            &defaults,
            &mut errors,
        );
        let mut file = lookup.layer;
        let confd_only = [
            (
                Source::CommandLine,
                std::mem::take(&mut command_line.confd_only),
            ),
            (
                Source::File(lookup.path.clone().unwrap_or_default()),
                std::mem::take(&mut file.confd_only),
            ),
        ];
        let combined = command_line.combine(file).combine(Layer::environment(env));
        let mut check = Validation {
            defaults: &defaults,
            config_file: lookup.path.as_deref(),
            candidates: &lookup.candidates,
            errors,
        };
        let mut settings = check.settings(combined, cli.command.is_some());
        settings.ignored = check.confd_only(confd_only, settings.backend);
        let errors = check.errors;
        settings.config_file = lookup.path;
        settings.config_candidates = lookup.candidates;
        errors.into_result(settings)
    }
}

/// Which configuration file was read, and where terad looked for one.
struct ConfigFileLookup {
    path: Option<PathBuf>,
    candidates: Vec<PathBuf>,
    layer: Layer,
}

impl ConfigFileLookup {
    /// An explicit `--config-file` must exist; otherwise the first of the flavour's candidates
    /// that exists is read (terad: `terad.toml`, then `confd.toml`, in the confdir).
    fn run(
        explicit: Option<&Path>,
        confdir: &Path,
        defaults: &Defaults,
        errors: &mut ConfigErrors,
    ) -> ConfigFileLookup {
        let candidates = match explicit {
            Some(path) => vec![path.to_owned()],
            None => defaults.config_files.candidates(confdir),
        };
        let path = match explicit {
            Some(path) => Some(path.to_owned()),
            None => candidates.iter().find(|path| path.is_file()).cloned(),
        };
        let layer = match &path {
            None => Layer::default(),
            Some(path) => match RawConfigFile::read(path) {
                Ok(raw) => raw.into_layer(),
                Err(error) => {
                    errors.push(error);
                    Layer::default()
                }
            },
        };
        ConfigFileLookup {
            path,
            candidates,
            layer,
        }
    }
}

/// Validation of the combined layer: every value parsed and checked, every problem recorded.
struct Validation<'a> {
    defaults: &'a Defaults,
    /// The configuration file, to report its own keys (`scheme`, `[coordination]`) against it.
    config_file: Option<&'a Path>,
    /// Where a configuration file was looked for.
    candidates: &'a [PathBuf],
    errors: ConfigErrors,
}

impl Validation<'_> {
    /// An error about a key that is usually set in the configuration file.
    fn file_error(&self, key: &str, message: String) -> ConfigError {
        match self.config_file {
            Some(path) => ConfigError::in_file(path, message).with_key(key),
            None => ConfigError::option(key, message),
        }
    }

    fn option_error(&mut self, option: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::option(option, message));
    }

    /// The settings, from the combined layer; `fleet_command` for `register` and `rollout`.
    fn settings(&mut self, layer: Layer, fleet_command: bool) -> Settings {
        let defaults = self.defaults;
        // Destructured, so that a setting added to the layer cannot go unvalidated.
        let Layer {
            onetime,
            watch,
            interval,
            backend,
            nodes,
            files,
            confdir,
            prefix,
            noop,
            sync_only,
            keep_stage_file,
            log_level,
            log_format,
            template_engine,
            client_cert,
            client_key,
            client_ca_keys,
            client_insecure,
            scheme,
            username,
            password,
            basic_auth,
            auth_token,
            backend_timeout,
            consul_wait,
            consistency,
            datacenter,
            wait,
            listen,
            ready_timeout,
            watch_config,
            shutdown_timeout,
            exec,
            exec_reload_signal,
            exec_kill_timeout,
            exec_exit_with_child,
            instance,
            coordination,
            confd_only: _,
        } = layer;

        let backend_given = backend.is_some();
        let backend_name = backend.unwrap_or_else(|| defaults.backend.to_owned());
        let backend = self.backend(&backend_name, fleet_command);
        let mode = self.mode(onetime, watch, interval);

        // With TLS material configured, `host:port` nodes mean https.
        let tls_configured = client_ca_keys.is_some() || client_cert.is_some();
        let scheme = scheme.unwrap_or_else(|| {
            if tls_configured {
                "https"
            } else {
                defaults.scheme
            }
            .to_owned()
        });
        if scheme != "http" && scheme != "https" {
            let error = self.file_error(
                "scheme",
                format!("unsupported scheme {scheme:?}; use http or https"),
            );
            self.errors.push(error);
        }
        let nodes = nodes.unwrap_or_default();
        let default_node = match backend {
            Some(BackendKind::Etcd) => Some(defaults.etcd_node),
            Some(BackendKind::Consul) => Some(defaults.consul_node),
            _ => None,
        };
        let endpoint_note =
            (nodes.is_empty() && default_node.is_some()).then(|| self.endpoint_note(backend_given));
        let nodes = match default_node {
            Some(node) if nodes.is_empty() => vec![format!("{scheme}://{node}")],
            _ => nodes
                .iter()
                .filter_map(|node| match normalize_node(node, &scheme) {
                    Ok(url) => Some(url),
                    Err(message) => {
                        self.option_error("--node", message);
                        None
                    }
                })
                .collect(),
        };

        let files = files.unwrap_or_default();
        if backend == Some(BackendKind::File) && files.is_empty() && !fleet_command {
            self.option_error("--file", "the file backend needs at least one --file");
        }

        let log_level = self.log_level(log_level.as_deref().unwrap_or(defaults.log_level));
        let template_engine = match EngineChoice::parse(
            template_engine
                .as_deref()
                .unwrap_or(defaults.template_engine),
        ) {
            Ok(choice) => choice,
            Err(message) => {
                self.option_error("--template-engine", message);
                EngineChoice::Auto
            }
        };
        let log_format = match log_format.as_deref().unwrap_or(defaults.log_format) {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                self.option_error(
                    "--log-format",
                    format!("unknown format {other:?}; use text or json"),
                );
                LogFormat::Text
            }
        };

        let tls = self.tls(TlsSettings {
            ca: client_ca_keys,
            cert: client_cert,
            key: client_key,
            insecure: client_insecure.unwrap_or(false),
        });
        let auth = AuthSettings {
            username,
            password: password.and_then(|password| self.secret(password)),
            basic_auth: basic_auth.unwrap_or(false),
            token: auth_token.and_then(|token| self.secret(token)),
        };
        if auth.password.is_some() && auth.username.is_none() {
            self.option_error("--password", "a password needs a --username");
        }

        let backend_timeout = self.duration(
            "--backend-timeout",
            backend_timeout,
            defaults.backend_timeout,
        );
        let consul_wait = self.duration("--consul-wait", consul_wait, defaults.consul_wait);
        let ready_timeout = self.duration("--ready-timeout", ready_timeout, defaults.ready_timeout);
        let shutdown_timeout = self.duration(
            "--shutdown-timeout",
            shutdown_timeout,
            defaults.shutdown_timeout,
        );
        let exec_kill_timeout = self.duration(
            "--exec-kill-timeout",
            exec_kill_timeout,
            defaults.exec_kill_timeout,
        );
        let consistency = match consistency.as_deref().unwrap_or(defaults.consistency) {
            "default" => Consistency::Default,
            "stale" => Consistency::Stale,
            "consistent" => Consistency::Consistent,
            other => {
                self.option_error(
                    "--consistency",
                    format!("unknown mode {other:?}; use default, stale or consistent"),
                );
                Consistency::Default
            }
        };

        let wait = wait.and_then(|text| match parse_wait(&text) {
            Ok(wait) => Some(wait),
            Err(message) => {
                self.option_error("--wait", message);
                None
            }
        });
        let listen = listen.and_then(|text| match text.parse::<std::net::SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                self.option_error(
                    "--listen",
                    format!("invalid address {text:?}; write IP:PORT, e.g. 127.0.0.1:9100"),
                );
                None
            }
        });
        let exec = exec.map(|command| {
            let reload_signal = exec_reload_signal.and_then(|text| match parse_signal(&text) {
                Ok(signal) => Some(signal),
                Err(message) => {
                    self.option_error("--exec-reload-signal", message);
                    None
                }
            });
            if mode == Mode::Onetime {
                self.option_error(
                    "--exec",
                    "supervises a service, which a one-shot run does not do; use --watch or --interval",
                );
            }
            ExecSettings {
                command,
                reload_signal,
                kill_timeout: exec_kill_timeout,
                exit_with_child: exec_exit_with_child.unwrap_or(false),
            }
        });

        let coordination = coordination.as_ref().and_then(|table| {
            let mut found = Vec::new();
            let coordination = table.validate("coordination.", &mut |key, _span, message| {
                found.push(self.file_error(key, message));
            });
            self.errors.0.extend(found);
            coordination
        });
        if coordination.is_some() && matches!(backend, Some(BackendKind::File | BackendKind::Env)) {
            let error = self.file_error(
                "coordination",
                format!("needs a shared store (etcd or consul), not the {backend_name} backend"),
            );
            self.errors.push(error);
        }

        Settings {
            mode,
            backend: backend.unwrap_or(BackendKind::Etcd),
            nodes,
            endpoint_note,
            files,
            // The confdir given in a configuration file applies when the command line has none.
            confdir: confdir.unwrap_or_else(|| defaults.confdir.clone()),
            config_file: None,
            config_candidates: Vec::new(),
            prefix: prefix.unwrap_or_default(),
            noop: noop.unwrap_or(false),
            sync_only: sync_only.unwrap_or(false),
            keep_stage_file: keep_stage_file.unwrap_or(false),
            log_level,
            log_format,
            template_engine,
            tls,
            auth,
            backend_timeout,
            consul: ConsulSettings {
                wait: consul_wait,
                consistency,
                datacenter,
            },
            wait,
            listen,
            ready_timeout,
            watch_config: watch_config.unwrap_or(false),
            shutdown_timeout,
            exec,
            ignored: Vec::new(),
            instance: instance.unwrap_or_else(default_instance),
            coordination,
        }
    }

    fn backend(&mut self, name: &str, fleet_command: bool) -> Option<BackendKind> {
        let backend = match name {
            "etcd" | "etcdv3" => Some(BackendKind::Etcd),
            "consul" => Some(BackendKind::Consul),
            "file" => Some(BackendKind::File),
            "env" => Some(BackendKind::Env),
            other => {
                self.option_error(
                    "--backend",
                    format!(
                        "unsupported backend {other:?}; terad supports etcd, consul, file and env"
                    ),
                );
                None
            }
        };
        // `register` and `rollout` publish to the fleet through the store; a local backend would
        // only fail later with an unrelated complaint (a missing --file).
        if fleet_command && matches!(backend, Some(BackendKind::File | BackendKind::Env)) {
            self.option_error(
                "--backend",
                format!(
                    "{name:?} cannot hold fleet state; register and rollout need etcd or consul"
                ),
            );
        }
        backend
    }

    fn mode(&mut self, onetime: Option<bool>, watch: Option<bool>, interval: Option<u64>) -> Mode {
        // An interval from the file does not turn a command-line --onetime into a poll loop.
        if interval == Some(0) {
            self.option_error("--interval", "must be at least 1 second");
        }
        let interval = interval.filter(|secs| *secs > 0).map(Duration::from_secs);
        match (onetime.unwrap_or(false), watch.unwrap_or(false)) {
            (true, true) => {
                self.option_error("--onetime", "cannot be combined with --watch; choose one");
                Mode::Onetime
            }
            (true, false) => Mode::Onetime,
            (false, true) => Mode::Watch {
                reconcile: interval,
            },
            (false, false) => Mode::Poll {
                interval: interval.unwrap_or(self.defaults.interval),
            },
        }
    }

    /// Why the endpoint is the default one, for the error when it cannot be reached.
    fn endpoint_note(&self, backend_given: bool) -> String {
        let (flags, keys) = if backend_given {
            ("--node", "`nodes`")
        } else {
            ("--backend or --node", "`backend` or `nodes`")
        };
        match self.config_file {
            Some(file) => format!(
                "the default endpoint: neither the command line nor {} sets {keys}",
                file.display()
            ),
            None => format!(
                "the default endpoint: no {flags} was given and no configuration file was found \
                 at {}",
                self.candidates
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        }
    }

    fn log_level(&mut self, text: &str) -> tracing::Level {
        match text.to_ascii_lowercase().as_str() {
            "trace" => tracing::Level::TRACE,
            "debug" => tracing::Level::DEBUG,
            "info" => tracing::Level::INFO,
            "warn" | "warning" => tracing::Level::WARN,
            // confd's panic and fatal levels only ever log errors.
            "error" | "panic" | "fatal" => tracing::Level::ERROR,
            other => {
                self.option_error(
                    "--log-level",
                    format!("unknown level {other:?}; use trace, debug, info, warn or error"),
                );
                tracing::Level::INFO
            }
        }
    }

    fn tls(&mut self, tls: TlsSettings) -> TlsSettings {
        for (key, path) in [
            ("--client-ca-keys", &tls.ca),
            ("--client-cert", &tls.cert),
            ("--client-key", &tls.key),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                self.option_error(
                    key,
                    format!("file {:?} not found", path.display().to_string()),
                );
            }
        }
        if tls.cert.is_some() != tls.key.is_some() {
            self.option_error(
                "--client-cert",
                "a client certificate and its key go together; set both or neither",
            );
        }
        if tls.insecure && tls.ca.is_some() {
            self.option_error(
                "--client-insecure",
                "turns off the verification --client-ca-keys asks for; set one or the other",
            );
        }
        tls
    }

    /// A password or token, read from its file when it is given as one.
    fn secret(&mut self, credential: Credential) -> Option<Secret> {
        match credential {
            Credential::Value(value) => Some(Secret::new(value)),
            Credential::File { path, option } => match std::fs::read_to_string(&path) {
                Ok(text) => Some(Secret::new(text.lines().next().unwrap_or_default().trim())),
                Err(error) => {
                    self.option_error(
                        option,
                        format!("cannot read {:?}: {error}", path.display().to_string()),
                    );
                    None
                }
            },
        }
    }

    fn duration(&mut self, option: &str, text: Option<String>, default: Duration) -> Duration {
        let Some(text) = text else {
            return default;
        };
        match humantime::parse_duration(text.trim()) {
            Ok(duration) if !duration.is_zero() => duration,
            Ok(_) => {
                self.option_error(option, "must be longer than zero");
                default
            }
            Err(e) => {
                self.option_error(option, format!("invalid duration {text:?}: {e}"));
                default
            }
        }
    }

    /// confd's settings for what terad does not do, checked in the layer that gave them so the
    /// message names the key as written there. Returns the settings that are only ignored.
    fn confd_only(
        &mut self,
        layers: [(Source, ConfdOnly); 2],
        backend: BackendKind,
    ) -> Vec<String> {
        let mut ignored = Vec::new();
        for (source, confd) in layers {
            let srv = [
                ("--srv-domain", "srv_domain", &confd.srv_domain),
                ("--srv-record", "srv_record", &confd.srv_record),
            ];
            for (flag, key, value) in srv {
                if let Some(value) = value {
                    let record = if key == "srv_domain" {
                        format!("_{}._tcp.{value}", backend.name())
                    } else {
                        value.clone()
                    };
                    self.errors.push(source.error(
                        flag,
                        key,
                        format!(
                            "discovering nodes through DNS SRV records is not supported: confd \
                             looked the record up once at start, so list the same nodes with \
                             --node (`dig +short SRV {record}` shows them)"
                        ),
                    ));
                }
            }
            // confd's default filter, "*", is every file; terad reads every data file.
            if let Some(filter) = confd.filter.filter(|filter| filter != "*") {
                if backend == BackendKind::File {
                    self.errors.push(source.error(
                        "--filter",
                        "filter",
                        format!(
                            "{filter:?} is not supported: terad has no file filter, it reads \
                             every .yaml, .yml, .json and .toml file in a --file directory; \
                             name the files to read with --file instead"
                        ),
                    ));
                } else {
                    ignored.push(match source {
                        Source::File(_) => "filter".to_owned(),
                        _ => "--filter".to_owned(),
                    });
                }
            }
            ignored.extend(confd.ignored);
        }
        ignored
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
        let settings =
            Settings::load(&in_dir(dir.path(), &["--backend", "consul"]), no_env).unwrap();
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
}
