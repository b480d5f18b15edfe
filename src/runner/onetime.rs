//! `--onetime`: the container entrypoint's render. List once, sync every resource in order,
//! run each distinct reload once, exit with the result.

use std::sync::Arc;

use tracing::{error, info};

use super::follow::list_with_retry;
use super::{RunContext, RunOutcome, count_keys, guard, reload_actions, sync_options};
use crate::backend::{Backend, KeySource, merge_prefixes};
use crate::catalog::{ServiceInput, ServiceSnapshot};
use crate::dependency::Dependency;
use crate::reload::Action;
use crate::resource::{self, RenderFailure, SyncOutcome};
use crate::setup::Config;
use crate::store::KeyStore;
use crate::template::RenderInput;

/// How many times a resource renders at most, each time finding catalog queries it did not know
/// of (a service whose name comes from a service whose name comes from a key, …).
const MAX_ROUNDS: usize = 8;

/// `--onetime`: list once (retrying an unreachable backend up to the backend timeout), sync
/// every resource in order, run each distinct reload once, and report whether all succeeded.
pub(super) async fn onetime(
    config: Config,
    mut backend: Backend,
    context: &RunContext,
) -> RunOutcome {
    let Config {
        settings,
        resources,
        templates,
    } = config;
    let templates = Arc::new(templates);
    let options = sync_options(&settings);
    let keys: Vec<String> = resources
        .iter()
        .flat_map(|r| r.keys.iter().cloned())
        .collect();
    let prefixes = merge_prefixes(keys.iter());
    let deadline = tokio::time::Instant::now() + settings.backend_timeout;
    let Some(listing) = list_with_retry(
        &mut backend,
        &prefixes,
        Some(deadline),
        &context.shutdown,
        &context.telemetry,
    )
    .await
    else {
        return RunOutcome::Failed;
    };
    let store = Arc::new(listing.entries.into_iter().collect::<KeyStore>());
    // Consul's catalog: each query a template makes is read once, before the render when the
    // template writes it out, or when a render asks for it (and the resource renders again).
    let catalog = match &backend {
        Backend::Consul(source) => Some(source.as_ref().clone()),
        _ => None,
    };
    let mut services = match catalog {
        Some(_) => ServiceSnapshot::default(),
        None => ServiceSnapshot::unavailable(backend.name()),
    };
    let mut failed = 0;
    // Reloads wanted, in the order resources asked for them, each once.
    let mut reloads: Vec<(Action, Vec<String>)> = Vec::new();
    for resource in resources {
        let resource = Arc::new(resource);
        let mut dependencies = Dependency::from_keys(&resource.keys);
        dependencies.extend(
            templates
                .service_calls(&resource.template)
                .into_iter()
                .filter_map(|call| call.query.ok().flatten())
                .map(Dependency::Service),
        );
        let mut rounds = 0;
        let rendered = loop {
            rounds += 1;
            if let Some(source) = &catalog {
                for dependency in &dependencies {
                    if let Dependency::Service(query) = dependency
                        && !services.has(query)
                    {
                        let result = super::services::read_once(
                            source,
                            query,
                            settings.backend_timeout,
                            &context.shutdown,
                        )
                        .await;
                        services.results.insert(query.clone(), result);
                    }
                }
            }
            let keys = count_keys(&store, &services, &dependencies);
            if let Some(refusal) = guard(&resource, keys, None) {
                error!(resource = %resource.name, dest = %resource.dest.display(), keys, "{refusal}; destination left unchanged");
                break None;
            }
            let input = RenderInput {
                store: Arc::clone(&store),
                scope: Arc::new(resource::key_scope(&resource)),
                services: ServiceInput::new(Arc::new(services.clone())),
            };
            let record = Arc::clone(&input.services.record);
            match resource::render_bounded(
                Arc::clone(&templates),
                Arc::clone(&resource),
                input,
                Arc::default(),
                &context.shutdown,
            )
            .await
            {
                Ok(rendered) => break Some(rendered),
                Err(RenderFailure::Stopped) => return RunOutcome::Failed,
                // Services found by the render (a name read from a key): read them, again.
                Err(_) if !record.missing().is_empty() && rounds < MAX_ROUNDS => {
                    dependencies.extend(record.missing().into_iter().map(Dependency::Service));
                }
                Err(err) => {
                    error!(resource = %resource.name, dest = %resource.dest.display(), error = %err, "render failed; destination left unchanged");
                    break None;
                }
            }
        };
        let Some(rendered) = rendered else {
            failed += 1;
            continue;
        };
        match resource::sync(&resource, Arc::new(rendered), options).await {
            Ok(SyncOutcome::Updated { .. }) => {
                for action in reload_actions(&resource, &settings, None) {
                    match reloads
                        .iter_mut()
                        .find(|(known, _)| known.key() == action.key())
                    {
                        Some((_, names)) => names.push(resource.name.clone()),
                        None => reloads.push((action, vec![resource.name.clone()])),
                    }
                }
            }
            Ok(_) => {}
            Err(err) => {
                error!(resource = %resource.name, dest = %resource.dest.display(), error = %err, "sync failed");
                failed += 1;
            }
        }
    }
    for (action, names) in reloads {
        if let Action::Command { command, timeout } = action {
            match crate::process::run_shell(&command, timeout).await {
                Ok(_) => {
                    info!(resources = crate::logging::json(&names), command = %command, "reloaded")
                }
                Err(err) => {
                    error!(resources = crate::logging::json(&names), error = %err, "reload failed; the new files are in place");
                    failed += 1;
                }
            }
        }
    }
    // The process exits next: freeing a large store and template engine value by value would
    // only delay the exit (by ~20 ms at 100k keys).
    std::mem::forget(store);
    std::mem::forget(templates);
    if failed == 0 {
        RunOutcome::Success
    } else {
        error!(failed, "one-shot run had failures");
        RunOutcome::Failed
    }
}
