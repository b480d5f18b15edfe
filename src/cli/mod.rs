//! The command line. Every option is also read from a `TERAD_*` environment variable; a value
//! given on the command line wins over the environment, which wins over the configuration file,
//! which wins over the default. Options therefore stay `Option`s here: [`crate::config`] does the
//! layering and the validation.
//!
//! confd's command lines work unchanged: [`confd_args`] translates Go's flag syntax (`-onetime`,
//! `-backend etcd`, `-node=URL`) into terad's before clap sees it, and under the name `confd`
//! ([`Flavour::Confd`]) the defaults are confd's. Under the name `consul-template`
//! ([`Flavour::ConsulTemplate`]) terad takes consul-template's flags instead, read by
//! [`ct_args`] into [`Cli::consul_template`].

pub mod confd_args;
pub mod ct_args;
pub mod defaults;
mod flavour;

pub use self::flavour::{
    CONSUL_TEMPLATE_FLAGS, Flavour, GlobalPrefix, Layout, NoopOutput, OnetimeWithWatch, Rules,
    UnknownKeys,
};

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use self::defaults::Defaults;

/// Exit status when every resource synced.
pub const EXIT_OK: u8 = 0;
/// Exit status when a resource failed or the backend could not be read.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for configuration errors; nothing was written.
pub const EXIT_CONFIG: u8 = 2;

/// terad renders configuration files from etcd, Consul, files or the environment with Tera
/// templates, validates them with a check command, swaps them in atomically and reloads the
/// service.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "terad",
    version,
    about,
    max_term_width = 100,
    after_help = "confd's flags work as well, with one or two dashes: \
                  terad -onetime -backend file -file keys.yaml -confdir /etc/confd"
)]
pub struct Cli {
    /// Render every resource once and exit: 0 when all succeeded, 1 when any failed, 2 on a
    /// configuration error.
    #[arg(long, env = "TERAD_ONETIME", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub onetime: Option<bool>,

    /// Follow the backend's changes (etcd and Consul watches, file notifications).
    #[arg(long, env = "TERAD_WATCH", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub watch: Option<bool>,

    /// Re-read the backend every SECS seconds, like confd; together with --watch, a periodic
    /// reconcile.
    #[arg(long, env = "TERAD_INTERVAL", value_name = "SECS")]
    pub interval: Option<u64>,

    /// Where keys come from: etcd (or etcdv3), consul, file or env.
    #[arg(global = true, long, env = "TERAD_BACKEND", value_name = "NAME")]
    pub backend: Option<String>,

    /// A backend endpoint (`http://host:port`, `https://host:port` or `host:port`). Repeat the
    /// option, or separate endpoints with commas, to give several for failover.
    #[arg(
        global = true,
        long = "node",
        env = "TERAD_NODE",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub nodes: Vec<String>,

    /// A YAML, JSON or TOML file, or a directory of them, for the file backend. Repeatable.
    #[arg(
        long = "file",
        env = "TERAD_FILE",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub files: Vec<PathBuf>,

    /// The directory holding `conf.d/` and `templates/` (and the configuration file).
    #[arg(global = true, long, env = "TERAD_CONFDIR", value_name = "DIR")]
    pub confdir: Option<PathBuf>,

    /// The configuration file: a terad.toml, or an existing confd.toml.
    #[arg(global = true, long, env = "TERAD_CONFIG_FILE", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// A key prefix put in front of every resource's prefix and keys.
    #[arg(global = true, long, env = "TERAD_PREFIX", value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// Render and print a unified diff of each pending change; write nothing, run nothing.
    #[arg(long, env = "TERAD_NOOP", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub noop: Option<bool>,

    /// Write changed files but run neither check_cmd nor reload_cmd.
    #[arg(long, env = "TERAD_SYNC_ONLY", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sync_only: Option<bool>,

    /// Keep each stage file next to its destination for inspection instead of removing it.
    #[arg(long, env = "TERAD_KEEP_STAGE_FILE", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub keep_stage_file: Option<bool>,

    /// Log verbosity: trace, debug, info, warn or error.
    #[arg(global = true, long, env = "TERAD_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log line format: text or json.
    #[arg(global = true, long, env = "TERAD_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// The template language of resources that do not name one (`engine` in `[template]`):
    /// go (confd's templates), consul-template (Go templates with consul-template's
    /// functions), tera, or auto (decided per template file: a template that parses only as
    /// Go is Go; consul-template is never guessed).
    #[arg(long, env = "TERAD_TEMPLATE_ENGINE", value_name = "ENGINE")]
    pub template_engine: Option<String>,

