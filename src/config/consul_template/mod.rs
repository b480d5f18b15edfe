//! consul-template's settings: its flags ([`crate::cli::ct_args`]), its HCL or JSON
//! configuration files (`-config`), and Consul's environment variables, layered into terad's
//! settings, and its templates (`-template`, `template {}`) into resources.
//!
//! Both the flags and the files fill one [`Given`] (consul-template's `Config`, every value with
//! where it was given); [`Given::layer`] then decides, in one place, what each setting becomes in
//! terad: an option terad has (`-once` is `--onetime`, `-consul-addr` a node, `perms` a `mode`),
//! a warning naming it where terad has nothing to do (`deduplicate {}`, `-consul-retry`), or a
//! configuration error naming it where going on would not do what was asked (`-vault-addr`,
//! `ssl { ca_path }`).
//!
//! - [`flags`]: the command line into a [`Given`].
//! - [`hcl`]: a configuration file into a tree of values with positions.
//! - [`file`]: that tree into a [`Given`] (serde, unknown keys refused with the valid names).
//! - [`command`]: a `command` split into words as consul-template v0.20.1 splits it.
//! - [`resources`]: templates into [`crate::config::Resource`]s.

pub mod command;
mod file;
mod flags;
mod hcl;
mod resources;

use std::path::PathBuf;
use std::time::Duration;

use super::layer::{Credential, Layer};
use super::warning::Warning;
use crate::diagnostic::ConfigError;

pub use self::command::CommandValue;
pub(super) use self::file::read_files;
pub(super) use self::flags::command_line;
pub use self::resources::resources;

/// Where a setting was given, for its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A flag, as written (`-consul-ssl-ca-path`).
    Flag(String),
    /// A key of a configuration file, with the position of its value.
    Key {
        file: PathBuf,
        position: (usize, usize),
        key: String,
    },
}

impl Place {
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        match self {
            Place::Flag(flag) => ConfigError::option(flag, message),
            Place::Key {
                file,
                position,
                key,
            } => ConfigError {
                file: Some(file.clone()),
                position: Some(*position),
                key: Some(key.clone()),
                message: message.into(),
            },
        }
    }

    pub fn warning(&self, message: impl Into<String>) -> Warning {
        Warning::NotFollowed {
            setting: self.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Flag(flag) => write!(f, "{flag:?}"),
            Place::Key {
                file,
                position: (line, column),
                key,
            } => write!(f, "{}:{line}:{column}: {key:?}", file.display()),
        }
    }
}

/// A value and where it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub place: Place,
}

/// consul-template's settings as given by one source (the flags, or the configuration files
/// merged in order), before they mean anything to terad.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    pub consul_address: Option<At<String>>,
    pub consul_token: Option<At<String>>,
    /// `enabled`, `username`, `password` of `consul { auth {} }`, or `-consul-auth user:pass`.
    pub consul_auth: Option<At<(bool, String, Option<String>)>>,
    pub ssl_enabled: Option<At<bool>>,
    pub ssl_verify: Option<At<bool>>,
    pub ssl_cert: Option<At<String>>,
    pub ssl_key: Option<At<String>>,
    pub ssl_ca_cert: Option<At<String>>,
    pub ssl_ca_path: Option<At<String>>,
    pub ssl_server_name: Option<At<String>>,
    /// Settings terad has nothing to do with, each with why (retry, transport, dedup, syslog,
    /// exec env).
    pub not_followed: Vec<At<&'static str>>,
    /// Settings terad refuses (Vault), each with why.
    pub refused: Vec<At<&'static str>>,
    pub exec_command: Option<At<CommandValue>>,
    pub exec_kill_signal: Option<At<String>>,
    pub exec_kill_timeout: Option<At<String>>,
    pub exec_reload_signal: Option<At<String>>,
    pub exec_splay: Option<At<String>>,
    pub kill_signal: Option<At<String>>,
    pub reload_signal: Option<At<String>>,
    pub log_level: Option<At<String>>,
    pub max_stale: Option<At<String>>,
    pub pid_file: Option<At<String>>,
    /// `MIN[:MAX]`, as `-wait` and `wait = "…"` write it.
    pub wait: Option<At<String>>,
    pub once: Option<bool>,
    pub dry: Option<bool>,
    pub parse_only: Option<bool>,
    pub templates: Vec<TemplateSpec>,
}

