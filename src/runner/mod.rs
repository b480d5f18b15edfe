//! The orchestrator: one-shot, polling and watch modes over one live key store.
//!
//! The runner owns the store. Backend listings and watch updates are applied to it in place, and
//! after each batch only the resources whose keys the batch touched are rendered (at once, or
//! when their `wait` quiescence expires). Rendering happens here, between batches, so every
//! render reads exactly one state of the store. The rendered bytes go to one worker task per
//! resource, which writes and checks; a worker busy with a slow check only ever picks up the
//! newest render after it. Reloads are coalesced per shared command ([`crate::reload`]).
//!
//! A failed listing or a broken watch never empties the store: the last good files stay until
//! the backend answers again. A configuration reload (SIGHUP, `--watch-config`) that fails
//! validation leaves everything running as it was.
//!
//! - [`onetime`]: `--onetime`, list once and sync every resource in order.
//! - [`runtime`]: the event loop of `--watch` and `--interval` over the live store.
//! - [`reconfigure`]: SIGHUP / `--watch-config`, the running configuration diffed with the new.
//! - [`worker`]: one task per resource that writes its newest render.
//! - [`follow`]: the task that follows the backend, and listing with retry.
//! - [`services`]: the queries of Consul's service catalog templates make, one blocking query
//!   each, and the snapshot renders read.

mod follow;
mod onetime;
mod reconfigure;
mod runtime;
mod services;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::{Backend, KeySource};
use crate::catalog::{ServiceQuery, ServiceSnapshot};
use crate::cli::Cli;
use crate::config::{self, Mode, Resource, Settings};
use crate::dependency::Dependency;
use crate::exec::ExecHandle;
use crate::reload::Action;
use crate::resource::SyncOptions;
use crate::setup::Config;
use crate::store::KeyStore;
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
        warn!(template = %template, "the template calls datetime: every render differs, so every render rewrites the file and reloads");
    }
    let options = sync_options(&config.settings);
    if !options.noop {
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
            resources = runtime.slots.len(),
            prefixes = crate::logging::json(&runtime.prefixes),
            services = runtime.catalog.watched(),
            "starting"
        );
        match runtime.follow(backend, mode, &mut context).await {
            Followed::Stopped => {
                runtime.stop(&context).await;
                return RunOutcome::Success;
            }
            Followed::Restart(new_config, new_backend) => {
                info!("backend settings changed; restarting with the new configuration");
                runtime.stop(&context).await;
                config = *new_config;
                backend = new_backend;
            }
        }
    }
}