    /// Client certificate (PEM) for TLS to the backend.
    #[arg(global = true, long, env = "TERAD_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,

    /// Client private key (PEM) for TLS to the backend.
    #[arg(global = true, long, env = "TERAD_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,

    /// CA certificate bundle (PEM) that signs the backend's certificate.
    #[arg(
        global = true,
        long = "client-ca-keys",
        env = "TERAD_CLIENT_CA_KEYS",
        value_name = "FILE"
    )]
    pub client_ca_keys: Option<PathBuf>,

    /// Skip verification of the backend's TLS certificate. Dangerous; logged as a warning.
    #[arg(global = true, long, env = "TERAD_CLIENT_INSECURE", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub client_insecure: Option<bool>,

    /// URL scheme for `host:port` nodes: http or https.
    #[arg(global = true, long, env = "TERAD_SCHEME", value_name = "SCHEME")]
    pub scheme: Option<String>,

    /// User name for backend authentication.
    #[arg(global = true, long, env = "TERAD_USERNAME", value_name = "NAME")]
    pub username: Option<String>,

    /// Password for backend authentication. Prefer --password-file or the TERAD_PASSWORD
    /// variable: a command line is visible to every user of the machine.
    #[arg(
        global = true,
        long,
        env = "TERAD_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// A file whose first line is the password for backend authentication.
    #[arg(global = true, long, env = "TERAD_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Use HTTP basic authentication with --username/--password (Consul behind a proxy).
    #[arg(global = true, long, env = "TERAD_BASIC_AUTH", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub basic_auth: Option<bool>,

    /// ACL token for Consul (also read from CONSUL_HTTP_TOKEN).
    #[arg(
        global = true,
        long,
        env = "TERAD_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub auth_token: Option<String>,

    /// A file holding the Consul ACL token (also read from CONSUL_HTTP_TOKEN_FILE).
    #[arg(
        global = true,
        long,
        env = "TERAD_AUTH_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub auth_token_file: Option<PathBuf>,

    /// Consul: how long a blocking query waits for a change before it is renewed.
    #[arg(long, env = "TERAD_CONSUL_WAIT", value_name = "DURATION")]
    pub consul_wait: Option<String>,

    /// Consul: read consistency, default, stale or consistent.
    #[arg(global = true, long, env = "TERAD_CONSISTENCY", value_name = "MODE")]
    pub consistency: Option<String>,

    /// Consul: the datacenter to read from [default: the agent's].
    #[arg(global = true, long, env = "TERAD_DATACENTER", value_name = "DC")]
    pub datacenter: Option<String>,

    /// Quiescence before rendering after a change, MIN[:MAX] (e.g. `100ms:1s`): each further
    /// change re-arms MIN, and MAX caps the total delay [default: none; MAX defaults to 4×MIN].
    /// The first render is never delayed. A resource's own `wait` overrides it.
    #[arg(long, env = "TERAD_WAIT", value_name = "MIN[:MAX]")]
    pub wait: Option<String>,

    /// The least time between two runs of one reload command: the first reload after a quiet
    /// spell runs at once, later ones at most this often, the last always after the last change
    /// [default: 1s; none when a `wait` is set]. `0s` reloads after every change. A resource's
    /// own `reload_interval` overrides it.
    #[arg(long, env = "TERAD_RELOAD_INTERVAL", value_name = "DURATION")]
    pub reload_interval: Option<String>,

    /// Serve /health, /ready and /metrics (Prometheus) on this address, e.g. 127.0.0.1:9100.
    #[arg(long, env = "TERAD_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// /ready turns false when the backend has been unreachable for longer than this.
    #[arg(long, env = "TERAD_READY_TIMEOUT", value_name = "DURATION")]
    pub ready_timeout: Option<String>,

    /// Re-read the configuration when files in conf.d/, templates/ or the configuration file
    /// change, as on SIGHUP.
    #[arg(long, env = "TERAD_WATCH_CONFIG", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub watch_config: Option<bool>,

    /// On SIGTERM/SIGINT, how long an in-flight write, check or reload may take to finish.
    #[arg(long, env = "TERAD_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,

    /// Supervise this service (run by /bin/sh): started after the first full sync, signalled
    /// or restarted when its files change, restarted if it dies.
    #[arg(long = "exec", env = "TERAD_EXEC", value_name = "COMMAND")]
    pub exec: Option<String>,

    /// With --exec: the signal that makes the service reload (e.g. SIGHUP, SIGUSR2); without
    /// it the service is restarted when its files change.
    #[arg(long, env = "TERAD_EXEC_RELOAD_SIGNAL", value_name = "SIGNAL")]
    pub exec_reload_signal: Option<String>,

    /// With --exec: how long the service may take to stop after SIGTERM before SIGKILL.
    #[arg(long, env = "TERAD_EXEC_KILL_TIMEOUT", value_name = "DURATION")]
    pub exec_kill_timeout: Option<String>,

    /// With --exec: exit when the service exits (with its status) instead of restarting it.
    #[arg(long, env = "TERAD_EXEC_EXIT_WITH_CHILD", value_parser = BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub exec_exit_with_child: Option<bool>,

    /// How long --onetime keeps retrying an unreachable backend before it gives up.
    #[arg(long, env = "TERAD_BACKEND_TIMEOUT", value_name = "DURATION")]
    pub backend_timeout: Option<String>,

    /// This instance's name in coordination slots and halt markers.
    #[arg(global = true, long, env = "TERAD_INSTANCE", value_name = "NAME")]
    pub instance: Option<String>,

    /// Print a man page or a shell completion script made from these options, and exit (for
    /// packagers, as ripgrep's `rg --generate`): man, complete-bash, complete-zsh or
    /// complete-fish.
    #[arg(long, hide = true, value_name = "KIND", value_enum)]
    pub generate: Option<Generate>,

    /// confd's flags for what terad does not do.
    #[command(flatten)]
    pub confd: ConfdOnlyArgs,

    /// The name terad runs under; set from the program name, not an option.
    #[arg(skip)]
    pub flavour: Flavour,

    /// Under the name consul-template: its flags, as given ([`ct_args`]); none of the options
    /// above is then set.
    #[arg(skip)]
    pub consul_template: Option<ct_args::ConsulTemplateArgs>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// confd's flags for features terad does not have. Hidden from `--help`: they exist so that a