/// One template as consul-template's `-template` or `template {}` gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateSpec {
    /// The `-template` flag or the `template` block.
    pub place: Option<Place>,
    pub source: Option<At<String>>,
    pub contents: Option<At<String>>,
    pub destination: Option<At<String>>,
    pub command: Option<At<CommandValue>>,
    pub command_timeout: Option<At<String>>,
    pub perms: Option<At<Perms>>,
    pub backup: Option<At<bool>>,
    pub create_dest_dirs: Option<bool>,
    pub left_delimiter: Option<String>,
    pub right_delimiter: Option<String>,
    pub wait: Option<At<String>>,
    pub error_on_missing_key: Option<At<bool>>,
    pub user: Option<At<String>>,
    pub group: Option<At<String>>,
    pub uid: Option<At<i64>>,
    pub gid: Option<At<i64>>,
    /// Keys of its `exec {}` terad does not follow, each with why.
    pub not_followed: Vec<At<&'static str>>,
}

/// `perms` as written: a string of octal digits, or a number (octal when it has a leading `0`,
/// as HCL 1 reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Perms {
    Text(String),
    Number(i64),
}

impl Given {
    /// `self` (a later file, or the flags) over `lower`: each setting from the highest source
    /// that gives it; templates and the notes add up, the lower's first.
    pub fn over(self, lower: Given) -> Given {
        macro_rules! over {
            ($($field:ident),*) => {
                Given {
                    $($field: self.$field.or(lower.$field),)*
                    not_followed: lower.not_followed.into_iter().chain(self.not_followed).collect(),
                    refused: lower.refused.into_iter().chain(self.refused).collect(),
                    templates: lower.templates.into_iter().chain(self.templates).collect(),
                }
            };
        }
        over!(
            consul_address,
            consul_token,
            consul_auth,
            ssl_enabled,
            ssl_verify,
            ssl_cert,
            ssl_key,
            ssl_ca_cert,
            ssl_ca_path,
            ssl_server_name,
            exec_command,
            exec_kill_signal,
            exec_kill_timeout,
            exec_reload_signal,
            exec_splay,
            kill_signal,
            reload_signal,
            log_level,
            max_stale,
            pid_file,
            wait,
            once,
            dry,
            parse_only
        )
    }

