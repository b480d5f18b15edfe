//! The event loop of `--watch` and `--interval`: the live store, the resources' slots, and
//! what a change re-renders.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::follow::{WatchTask, answered, list_once, list_with_retry};
use super::services::{Catalog, ServiceUpdate};
use super::worker::{Mailbox, WorkerSetup, worker};
use super::{
    Control, RunContext, count_keys, count_services, guard, guard_services, reload_actions,
    sync_options,
};
use crate::backend::{Backend, Listing, Update, merge_prefixes};
use crate::catalog::{ServiceQuery, ServiceRecord};
use crate::config::{Mode, Resource, Settings, WaitSpec};
use crate::dependency::{Dependency, DependencyIndex};
use crate::exec::ExecHandle;
use crate::fleet::{Coordinator, Fleet};
use crate::quiescence::Quiescence;
use crate::reload::Group;
use crate::resource::{self, RenderFailure, SyncOptions};
use crate::setup::Config;
use crate::store::{KeyStore, key_in_scope};
use crate::telemetry::{Telemetry, notify_systemd};
use crate::template::{KeyScope, RenderInput, Templates};

/// How often a render that waits for the previous one of its resource looks again.
const DEFERRED_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// How long the event loop holds changes back for a running render (see `follow`).
const STALL_LIMIT: std::time::Duration = std::time::Duration::from_millis(200);

/// One resource with what the runner keeps for it.
pub(super) struct Slot {
    /// Unique within the process: reload groups know members by it.
    pub(super) id: usize,
    pub(super) resource: Arc<Resource>,
    pub(super) scope: Arc<KeyScope>,
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) groups: Vec<Arc<Group>>,
    pub(super) wait: Option<WaitSpec>,
    /// Pending render under `wait`.
    pub(super) debounce: Quiescence,
    /// What the resource's template reads, for counting what it sees.
    pub(super) dependencies: Vec<Dependency>,
    /// How many keys the last render saw, for the empty-store guard.
    pub(super) last_keys: Option<usize>,
    /// How many entries each catalog query had at the last render, for the guard.
    pub(super) last_services: HashMap<ServiceQuery, usize>,
    /// The resource waits for the first answer to a catalog query it uses (logged once).
    pub(super) awaiting_services: bool,
    /// The empty-store guard is holding this resource back (logged once per episode).
    pub(super) held: bool,
    /// True while a render of this resource runs on the blocking pool, including one that
    /// overran its budget and was abandoned: a resource never renders twice at once.
    pub(super) busy: Arc<AtomicBool>,
}

/// A resource's render, back from the blocking pool.
pub(super) struct Rendered {
    slot: usize,
    result: Result<Vec<u8>, RenderFailure>,
    took: std::time::Duration,
    /// The catalog queries the render made.
    services: Arc<ServiceRecord>,
}

/// How `follow` ended.
pub(super) enum Followed {
    Stopped,
    Restart(Box<Config>, Backend),
}

pub(super) struct Runtime {
    pub(super) settings: Settings,
    pub(super) templates: Arc<Templates>,
    pub(super) slots: Vec<Slot>,
    /// The merged prefixes every listing and watch covers.
    pub(super) prefixes: Vec<String>,
    pub(super) store: Arc<KeyStore>,
    pub(super) revision: u64,
    pub(super) options: SyncOptions,
    pub(super) groups: HashMap<String, Arc<Group>>,
    pub(super) workers: JoinSet<()>,
    pub(super) next_id: usize,
    /// Which resources each dependency feeds, by slot position.
    pub(super) index: DependencyIndex,
    /// Renders run off the event loop and report here.
    pub(super) rendered_tx: mpsc::UnboundedSender<Rendered>,
    pub(super) rendered_rx: mpsc::UnboundedReceiver<Rendered>,
    /// Slot id → when its running render started.
    pub(super) in_flight: HashMap<usize, tokio::time::Instant>,
    /// Slot ids whose render waits for the previous render of the same resource.
    pub(super) deferred: BTreeSet<usize>,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) exec: Option<ExecHandle>,
    /// The coordinator and instance name for gated resources.
    pub(super) fleet: Arc<Fleet>,
    /// Consul's catalog queries the templates make, and their answers.
    pub(super) catalog: Catalog,
    pub(super) shutdown: CancellationToken,
}

