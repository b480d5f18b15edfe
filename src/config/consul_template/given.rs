//! What consul-template's flags and configuration files gave, each value with where it was
//! given ([`Place`]), before it means anything to terad. The flags ([`super::flags`]) and the
//! files ([`super::file`]) fill these; [`Given::layer`](super) decides what each becomes.

use std::path::PathBuf;

use super::CommandValue;
use crate::config::warning::Warning;
use crate::diagnostic::ConfigError;

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
