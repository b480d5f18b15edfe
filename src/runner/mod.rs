//! The orchestrator: one-shot, polling and watch modes over one live key store.
//!
//! The runner owns the store. Backend listings and watch updates are applied to it in place, and
//! after each batch only the resources whose keys the batch touched are rendered (at once, or
//! when their `wait` quiescence expires). Rendering happens here, between batches, so every
//! render reads exactly one state of the store. The rendered bytes go to one worker task per
//! resource, which applies them ([`crate::apply`]); a worker busy with a slow check only ever
//! picks up the newest render after it. Reloads are coalesced per shared command
//! ([`crate::apply::reload`]).
//!
//! A failed listing or a broken watch never empties the store: the last good files stay until
//! the backend answers again. A configuration reload (SIGHUP, `--watch-config`) that fails
//! validation leaves everything running as it was.
//!
//! - [`onetime`]: `--onetime`, list once and apply every resource in order.
//! - [`runtime`]: the event loop of `--watch` and `--interval` over the live store.
//! - [`schedule`]: which resources a change reaches, and when they render.
//! - [`worker`]: one task per resource that applies its newest render.
//! - [`guard`]: the empty-store guard.
//! - [`reconfigure`]: SIGHUP / `--watch-config`, the running configuration diffed with the new.
//! - [`follow`]: the task that follows the backend, and listing with retry.
//! - [`services`]: the queries of Consul's service catalog templates make, one blocking query
//!   each, and the snapshot renders read.

mod follow;
mod guard;
mod onetime;
mod reconfigure;
mod runtime;
mod schedule;
mod services;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::stage::SyncOptions;
use crate::backend::{Backend, KeySource};
use crate::cli::Cli;
use crate::config::{self, Mode, Settings};
use crate::exec::ExecHandle;
use crate::setup::Config;
use crate::telemetry::Telemetry;

use self::runtime::{Followed, Runtime};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every resource synced (one-shot), or a clean shutdown.
    Success,
    /// One or more resources failed (one-shot), or the backend never answered.
    Failed,
}

/// Requests from outside the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the configuration (SIGHUP, `--watch-config`).
    Reload,
}

/// What a run needs besides its configuration.
pub struct RunContext {
    /// The command line, to re-read the configuration on reload.
    pub cli: Cli,
    pub telemetry: Arc<Telemetry>,
    /// The `--exec` service, when there is one.
    pub exec: Option<ExecHandle>,
    pub shutdown: CancellationToken,
    pub control: mpsc::Receiver<Control>,
}

/// Runs the configured mode until it completes (one-shot) or `shutdown` is cancelled.
pub async fn run(config: Config, backend: Backend, mut context: RunContext) -> RunOutcome {
    config.log_warnings();
    for broken in &config.broken {
        broken.log();
    }
    for key in &config.settings.ignored {
        warn!(key = %key, "confd setting ignored: terad does not use it");
    }
    for chosen in &config.templates.chosen {
        let how = if chosen.automatic {
            "detected"
        } else {
            "configured"
        };
        info!(template = %chosen.template, engine = chosen.engine.name(), how, "template engine");
    }
    for template in &config.templates.time_dependent {
        warn!(template = %template, "the template prints the time of day (datetime beyond the date): every render differs, so every render rewrites the file and reloads");
    }
    let options = sync_options(&config.settings);
    // With --keep-stage-file the stage files of earlier runs are what the user asked to keep.
    if !options.noop && !options.keep_stage_file {
        for resource in &config.resources {
            for stale in crate::fs::remove_stale_stage_files(&resource.dest) {
                info!(resource = %resource.name, path = %stale.display(), "removed a stage file left by an earlier run");
            }
        }
    }
    if config.settings.mode == Mode::Onetime {
        return onetime::onetime(config, backend, &context).await;
    }

    let mut config = config;
    let mut backend = backend;
    loop {
        let mode = effective_mode(&config.settings, &backend);
        let mut runtime = Runtime::new(config, &backend, &context);
        info!(
            backend = backend.name(),
            resources = runtime.scheduler.slots.len(),
            prefixes = crate::logging::json(&runtime.prefixes),
            services = runtime.catalog.watched(),
            "starting"
        );
        match runtime.follow(backend, mode, &mut context).await {
            Followed::Stopped => {
                runtime.stop().await;
                return RunOutcome::Success;
            }
            Followed::Restart(new_config, new_backend) => {
                info!("backend settings changed; restarting with the new configuration");
                runtime.stop().await;
                config = *new_config;
                backend = new_backend;
            }
        }
    }
}

fn sync_options(settings: &Settings) -> SyncOptions {
    SyncOptions {
        noop: settings.noop,
        noop_output: settings.rules.noop_output,
        sync_only: settings.sync_only,
        keep_stage_file: settings.keep_stage_file,
    }
}

/// `--watch` on a backend that cannot watch becomes polling.
fn effective_mode(settings: &Settings, backend: &Backend) -> Mode {
    match settings.mode {
        Mode::Watch { reconcile } if !backend.supports_watch() => {
            let interval = reconcile.unwrap_or(config::DEFAULT_INTERVAL);
            warn!(
                backend = backend.name(),
                interval_secs = interval.as_secs(),
                "this backend cannot be watched; polling instead"
            );
            Mode::Poll { interval }
        }
        mode => mode,
    }
}
