//! The name terad runs under, and every behaviour that differs between terad's own name and
//! `confd`. The differences are decided here, in [`Flavour::rules`], and nowhere else: the code
//! that acts on one reads its field of [`Rules`], never the flavour, so the full list of what
//! changes under the name `confd` is this file.

use std::ffi::OsStr;
use std::path::Path;

/// The name terad runs under, which picks its defaults ([`super::defaults`]) and its [`Rules`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavour {
    #[default]
    Terad,
    /// Run as `confd` (a symlink or a copy): confd's confdir and configuration file, so that
    /// `ln -s terad /usr/bin/confd` is the whole migration.
    Confd,
}

impl Flavour {
    /// From the program name (`argv[0]`): `confd` when its file name is `confd`.
    pub fn from_program(program: &OsStr) -> Flavour {
        match Path::new(program).file_name() {
            Some(name) if name == "confd" => Flavour::Confd,
            _ => Flavour::Terad,
        }
    }

    /// What this name changes. Under its own name terad is strict (a contradiction or a typo is
    /// an error that stops it); as `confd` it does what confd does, so that a confdir, a unit
    /// file and a script written for confd keep working, and says so in a warning where confd's
    /// way is surprising.
    pub fn rules(self) -> Rules {
        match self {
            Flavour::Terad => Rules {
                program: "terad",
                version: env!("CARGO_PKG_VERSION"),
                onetime_with_watch: OnetimeWithWatch::Refused,
                global_prefix: GlobalPrefix::Joined,
                unknown_keys: UnknownKeys::Refused,
                warn_file_contradicting_flags: false,
                warn_decimal_mode: false,
                confd_environment: false,
                explicit_config_file_required: true,
                config_error_exit: super::EXIT_CONFIG,
            },
            Flavour::Confd => Rules {
                program: "confd",
                version: CONFD_VERSION,
                onetime_with_watch: OnetimeWithWatch::Onetime,
                global_prefix: GlobalPrefix::Replaces,
                unknown_keys: UnknownKeys::Warned,
                warn_file_contradicting_flags: true,
                warn_decimal_mode: true,
                confd_environment: true,
                // confd: `if os.IsNotExist(err) { log.Debug("Skipping confd config file.") }`.
                explicit_config_file_required: false,
                // confd ends every failure with log.Fatal, which exits 1.
                config_error_exit: super::EXIT_FAILURE,
            },
        }
    }
}

/// What `confd -version` prints after the name: the confd release whose behaviour terad follows
/// (its last, built with Go 1.19), marked as terad's, then terad's own version. Scripts that
/// read confd's version (`confd -version | cut -d' ' -f2`) get a version they can compare.
pub const CONFD_VERSION: &str = concat!("0.17.0-terad (terad ", env!("CARGO_PKG_VERSION"), ")");

/// Everything that differs between terad's own name and `confd`; see [`Flavour::rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The program's name in `--version` and `--help`.
    pub program: &'static str,
    /// What `--version` prints after the name.
    pub version: &'static str,
    /// `--onetime` together with `--watch`.
    pub onetime_with_watch: OnetimeWithWatch,
    /// How the global `--prefix` combines with a resource's own `prefix`.
    pub global_prefix: GlobalPrefix,
    /// Keys that nothing reads in a `conf.d` file or in the configuration file.
    pub unknown_keys: UnknownKeys,
    /// Warn, once per setting, when the configuration file sets a value the command line
    /// overrides: the command line wins in both flavours, but confd let the file win.
    pub warn_file_contradicting_flags: bool,
    /// Warn about a `mode` such as `"644"`, which confd reads as a decimal number.
    pub warn_decimal_mode: bool,
    /// Read confd's own environment variables: `CONFD_CLIENT_CAKEYS`, `CONFD_CLIENT_CERT`,
    /// `CONFD_CLIENT_KEY` (below the configuration file, as confd) and `ETCDCTL_PEERS` (the
    /// nodes of the `etcd` backend when none is given).
    pub confd_environment: bool,
    /// Whether a `--config-file` that does not exist is an error; confd skips it, as it skips
    /// its default `/etc/confd/confd.toml`.
    pub explicit_config_file_required: bool,
    /// The exit status of a configuration error. A command line that cannot be parsed exits 2
    /// in both flavours, as Go's flag package does.
    pub config_error_exit: u8,
}

/// `--onetime` together with `--watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnetimeWithWatch {
    /// A configuration error: the two ask for opposite things.
    Refused,
    /// A one-shot run, with a warning. confd checks `-onetime` first and never looks at
    /// `-watch`; its own integration suite passes both.
    Onetime,
}

/// How the global `--prefix` (or the configuration file's `prefix`) combines with a resource's
/// own `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalPrefix {
    /// The global prefix goes in front of the resource's: `/prod` and `app` read `/prod/app`.
    Joined,
    /// A global prefix, when set, replaces the resource's (confd: `if config.Prefix != ""`).
    Replaces,
}

/// Keys that nothing reads in a `conf.d` file or in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKeys {
    /// A configuration error naming the key and the valid ones: a typo (`reload-cmd`) must not
    /// silently drop a setting.
    Refused,
    /// A warning naming the key and the valid ones, and the file loads without it: confd ignores
    /// keys it does not know, so a typo or a newer confd's key never stopped it.
    Warned,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_has_confds_shape_under_its_name() {
        assert_eq!(Flavour::Terad.rules().version, env!("CARGO_PKG_VERSION"));
        let confd = Flavour::Confd.rules();
        assert_eq!(confd.program, "confd");
        assert_eq!(
            confd.version,
            format!("0.17.0-terad (terad {})", env!("CARGO_PKG_VERSION"))
        );
    }
}
