//! terad keeps configuration files in sync with a key-value store: it reads keys from etcd,
//! Consul, files or the environment, renders Tera templates, validates the result with the
//! service's own check command, swaps it in atomically and reloads the service.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap), every option also a `TERAD_*` variable.
//! - [`config`]: command line + environment + `terad.toml`/`confd.toml` → validated
//!   [`config::Settings`]; `conf.d/*.toml` → [`config::Resource`]s; templates → [`template::Engine`].
//! - [`backend`]: where keys come from, one module per backend behind [`backend::KeySource`].
//! - [`store`]: the in-memory key space templates read, with confd's glob and `ls` semantics.
//! - [`template`]: Tera set-up and confd's functions and filters.
//! - [`resource`]: one resource's pipeline: render → compare → stage → check → commit → reload.
//! - [`fs`]: the only file writer. [`process`]: the only command runner.
//! - [`runner`]: one-shot, polling and watch modes over the live store.
//! - [`signal`], [`logging`], [`dns`]: process plumbing.

pub mod backend;
pub mod cli;
pub mod config;
pub mod dns;
pub mod fs;
pub mod logging;
pub mod process;
pub mod resource;
pub mod runner;
pub mod signal;
pub mod store;
pub mod template;

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::config::{BackendKind, Config, ConfigError, ConfigErrors, Settings};
use crate::runner::RunOutcome;

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
pub async fn run(config: Config) -> ExitCode {
    let backend = match connect_backend(&config.settings) {
        Ok(backend) => backend,
        Err(errors) => {
            eprintln!("terad: {errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let shutdown = CancellationToken::new();
    if let Err(error) = signal::spawn_shutdown_handler(shutdown.clone()) {
        eprintln!("terad: cannot install signal handlers: {error}");
        return ExitCode::from(EXIT_FAILURE);
    }
    match runner::run(config, backend, shutdown).await {
        RunOutcome::Success => ExitCode::from(EXIT_OK),
        RunOutcome::Failed => ExitCode::from(EXIT_FAILURE),
    }
}
