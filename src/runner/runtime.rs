//! The event loop of `--watch` and `--interval`: the live store, the resources' slots, and
//! what a change re-renders.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::follow::*;
use super::worker::*;
use super::*;
use crate::backend::{Backend, Listing, Update, merge_prefixes};
use crate::config::{Config, Mode, Resource, Settings, WaitSpec};
use crate::exec::ExecHandle;
use crate::fleet::{Coordinator, Fleet};
use crate::quiescence::Quiescence;
use crate::reload::Group;
use crate::resource::{self, SyncOptions};
use crate::store::{KeyStore, key_in_scope};
use crate::telemetry::{Telemetry, notify_systemd};
use crate::template::{KeyScope, RenderInput, Templates};

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
    /// The resource's keys, merged, for counting what it sees.
    pub(super) key_prefixes: Vec<String>,
    /// How many keys the last render saw, for the empty-store guard.
    pub(super) last_keys: Option<usize>,
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
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) exec: Option<ExecHandle>,
    /// The coordinator and instance name for gated resources.
    pub(super) fleet: Arc<Fleet>,
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
            telemetry: Arc::clone(&context.telemetry),
            exec: context.exec.clone(),
            fleet,
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
        Slot {
            id,
            scope: Arc::new(resource::key_scope(&resource)),
            wait: resource.wait.or(self.settings.wait),
            key_prefixes: merge_prefixes(resource.keys.iter()),
            resource,
            mailbox,
            groups,
            debounce: Quiescence::default(),
            last_keys: None,
        }
    }

    /// Recomputes the merged prefixes; returns whether they changed.
    pub(super) fn update_prefixes(&mut self) -> bool {
        let prefixes = merge_prefixes(self.slots.iter().flat_map(|slot| slot.resource.keys.iter()));
        let changed = prefixes != self.prefixes;
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
            tokio::select! {
                _ = context.shutdown.cancelled() => break,
                control = context.control.recv() => {
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
                update = recv(&mut watch) => match update {
                    Some(update) => {
                        let mut changed = self.apply(update);
                        // Drain what queued up meanwhile: one render for a burst.
                        if let Some(task) = watch.as_mut() {
                            while let Ok(more) = task.updates.try_recv() {
                                changed.extend(self.apply(more));
                            }
                        }
                        self.changed(&changed);
                    }
                    // The watch task ended (it only does on shutdown).
                    None => watch = None,
                },
                _ = tick(&mut relist) => {
                    if let Some(listing) = list_once(&mut lister, &self.prefixes, &self.telemetry).await {
                        let update = Update::Listing { prefixes: self.prefixes.clone(), listing };
                        let changed = self.apply(update);
                        self.changed(&changed);
                    }
                }
                _ = sleep_until(next_deadline) => self.render_due(),
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
        let mut render_now = BTreeSet::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let touched = changed.iter().any(|key| {
                slot.resource
                    .keys
                    .iter()
                    .any(|scope| key_in_scope(scope, key))
            });
            if !touched {
                continue;
            }
            match slot.wait {
                None => {
                    render_now.insert(index);
                }
                Some(wait) => slot.debounce.change(wait),
            }
        }
        debug!(
            changed = changed.len(),
            resources = render_now.len(),
            "store changed"
        );
        self.render(render_now);
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

    pub(super) fn render(&mut self, indexes: BTreeSet<usize>) {
        let mut rendered_bytes = 0;
        // Every render of this change is marked pending in its reload groups before any is
        // handed to a worker: a fast worker must not finish (and start a shared reload) while
        // the next resource of the same change is still rendering.
        let mut renders = Vec::with_capacity(indexes.len());
        for index in indexes {
            let slot = &mut self.slots[index];
            let keys = count_keys(&self.store, &slot.key_prefixes);
            if let Some(refusal) = guard(&slot.resource, keys, slot.last_keys) {
                warn!(resource = %slot.resource.name, dest = %slot.resource.dest.display(), keys, "{refusal}; the last good file stays");
                continue;
            }
            slot.last_keys = Some(keys);
            let slot = &self.slots[index];
            let started = Instant::now();
            let input = RenderInput {
                store: Arc::clone(&self.store),
                scope: Arc::clone(&slot.scope),
            };
            let result = resource::render(&self.templates, &slot.resource, &input);
            self.telemetry
                .rendered(&slot.resource.name, result.is_ok(), started.elapsed());
            match result {
                Ok(rendered) => {
                    rendered_bytes += rendered.len();
                    // Reload groups hold their reload until this member has written the render.
                    for group in &slot.groups {
                        group.mark_pending(slot.id);
                    }
                    renders.push((index, rendered));
                }
                Err(err) => error!(
                    resource = %slot.resource.name,
                    dest = %slot.resource.dest.display(),
                    error = %err,
                    "render failed; destination left unchanged"
                ),
            }
        }
        for (index, rendered) in renders {
            self.slots[index].mailbox.put(rendered);
        }
        release_free_memory(rendered_bytes);
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
