//! terad keeps configuration files in sync with a key-value store: it reads keys from etcd,
//! Consul, files or the environment, renders Tera templates, validates the result with the
//! service's own check command, swaps it in atomically and reloads the service.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap), every option also a `TERAD_*` variable; confd's Go-style
//!   flags translated before clap, confd's defaults under the name `confd`.
//! - [`config`]: command line + environment + `terad.toml`/`confd.toml` → validated
//!   [`config::Settings`]; `conf.d/*.toml` → [`config::Resource`]s. [`setup`] then loads the
//!   templates they name ([`template::prepare`]) into a run's [`setup::Config`].
//! - [`diagnostic`]: a configuration error with its file, line, column and key, used by every
//!   step of loading.
//! - [`backend`]: where keys come from, one module per backend behind [`backend::KeySource`].
//! - [`store`]: the in-memory key space templates read, with confd's glob and `ls` semantics.
//! - [`catalog`]: Consul's service catalog: the queries templates make and their answers.
//! - [`dependency`]: what a template reads, and the index from a change to the resources it
//!   reaches.
//! - [`template`]: the template engines behind one [`template::Templates`], and confd's
//!   functions written once for all of them.
//! - [`apply`]: the one path from a render to a live, reloaded file: render → compare → stage →
//!   check → commit → reload (coalesced across the resources that share it), with the fleet's
//!   turns and the health gate as an optional policy on it.
//! - [`haproxy`]: HAProxy's servers changed through its runtime API instead of a reload.
//! - [`fs`]: the only file writer. [`process`]: the only command runner.
//! - [`runner`]: one-shot, polling and watch modes over the live store; configuration reloads.
//! - [`exec`]: `--exec`, the supervised service.
//! - [`command`]: `terad register` and `terad rollout`, the fleet's command-line side.
//! - [`telemetry`], [`server`]: metrics, readiness, `/health` `/ready` `/metrics`, systemd.
//! - [`fleet`]: coordinated changes (slots, halts, turns), health checks, self-registration.
//! - [`quiescence`] (`wait = "MIN[:MAX]"`), [`retry`] (the one backoff every retry uses).
//! - [`signal`], [`logging`], [`dns`]: process plumbing. [`redact`]: what never prints.
//!
//! `docs/src/architecture.md` follows one key change through these modules, step by step.

pub mod apply;
pub mod backend;
pub mod catalog;
pub mod cli;
pub mod command;
pub mod config;
pub mod dependency;
pub mod diagnostic;
pub mod dns;
pub mod exec;
pub mod fleet;
pub mod fs;
pub mod haproxy;
pub mod logging;
pub mod process;
pub mod quiescence;
pub mod redact;
pub mod retry;
pub mod runner;
pub mod server;
pub mod setup;
pub mod signal;
pub mod store;
pub mod telemetry;
pub mod template;

use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::cli::Cli;
use crate::diagnostic::{ConfigError, ConfigErrors};
use crate::runner::RunOutcome;
use crate::setup::Config;
use crate::telemetry::Telemetry;

pub use crate::cli::{EXIT_CONFIG, EXIT_FAILURE, EXIT_OK};