/// confd command line is understood, and each gets the message the same key gets in a
/// `confd.toml` (DNS SRV discovery and a file filter are refused with the reason, the settings
/// of backends terad does not have are reported as ignored).
#[derive(Debug, Clone, Default, Args)]
pub struct ConfdOnlyArgs {
    #[arg(long, hide = true, value_name = "DOMAIN")]
    pub srv_domain: Option<String>,
    #[arg(long, hide = true, value_name = "RECORD")]
    pub srv_record: Option<String>,
    #[arg(long, hide = true, value_name = "GLOB")]
    pub filter: Option<String>,
    #[arg(long, hide = true)]
    pub table: Option<String>,
    #[arg(long, hide = true)]
    pub app_id: Option<String>,
    #[arg(long, hide = true)]
    pub role_id: Option<String>,
    #[arg(long, hide = true)]
    pub secret_id: Option<String>,
    #[arg(long, hide = true)]
    pub auth_type: Option<String>,
    #[arg(long, hide = true)]
    pub path: Option<String>,
    #[arg(long, hide = true)]
    pub separator: Option<String>,
    #[arg(long, hide = true)]
    pub user_id: Option<String>,
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    /// The man page, terad(1), in roff.
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
}

/// Writes what `kind` names, made from terad's own command (hidden options stay hidden).
pub fn generate(kind: Generate, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let command = command(Flavour::Terad);
    let shell = match kind {
        Generate::Man => return clap_mangen::Man::new(command).render(out),
        Generate::CompleteBash => clap_complete::Shell::Bash,
        Generate::CompleteZsh => clap_complete::Shell::Zsh,
        Generate::CompleteFish => clap_complete::Shell::Fish,
    };
    // clap_complete offers hidden options too; a shell should not offer confd's refused flags
    // or --generate, so the completions come from a copy without them.
    let mut visible = clap::Command::new("terad")
        .version(env!("CARGO_PKG_VERSION"))
        .about(command.get_about().cloned().unwrap_or_default());
    for arg in command.get_arguments().filter(|arg| !arg.is_hide_set()) {
        visible = visible.arg(arg.clone());
    }
    for subcommand in command.get_subcommands() {
        visible = visible.subcommand(subcommand.clone());
    }
    clap_complete::generate(shell, &mut visible, "terad", out);
    Ok(())
}

