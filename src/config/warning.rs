//! What loading accepted but a confd user should hear about: each is logged once at start and
//! after every configuration reload, and never stops terad. Only [`crate::cli::Rules`] decides
//! which of them can arise.

use std::path::PathBuf;

use tracing::warn;

/// One thing loading accepted with a warning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// `--onetime` and `--watch` together, read as confd reads them.
    #[error(
        "--onetime and --watch are both set: running once, as confd does (it never watches in a one-shot run)"
    )]
    OnetimeOverWatch,
    /// A key nothing reads in a conf.d file or the configuration file; the file loaded without
    /// it.
    #[error(
        "{}:{line}: unknown key {key:?}{} ignored, as confd ignores it{}; valid keys: {}",
        file.display(),
        table.map(|table| format!(" in [{table}]")).unwrap_or_default(),
        suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default(),
        valid.join(", ")
    )]
    UnknownKey {
        file: PathBuf,
        line: usize,
        /// The table holding the key, `None` at the top level.
        table: Option<&'static str>,
        key: String,
        suggestion: Option<String>,
        valid: Vec<&'static str>,
    },
    /// A setting of the configuration file that the command line overrides.
    #[error(
        "{flag} on the command line overrides {key:?} in {}: the command line wins, where confd let \
         the file win",
        file.display()
    )]
    FileOverridden {
        flag: String,
        key: &'static str,
        file: PathBuf,
    },
    /// A setting of consul-template's that terad accepts but does not follow, and why.
    #[error("{setting}: {message}")]
    NotFollowed { setting: String, message: String },
    /// A `mode` of digits without a leading zero, which confd parses as a decimal number.
    #[error(
        "{}:{line}: mode {mode:?} is read as octal {terad:04o}; confd reads it as the decimal number \
         {mode} and writes permissions {confd:04o}; write \"0{mode}\" to mean {terad:04o} to both",
        file.display()
    )]
    DecimalMode {
        file: PathBuf,
        line: usize,
        mode: String,
        /// The mode terad applies.
        terad: u32,
        /// The permission bits confd applied.
        confd: u32,
    },
}

impl Warning {
    /// Logs the warning, with a field that says which kind it is, so that alerts can match.
    pub fn log(&self) {
        let kind = match self {
            Warning::OnetimeOverWatch => "onetime_over_watch",
            Warning::UnknownKey { .. } => "unknown_key",
            Warning::FileOverridden { .. } => "file_overridden",
            Warning::DecimalMode { .. } => "decimal_mode",
            Warning::NotFollowed { .. } => "not_followed",
        };
        warn!(kind, "{self}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_key_and_the_way_out() {
        let unknown = Warning::UnknownKey {
            file: PathBuf::from("/etc/confd/conf.d/app.toml"),
            line: 4,
            table: Some("template"),
            key: "reload-cmd".into(),
            suggestion: Some("reload_cmd".into()),
            valid: vec!["src", "dest", "reload_cmd"],
        };
        assert_eq!(
            unknown.to_string(),
            "/etc/confd/conf.d/app.toml:4: unknown key \"reload-cmd\" in [template] ignored, as \
             confd ignores it; did you mean \"reload_cmd\"?; valid keys: src, dest, reload_cmd"
        );
        let mode = Warning::DecimalMode {
            file: PathBuf::from("a.toml"),
            line: 3,
            mode: "644".into(),
            terad: 0o644,
            confd: 0o204,
        };
        assert_eq!(
            mode.to_string(),
            "a.toml:3: mode \"644\" is read as octal 0644; confd reads it as the decimal number 644 \
             and writes permissions 0204; write \"0644\" to mean 0644 to both"
        );
    }
}
