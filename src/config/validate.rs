//! [`Settings::load`]: every layer read (the command line, the configuration file, other tools'
//! variables), combined once, higher over lower, and validated into [`Settings`], collecting
//! every problem instead of stopping at the first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::RawConfigFile;
use super::layer::{ConfdOnly, Credential, Layer, Source};
use super::resource::EngineChoice;
use super::settings::*;
use super::value::ValueError;
use super::warning::Warning;
use crate::cli::defaults::Defaults;
use crate::cli::{Cli, Layout, OnetimeWithWatch, Rules};
use crate::diagnostic::{ConfigError, ConfigErrors};
use crate::logging::LogFormat;

impl Settings {
    /// Reads every layer (the command line, the configuration file, other tools' variables
    /// through `env`), combines them once, higher over lower, and validates the result over the
    /// [`Defaults`] of the name terad runs under, collecting every error.
    pub fn load(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigErrors> {
        let defaults = Defaults::of(cli.flavour);
        let rules = cli.flavour.rules();
        if rules.layout == Layout::ConsulTemplate {
            return Settings::load_consul_template(cli, env, &defaults, rules);
        }
        let mut errors = ConfigErrors::default();
        let mut command_line = Layer::command_line(cli);
        let lookup = ConfigFileLookup::run(
            cli.config_file.as_deref(),
            command_line.confdir.as_deref().unwrap_or(&defaults.confdir),
            &defaults,
            rules,
            &mut errors,
        );
        let mut warnings = lookup.warnings;
        let mut file = lookup.layer;
        if rules.warn_file_contradicting_flags
            && let Some(path) = &lookup.path
        {
            warnings.extend(command_line.overrides(&file).into_iter().map(|field| {
                Warning::FileOverridden {
                    flag: flag_of(field),
                    key: field,
                    file: path.clone(),
                }
            }));
        }
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
        let mut combined = command_line
            .combine(file)
            .combine(Layer::environment(&env, rules.confd_environment));
        // confd's etcd backend takes its nodes from etcdctl's variable when none are given.
        if rules.confd_environment
            && combined.nodes.is_none()
            && combined.backend.as_deref().unwrap_or(defaults.backend) == "etcd"
        {
            combined.nodes = env("ETCDCTL_PEERS")
                .filter(|peers| !peers.is_empty())
                .map(|peers| peers.split(',').map(str::to_owned).collect());
        }
        let mut check = Validation {
            defaults: &defaults,
            rules,
            config_file: lookup.path.as_deref(),
            candidates: &lookup.candidates,
            errors,
            warnings,
        };
        let mut settings = check.settings(combined, cli.command.is_some());
        settings.ignored = check.confd_only(confd_only, settings.backend);
        let errors = check.errors;
        settings.warnings = check.warnings;
        settings.config_file = lookup.path;
        settings.config_candidates = lookup.candidates;
        errors.into_result(settings)
    }
}

impl Settings {
    /// Under consul-template's layout: its flags over its configuration files (both already
    /// merged the way consul-template merges them) over Consul's variables, validated as
    /// terad's settings are.
    fn load_consul_template(
        cli: &Cli,
        env: impl Fn(&str) -> Option<String>,
        defaults: &Defaults,
        rules: Rules,
    ) -> Result<Settings, ConfigErrors> {
        use super::consul_template;
        let mut found = Vec::new();
        let mut warnings = Vec::new();
        let args = cli.consul_template.clone().unwrap_or_default();
        let (flags, paths) = consul_template::command_line(&args, &mut found);
        let files = consul_template::read_files(&paths, &mut found);
        let layer = flags.over(files).layer(&mut found, &mut warnings);
        let combined = layer
            .combine(consul_template::environment(&env))
            .combine(Layer::environment(&env, false));
        let mut check = Validation {
            defaults,
            rules,
            config_file: None,
            candidates: &paths,
            errors: ConfigErrors(found),
            warnings,
        };
        let mut settings = check.settings(combined, false);
        let errors = check.errors;
        settings.warnings = check.warnings;
        settings.config_file = paths.first().cloned();
        settings.config_candidates = paths;
        errors.into_result(settings)
    }
}

/// The command-line flag of a layer's setting, for messages.
fn flag_of(field: &str) -> String {
    match field {
        "nodes" => "--node".to_owned(),
        "files" => "--file".to_owned(),
        "password" => "--password or --password-file".to_owned(),
        "auth_token" => "--auth-token or --auth-token-file".to_owned(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// Which configuration file was read, and where terad looked for one.
struct ConfigFileLookup {
    path: Option<PathBuf>,
    candidates: Vec<PathBuf>,
    layer: Layer,
    /// Keys of the file ignored under confd's rule.
    warnings: Vec<Warning>,
}

impl ConfigFileLookup {
    /// An explicit `--config-file` must exist (as confd, it is skipped when it does not);
    /// otherwise the first of the flavour's candidates that exists is read (terad: `terad.toml`,
    /// then `confd.toml`, in the confdir).
    fn run(
        explicit: Option<&Path>,
        confdir: &Path,
        defaults: &Defaults,
        rules: Rules,
        errors: &mut ConfigErrors,
    ) -> ConfigFileLookup {
        let candidates = match explicit {
            Some(path) => vec![path.to_owned()],
            None => defaults.config_files.candidates(confdir),
        };
        let path = match explicit {
            Some(path) if rules.explicit_config_file_required || path.exists() => {
                Some(path.to_owned())
            }
            _ => candidates.iter().find(|path| path.is_file()).cloned(),
        };
        let (layer, warnings) = match &path {
            None => (Layer::default(), Vec::new()),
            Some(path) => match RawConfigFile::read(path, rules.unknown_keys) {
                Ok((raw, warnings)) => (raw.into_layer(), warnings),
                Err(error) => {
                    errors.push(error);
                    (Layer::default(), Vec::new())
                }
            },
        };
        ConfigFileLookup {
            path,
            candidates,
            layer,
            warnings,
        }
    }
}

/// Validation of the combined layer: every value parsed and checked, every problem recorded.
struct Validation<'a> {
    defaults: &'a Defaults,
    rules: Rules,
    /// The configuration file, to report its own keys (`scheme`, `[coordination]`) against it.
    config_file: Option<&'a Path>,
    /// Where a configuration file was looked for.
    candidates: &'a [PathBuf],
    errors: ConfigErrors,
    warnings: Vec<Warning>,
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
            reload_interval,
            listen,
            ready_timeout,
            watch_config,
            shutdown_timeout,
            exec,
            exec_reload_signal,
            exec_kill_timeout,
            exec_exit_with_child,
            exec_kill_signal,
            exec_splay,
            instance,
            coordination,
            pid_file,
            parse_only,
            consul_templates,
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
                        self.option_error("--node", message.to_string());
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
                self.option_error("--template-engine", message.to_string());
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
                self.option_error("--wait", message.to_string());
                None
            }
        });
        let reload_interval =
            reload_interval.and_then(|text| match humantime::parse_duration(text.trim()) {
                Ok(interval) => Some(interval),
                Err(e) => {
                    self.option_error(
                        "--reload-interval",
                        format!("invalid duration {text:?}: {e}"),
                    );
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
                    self.option_error("--exec-reload-signal", message.to_string());
                    None
                }
            });
            if mode == Mode::Onetime {
                self.option_error(
                    "--exec",
                    "supervises a service, which a one-shot run does not do; use --watch or --interval",
                );
            }
            let kill_signal = exec_kill_signal.as_deref().unwrap_or(defaults.exec_kill_signal);
            let kill_signal = parse_signal(kill_signal).unwrap_or_else(|message| {
                self.option_error("--exec-kill-signal", message.to_string());
                nix::sys::signal::Signal::SIGTERM
            });
            let splay = exec_splay.map_or(Duration::ZERO, |text| {
                humantime::parse_duration(text.trim()).unwrap_or_else(|e| {
                    self.option_error("--exec-splay", format!("invalid duration {text:?}: {e}"));
                    Duration::ZERO
                })
            });
            ExecSettings {
                command,
                reload_signal,
                kill_timeout: exec_kill_timeout,
                kill_signal,
                splay,
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
            reload_interval,
            listen,
            ready_timeout,
            watch_config: watch_config.unwrap_or(false),
            shutdown_timeout,
            exec,
            ignored: Vec::new(),
            warnings: Vec::new(),
            rules: self.rules,
            instance: instance.unwrap_or_else(default_instance),
            coordination,
            pid_file,
            parse_only: parse_only.unwrap_or(false),
            consul_templates: consul_templates.unwrap_or_default(),
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
                match self.rules.onetime_with_watch {
                    OnetimeWithWatch::Refused => self
                        .option_error("--onetime", "cannot be combined with --watch; choose one"),
                    OnetimeWithWatch::Onetime => self.warnings.push(Warning::OnetimeOverWatch),
                }
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
fn normalize_node(node: &str, scheme: &str) -> Result<String, ValueError> {
    let node = node.trim().trim_end_matches('/');
    let shown = crate::redact::url(node).into_owned();
    if node.is_empty() {
        return Err(ValueError::EmptyNode);
    }
    let url = if node.contains("://") {
        node.to_owned()
    } else {
        format!("{scheme}://{node}")
    };
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(ValueError::NodeScheme(shown));
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(ValueError::NodePath(shown));
    }
    Ok(url)
}
