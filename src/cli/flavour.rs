//! The name terad runs under, and every behaviour that differs between terad's own name,
//! `confd` and `consul-template`. The differences are decided here, in [`Flavour::rules`], and
//! nowhere else: the code that acts on one reads its field of [`Rules`], never the flavour, so
//! the full list of what changes under each name is this file.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The name terad runs under, which picks its defaults ([`super::defaults`]) and its [`Rules`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Flavour {
    #[default]
    Terad,
    /// Run as `confd` (a symlink or a copy): confd's confdir and configuration file, so that
    /// `ln -s terad /usr/bin/confd` is the whole migration.
    Confd,
    /// Run as `consul-template` (a symlink or a copy), or with `--consul-template` first:
    /// consul-template's flags, its HCL configuration and its templates, from Consul.
    ConsulTemplate,
}

/// The first argument that selects consul-template's command line under any name.
pub const CONSUL_TEMPLATE_FLAGS: [&str; 2] = ["--consul-template", "-consul-template"];

impl Flavour {
    /// From the program name (`argv[0]`): `confd` or `consul-template` when its file name is
    /// one of those.
    pub fn from_program(program: &OsStr) -> Flavour {
        match Path::new(program).file_name() {
            Some(name) if name == "confd" => Flavour::Confd,
            Some(name) if name == "consul-template" => Flavour::ConsulTemplate,
            _ => Flavour::Terad,
        }
    }

    /// From a whole command line: the program name, or `--consul-template` as the first
    /// argument (which [`super::try_parse_from`] then drops).
    pub fn from_args(args: &[OsString]) -> Flavour {
        match args {
            [_, first, ..] if CONSUL_TEMPLATE_FLAGS.iter().any(|flag| first == flag) => {
                Flavour::ConsulTemplate
            }
            [program, ..] => Flavour::from_program(program),
            [] => Flavour::Terad,
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
                flag_error_exit: super::EXIT_CONFIG,
                layout: Layout::Confdir,
                consul_environment: false,
                noop_output: NoopOutput::Diff,
                follow_template_edits: true,
                repeated_flag_last_wins: false,
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
                flag_error_exit: super::EXIT_CONFIG,
                layout: Layout::Confdir,
                consul_environment: false,
                noop_output: NoopOutput::Diff,
                follow_template_edits: true,
                repeated_flag_last_wins: true,
            },
            Flavour::ConsulTemplate => Rules {
                program: "consul-template",
                version: CONSUL_TEMPLATE_VERSION,
                // consul-template has no -watch: without -once it watches.
                onetime_with_watch: OnetimeWithWatch::Refused,
                // consul-template has no prefix; paths in templates are whole.
                global_prefix: GlobalPrefix::Joined,
                // mapstructure's ErrorUnused: consul-template refuses a key it does not know.
                unknown_keys: UnknownKeys::Refused,
                warn_file_contradicting_flags: false,
                warn_decimal_mode: false,
                confd_environment: false,
                explicit_config_file_required: true,
                // consul-template's ExitCodeConfigError and ExitCodeParseFlagsError.
                config_error_exit: CONSUL_TEMPLATE_CONFIG_ERROR,
                flag_error_exit: CONSUL_TEMPLATE_FLAG_ERROR,
                layout: Layout::ConsulTemplate,
                consul_environment: true,
                noop_output: NoopOutput::Contents,
                // consul-template reads its templates at start and on its reload signal.
                follow_template_edits: false,
                // Its own parser (`ct_args`) keeps the last, as Go's flag package does.
                repeated_flag_last_wins: true,
            },
        }
    }
}

/// What `consul-template -v` prints (on standard error, as consul-template does): the release
/// whose behaviour terad follows, marked as terad's, then terad's own version, in the shape of
/// consul-template's `consul-template v0.20.1 (668c77b)`.
pub const CONSUL_TEMPLATE_VERSION: &str =
    concat!("v0.20.1-terad (terad ", env!("CARGO_PKG_VERSION"), ")");

/// consul-template's exit status for a configuration error (`ExitCodeConfigError`).
pub const CONSUL_TEMPLATE_CONFIG_ERROR: u8 = 15;
/// consul-template's exit status for a command line it cannot parse (`ExitCodeParseFlagsError`).
pub const CONSUL_TEMPLATE_FLAG_ERROR: u8 = 13;

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
    /// The exit status of a configuration error.
    pub config_error_exit: u8,
    /// The exit status of a command line that cannot be parsed: 2, as Go's flag package exits,
    /// for terad and confd; consul-template's own 13.
    pub flag_error_exit: u8,
    /// Where the settings and the templates come from.
    pub layout: Layout,
    /// Read the variables Consul's own tools read, below the configuration file:
    /// `CONSUL_HTTP_ADDR`, `CONSUL_HTTP_AUTH`, `CONSUL_HTTP_SSL`, `CONSUL_HTTP_SSL_VERIFY`,
    /// `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY` (`CONSUL_HTTP_TOKEN` is read
    /// under every name).
    pub consul_environment: bool,
    /// What `--noop` prints for each resource.
    pub noop_output: NoopOutput,
    /// Whether a daemon run follows edits of its templates (terad and confd read a template
    /// as it is now; consul-template reads its templates at start and on its reload signal).
    pub follow_template_edits: bool,
    /// A flag given twice (`-interval 5 -interval 10`): the last wins, as Go's flag package
    /// has it, or it is refused as a likely mistake. Flags that add up (`-node`, `-file`)
    /// add up either way.
    pub repeated_flag_last_wins: bool,
}

/// Where the settings and the templates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// terad's and confd's: options (clap, or confd's flags translated), a TOML configuration
    /// file, resources in `CONFDIR/conf.d`, templates in `CONFDIR/templates`.
    Confdir,
    /// consul-template's: its flags ([`super::ct_args`]), HCL files given with `-config`, and
    /// templates given with `-template` or in `template {}` blocks, wherever they are.
    ConsulTemplate,
}

/// What `--noop` prints for each resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NoopOutput {
    /// A unified diff of each pending change.
    #[default]
    Diff,
    /// consul-template's `-dry`: `> DEST`, then the whole render, for every render, changed or
    /// not.
    Contents,
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