fn sync_options(settings: &Settings) -> SyncOptions {
    SyncOptions {
        noop: settings.noop,
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

/// The reload a resource needs, if any: its own `reload_cmd`, and the `--exec` service.
fn reload_actions(
    resource: &Resource,
    settings: &Settings,
    exec: Option<&ExecHandle>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if !settings.sync_only {
        if let Some(reload) = &resource.reload_cmd {
            // A link's target is what got replaced; {{.src}} in a reload means that file.
            let target = crate::fs::resolve_destination(&resource.dest)
                .unwrap_or_else(|_| resource.dest.clone());
            actions.push(Action::Command {
                command: reload.render(&target, &resource.dest),
                timeout: resource.reload_timeout,
            });
        }
        if let Some(exec) = exec {
            actions.push(Action::Exec(exec.clone()));
        }
    }
    actions
}

/// Keys under the (merged) prefixes of one resource, plus the instances, services and nodes of
/// the catalog queries it makes: what `min_keys` and the empty-store guard count.
fn count_keys(store: &KeyStore, services: &ServiceSnapshot, dependencies: &[Dependency]) -> usize {
    dependencies
        .iter()
        .map(|dependency| dependency.count(store, services))
        .sum()
}

/// The entries each catalog query of a resource has now.
fn count_services(
    services: &ServiceSnapshot,
    dependencies: &[Dependency],
) -> Vec<(ServiceQuery, usize)> {
    dependencies
        .iter()
        .filter_map(|dependency| match dependency {
            Dependency::Service(query) => Some((query.clone(), services.count(query))),
            Dependency::Prefix(_) => None,
        })
        .collect()
}

/// The empty-store guard for services: unless `allow_empty` is set, a catalog query that went
/// from some entries to none (every instance of a service failing its checks, a token that
/// lost its rights) keeps the last good file.
fn guard_services(
    resource: &Resource,
    now: &[(ServiceQuery, usize)],
    last: &std::collections::HashMap<ServiceQuery, usize>,
) -> Option<String> {
    if resource.allow_empty {
        return None;
    }
    now.iter().find_map(|(query, count)| {
        let before = last.get(query).copied().unwrap_or(0);
        (*count == 0 && before > 0).then(|| {
            format!(
                "refusing to render: {query} went from {before} to none (set allow_empty = true if that is intended)"
            )
        })
    })
}

/// The empty-store guard: why a render must not happen, if it must not. `min_keys` always
/// applies; and unless `allow_empty` is set, a resource whose keys went from some to none (a
/// store restarted empty, a wiped prefix) keeps its last good file.
fn guard(resource: &Resource, keys: usize, last_keys: Option<usize>) -> Option<String> {
    if let Some(min) = resource.min_keys
        && keys < min
    {
        return Some(format!(
            "refusing to render with {keys} keys: min_keys is {min}"
        ));
    }
    if !resource.allow_empty && keys == 0 && last_keys.is_some_and(|last| last > 0) {
        return Some(format!(
            "refusing to render: the resource's keys went from {} to none (set allow_empty = true if that is intended)",
            last_keys.unwrap_or(0)
        ));
    }
    None
}
#[cfg(test)]
mod guard_tests {
    use super::*;
    use std::time::Duration;

    fn resource(min_keys: Option<usize>, allow_empty: bool) -> Resource {
        Resource {
            name: "r".into(),
            file: "r.toml".into(),
            template: crate::template::TemplateRef {
                name: "t".into(),
                engine: crate::template::EngineChoice::Tera,
            },
            engine: None,
            dest: "/tmp/x".into(),
            prefix: "/".into(),
            keys: vec!["/app".into()],
            mode: None,
            uid: None,
            gid: None,
            check_cmd: None,
            reload_cmd: None,
            check_timeout: Duration::from_secs(1),
            reload_timeout: Duration::from_secs(1),
            render_timeout: Duration::from_secs(1),
            create_dirs: false,
            wait: None,
            min_keys,
            allow_empty,
            values: Default::default(),
            coordination: None,
            health: None,
        }
    }

    #[test]
    fn the_empty_store_guard_defaults_to_safe() {
        let default = resource(None, false);
        assert!(guard(&default, 0, None).is_none(), "an empty start renders");
        assert!(guard(&default, 3, Some(5)).is_none());
        let refusal = guard(&default, 0, Some(5)).unwrap();
        assert!(refusal.contains("went from 5 to none"), "{refusal}");
        assert!(
            guard(&resource(None, true), 0, Some(5)).is_none(),
            "allow_empty"
        );
        let min = resource(Some(2), true);
        assert!(guard(&min, 1, None).unwrap().contains("min_keys is 2"));
        assert!(guard(&min, 2, None).is_none());
    }

    #[test]
    fn a_service_going_from_some_instances_to_none_is_refused() {
        use crate::catalog::HealthQuery;
        let web = ServiceQuery::Health(HealthQuery::new("web").unwrap());
        let api = ServiceQuery::Health(HealthQuery::new("api").unwrap());
        let last = [(web.clone(), 2), (api.clone(), 0)].into_iter().collect();
        let default = resource(None, false);
        let refusal =
            guard_services(&default, &[(web.clone(), 0), (api.clone(), 0)], &last).unwrap();
        assert!(
            refusal.contains("service \"web\" went from 2 to none"),
            "{refusal}"
        );
        assert!(guard_services(&default, &[(web.clone(), 1), (api.clone(), 0)], &last).is_none());
        assert!(
            guard_services(&default, &[(web.clone(), 0)], &Default::default()).is_none(),
            "an unknown service renders an empty list at first"
        );
        assert!(guard_services(&resource(None, true), &[(web, 0)], &last).is_none());
    }
}