/// Why terad could not run; `main` prints it with its causes and exits with
/// [`Failure::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The configuration is wrong; nothing was written.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A flag written confd's way that terad does not understand.
    #[error(transparent)]
    Flag(#[from] cli::confd_args::FlagError),
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot watch the configuration")]
    WatchConfig(#[source] notify::Error),
    #[error("cannot listen on {address}")]
    Listen {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write the pid file {path:?}")]
    PidFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `--generate` could not write to standard output.
    #[error("cannot write")]
    Output(#[source] std::io::Error),
    /// `terad register` or `terad rollout` failed.
    #[error(transparent)]
    Command(#[from] command::CommandError),
}

impl Failure {
    /// The exit status under `rules`: a configuration error exits 2 as terad and 1 as confd; a
    /// command line that cannot be parsed exits 2 either way, as Go's flag package does.
    pub fn exit_code(&self, rules: &cli::Rules) -> u8 {
        match self {
            Failure::Flag(_) => rules.flag_error_exit,
            Failure::Config(_) => rules.config_error_exit,
            Failure::Command(error) if error.is_configuration() => rules.config_error_exit,
            Failure::Signals(_)
            | Failure::WatchConfig(_)
            | Failure::Listen { .. }
            | Failure::Runtime(_)
            | Failure::PidFile { .. }
            | Failure::Output(_)
            | Failure::Command(_) => EXIT_FAILURE,
        }
    }
}

/// consul-template's `-pid-file`: the process id, written at start and removed at exit.
struct PidFile(Option<std::path::PathBuf>);

impl PidFile {
    fn write(path: Option<&std::path::Path>) -> Result<PidFile, Failure> {
        let Some(path) = path else {
            return Ok(PidFile(None));
        };
        std::fs::write(path, format!("{}", std::process::id())).map_err(|source| {
            Failure::PidFile {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(PidFile(Some(path.to_owned())))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Failure {
        Failure::Config(error.into())
    }
}

/// Runs terad with a loaded configuration until it finishes (one-shot) or `shutdown` is
/// cancelled (SIGTERM, SIGINT, or whoever drives it in-process). `Ok` is the exit status of a
/// run that started: a one-shot's result, or the `--exec` service's.
pub async fn run(
    cli: Cli,
    config: Config,
    shutdown: CancellationToken,
) -> Result<ExitCode, Failure> {
    // Descriptors are what a flood of connections or a burst of syncs runs out of first.
    process::raise_open_file_limit();
    let pid_file = PidFile::write(config.settings.pid_file.as_deref())?;
    let backend = Backend::connect(&config.settings)?;
    fleet::service::check_self_at_start(&config, &backend).await?;
    let settings = config.settings.clone();
    let telemetry = Arc::new(Telemetry::new(settings.ready_timeout));
    let exit_status = Arc::new(exec::ExitStatus::new());
    let stop_service = CancellationToken::new();
    let (exec_handle, exec_task) = match settings.exec.clone() {
        Some(exec_settings) => {
            let (handle, task) = exec::spawn(
                exec_settings,
                Arc::clone(&telemetry),
                stop_service.clone(),
                shutdown.clone(),
                Arc::clone(&exit_status),
            );
            (Some(handle), Some(task))
        }
        None => (None, None),
    };
    let (control_tx, control) = mpsc::channel(4);
    signal::spawn_handlers(shutdown.clone(), control_tx.clone(), exec_handle.clone())
        .map_err(Failure::Signals)?;
    if settings.watch_config {
        signal::watch_configuration(&settings, control_tx).map_err(Failure::WatchConfig)?;
    } else if settings.mode != config::Mode::Onetime
        && settings.rules.follow_template_edits
        && let Err(error) = signal::watch_templates(&settings, control_tx)
    {
        tracing::warn!(
            templates = %settings.templates_dir().display(),
            error = %error,
            "cannot follow the templates directory; an edited template is used after SIGHUP"
        );
    }
    let server = match settings.listen {
        Some(address) => Some(
            server::bind(address, Arc::clone(&telemetry), shutdown.clone())
                .await
                .map_err(|source| Failure::Listen { address, source })?,
        ),
        None => None,
    };

    let context = runner::RunContext {
        cli,
        telemetry,
        exec: exec_handle,
        shutdown: shutdown.clone(),
        control,
    };
    let outcome = runner::run(config, backend, context).await;

    // terad's own writes and reloads are done; now the service goes.
    telemetry::notify_systemd(&[sd_notify::NotifyState::Stopping]);
    stop_service.cancel();
    if let Some(task) = exec_task {
        let _ = task.await;
    }
    shutdown.cancel();
    if let Some(task) = server {
        let _ = task.await;
    }
    drop(pid_file);
    if let Some(code) = exit_status.get() {
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    Ok(match outcome {
        RunOutcome::Success => ExitCode::from(EXIT_OK),
        RunOutcome::Failed => ExitCode::from(EXIT_FAILURE),
    })
}
