//! The event loop of `--watch` and `--interval`: the live store, the backend followed, and what
//! each change re-renders. Scheduling renders is [`super::schedule`]'s, applying them
//! [`super::worker`]'s, configuration reloads [`super::reconfigure`]'s.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::follow::{WatchTask, answered, list_once, list_with_retry};
use super::schedule::{Scheduler, Slot, Sources};
use super::services::{Catalog, ServiceUpdate};
use super::worker::Workers;
use super::{Control, RunContext, sync_options};
use crate::backend::{Backend, Listing, Update, merge_prefixes};
use crate::catalog::ServiceQuery;
use crate::config::{Mode, Resource, Settings};
use crate::fleet::{Coordinator, Fleet};
use crate::setup::Config;
use crate::store::{KeyStore, key_in_scope};
use crate::telemetry::{Telemetry, notify_systemd};

/// How often a render that waits for the previous one of its resource looks again.
const DEFERRED_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// How `follow` ended.
pub(super) enum Followed {
    Stopped,
    Restart(Box<Config>, Backend),
}

pub(super) struct Runtime {
    pub(super) settings: Settings,
    /// The live key store, updated in place between renders, and its revision.
    store: Arc<KeyStore>,
    revision: u64,
    /// The merged prefixes every listing and watch covers.
    pub(super) prefixes: Vec<String>,
    pub(super) scheduler: Scheduler,
    pub(super) workers: Workers,
    /// Consul's catalog queries the templates make, and their answers.
    pub(super) catalog: Catalog,
    pub(super) telemetry: Arc<Telemetry>,
}

impl Runtime {
    pub(super) fn new(config: Config, backend: &Backend, context: &RunContext) -> Runtime {
        // Resources left out for their templates, shown by /ready and the metric.
        context.telemetry.set_broken(&config.broken_reasons());
        let Config {
            settings,
            resources,
            templates,
            ..
        } = config;
        // Built for every shared store, whether or not a resource is coordinated now: a
        // configuration reload may add `[template.coordination]`, and a coordinated resource
        // must never be applied without its slot. It shares the backend's connection, so an
        // unused coordinator costs nothing.
        let fleet = Arc::new(Fleet {
            coordinator: Coordinator::for_backend(backend),
            instance: settings.instance.clone(),
        });
        let telemetry = Arc::clone(&context.telemetry);
        let mut runtime = Runtime {
            workers: Workers::new(
                sync_options(&settings),
                fleet,
                context.exec.clone(),
                Arc::clone(&telemetry),
                context.shutdown.clone(),
            ),
            scheduler: Scheduler::new(
                Arc::new(templates),
                Arc::clone(&telemetry),
                context.shutdown.clone(),
            ),
            catalog: Catalog::new(backend, &context.shutdown, &telemetry),
            settings,
            store: Arc::new(KeyStore::new()),
            revision: 0,
            prefixes: Vec::new(),
            telemetry,
        };
        for resource in resources {
            let slot = runtime.new_slot(resource);
            runtime.scheduler.slots.push(slot);
        }
        runtime.update_prefixes();
        runtime
    }

    /// Starts `resource`'s worker and returns its slot.
    pub(super) fn new_slot(&mut self, resource: Resource) -> Slot {
        let resource = Arc::new(resource);
        let spacing = crate::apply::reload::pacing(&resource, &self.settings);
        let (id, member) = self.workers.start(&resource, spacing);
        Slot::new(
            id,
            resource,
            member,
            self.settings.wait,
            Arc::clone(&self.scheduler.templates),
        )
    }

    /// Recomputes the merged prefixes, the dependency index and the catalog queries followed;
    /// returns whether the prefixes changed.
    pub(super) fn update_prefixes(&mut self) -> bool {
        let queries = self.scheduler.reindex();
        let slots = &self.scheduler.slots;
        let prefixes = merge_prefixes(slots.iter().flat_map(|slot| slot.resource.keys.iter()));
        let changed = prefixes != self.prefixes;
        let used: BTreeSet<&ServiceQuery> = queries.iter().collect();
        self.catalog.retain(&used);
        self.catalog.watch(queries.iter());
        self.prefixes = prefixes;
        self.telemetry.set_prefixes(&self.prefixes);
        self.telemetry
            .set_resources(slots.iter().map(|slot| slot.resource.name.as_str()));
        changed
    }

