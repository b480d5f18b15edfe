//! The configuration file: `terad.toml`, or an existing `confd.toml` unchanged.
//!
//! confd spells some keys with hyphens (`log-level`, `sync-only`) and others with underscores
//! (`client_cert`); both spellings are accepted for every key. Keys of confd backends terad does
//! not have (`table`, `app_id`, …) are accepted so a confd.toml loads, and reported as ignored.
//! An empty string means "not set", as it does for confd.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::error::{ConfigError, from_toml_error};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfigFile {
    #[serde(default, deserialize_with = "non_empty")]
    pub backend: Option<String>,
    pub nodes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "non_empty")]
    pub prefix: Option<String>,
    pub interval: Option<u64>,
    pub watch: Option<bool>,
    pub onetime: Option<bool>,
    pub noop: Option<bool>,
    #[serde(rename = "sync-only", alias = "sync_only")]
    pub sync_only: Option<bool>,
    #[serde(rename = "keep-stage-file", alias = "keep_stage_file")]
    pub keep_stage_file: Option<bool>,
    #[serde(
        rename = "log-level",
        alias = "log_level",
        default,
        deserialize_with = "non_empty"
    )]
    pub log_level: Option<String>,
    #[serde(
        rename = "log-format",
        alias = "log_format",
        default,
        deserialize_with = "non_empty"
    )]
    pub log_format: Option<String>,
    #[serde(default, deserialize_with = "non_empty_path")]
    pub confdir: Option<PathBuf>,
    pub file: Option<OneOrMany>,
    #[serde(default, deserialize_with = "non_empty_path")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, deserialize_with = "non_empty_path")]
    pub client_key: Option<PathBuf>,
    #[serde(alias = "client_ca_keys", default, deserialize_with = "non_empty_path")]
    pub client_cakeys: Option<PathBuf>,
    pub client_insecure: Option<bool>,
    pub basic_auth: Option<bool>,
    #[serde(default, deserialize_with = "non_empty")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "non_empty_path")]
    pub password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "secret")]
    pub auth_token: Option<String>,
    #[serde(default, deserialize_with = "non_empty_path")]
    pub auth_token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "non_empty")]
    pub scheme: Option<String>,
    #[serde(
        rename = "backend-timeout",
        alias = "backend_timeout",
        default,
        deserialize_with = "non_empty"
    )]
    pub backend_timeout: Option<String>,
    #[serde(
        rename = "consul-wait",
        alias = "consul_wait",
        default,
        deserialize_with = "non_empty"
    )]
    pub consul_wait: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub consistency: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub datacenter: Option<String>,

    #[serde(default, deserialize_with = "non_empty")]
    pub wait: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub listen: Option<String>,
    #[serde(
        rename = "ready-timeout",
        alias = "ready_timeout",
        default,
        deserialize_with = "non_empty"
    )]
    pub ready_timeout: Option<String>,
    #[serde(rename = "watch-config", alias = "watch_config")]
    pub watch_config: Option<bool>,
    #[serde(
        rename = "shutdown-timeout",
        alias = "shutdown_timeout",
        default,
        deserialize_with = "non_empty"
    )]
    pub shutdown_timeout: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub exec: Option<String>,
    #[serde(
        rename = "exec-reload-signal",
        alias = "exec_reload_signal",
        default,
        deserialize_with = "non_empty"
    )]
    pub exec_reload_signal: Option<String>,
    #[serde(
        rename = "exec-kill-timeout",
        alias = "exec_kill_timeout",
        default,
        deserialize_with = "non_empty"
    )]
    pub exec_kill_timeout: Option<String>,
    #[serde(rename = "exec-exit-with-child", alias = "exec_exit_with_child")]
    pub exec_exit_with_child: Option<bool>,
    #[serde(default, deserialize_with = "non_empty")]
    pub instance: Option<String>,
    /// The default `[template.coordination]` of every resource without its own.
    pub coordination: Option<super::coordination::RawCoordination>,

    // confd keys terad does not use.
    #[serde(default, deserialize_with = "non_empty")]
    pub srv_domain: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    pub srv_record: Option<String>,
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
    pub fn into_vec(self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(path) => vec![path],
            OneOrMany::Many(paths) => paths,
        }
    }
}

impl RawConfigFile {
    pub fn read(path: &Path) -> Result<RawConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::in_file(path, format!("cannot read: {error}")))?;
        toml::from_str(&text).map_err(|error| from_toml_error(path, &text, &error))
    }

    /// The confd-only keys that are set, for a warning at start-up.
    pub fn ignored_keys(&self) -> Vec<String> {
        [
            ("auth_type", &self.auth_type),
            ("table", &self.table),
            ("separator", &self.separator),
            ("app_id", &self.app_id),
            ("user_id", &self.user_id),
            ("role_id", &self.role_id),
            ("secret_id", &self.secret_id),
            ("filter", &self.filter),
            ("path", &self.path),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(key, _)| key.to_owned())
        .collect()
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
            let error = RawConfigFile::read(&path).unwrap_err().to_string();
            assert!(!error.contains(value), "{error}");
            assert!(error.contains("expected a string"), "{error}");
        }
        std::fs::write(dir.path().join("ok.toml"), "password = \"x\"\n").unwrap();
        let raw = RawConfigFile::read(&dir.path().join("ok.toml")).unwrap();
        assert_eq!(raw.password.as_deref(), Some("x"));
    }
}
