//! The lowest layer of settings: what applies when neither the command line, the configuration
//! file nor the environment sets a value. Here, beside the command line, because `--help` shows
//! them and because they depend on the name terad runs under ([`Flavour`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Flavour;

/// Where terad looks for `conf.d/`, `templates/` and `terad.toml` unless told otherwise.
pub const DEFAULT_CONFDIR: &str = "/etc/terad";
/// The confdir when terad runs under the name `confd`, as confd's.
pub const CONFD_CONFDIR: &str = "/etc/confd";
/// The configuration file when terad runs under the name `confd`, as confd's (wherever the
/// confdir is).
pub const CONFD_CONFIG_FILE: &str = "/etc/confd/confd.toml";
/// confd's polling interval when neither `--onetime` nor `--watch` is given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);
/// How long `--onetime` retries an unreachable backend.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a Consul blocking query waits unless told otherwise (Consul's own default).
pub const DEFAULT_CONSUL_WAIT: Duration = Duration::from_secs(300);

/// The lowest layer: what applies when no other layer sets a value. It depends on the name terad
/// runs under: as `confd` it takes confd's directory and configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub backend: &'static str,
    pub confdir: PathBuf,
    /// Where the configuration file is looked for when `--config-file` is not given.
    pub config_files: ConfigFiles,
    pub etcd_node: &'static str,
    pub consul_node: &'static str,
    pub interval: Duration,
    pub log_level: &'static str,
    pub log_format: &'static str,
    pub template_engine: &'static str,
    pub scheme: &'static str,
    pub backend_timeout: Duration,
    pub consul_wait: Duration,
    pub consistency: &'static str,
    pub ready_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub exec_kill_timeout: Duration,
    /// What stops the `--exec` service before SIGKILL.
    pub exec_kill_signal: &'static str,
}

/// The configuration files tried, in order, when none is named; the first that exists is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFiles {
    /// These names in the confdir (terad: `terad.toml`, then an existing `confd.toml`).
    InConfdir(&'static [&'static str]),
    /// This one file, wherever the confdir is (confd reads `/etc/confd/confd.toml`).
    Fixed(&'static str),
}

impl ConfigFiles {
    pub fn candidates(&self, confdir: &Path) -> Vec<PathBuf> {
        match self {
            ConfigFiles::InConfdir(names) => names.iter().map(|name| confdir.join(name)).collect(),
            ConfigFiles::Fixed(path) => vec![PathBuf::from(path)],
        }
    }

    /// How `--help` shows the default.
    pub fn describe(&self) -> String {
        match self {
            ConfigFiles::InConfdir(names) => {
                names
                    .iter()
                    .map(|name| format!("CONFDIR/{name}"))
                    .collect::<Vec<_>>()
                    .join(", else ")
                    + ", if present"
            }
            ConfigFiles::Fixed(path) => format!("{path}, if present"),
        }
    }
}

impl Defaults {
    pub fn of(flavour: Flavour) -> Defaults {
        let (confdir, config_files) = match flavour {
            Flavour::Terad => (
                DEFAULT_CONFDIR,
                ConfigFiles::InConfdir(&["terad.toml", "confd.toml"]),
            ),
            Flavour::Confd => (CONFD_CONFDIR, ConfigFiles::Fixed(CONFD_CONFIG_FILE)),
            // consul-template reads only the files given with -config.
            Flavour::ConsulTemplate => (DEFAULT_CONFDIR, ConfigFiles::InConfdir(&[])),
        };
        let consul_template = flavour == Flavour::ConsulTemplate;
        Defaults {
            backend: if consul_template { "consul" } else { "etcd" },
            confdir: PathBuf::from(confdir),
            config_files,
            etcd_node: "127.0.0.1:2379",
            consul_node: "127.0.0.1:8500",
            interval: DEFAULT_INTERVAL,
            // consul-template's default level is WARN.
            log_level: if consul_template { "warn" } else { "info" },
            log_format: "text",
            template_engine: "auto",
            scheme: "http",
            backend_timeout: DEFAULT_BACKEND_TIMEOUT,
            consul_wait: DEFAULT_CONSUL_WAIT,
            // consul-template's default max_stale, 2s, makes every read a stale one.
            consistency: if consul_template { "stale" } else { "default" },
            ready_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            // consul-template's DefaultExecKillTimeout and DefaultExecKillSignal.
            exec_kill_timeout: Duration::from_secs(if consul_template { 30 } else { 10 }),
            exec_kill_signal: if consul_template { "SIGINT" } else { "SIGTERM" },
        }
    }

    /// `[default: …]` for `--help`, by clap argument id.
    pub fn shown(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| humantime::format_duration(d).to_string();
        vec![
            ("backend", self.backend.to_owned()),
            (
                "nodes",
                format!(
                    "{scheme}://{} for etcd, {scheme}://{} for consul",
                    self.etcd_node,
                    self.consul_node,
                    scheme = self.scheme
                ),
            ),
            (
                "interval",
                format!("{} without --watch or --onetime", self.interval.as_secs()),
            ),
            ("confdir", self.confdir.display().to_string()),
            ("config_file", self.config_files.describe()),
            ("log_level", self.log_level.to_owned()),
            ("log_format", self.log_format.to_owned()),
            ("template_engine", self.template_engine.to_owned()),
            (
                "scheme",
                format!(
                    "{}, or https with --client-ca-keys or --client-cert",
                    self.scheme
                ),
            ),
            ("backend_timeout", secs(self.backend_timeout)),
            ("consul_wait", secs(self.consul_wait)),
            ("consistency", self.consistency.to_owned()),
            ("ready_timeout", secs(self.ready_timeout)),
            ("shutdown_timeout", secs(self.shutdown_timeout)),
            ("exec_kill_timeout", secs(self.exec_kill_timeout)),
            ("instance", "HOSTNAME/PID".to_owned()),
        ]
    }
}
