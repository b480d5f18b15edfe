//! Settings as each source gives them, before anything is validated: the command line (with
//! the `TERAD_*` variables clap resolves into it), the configuration file, and the variables of
//! other tools terad honours (`CONSUL_HTTP_TOKEN`). Every value is optional and kept as written;
//! the layers are combined once, higher over lower ([`Layer::combine`]), and only the result is
//! validated, so a bad value that a higher layer overrides is never an error. What no layer sets
//! comes from [`Defaults`], the lowest layer, which is complete.

use std::path::PathBuf;

use super::coordination::RawCoordination;
use crate::cli::Cli;
use crate::diagnostic::ConfigError;

/// Where a layer comes from, so that a problem is reported the way its source spells the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    CommandLine,
    File(PathBuf),
}

impl Source {
    /// An error about one key: `--srv-domain` on the command line, `srv_domain` in a file.
    pub fn error(&self, flag: &str, file_key: &str, message: impl Into<String>) -> ConfigError {
        match self {
            Source::CommandLine => ConfigError::option(flag, message),
            Source::File(path) => ConfigError::in_file(path, message).with_key(file_key),
        }
    }
}

/// A password or token: given as a value, or as a file whose first line is the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Credential {
    Value(String),
    /// `option` names the setting in a message about the file (`--password-file`).
    File {
        path: PathBuf,
        option: &'static str,
    },
}