    /// Renders every resource (the first render, and after a configuration reload).
    pub(super) fn render_all(&mut self) {
        let sources = Sources {
            store: &self.store,
            catalog: &mut self.catalog,
        };
        self.scheduler.render_all(sources);
    }

    /// Poll and watch modes: an initial listing, then updates from the watch task and/or a
    /// periodic re-listing, until shutdown or a configuration reload that changes the backend.
    pub(super) async fn follow(
        &mut self,
        mut lister: Backend,
        mode: Mode,
        context: &mut RunContext,
    ) -> Followed {
        let (watching, relist_every) = match mode {
            Mode::Watch { reconcile } => (true, reconcile),
            Mode::Poll { interval } => (false, Some(interval)),
            Mode::Onetime => unreachable!("one-shot runs do not follow"),
        };
        let shutdown = context.shutdown.clone();
        let start_watch = |runtime: &Runtime, lister: &Backend| {
            WatchTask::start(
                lister,
                &runtime.prefixes,
                runtime.revision,
                &runtime.telemetry,
                &shutdown,
            )
        };

        // The first listing: wait for the backend as long as it takes (the last good files
        // stay meanwhile).
        let Some(listing) = list_with_retry(
            &mut lister,
            &self.prefixes,
            None,
            &context.shutdown,
            &self.telemetry,
        )
        .await
        else {
            return Followed::Stopped;
        };
        self.replace_store(listing);
        self.render_all();

        let mut watch = watching.then(|| start_watch(self, &lister));
        let mut relist = relist_every.map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });

        // Whoever sends configuration reloads (the signal handlers) may be gone: a closed channel
        // is not polled again.
        let mut control_open = true;
        loop {
            let next_deadline = self.scheduler.next_deadline();
            let stalled_until = self.scheduler.stalls();
            let rendering = stalled_until.is_some();
            tokio::select! {
                _ = context.shutdown.cancelled() => break,
                Some(rendered) = self.scheduler.rendered_rx.recv() => {
                    let sources = Sources { store: &self.store, catalog: &mut self.catalog };
                    self.scheduler.finish_render(rendered, sources);
                }
                _ = sleep_until(stalled_until), if rendering => {}
                _ = tokio::time::sleep(DEFERRED_POLL), if self.scheduler.has_deferred() => {
                    let sources = Sources { store: &self.store, catalog: &mut self.catalog };
                    self.scheduler.render_deferred(sources);
                }
                control = context.control.recv(), if control_open && !rendering => {
                    let Some(Control::Reload) = control else {
                        control_open = false;
                        continue;
                    };
                    match self.reload_configuration(&context.cli).await {
                        Reconfigured::InPlace { prefixes_changed } => {
                            if prefixes_changed {
                                // A new key space: list it and watch it afresh.
                                if let Some(task) = watch.take() {
                                    task.stop();
                                }
                                if let Some(listing) = list_with_retry(&mut lister, &self.prefixes, None, &context.shutdown, &self.telemetry).await {
                                    self.replace_store(listing);
                                }
                                if watching {
                                    watch = Some(start_watch(self, &lister));
                                }
                            }
                            self.render_all();
                            notify_systemd(&[sd_notify::NotifyState::Ready]);
                        }
                        Reconfigured::Kept => notify_systemd(&[sd_notify::NotifyState::Ready]),
                        Reconfigured::NewBackend(config, backend) => {
                            if let Some(task) = watch.take() {
                                task.stop();
                            }
                            notify_systemd(&[sd_notify::NotifyState::Ready]);
                            return Followed::Restart(config, backend);
                        }
                    }
                }
                Some(update) = self.catalog.updates.recv() => {
                    let mut updates = vec![update];
                    // Drain what queued up meanwhile: one render for a burst.
                    while let Ok(more) = self.catalog.updates.try_recv() {
                        updates.push(more);
                    }
                    self.services_changed(updates);
                }
                update = recv(&mut watch), if !rendering => match update {
                    Some(update) => {
                        let mut changed = self.apply(update);
                        // Drain what queued up meanwhile: one render for a burst.
                        if let Some(task) = watch.as_mut() {
                            while let Ok(more) = task.updates.try_recv() {
                                changed.extend(self.apply(more));
                            }
                        }
                        answered(&self.telemetry, &lister, self.store.len(), self.revision);
                        self.keys_changed(&changed);
                    }
                    // The watch task ended (it only does on shutdown).
                    None => watch = None,
                },
                _ = tick(&mut relist), if !rendering => {
                    if let Some(listing) = list_once(&mut lister, &self.prefixes, &self.telemetry).await {
                        let update = Update::Listing { prefixes: self.prefixes.clone(), listing };
                        let changed = self.apply(update);
                        self.keys_changed(&changed);
                    }
                }
                _ = sleep_until(next_deadline), if !rendering => {
                    let sources = Sources { store: &self.store, catalog: &mut self.catalog };
                    self.scheduler.render_due(sources);
                }
            }
        }
        if let Some(task) = watch {
            task.stop();
        }
        Followed::Stopped
    }

    fn keys_changed(&mut self, changed: &[String]) {
        let sources = Sources {
            store: &self.store,
            catalog: &mut self.catalog,
        };
        self.scheduler.keys_changed(changed, sources);
    }

    /// Records new answers of catalog queries and renders what they reach.
    fn services_changed(&mut self, updates: Vec<ServiceUpdate>) {
        let mut changed = Vec::new();
        for update in updates {
            let query = update.query.clone();
            if self.catalog.apply(update) {
                changed.push(query);
            }
        }
        let sources = Sources {
            store: &self.store,
            catalog: &mut self.catalog,
        };
        self.scheduler.services_changed(&changed, sources);
    }

    pub(super) fn replace_store(&mut self, listing: Listing) {
        self.revision = listing.revision;
        self.store = Arc::new(listing.entries.into_iter().collect());
        self.telemetry
            .store_changed(self.revision, self.store.len());
    }

    /// Applies one update to the store; returns the keys whose value changed.
    pub(super) fn apply(&mut self, update: Update) -> Vec<String> {
        let store = Arc::make_mut(&mut self.store);
        let changed = match update {
            Update::Listing { prefixes, listing } => {
                self.revision = listing.revision;
                let mut changed = Vec::new();
                let mut entries = listing.entries;
                for prefix in &prefixes {
                    let (mine, rest): (Vec<_>, Vec<_>) = entries
                        .into_iter()
                        .partition(|(key, _)| key_in_scope(prefix, key));
                    entries = rest;
                    changed.extend(store.replace_subtree(prefix, mine));
                }
                changed
            }
            Update::Changes { revision, changes } => {
                self.revision = revision;
                changes
                    .into_iter()
                    .filter_map(|change| {
                        let key = change.key().to_owned();
                        store.apply(change).then_some(key)
                    })
                    .collect()
            }
        };
        self.telemetry
            .store_changed(self.revision, self.store.len());
        changed
    }

    /// Lets every worker finish what it has (bounded by the shutdown timeout), then waits for
    /// running reloads.
    pub(super) async fn stop(&mut self) {
        let members = self.scheduler.slots.iter().map(|slot| &slot.member);
        self.workers
            .finish(members, self.settings.shutdown_timeout)
            .await;
    }
}

/// How a configuration reload went.
pub(super) enum Reconfigured {
    Kept,
    InPlace { prefixes_changed: bool },
    NewBackend(Box<Config>, Backend),
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn recv(watch: &mut Option<WatchTask>) -> Option<Update> {
    match watch {
        Some(task) => task.updates.recv().await,
        None => std::future::pending().await,
    }
}