    /// What these settings become in terad: a settings layer, and the errors and warnings of
    /// what terad does not follow.
    pub(super) fn layer(self, errors: &mut Vec<ConfigError>, warnings: &mut Vec<Warning>) -> Layer {
        for refused in &self.refused {
            errors.push(refused.place.error(refused.value));
        }
        for noted in &self.not_followed {
            warnings.push(noted.place.warning(noted.value));
        }
        for (setting, why) in [
            (
                &self.ssl_ca_path,
                "a directory of CA certificates is not supported: give the CA bundle file \
                 (-consul-ssl-ca-cert, ssl { ca_cert })",
            ),
            (
                &self.ssl_server_name,
                "terad verifies Consul's certificate against the host name of the address: \
                 give an address with that name instead",
            ),
        ] {
            if let Some(given) = setting {
                errors.push(given.place.error(why));
            }
        }
        for (setting, default) in [
            (&self.kill_signal, "SIGINT"),
            (&self.reload_signal, "SIGHUP"),
        ] {
            let Some(given) = setting else { continue };
            let name = signal_name(&given.value);
            let followed = if default == "SIGINT" {
                ["SIGINT", "SIGTERM"].contains(&name.as_str())
            } else {
                name == "SIGHUP"
            };
            if !followed {
                let message = if default == "SIGINT" {
                    format!("terad stops on SIGTERM and SIGINT, not on {name}")
                } else {
                    format!("terad reloads its configuration on SIGHUP, not on {name}")
                };
                warnings.push(given.place.warning(message));
            }
        }
        let value = |given: Option<At<String>>| given.map(|given| given.value);
        let (username, password, basic_auth) = match self.consul_auth {
            Some(At {
                value: (enabled, user, password),
                ..
            }) => (Some(user), password.map(Credential::Value), Some(enabled)),
            None => (None, None, None),
        };
        // consul-template loads a certificate without a key from the one file.
        let ssl_key = self.ssl_key.or_else(|| self.ssl_cert.clone());
        let max_stale = self
            .max_stale
            .and_then(|given| match go_duration(&given.value) {
                Ok(stale) if stale.is_zero() => Some("default".to_owned()),
                Ok(_) => Some("stale".to_owned()),
                Err(message) => {
                    errors.push(given.place.error(message));
                    None
                }
            });
        let duration = |given: Option<At<String>>, errors: &mut Vec<ConfigError>| {
            given.and_then(|given| match go_duration(&given.value) {
                Ok(duration) => Some(format!("{}ms", duration.as_millis())),
                Err(message) => {
                    errors.push(given.place.error(message));
                    None
                }
            })
        };
        let exec_kill_timeout = duration(self.exec_kill_timeout, errors);
        let exec_splay = duration(self.exec_splay, errors);
        let wait = self.wait.and_then(|given| match go_wait(&given.value) {
            Ok(wait) => Some(wait),
            Err(message) => {
                errors.push(given.place.error(message));
                None
            }
        });
        let exec = self
            .exec_command
            .and_then(|given| match given.value.shell() {
                Ok(command) => Some(command),
                Err(message) => {
                    errors.push(given.place.error(message.to_string()));
                    None
                }
            });
        Layer {
            onetime: Some(self.once.unwrap_or(false)),
            // Without -once consul-template watches: it has no other mode.
            watch: Some(!self.once.unwrap_or(false)),
            backend: self.consul_address.as_ref().map(|_| "consul".to_owned()),
            nodes: value(self.consul_address).map(|address| vec![address]),
            noop: self.dry,
            log_level: value(self.log_level).map(|level| {
                match level.to_ascii_lowercase().as_str() {
                    "err" => "error".to_owned(),
                    other => other.to_owned(),
                }
            }),
            client_cert: value(self.ssl_cert).map(PathBuf::from),
            client_key: value(ssl_key).map(PathBuf::from),
            client_ca_keys: value(self.ssl_ca_cert).map(PathBuf::from),
            // consul-template verifies unless told not to; without SSL the setting is moot.
            client_insecure: self.ssl_verify.map(|given| !given.value),
            scheme: self
                .ssl_enabled
                .map(|given| if given.value { "https" } else { "http" }.to_owned()),
            username,
            password,
            basic_auth,
            auth_token: value(self.consul_token).map(Credential::Value),
            consistency: max_stale,
            wait,
            exec,
            exec_reload_signal: value(self.exec_reload_signal),
            exec_kill_timeout,
            exec_kill_signal: value(self.exec_kill_signal),
            exec_splay,
            // consul-template exits with its -exec child's status.
            exec_exit_with_child: Some(true),
            pid_file: value(self.pid_file).map(PathBuf::from),
            parse_only: self.parse_only,
            consul_templates: Some(self.templates),
            ..Layer::default()
        }
    }
}

/// `HUP`, `sighup`, `SIGHUP` → `SIGHUP`.
fn signal_name(text: &str) -> String {
    let upper = text.trim().to_ascii_uppercase();
    if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    }
}

