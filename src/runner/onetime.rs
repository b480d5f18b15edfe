//! `--onetime`: the container entrypoint's render. List once, render and apply every resource in
//! order through the apply path, run each distinct reload once at the end, exit with the result.

use std::sync::Arc;
use std::time::Duration;

use tracing::error;

use super::follow::list_with_retry;
use super::guard::{count_keys, guard};
use super::{RunContext, RunOutcome, sync_options};
use crate::apply::reload::{Action, Groups, Trigger};
use crate::apply::render::{self, RenderFailure};
use crate::apply::{Pipeline, PipelineSetup, Policy, Retry};
use crate::backend::{Backend, KeySource, merge_prefixes};
use crate::catalog::{ServiceInput, ServiceSnapshot};
use crate::dependency::Dependency;
use crate::fleet::Fleet;
use crate::setup::Config;
use crate::store::KeyStore;
use crate::template::RenderInput;

/// How many times a resource renders at most, each time finding catalog queries it did not know
/// of (a service whose name comes from a service whose name comes from a key, …).
const MAX_ROUNDS: usize = 8;

/// `--onetime`: list once (retrying an unreachable backend up to the backend timeout), render and
/// apply every resource in order, run each distinct reload once, and report whether all
/// succeeded.
pub(super) async fn onetime(
    config: Config,
    mut backend: Backend,
    context: &RunContext,
) -> RunOutcome {
    let Config {
        settings,
        resources,
        templates,
        ..
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
    // The reloads wait until every resource is written, then run once each, in the order
    // resources first asked for them.
    let mut groups = Groups::new(Trigger::OnDemand, Arc::clone(&context.telemetry));
    let fleet = Arc::new(Fleet {
        coordinator: None,
        instance: settings.instance.clone(),
    });
    let mut failed = 0;
    for (id, resource) in resources.into_iter().enumerate() {
        let resource = Arc::new(resource);
        let actions = Action::for_resource(&resource, settings.sync_only, None);
        // One-shot reloads run once each, at the end: nothing to space.
        let member = groups.join(id, &resource.name, actions, Duration::ZERO);
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
                scope: Arc::new(render::key_scope(&resource)),
                services: ServiceInput::new(Arc::new(services.clone())),
            };
            let record = Arc::clone(&input.services.record);
            match render::render_bounded(
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
        let Some(content) = rendered else {
            failed += 1;
            continue;
        };
        let mut pipeline = Pipeline::new(
            Arc::clone(&resource),
            PipelineSetup {
                member: Arc::clone(&member),
                options,
                telemetry: Arc::clone(&context.telemetry),
                fleet: Arc::clone(&fleet),
                policy: Policy::Direct,
                retry: Retry::Never,
            },
        );
        let outcome = pipeline.apply(Arc::new(content), &context.shutdown).await;
        if outcome.failed() {
            failed += 1;
        }
        member.applied(outcome.wants_reload());
    }
    for group in groups.iter() {
        if let Some(Err(_)) = group.run_if_requested().await {
            failed += 1;
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