/// Why a command line was not parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A flag written confd's way that terad does not understand; the message has a hint.
    #[error(transparent)]
    Flag(#[from] confd_args::FlagError),
    /// clap's own report, including `--help` and `--version` (see [`clap::Error::exit`]).
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

/// The command with each option's default, for `flavour`, shown as `[default: …]` in its help.
pub fn command(flavour: Flavour) -> clap::Command {
    let rules = flavour.rules();
    // `--version` prints "NAME VERSION": confd's shape under its name.
    let mut command = Cli::command()
        .name(rules.program)
        .version(rules.version)
        .args_override_self(rules.repeated_flag_last_wins);
    for (id, default) in Defaults::of(flavour).shown() {
        command = command.mut_arg(id, |arg| {
            let suffix = format!("[default: {default}]");
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let long = arg.get_long_help().map(ToString::to_string);
            let arg = arg.help(format!("{help} {suffix}"));
            match long {
                Some(long) => arg.long_help(format!("{long} {suffix}")),
                None => arg,
            }
        });
    }
    command
}

/// Parses a command line: the flavour from the program name, confd's flag syntax translated to
/// terad's, then clap.
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let flavour = Flavour::from_args(&args);
    if flavour.rules().layout == Layout::ConsulTemplate {
        let skip = match args.get(1) {
            Some(first) if CONSUL_TEMPLATE_FLAGS.iter().any(|flag| first == flag) => 2,
            _ => 1,
        };
        let parsed = ct_args::parse(args.get(skip..).unwrap_or_default())?;
        return Ok(Cli {
            flavour,
            consul_template: Some(parsed),
            ..Cli::default()
        });
    }
    let command = command(flavour);
    let args = confd_args::translate(args, &command)?;
    let matches = command.try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    cli.flavour = flavour;
    Ok(cli)
}

