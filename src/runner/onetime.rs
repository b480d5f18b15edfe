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
use crate::template::go::ct::awaited;

/// How many times a resource renders at most, each time finding catalog queries it did not know
/// of (a service whose name comes from a service whose name comes from a key, …).
const MAX_ROUNDS: usize = 8;

/// One-shot runs of consul-template templates: what their KV reads wait for.
mod kv {
    use std::sync::Arc;
    use std::time::Duration;

    use tracing::{info, warn};

    use crate::backend::merge_prefixes;
    use crate::config::Resource;
    use crate::dependency::Dependency;
    use crate::store::{KeyStore, join_key, key_in_scope};
    use crate::template::go::ct::Awaited;
    use crate::template::go::ct::kv::{Read, watched_prefix};

    /// How often a one-shot run reads a missing key's prefix again while it waits.
    const POLL: Duration = Duration::from_millis(500);

    /// Takes in what a failed render waits for: a path computed at render becomes one of the
    /// resource's keys, a missing key is waited for until `timeout` after it was first missed.
    /// Returns the prefixes to read again, or `None` when the render must fail.
    pub(super) async fn await_data(
        awaited: Awaited,
        resource: &mut Arc<Resource>,
        dependencies: &mut Vec<Dependency>,
        deadline: &mut Option<tokio::time::Instant>,
        timeout: Duration,
        rounds: usize,
    ) -> Option<Vec<String>> {
        match awaited {
            Awaited::Unwatched(path) if rounds < super::MAX_ROUNDS => {
                let key = join_key(&[&resource.prefix, &path]);
                let key = if key.is_empty() { "/".to_owned() } else { key };
                info!(resource = %resource.name, key = %key, "the template reads a key its resource does not watch yet; reading it");
                let resource = Arc::make_mut(resource);
                resource.keys.push(key.clone());
                dependencies.push(Dependency::Prefix(key.clone()));
                Some(vec![key])
            }
            Awaited::Unwatched(_) => None,
            Awaited::Key(path) => {
                let now = tokio::time::Instant::now();
                let until = *deadline.get_or_insert_with(|| {
                    info!(resource = %resource.name, key = %path, "waiting for a key the template reads");
                    now + timeout
                });
                if now >= until {
                    warn!(resource = %resource.name, key = %path, waited_s = timeout.as_secs_f64(), "gave up waiting for a key the template reads");
                    return None;
                }
                tokio::time::sleep(POLL.min(until - now)).await;
                let watched = watched_prefix(Read::Prefix, &path);
                let prefix = join_key(&[&resource.prefix, &watched]);
                Some(merge_prefixes(resource.keys.iter().filter(|key| {
                    key_in_scope(if prefix.is_empty() { "/" } else { &prefix }, key)
                        || key_in_scope(key, &prefix)
                })))
            }
        }
    }

    /// Puts a new listing of `prefixes` into the store.
    pub(super) fn merge_listing(
        store: &mut Arc<KeyStore>,
        prefixes: &[String],
        entries: Vec<(String, String)>,
    ) {
        let store = Arc::make_mut(store);
        for prefix in prefixes {
            store.replace_subtree(
                prefix,
                entries
                    .iter()
                    .filter(|(key, _)| key_in_scope(prefix, key))
                    .cloned(),
            );
        }
    }
}

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
    let mut store = Arc::new(listing.entries.into_iter().collect::<KeyStore>());
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
        let mut resource = Arc::new(resource);
        // A missing key a consul-template template reads is waited for until then.
        let mut key_deadline: Option<tokio::time::Instant> = None;
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
                Err(RenderFailure::Template(err)) if awaited(&err).is_some() => {
                    let waited = kv::await_data(
                        awaited(&err).expect("checked"),
                        &mut resource,
                        &mut dependencies,
                        &mut key_deadline,
                        settings.backend_timeout,
                        rounds,
                    )
                    .await;
                    let Some(prefixes) = waited else {
                        error!(resource = %resource.name, dest = %resource.dest.display(), error = %err, "render failed; destination left unchanged");
                        break None;
                    };
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
                    kv::merge_listing(&mut store, &prefixes, listing.entries);
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