/// Declares [`Layer`] and its field-by-field [`Layer::combine`] from one list, so that a new
/// setting cannot be added without being combined.
macro_rules! layer {
    ($($(#[$meta:meta])* $field:ident: $ty:ty,)*) => {
        /// One source's settings; `None` is "not set here".
        #[derive(Debug, Default)]
        pub(super) struct Layer {
            $($(#[$meta])* pub $field: Option<$ty>,)*
            /// confd's settings for what terad does not do, checked per layer before combining.
            pub confd_only: ConfdOnly,
        }

        impl Layer {
            /// `self` over `lower`: each setting from the highest layer that sets it.
            pub fn combine(self, lower: Layer) -> Layer {
                Layer {
                    $($field: self.$field.or(lower.$field),)*
                    confd_only: ConfdOnly::default(),
                }
            }

            /// The settings both `self` and `lower` set, to different values: where
            /// [`Layer::combine`] lets `self` override `lower`.
            pub fn overrides(&self, lower: &Layer) -> Vec<&'static str> {
                let mut names = Vec::new();
                $(
                    if let (Some(high), Some(low)) = (&self.$field, &lower.$field)
                        && high != low
                    {
                        names.push(stringify!($field));
                    }
                )*
                names
            }
        }
    };
}

layer! {
    onetime: bool,
    watch: bool,
    /// Seconds.
    interval: u64,
    backend: String,
    nodes: Vec<String>,
    files: Vec<PathBuf>,
    confdir: PathBuf,
    prefix: String,
    noop: bool,
    sync_only: bool,
    keep_stage_file: bool,
    log_level: String,
    log_format: String,
    template_engine: String,
    client_cert: PathBuf,
    client_key: PathBuf,
    client_ca_keys: PathBuf,
    client_insecure: bool,
    scheme: String,
    username: String,
    password: Credential,
    basic_auth: bool,
    auth_token: Credential,
    backend_timeout: String,
    consul_wait: String,
    consistency: String,
    datacenter: String,
    wait: String,
    reload_interval: String,
    listen: String,
    ready_timeout: String,
    watch_config: bool,
    shutdown_timeout: String,
    exec: String,
    exec_reload_signal: String,
    exec_kill_timeout: String,
    exec_exit_with_child: bool,
    /// What stops the `--exec` service (consul-template's `-exec-kill-signal`).
    exec_kill_signal: String,
    /// The longest random delay before the `--exec` service is signalled (`-exec-splay`).
    exec_splay: String,
    instance: String,
    /// Only a configuration file has one.
    coordination: RawCoordination,
    /// consul-template's `-pid-file`.
    pid_file: PathBuf,
    /// consul-template's `-parse-only`.
    parse_only: bool,
    /// consul-template's `-template`s and `template {}` blocks, files' first.
    consul_templates: Vec<super::consul_template::given::TemplateSpec>,
}

/// confd settings for features terad does not have, as one layer gave them.
#[derive(Debug, Default)]
pub(super) struct ConfdOnly {
    pub srv_domain: Option<String>,
    pub srv_record: Option<String>,
    pub filter: Option<String>,
    /// Settings of confd backends terad does not have (`table`, `app_id`, …), spelled as given.
    pub ignored: Vec<String>,
}

impl Layer {
    /// The command line, which clap has already layered over the `TERAD_*` variables.
    pub fn command_line(cli: &Cli) -> Layer {
        let non_empty = |values: &Vec<String>| (!values.is_empty()).then(|| values.clone());
        let confd = &cli.confd;
        let ignored = [
            ("--table", &confd.table),
            ("--app-id", &confd.app_id),
            ("--role-id", &confd.role_id),
            ("--secret-id", &confd.secret_id),
            ("--auth-type", &confd.auth_type),
            ("--path", &confd.path),
            ("--separator", &confd.separator),
            ("--user-id", &confd.user_id),
        ]
        .into_iter()
        .filter(|(_, value)| value.as_deref().is_some_and(|v| !v.is_empty()))
        .map(|(flag, _)| flag.to_owned())
        .collect();
        Layer {
            onetime: cli.onetime,
            watch: cli.watch,
            interval: cli.interval,
            backend: cli.backend.clone(),
            nodes: non_empty(&cli.nodes),
            files: (!cli.files.is_empty()).then(|| cli.files.clone()),
            confdir: cli.confdir.clone(),
            prefix: cli.prefix.clone(),
            noop: cli.noop,
            sync_only: cli.sync_only,
            keep_stage_file: cli.keep_stage_file,
            log_level: cli.log_level.clone(),
            log_format: cli.log_format.clone(),
            template_engine: cli.template_engine.clone(),
            client_cert: cli.client_cert.clone(),
            client_key: cli.client_key.clone(),
            client_ca_keys: cli.client_ca_keys.clone(),
            client_insecure: cli.client_insecure,
            scheme: cli.scheme.clone(),
            username: cli.username.clone(),
            // On the command line a value wins over a file (in a configuration file, the file).
            password: cli.password.clone().map(Credential::Value).or_else(|| {
                cli.password_file.clone().map(|path| Credential::File {
                    path,
                    option: "--password-file",
                })
            }),
            basic_auth: cli.basic_auth,
            auth_token: cli.auth_token.clone().map(Credential::Value).or_else(|| {
                cli.auth_token_file.clone().map(|path| Credential::File {
                    path,
                    option: "--auth-token-file",
                })
            }),
            backend_timeout: cli.backend_timeout.clone(),
            consul_wait: cli.consul_wait.clone(),
            consistency: cli.consistency.clone(),
            datacenter: cli.datacenter.clone(),
            wait: cli.wait.clone(),
            reload_interval: cli.reload_interval.clone(),
            listen: cli.listen.clone(),
            ready_timeout: cli.ready_timeout.clone(),
            watch_config: cli.watch_config,
            shutdown_timeout: cli.shutdown_timeout.clone(),
            exec: cli.exec.clone(),
            exec_reload_signal: cli.exec_reload_signal.clone(),
            exec_kill_timeout: cli.exec_kill_timeout.clone(),
            exec_exit_with_child: cli.exec_exit_with_child,
            exec_kill_signal: None,
            exec_splay: None,
            instance: cli.instance.clone(),
            coordination: None,
            pid_file: None,
            parse_only: None,
            consul_templates: None,
            confd_only: ConfdOnly {
                srv_domain: confd.srv_domain.clone().filter(|v| !v.is_empty()),
                srv_record: confd.srv_record.clone().filter(|v| !v.is_empty()),
                filter: confd.filter.clone().filter(|v| !v.is_empty()),
                ignored,
            },
        }
    }

    /// The variables every Consul tool reads, below the configuration file: the token, or the
    /// file holding it. With `confd`, also confd's own (`CONFD_CLIENT_CAKEYS`,
    /// `CONFD_CLIENT_CERT`, `CONFD_CLIENT_KEY`), which confd reads after its file and uses only
    /// where neither the file nor a flag set the value. Empty values are unset.
    pub fn environment(env: impl Fn(&str) -> Option<String>, confd: bool) -> Layer {
        let set = |name: &str| env(name).filter(|value| !value.is_empty());
        let confd_path = |name: &str| confd.then(|| set(name)).flatten().map(PathBuf::from);
        Layer {
            client_ca_keys: confd_path("CONFD_CLIENT_CAKEYS"),
            client_cert: confd_path("CONFD_CLIENT_CERT"),
            client_key: confd_path("CONFD_CLIENT_KEY"),
            auth_token: set("CONSUL_HTTP_TOKEN").map(Credential::Value).or_else(|| {
                set("CONSUL_HTTP_TOKEN_FILE").map(|path| Credential::File {
                    path: PathBuf::from(path),
                    option: "CONSUL_HTTP_TOKEN_FILE",
                })
            }),
            ..Layer::default()
        }
    }
}