/// The fleet subcommands. Without one, terad renders (the options above).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Keep KEY=VALUE in etcd or Consul while this process lives and its health command
    /// passes: bound to a lease (etcd) or session (Consul) of --ttl, deleted on SIGTERM/SIGINT,
    /// gone by itself within the TTL after a crash.
    Register(RegisterArgs),
    /// Coordinated rollouts: clear or show a group's halt marker.
    Rollout {
        #[command(subcommand)]
        action: RolloutAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RolloutAction {
    /// Clear GROUP's halt marker: its instances apply the newest render again. With Consul,
    /// also take out of maintenance the service instances on this node's agent that a terad
    /// killed mid-change left there.
    Resume { group: String },
    /// Show who holds or waits for GROUP's slots and whether it is halted; for a group that
    /// coordinates a Consul service, each instance of it with its health, maintenance and slot.
    Status {
        group: String,
        /// The Consul service the group coordinates; by default the `service` of the
        /// `[template.coordination]` table with this group in this host's configuration.
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RegisterArgs {
    /// The key to keep, e.g. /proxy/frontend/$HOSTNAME.
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// Its value, e.g. $IP:$PORT.
    #[arg(long, value_name = "VALUE")]
    pub value: String,
    /// How long the key outlives a crashed terad.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub ttl: String,
    /// Run by /bin/sh -c every --health-interval; while it fails the key is withdrawn.
    #[arg(long, value_name = "COMMAND")]
    pub health_cmd: Option<String>,
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub health_interval: String,
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub health_timeout: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn help(flavour: Flavour) -> String {
        command(flavour).render_long_help().to_string()
    }

    /// The help text of one option, from its name line up to the next option.
    fn option_help<'a>(help: &'a str, option: &str) -> &'a str {
        let start = help
            .find(&format!("      {option} "))
            .or_else(|| help.find(&format!("      {option}[")))
            .unwrap_or_else(|| panic!("{option} in\n{help}"));
        let rest = &help[start + 6..];
        let end = rest.find("\n  -").unwrap_or(rest.len());
        &rest[..end]
    }

    #[test]
    fn help_shows_every_default() {
        let help = help(Flavour::Terad);
        for (option, default) in [
            ("--backend", "[default: etcd]"),
            (
                "--node",
                "[default: http://127.0.0.1:2379 for etcd, http://127.0.0.1:8500 for consul]",
            ),
            ("--interval", "[default: 600 without --watch or --onetime]"),
            ("--confdir", "[default: /etc/terad]"),
            (
                "--config-file",
                "[default: CONFDIR/terad.toml, else CONFDIR/confd.toml, if present]",
            ),
            ("--log-level", "[default: info]"),
            ("--log-format", "[default: text]"),
            ("--scheme", "[default: http, or https"),
            ("--backend-timeout", "[default: 10s]"),
            ("--consul-wait", "[default: 5m]"),
            ("--consistency", "[default: default]"),
            ("--ready-timeout", "[default: 30s]"),
            ("--shutdown-timeout", "[default: 30s]"),
            ("--exec-kill-timeout", "[default: 10s]"),
            ("--instance", "[default: HOSTNAME/PID]"),
        ] {
            let text = option_help(&help, option);
            // Wrapped help puts line breaks and indentation where spaces were.
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(text.contains(default), "{option}: {text}");
        }
        // The short help too.
        let short = command(Flavour::Terad).render_help().to_string();
        assert!(short.contains("[default: etcd]"), "{short}");
    }

    /// Go's flag package keeps the last of a flag given twice; confd's unit files and scripts
    /// rely on it (a default in the unit, an override appended by a drop-in). Under its own
    /// name terad refuses the repetition; `-node` adds up under both.
    #[test]
    fn a_repeated_flag_keeps_the_last_under_confds_name_and_is_refused_under_terads() {
        let cli = try_parse_from([
            "confd",
            "-prefix",
            "/a",
            "-interval",
            "5",
            "-node",
            "http://a:2379",
            "-prefix",
            "/b",
            "-interval=10",
            "-node",
            "http://b:2379",
        ])
        .unwrap();
        assert_eq!(cli.prefix.as_deref(), Some("/b"));
        assert_eq!(cli.interval, Some(10));
        assert_eq!(cli.nodes, ["http://a:2379", "http://b:2379"]);

        let refused = try_parse_from(["terad", "--prefix", "/a", "--prefix", "/b"]).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("cannot be used multiple times"),
            "{refused}"
        );
        let cli = try_parse_from([
            "terad",
            "--node",
            "http://a:2379",
            "--node",
            "http://b:2379",
        ])
        .unwrap();
        assert_eq!(cli.nodes, ["http://a:2379", "http://b:2379"]);
    }

    fn generated(kind: Generate) -> String {
        let mut out = Vec::new();
        generate(kind, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn generate_prints_the_man_page_and_completions_without_hidden_flags() {
        for args in [
            ["terad", "--generate", "man"],
            ["terad", "-generate", "man"],
        ] {
            let cli = try_parse_from(args).unwrap();
            assert_eq!(cli.generate, Some(Generate::Man), "{args:?}");
        }
        let man = generated(Generate::Man);
        assert!(man.contains(".TH terad 1"), "{man}");
        for kind in [
            Generate::Man,
            Generate::CompleteBash,
            Generate::CompleteZsh,
            Generate::CompleteFish,
        ] {
            let text = generated(kind);
            assert!(
                text.contains("onetime") && text.contains("backend"),
                "{kind:?}"
            );
            for hidden in ["generate", "srv-domain"] {
                assert!(!text.contains(hidden), "{kind:?} shows {hidden}");
            }
        }
        assert!(generated(Generate::CompleteBash).contains("--onetime"));
    }

    #[test]
    fn under_the_name_confd_help_shows_confds_defaults() {
        let help = help(Flavour::Confd);
        let text = option_help(&help, "--confdir");
        assert!(text.contains("[default: /etc/confd]"), "{text}");
        let text = option_help(&help, "--config-file");
        assert!(
            text.contains("[default: /etc/confd/confd.toml, if present]"),
            "{text}"
        );
    }

    #[test]
    fn the_flavour_comes_from_the_program_name() {
        for (program, flavour) in [
            ("confd", Flavour::Confd),
            ("/usr/bin/confd", Flavour::Confd),
            ("./confd", Flavour::Confd),
            ("terad", Flavour::Terad),
            ("/usr/bin/terad", Flavour::Terad),
            ("confd-old", Flavour::Terad),
            ("", Flavour::Terad),
        ] {
            assert_eq!(
                Flavour::from_program(OsStr::new(program)),
                flavour,
                "{program}"
            );
        }
        let cli = try_parse_from(["/usr/local/bin/confd", "-onetime"]).unwrap();
        assert_eq!(cli.flavour, Flavour::Confd);
        assert_eq!(cli.onetime, Some(true));
    }

    #[test]
    fn a_confd_command_line_parses_to_the_same_options_as_terads() {
        let confd = try_parse_from([
            "terad",
            "-onetime",
            "-backend",
            "file",
            "-file",
            "a.yaml",
            "--file=b.yaml",
            "-confdir",
            "/etc/confd",
            "-node",
            "http://e1:2379",
            "-node=http://e2:2379",
            "-log-level=debug",
            "-noop=false",
        ])
        .unwrap();
        let terad = try_parse_from([
            "terad",
            "--onetime",
            "--backend",
            "file",
            "--file",
            "a.yaml",
            "--file",
            "b.yaml",
            "--confdir",
            "/etc/confd",
            "--node",
            "http://e1:2379,http://e2:2379",
            "--log-level",
            "debug",
            "--noop=false",
        ])
        .unwrap();
        assert_eq!(format!("{confd:?}"), format!("{terad:?}"));
        assert_eq!(
            confd.files,
            [PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]
        );
        assert!(matches!(
            try_parse_from(["terad", "-onetim"]),
            Err(ParseError::Flag(_))
        ));
    }
}
