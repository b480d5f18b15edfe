//! terad keeps configuration files in sync with a key-value store: it reads keys from etcd,
//! Consul, files or the environment, renders Tera templates, validates the result with the
//! service's own check command, swaps it in atomically and reloads the service.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap), every option also a `TERAD_*` variable; confd's Go-style
//!   flags translated before clap, confd's defaults under the name `confd`.
//! - [`config`]: command line + environment + `terad.toml`/`confd.toml` → validated
//!   [`config::Settings`]; `conf.d/*.toml` → [`config::Resource`]s; templates → [`template::Templates`].
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
//! - [`telemetry`], [`server`]: metrics, readiness, `/health` `/ready` `/metrics`, systemd.
//! - [`signal`], [`logging`], [`dns`]: process plumbing. [`redact`]: what never prints.

pub mod apply;
pub mod backend;
pub mod catalog;
pub mod cli;
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
use crate::config::{BackendKind, Settings};
use crate::diagnostic::{ConfigError, ConfigErrors};
use crate::runner::RunOutcome;
use crate::setup::Config;
use crate::telemetry::Telemetry;

/// Exit status when every resource synced.
pub const EXIT_OK: u8 = 0;
/// Exit status when a resource failed or the backend could not be read.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for configuration errors; nothing was written.
pub const EXIT_CONFIG: u8 = 2;

/// Connects the configured backend.
pub fn connect_backend(settings: &Settings) -> Result<Backend, ConfigErrors> {
    match settings.backend {
        BackendKind::File => Ok(Backend::File(backend::file::FileSource::new(
            settings.files.clone(),
        ))),
        BackendKind::Env => Ok(Backend::Env(backend::env::EnvSource)),
        BackendKind::Etcd => backend::etcd::EtcdSource::new(settings)
            .map(|source| Backend::Etcd(Box::new(source)))
            .map_err(|message| ConfigError::option("--backend", message).into()),
        BackendKind::Consul => backend::consul::ConsulSource::new(settings)
            .map(|source| Backend::Consul(Box::new(source)))
            .map_err(|message| ConfigError::option("--backend", message).into()),
    }
}

/// Runs terad with a loaded configuration until it finishes (one-shot) or is told to stop.
pub async fn run(cli: Cli, config: Config) -> ExitCode {
    // Descriptors are what a flood of connections or a burst of syncs runs out of first.
    process::raise_open_file_limit();
    let backend = match connect_backend(&config.settings) {
        Ok(backend) => backend,
        Err(errors) => {
            eprintln!("terad: {errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(message) = fleet::service::check_self_at_start(&config, &backend).await {
        eprintln!("terad: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let settings = config.settings.clone();
    let shutdown = CancellationToken::new();
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
    if let Err(error) =
        signal::spawn_handlers(shutdown.clone(), control_tx.clone(), exec_handle.clone())
    {
        eprintln!("terad: cannot install signal handlers: {error}");
        return ExitCode::from(EXIT_FAILURE);
    }
    if settings.watch_config
        && let Err(error) = signal::watch_configuration(&settings, control_tx)
    {
        eprintln!("terad: cannot watch the configuration: {error}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let server = match settings.listen {
        Some(address) => {
            match server::bind(address, Arc::clone(&telemetry), shutdown.clone()).await {
                Ok(task) => Some(task),
                Err(error) => {
                    eprintln!("terad: cannot listen on {address}: {error}");
                    return ExitCode::from(EXIT_FAILURE);
                }
            }
        }
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
    if let Some(code) = exit_status.get() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    match outcome {
        RunOutcome::Success => ExitCode::from(EXIT_OK),
        RunOutcome::Failed => ExitCode::from(EXIT_FAILURE),
    }
}