/// The variables consul-template and Consul's API client read: the address, the token, basic
/// authentication, TLS, and consul-template's log level. Empty values are unset.
pub(super) fn environment(env: impl Fn(&str) -> Option<String>) -> Layer {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    let flag = |name: &str| set(name).and_then(|value| go_bool(&value));
    let (username, password) = match set("CONSUL_HTTP_AUTH") {
        Some(auth) => match auth.split_once(':') {
            Some((user, password)) => (Some(user.to_owned()), Some(password.to_owned())),
            None => (Some(auth), None),
        },
        None => (None, None),
    };
    Layer {
        nodes: set("CONSUL_HTTP_ADDR").map(|address| vec![address]),
        // consul-template reads CONSUL_TOKEN before CONSUL_HTTP_TOKEN (read for every name).
        auth_token: set("CONSUL_TOKEN").map(Credential::Value),
        basic_auth: username.as_ref().map(|_| true),
        username,
        password: password.map(Credential::Value),
        scheme: flag("CONSUL_HTTP_SSL").map(|ssl| if ssl { "https" } else { "http" }.to_owned()),
        client_insecure: flag("CONSUL_HTTP_SSL_VERIFY").map(|verify| !verify),
        client_ca_keys: set("CONSUL_CACERT").map(PathBuf::from),
        client_cert: set("CONSUL_CLIENT_CERT").map(PathBuf::from),
        client_key: set("CONSUL_CLIENT_KEY").map(PathBuf::from),
        log_level: set("CT_LOG")
            .or_else(|| set("CONSUL_TEMPLATE_LOG"))
            .map(|level| match level.to_ascii_lowercase().as_str() {
                "err" => "error".to_owned(),
                other => other.to_owned(),
            }),
        ..Layer::default()
    }
}

/// Go's `strconv.ParseBool`.
pub(super) fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A duration as Go's `time.ParseDuration` reads it: `"30s"`, `"1m30s"`, `"1.5s"`, `"250ms"`.
pub fn go_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid duration {text:?} (write e.g. \"30s\", \"1m30s\" or \"250ms\")");
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// consul-template's `-wait` / `wait = "MIN[:MAX]"` (Go durations), as terad's `MIN:MAX`.
fn go_wait(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    let (min, max) = match parts.as_slice() {
        [min] => {
            let min = go_duration(min)?;
            (min, min * 4)
        }
        [min, max] => (go_duration(min)?, go_duration(max)?),
        _ => {
            return Err(format!(
                "invalid wait {text:?}: write MIN or MIN:MAX, e.g. \"5s:10s\""
            ));
        }
    };
    if max < min {
        return Err(format!("invalid wait {text:?}: MAX is shorter than MIN"));
    }
    Ok(format!("{}ms:{}ms", min.as_millis(), max.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_go_reads_them() {
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(go_duration("0"), Ok(Duration::ZERO));
        assert!(go_duration("5").is_err());
        assert!(go_duration("5 parsecs").is_err());
        assert_eq!(go_wait("5s"), Ok("5000ms:20000ms".into()));
        assert_eq!(go_wait("1s:3s"), Ok("1000ms:3000ms".into()));
        assert!(go_wait("3s:1s").is_err());
    }

    #[test]
    fn consuls_variables_are_read() {
        let env = |name: &str| {
            match name {
                "CONSUL_HTTP_ADDR" => Some("https://consul:8501"),
                "CONSUL_HTTP_SSL_VERIFY" => Some("false"),
                "CONSUL_HTTP_AUTH" => Some("u:p"),
                "CT_LOG" => Some("ERR"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let layer = environment(env);
        assert_eq!(layer.nodes, Some(vec!["https://consul:8501".to_owned()]));
        assert_eq!(layer.client_insecure, Some(true));
        assert_eq!(layer.username.as_deref(), Some("u"));
        assert_eq!(layer.basic_auth, Some(true));
        assert_eq!(layer.log_level.as_deref(), Some("error"));
    }
}
