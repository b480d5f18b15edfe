//! The configuration file: `terad.toml`, or an existing `confd.toml` unchanged.
//!
//! confd spells some keys with hyphens (`log-level`, `sync-only`) and others with underscores
//! (`client_cert`); both spellings are accepted for every key. Keys of confd backends terad does
//! not have (`table`, `app_id`, …) are accepted so a confd.toml loads, and reported as ignored.
//! An empty string means "not set", as it does for confd.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::layer::{ConfdOnly, Credential, Layer};
use super::unknown;
use super::warning::Warning;
use crate::cli::UnknownKeys;
use crate::diagnostic::{ConfigError, from_toml_error};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfigFile {
    #[serde(default, deserialize_with = "non_empty")]
    backend: Option<String>,
    nodes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "non_empty")]
    prefix: Option<String>,
    interval: Option<u64>,
    watch: Option<bool>,
    onetime: Option<bool>,
    noop: Option<bool>,
    #[serde(rename = "sync-only", alias = "sync_only")]
    sync_only: Option<bool>,
    #[serde(rename = "keep-stage-file", alias = "keep_stage_file")]
    keep_stage_file: Option<bool>,
    #[serde(
        rename = "log-level",
        alias = "log_level",
        default,
        deserialize_with = "non_empty"
    )]
    log_level: Option<String>,
    #[serde(
        rename = "log-format",
        alias = "log_format",
        default,
        deserialize_with = "non_empty"
    )]
    log_format: Option<String>,
    #[serde(
        rename = "template-engine",
        alias = "template_engine",
        default,
        deserialize_with = "non_empty"
    )]
    template_engine: Option<String>,
    #[serde(default, deserialize_with = "non_empty_path")]
    confdir: Option<PathBuf>,
    file: Option<OneOrMany>,
    #[serde(default, deserialize_with = "non_empty_path")]
    client_cert: Option<PathBuf>,
    #[serde(default, deserialize_with = "non_empty_path")]
    client_key: Option<PathBuf>,
    #[serde(alias = "client_ca_keys", default, deserialize_with = "non_empty_path")]
    client_cakeys: Option<PathBuf>,
    client_insecure: Option<bool>,
    basic_auth: Option<bool>,
    #[serde(default, deserialize_with = "non_empty")]
    username: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    password: Option<String>,
    #[serde(default, deserialize_with = "non_empty_path")]
    password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "secret")]
    auth_token: Option<String>,
    #[serde(default, deserialize_with = "non_empty_path")]
    auth_token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "non_empty")]
    scheme: Option<String>,
    #[serde(
        rename = "backend-timeout",
        alias = "backend_timeout",
        default,
        deserialize_with = "non_empty"
    )]
    backend_timeout: Option<String>,
    #[serde(
        rename = "consul-wait",
        alias = "consul_wait",
        default,
        deserialize_with = "non_empty"
    )]
    consul_wait: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    consistency: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    datacenter: Option<String>,

    #[serde(default, deserialize_with = "non_empty")]
    wait: Option<String>,
    #[serde(
        rename = "reload-interval",
        alias = "reload_interval",
        default,
        deserialize_with = "non_empty"
    )]
    reload_interval: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    listen: Option<String>,
    #[serde(
        rename = "ready-timeout",
        alias = "ready_timeout",
        default,
        deserialize_with = "non_empty"
    )]
    ready_timeout: Option<String>,
    #[serde(rename = "watch-config", alias = "watch_config")]
    watch_config: Option<bool>,
    #[serde(
        rename = "shutdown-timeout",
        alias = "shutdown_timeout",
        default,
        deserialize_with = "non_empty"
    )]
    shutdown_timeout: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    exec: Option<String>,
    #[serde(
        rename = "exec-reload-signal",
        alias = "exec_reload_signal",
        default,
        deserialize_with = "non_empty"
    )]
    exec_reload_signal: Option<String>,
    #[serde(
        rename = "exec-kill-timeout",
        alias = "exec_kill_timeout",
        default,
        deserialize_with = "non_empty"
    )]
    exec_kill_timeout: Option<String>,
    #[serde(rename = "exec-exit-with-child", alias = "exec_exit_with_child")]
    exec_exit_with_child: Option<bool>,
    #[serde(default, deserialize_with = "non_empty")]
    instance: Option<String>,
    /// The default `[template.coordination]` of every resource without its own.
    coordination: Option<super::coordination::RawCoordination>,

    // confd keys terad does not use.
    #[serde(default, deserialize_with = "non_empty")]
    srv_domain: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    srv_record: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    auth_type: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    table: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    separator: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    app_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    role_id: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    secret_id: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    filter: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    path: Option<String>,
}

/// confd's `file` is a list, but a single string is the obvious thing to write.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(path) => vec![path],
            OneOrMany::Many(paths) => paths,
        }
    }
}