impl Runtime {
    pub(super) fn new(config: Config, backend: &Backend, context: &RunContext) -> Runtime {
        let Config {
            settings,
            resources,
            templates,
        } = config;
        // Built for every shared store, whether or not a resource is coordinated now: a
        // configuration reload may add `[template.coordination]`, and a coordinated resource
        // must never be applied without its slot. It shares the backend's connection, so an
        // unused coordinator costs nothing.
        let fleet = Arc::new(Fleet {
            coordinator: Coordinator::for_backend(backend),
            instance: settings.instance.clone(),
        });
        let (rendered_tx, rendered_rx) = mpsc::unbounded_channel();
        let mut runtime = Runtime {
            options: sync_options(&settings),
            prefixes: Vec::new(),
            settings,
            templates: Arc::new(templates),
            slots: Vec::new(),
            store: Arc::new(KeyStore::new()),
            revision: 0,
            groups: HashMap::new(),
            workers: JoinSet::new(),
            next_id: 0,
            index: DependencyIndex::default(),
            rendered_tx,
            rendered_rx,
            in_flight: HashMap::new(),
            deferred: BTreeSet::new(),
            telemetry: Arc::clone(&context.telemetry),
            exec: context.exec.clone(),
            fleet,
            catalog: Catalog::new(backend, &context.shutdown, &context.telemetry),
            shutdown: context.shutdown.clone(),
        };
        for resource in resources {
            let slot = runtime.new_slot(resource);
            runtime.slots.push(slot);
        }
        runtime.update_prefixes();
        runtime
    }

    pub(super) fn new_slot(&mut self, resource: Resource) -> Slot {
        let id = self.next_id;
        self.next_id += 1;
        let resource = Arc::new(resource);
        let mut groups = Vec::new();
        for action in reload_actions(&resource, &self.settings, self.exec.as_ref()) {
            let group = self
                .groups
                .entry(action.key())
                .or_insert_with(|| Group::new(action, Arc::clone(&self.telemetry)));
            group.add_member(id, &resource.name);
            groups.push(Arc::clone(group));
        }
        let mailbox = Arc::new(Mailbox::default());
        self.workers.spawn(worker(WorkerSetup {
            id,
            resource: Arc::clone(&resource),
            mailbox: Arc::clone(&mailbox),
            groups: groups.clone(),
            options: self.options,
            telemetry: Arc::clone(&self.telemetry),
            fleet: Arc::clone(&self.fleet),
            shutdown: self.shutdown.clone(),
        }));
        // The catalog queries written out in the template are watched before the first render;
        // the others are found by the renders.
        let mut dependencies = Dependency::from_keys(&resource.keys);
        for call in self.templates.service_calls(&resource.template) {
            if let Ok(Some(query)) = call.query {
                let dependency = Dependency::Service(query);
                if !dependencies.contains(&dependency) {
                    dependencies.push(dependency);
                }
            }
        }
        Slot {
            id,
            scope: Arc::new(resource::key_scope(&resource)),
            wait: resource.wait.or(self.settings.wait),
            dependencies,
            resource,
            mailbox,
            groups,
            debounce: Quiescence::default(),
            last_keys: None,
            last_services: HashMap::new(),
            awaiting_services: false,
            held: false,
            busy: Arc::default(),
        }
    }

