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
//! - [`given`]: what was given, each value with its [`Place`].
//! - [`go_value`]: booleans, durations and `wait` as Go's parsers read them.
//! - [`flags`]: the command line into a [`Given`].
//! - [`hcl`]: a configuration file into a tree of values with positions.
//! - [`file`]: that tree into a [`Given`] (serde, unknown keys refused with the valid names).
//! - [`command`]: a `command` split into words as consul-template v0.20.1 splits it.
//! - [`resources`]: templates into [`crate::config::Resource`]s.

pub mod command;
mod file;
mod flags;
pub mod given;
mod go_value;
mod hcl;
mod resources;

use std::path::PathBuf;

use super::layer::{Credential, Layer};
use super::warning::Warning;
use crate::diagnostic::ConfigError;

pub use self::command::CommandValue;
pub(super) use self::file::read_files;
pub(super) use self::flags::command_line;
pub use self::given::{At, Given, Perms, Place, TemplateSpec};
pub use self::go_value::{GoValueError, go_bool, go_duration, go_wait};
pub use self::resources::resources;

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
                    errors.push(given.place.error(message.to_string()));
                    None
                }
            });
        let duration = |given: Option<At<String>>, errors: &mut Vec<ConfigError>| {
            given.and_then(|given| match go_duration(&given.value) {
                Ok(duration) => Some(format!("{}ms", duration.as_millis())),
                Err(message) => {
                    errors.push(given.place.error(message.to_string()));
                    None
                }
            })
        };
        let exec_kill_timeout = duration(self.exec_kill_timeout, errors);
        let exec_splay = duration(self.exec_splay, errors);
        let wait = self.wait.and_then(|given| match go_wait(&given.value) {
            Ok(wait) => Some(wait),
            Err(message) => {
                errors.push(given.place.error(message.to_string()));
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

#[cfg(test)]
mod tests {
    use super::*;

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