impl RawConfigFile {
    /// Reads the file; under confd's rule a key it does not know is a warning, not an error.
    pub fn read(
        path: &Path,
        unknown_keys: UnknownKeys,
    ) -> Result<(RawConfigFile, Vec<Warning>), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::in_file(path, format!("cannot read: {error}")))?;
        let top = unknown::Table {
            name: None,
            valid: unknown::fields_of::<RawConfigFile>(),
        };
        unknown::parse(path, &text, unknown_keys, &[top])
            .map_err(|error| from_toml_error(path, &text, &error))
    }

    /// This file as a settings layer. confd's keys for what terad does not do are set aside
    /// for their own checks: DNS SRV discovery and the file filter, and the settings of backends
    /// terad does not have, which are only reported as ignored.
    pub fn into_layer(self) -> Layer {
        let ignored = [
            ("auth_type", &self.auth_type),
            ("table", &self.table),
            ("separator", &self.separator),
            ("app_id", &self.app_id),
            ("user_id", &self.user_id),
            ("role_id", &self.role_id),
            ("secret_id", &self.secret_id),
            ("path", &self.path),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(key, _)| key.to_owned())
        .collect();
        // In a file the password file wins over the password (on the command line, the reverse).
        let password = self
            .password_file
            .map(|path| Credential::File {
                path,
                option: "--password-file",
            })
            .or(self.password.map(Credential::Value));
        let auth_token = self
            .auth_token_file
            .map(|path| Credential::File {
                path,
                option: "--auth-token-file",
            })
            .or(self.auth_token.map(Credential::Value));
        Layer {
            onetime: self.onetime,
            watch: self.watch,
            interval: self.interval,
            backend: self.backend,
            nodes: self.nodes,
            files: self.file.map(OneOrMany::into_vec),
            confdir: self.confdir,
            prefix: self.prefix,
            noop: self.noop,
            sync_only: self.sync_only,
            keep_stage_file: self.keep_stage_file,
            log_level: self.log_level,
            log_format: self.log_format,
            template_engine: self.template_engine,
            client_cert: self.client_cert,
            client_key: self.client_key,
            client_ca_keys: self.client_cakeys,
            client_insecure: self.client_insecure,
            scheme: self.scheme,
            username: self.username,
            password,
            basic_auth: self.basic_auth,
            auth_token,
            backend_timeout: self.backend_timeout,
            consul_wait: self.consul_wait,
            consistency: self.consistency,
            datacenter: self.datacenter,
            wait: self.wait,
            reload_interval: self.reload_interval,
            listen: self.listen,
            ready_timeout: self.ready_timeout,
            watch_config: self.watch_config,
            shutdown_timeout: self.shutdown_timeout,
            exec: self.exec,
            exec_reload_signal: self.exec_reload_signal,
            exec_kill_timeout: self.exec_kill_timeout,
            exec_exit_with_child: self.exec_exit_with_child,
            instance: self.instance,
            coordination: self.coordination,
            exec_kill_signal: None,
            exec_splay: None,
            pid_file: None,
            parse_only: None,
            consul_templates: None,
            confd_only: ConfdOnly {
                srv_domain: self.srv_domain,
                srv_record: self.srv_record,
                filter: self.filter,
                ignored,
            },
        }
    }
}

fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.is_empty()))
}

/// A secret (`password`, `auth_token`): like [`non_empty`], but a value that is not a string is
/// refused without being echoed, where serde would say "invalid type: integer `123456`".
fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    use serde::de::{Error, MapAccess, SeqAccess, Visitor};

    const NOT_A_STRING: &str =
        "invalid type: expected a string (the value of a secret setting is not shown)";

    struct SecretVisitor;

    impl<'de> Visitor<'de> for SecretVisitor {
        type Value = Option<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(value.to_owned()).filter(|v| !v.is_empty()))
        }

        fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }

        fn visit_i64<E: Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }

        fn visit_u64<E: Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }

        fn visit_f64<E: Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(NOT_A_STRING))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(A::Error::custom(NOT_A_STRING))
        }

        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(A::Error::custom(NOT_A_STRING))
        }
    }

    deserializer.deserialize_any(SecretVisitor)
}

fn non_empty_path<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(non_empty(deserializer)?.map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_of_the_wrong_type_is_refused_without_its_value() {
        let dir = tempfile::tempdir().unwrap();
        for (text, value) in [
            ("username = \"u\"\npassword = 987654321\n", "987654321"),
            ("auth_token = 12.75\n", "12.75"),
            ("password = [\"hunter2\"]\n", "hunter2"),
            ("auth_token = { t = \"s3cr3t\" }\n", "s3cr3t"),
            ("password = 1979-05-27\n", "1979"),
            ("password = true\n", "true"),
        ] {
            let path = dir.path().join("terad.toml");
            std::fs::write(&path, text).unwrap();
            let error = RawConfigFile::read(&path, UnknownKeys::Refused)
                .unwrap_err()
                .to_string();
            assert!(!error.contains(value), "{error}");
            assert!(error.contains("expected a string"), "{error}");
        }
        std::fs::write(dir.path().join("ok.toml"), "password = \"x\"\n").unwrap();
        let (raw, _) =
            RawConfigFile::read(&dir.path().join("ok.toml"), UnknownKeys::Refused).unwrap();
        assert_eq!(raw.password.as_deref(), Some("x"));
    }
}