    /// Recomputes the merged prefixes and the dependency index; returns whether the prefixes
    /// changed.
    pub(super) fn update_prefixes(&mut self) -> bool {
        self.index =
            DependencyIndex::new(self.slots.iter().map(|slot| slot.dependencies.as_slice()));
        let prefixes = merge_prefixes(self.slots.iter().flat_map(|slot| slot.resource.keys.iter()));
        let changed = prefixes != self.prefixes;
        let queries: BTreeSet<&ServiceQuery> = self
            .slots
            .iter()
            .flat_map(|slot| &slot.dependencies)
            .filter_map(|dependency| match dependency {
                Dependency::Service(query) => Some(query),
                Dependency::Prefix(_) => None,
            })
            .collect();
        self.catalog.retain(&queries);
        self.catalog.watch(queries);
        self.prefixes = prefixes;
        self.telemetry.set_prefixes(&self.prefixes);
        self.telemetry
            .set_resources(self.slots.iter().map(|slot| slot.resource.name.as_str()));
        changed
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

        let mut watch = watching.then(|| WatchTask::start(&lister, self, &context.shutdown));
        let mut relist = relist_every.map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });

        loop {
            let next_deadline = self
                .slots
                .iter()
                .filter_map(|slot| slot.debounce.deadline())
                .min();
            // While a render started moments ago runs, changes wait for it: it reads the store
            // that a change would otherwise have to copy. A render that takes longer no longer
            // holds anything back (a change copies the store once, the render finishes on
            // its own snapshot).
            let waiting_for = self
                .in_flight
                .values()
                .map(|started| *started + STALL_LIMIT)
                .max();
            let rendering = waiting_for.is_some_and(|until| until > tokio::time::Instant::now());
            tokio::select! {
                _ = context.shutdown.cancelled() => break,
                Some(rendered) = self.rendered_rx.recv() => self.finish_render(rendered),
                _ = sleep_until(waiting_for), if rendering => {}
                _ = tokio::time::sleep(DEFERRED_POLL), if !self.deferred.is_empty() => {
                    self.render_deferred();
                }
                control = context.control.recv(), if !rendering => {
                    if control == Some(Control::Reload) {
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
                                        watch = Some(WatchTask::start(&lister, self, &context.shutdown));
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
                        self.changed(&changed);
                    }
                    // The watch task ended (it only does on shutdown).
                    None => watch = None,
                },
                _ = tick(&mut relist), if !rendering => {
                    if let Some(listing) = list_once(&mut lister, &self.prefixes, &self.telemetry).await {
                        let update = Update::Listing { prefixes: self.prefixes.clone(), listing };
                        let changed = self.apply(update);
                        self.changed(&changed);
                    }
                }
                _ = sleep_until(next_deadline), if !rendering => self.render_due(),
            }
        }
        if let Some(task) = watch {
            task.stop();
        }
        Followed::Stopped
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

    /// Reacts to changed keys: renders the resources that read them now, or arms their `wait`.
    pub(super) fn changed(&mut self, changed: &[String]) {
        if changed.is_empty() {
            return;
        }
        let touched = self.index.touched(changed.iter().map(String::as_str));
        let render_now = self.schedule(touched);
        debug!(
            changed = changed.len(),
            resources = render_now.len(),
            "store changed"
        );
        self.render(render_now);
    }

    /// Reacts to new answers of catalog queries: renders the resources that use them now, or
    /// arms their `wait`. A resource waiting for its first answers renders at once.
    pub(super) fn services_changed(&mut self, updates: Vec<ServiceUpdate>) {
        let mut touched = BTreeSet::new();
        let mut changed = 0;
        for update in updates {
            let query = update.query.clone();
            if self.catalog.apply(update) {
                changed += 1;
                touched.extend(self.index.using(&query).iter().copied());
            }
        }
        if touched.is_empty() {
            return;
        }
        let first: BTreeSet<usize> = touched
            .iter()
            .copied()
            .filter(|&index| self.slots[index].last_keys.is_none())
            .collect();
        let mut render_now = self.schedule(touched.difference(&first).copied().collect());
        render_now.extend(first);
        debug!(
            queries = changed,
            resources = render_now.len(),
            "service catalog changed"
        );
        self.render(render_now);
    }

    /// Of the resources a change reached, the ones to render now; the others' `wait` is armed.
    fn schedule(&mut self, touched: BTreeSet<usize>) -> BTreeSet<usize> {
        let mut render_now = BTreeSet::new();
        for index in touched {
            let slot = &mut self.slots[index];
            match slot.wait {
                None => {
                    render_now.insert(index);
                }
                Some(wait) => slot.debounce.change(wait),
            }
        }
        render_now
    }

    /// Renders the resources whose quiescence has expired.
    pub(super) fn render_due(&mut self) {
        let due: BTreeSet<usize> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| slot.debounce.take_if_due().then_some(index))
            .collect();
        self.render(due);
    }

    /// Renders every resource at once, whatever its `wait`: the first render is never delayed.
    pub(super) fn render_all(&mut self) {
        for slot in &mut self.slots {
            slot.debounce.clear();
        }
        let all = (0..self.slots.len()).collect();
        self.render(all);
    }

    /// Starts rendering the resources at `indexes` off the event loop, each against the store
    /// as it is now. A resource whose previous render still runs (or was abandoned at its time
    /// budget and has not finished) renders once that one is done.
    ///
    /// Each render is marked pending in its reload groups when it starts: a fast worker must not
    /// finish (and start a shared reload) while another resource of the same change is still
    /// rendering or writing.
    pub(super) fn render(&mut self, indexes: BTreeSet<usize>) {
        for index in indexes {
            let slot = &mut self.slots[index];
            if self.in_flight.contains_key(&slot.id) || slot.busy.load(Ordering::Acquire) {
                self.deferred.insert(slot.id);
                continue;
            }
            // A template reads a service's instances only once terad has them: a render before
            // that would list none.
            let waiting: Vec<String> = slot
                .dependencies
                .iter()
                .filter_map(|dependency| match dependency {
                    Dependency::Service(query) if !self.catalog.ready(query) => {
                        Some(query.to_string())
                    }
                    _ => None,
                })
                .collect();
            if !waiting.is_empty() {
                if !slot.awaiting_services {
                    info!(resource = %slot.resource.name, queries = crate::logging::json(&waiting), "waiting for service data before rendering");
                    slot.awaiting_services = true;
                }
                continue;
            }
            slot.awaiting_services = false;
            let snapshot = self.catalog.snapshot();
            let keys = count_keys(&self.store, snapshot, &slot.dependencies);
            let services = count_services(snapshot, &slot.dependencies);
            let refusal = guard_services(&slot.resource, &services, &slot.last_services)
                .or_else(|| guard(&slot.resource, keys, slot.last_keys));
            if let Some(refusal) = refusal {
                if !slot.held {
                    error!(resource = %slot.resource.name, dest = %slot.resource.dest.display(), keys, "{refusal}; the last good file stays");
                    slot.held = true;
                }
                self.telemetry.held(&slot.resource.name, Some(refusal));
                continue;
            }
            if slot.held {
                info!(resource = %slot.resource.name, keys, "the empty-store guard releases the resource; rendering again");
                slot.held = false;
                self.telemetry.held(&slot.resource.name, None);
            }
            slot.last_keys = Some(keys);
            slot.last_services = services.into_iter().collect();
            for group in &slot.groups {
                group.mark_pending(slot.id);
            }
            slot.mailbox.expect();
            let input = RenderInput {
                store: Arc::clone(&self.store),
                scope: Arc::clone(&slot.scope),
                services: self.catalog.input(),
            };
            let services = Arc::clone(&input.services.record);
            let (templates, resource, busy) = (
                Arc::clone(&self.templates),
                Arc::clone(&slot.resource),
                Arc::clone(&slot.busy),
            );
            let (id, shutdown, report) = (slot.id, self.shutdown.clone(), self.rendered_tx.clone());
            self.in_flight.insert(id, tokio::time::Instant::now());
            tokio::spawn(async move {
                let started = Instant::now();
                let result =
                    resource::render_bounded(templates, resource, input, busy, &shutdown).await;
                let _ = report.send(Rendered {
                    slot: id,
                    result,
                    took: started.elapsed(),
                    services,
                });
            });
        }
    }

    /// Hands a finished render to its worker, or reports why there is none.
    pub(super) fn finish_render(&mut self, rendered: Rendered) {
        let Rendered {
            slot,
            result,
            took,
            services,
        } = rendered;
        self.in_flight.remove(&slot);
        // A configuration reload may have ended the slot meanwhile.
        let Some(position) = self.slots.iter().position(|s| s.id == slot) else {
            return;
        };
        let waiting = self.found_services(position, &services);
        let slot = &self.slots[position];
        let name = &slot.resource.name;
        match result {
            Ok(content) => {
                self.telemetry.rendered(name, true, took);
                let size = content.len();
                slot.mailbox.put(content);
                release_free_memory(size);
            }
            Err(_) if !waiting.is_empty() => {
                info!(resource = %name, queries = crate::logging::json(&waiting), "the template asks for services not watched yet; rendering again once they answer");
                if slot.mailbox.expect_nothing() {
                    for group in &slot.groups {
                        group.member_done(slot.id, false, false);
                    }
                }
            }
            Err(err) => {
                if !matches!(err, RenderFailure::Stopped) {
                    self.telemetry.rendered(name, false, took);
                    error!(
                        resource = %name,
                        dest = %slot.resource.dest.display(),
                        error = %err,
                        "render failed; destination left unchanged"
                    );
                }
                if slot.mailbox.expect_nothing() {
                    for group in &slot.groups {
                        group.member_done(slot.id, false, false);
                    }
                }
            }
        }
        let id = slot.id;
        if !waiting.is_empty()
            && self.slots[position]
                .dependencies
                .iter()
                .all(|dependency| match dependency {
                    Dependency::Service(query) => self.catalog.ready(query),
                    Dependency::Prefix(_) => true,
                })
        {
            // The answers arrived while the render ran: nothing else will bring it back.
            self.deferred.insert(id);
        }
        if self.deferred.contains(&id) {
            self.render_deferred();
        }
    }

    /// Takes in the catalog queries a render made: one the resource did not know of becomes its
    /// dependency and is watched. Returns the queries the render had to do without (it failed
    /// waiting for them).
    fn found_services(&mut self, position: usize, record: &ServiceRecord) -> Vec<String> {
        let mut new = Vec::new();
        for query in record.used() {
            let dependency = Dependency::Service(query);
            if !self.slots[position].dependencies.contains(&dependency) {
                self.index.add(position, &dependency);
                self.slots[position].dependencies.push(dependency.clone());
                new.push(dependency);
            }
        }
        if !new.is_empty() {
            self.catalog
                .watch(new.iter().filter_map(|dependency| match dependency {
                    Dependency::Service(query) => Some(query),
                    Dependency::Prefix(_) => None,
                }));
        }
        record.missing().iter().map(ToString::to_string).collect()
    }

    /// Renders what waited for the previous render of its resource, against the store as it
    /// is now.
    pub(super) fn render_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.deferred);
        let indexes = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| ids.contains(&slot.id))
            .map(|(index, _)| index)
            .collect();
        self.render(indexes);
    }

    /// Lets every worker finish what it has (bounded by the shutdown timeout), then waits for
    /// running reloads.
    pub(super) async fn stop(&mut self, context: &RunContext) {
        for slot in &self.slots {
            slot.mailbox.close();
        }
        let limit = self.settings.shutdown_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        let finish = async { while self.workers.join_next().await.is_some() {} };
        if tokio::time::timeout_at(deadline, finish).await.is_err() {
            warn!(
                timeout_secs = limit.as_secs(),
                "shutdown timeout: abandoning unfinished writes"
            );
            self.workers.abort_all();
        }
        for group in self.groups.values() {
            let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !group.wait_idle(rest).await {
                warn!("shutdown timeout: a reload is still running");
            }
        }
        let _ = context;
    }
}

pub(super) enum Reconfigured {
    Kept,
    InPlace { prefixes_changed: bool },
    NewBackend(Box<Config>, Backend),
}

pub(super) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
pub(super) async fn recv(watch: &mut Option<WatchTask>) -> Option<Update> {
    match watch {
        Some(task) => task.updates.recv().await,
        None => std::future::pending().await,
    }
}

/// Rendering builds a value per key and drops them all at the end; for a large template that is
/// tens of MiB that glibc keeps mapped. Handing it back keeps a sidecar's resident memory at its
/// working set between changes. Skipped for small renders, where it would cost more than it saves.
pub(super) fn release_free_memory(rendered_bytes: usize) {
    const WORTH_IT: usize = 1024 * 1024;
    if rendered_bytes < WORTH_IT {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it has no preconditions.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
