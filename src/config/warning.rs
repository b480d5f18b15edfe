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
}

impl Warning {
    /// Logs the warning, with a field that says which kind it is, so that alerts can match.
    pub fn log(&self) {
        let kind = match self {
            Warning::OnetimeOverWatch => "onetime_over_watch",
            Warning::FileOverridden { .. } => "file_overridden",
        };
        warn!(kind, "{self}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_setting_and_the_difference() {
        let overridden = Warning::FileOverridden {
            flag: "--noop".into(),
            key: "noop",
            file: PathBuf::from("/etc/confd/confd.toml"),
        };
        assert_eq!(
            overridden.to_string(),
            "--noop on the command line overrides \"noop\" in /etc/confd/confd.toml: the command \
             line wins, where confd let the file win"
        );
    }
}
