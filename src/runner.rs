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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, BackendError, KeySource, Listing, Update, merge_prefixes};
use crate::cli::Cli;
use crate::config::{self, Config, Mode, Resource, Settings, WaitSpec};
use crate::exec::ExecHandle;
use crate::fleet::gate::{self, GateContext, Gated};
use crate::fleet::{Coordinator, Fleet};
use crate::quiescence::Quiescence;
use crate::reload::{Action, Group};
use crate::resource::{self, SyncError, SyncOptions, SyncOutcome};
use crate::store::{KeyStore, key_in_scope};
use crate::telemetry::{Telemetry, notify_systemd, notify_systemd_reloading};
use crate::template::{Engine, KeyScope};

/// First delay after a backend failure; doubled per failure up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How many updates may wait between the watch task and the runner.
const UPDATE_QUEUE: usize = 1024;

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
    let options = sync_options(&config.settings);
    if !options.noop {
        for resource in &config.resources {
            for stale in crate::fs::remove_stale_stage_files(&resource.dest) {
                info!(resource = %resource.name, path = %stale.display(), "removed a stage file left by an earlier run");
            }
        }
    }
    if config.settings.mode == Mode::Onetime {
        return onetime(config, backend, &context).await;
    }

    let mut config = config;
    let mut backend = backend;
    loop {
        let mode = effective_mode(&config.settings, &backend);
        let mut runtime = Runtime::new(config, &context);
        info!(
            backend = backend.name(),
            resources = runtime.slots.len(),
            prefixes = ?runtime.prefixes,
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

/// Keys under the (merged) prefixes of one resource.
fn count_keys(store: &KeyStore, prefixes: &[String]) -> usize {
    prefixes
        .iter()
        .map(|prefix| store.subtree(prefix).count())
        .sum()
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

/// `--onetime`: list once (retrying an unreachable backend up to the backend timeout), sync
/// every resource in order, run each distinct reload once, and report whether all succeeded.
async fn onetime(config: Config, mut backend: Backend, context: &RunContext) -> RunOutcome {
    let Config {
        settings,
        resources,
        engine,
    } = config;
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
    let mut failed = 0;
    // Reloads wanted, in the order resources asked for them, each once.
    let mut reloads: Vec<(Action, Vec<String>)> = Vec::new();
    for resource in resources {
        let resource = Arc::new(resource);
        let scope = Arc::new(resource::key_scope(&resource));
        let keys = count_keys(&store, &merge_prefixes(resource.keys.iter()));
        if let Some(refusal) = guard(&resource, keys, None) {
            error!(resource = %resource.name, dest = %resource.dest.display(), keys, "{refusal}; destination left unchanged");
            failed += 1;
            continue;
        }
        let rendered = match resource::render(&engine, &resource, &scope, &store) {
            Ok(rendered) => rendered,
            Err(err) => {
                error!(resource = %resource.name, dest = %resource.dest.display(), error = %err, "render failed; destination left unchanged");
                failed += 1;
                continue;
            }
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
                Ok(_) => info!(resources = ?names, command = %command, "reloaded"),
                Err(err) => {
                    error!(resources = ?names, error = %err, "reload failed; the new files are in place");
                    failed += 1;
                }
            }
        }
    }
    // The process exits next: freeing a large store and template engine value by value would
    // only delay the exit (by ~20 ms at 100k keys).
    std::mem::forget(store);
    std::mem::forget(engine);
    if failed == 0 {
        RunOutcome::Success
    } else {
        error!(failed, "one-shot run had failures");
        RunOutcome::Failed
    }
}

/// One resource with what the runner keeps for it.
struct Slot {
    /// Unique within the process: reload groups know members by it.
    id: usize,
    resource: Arc<Resource>,
    scope: Arc<KeyScope>,
    mailbox: Arc<Mailbox>,
    groups: Vec<Arc<Group>>,
    wait: Option<WaitSpec>,
    /// Pending render under `wait`.
    debounce: Quiescence,
    /// The resource's keys, merged, for counting what it sees.
    key_prefixes: Vec<String>,
    /// How many keys the last render saw, for the empty-store guard.
    last_keys: Option<usize>,
}

/// How `follow` ended.
enum Followed {
    Stopped,
    Restart(Box<Config>, Backend),
}

struct Runtime {
    settings: Settings,
    engine: Arc<Engine>,
    slots: Vec<Slot>,
    /// The merged prefixes every listing and watch covers.
    prefixes: Vec<String>,
    store: Arc<KeyStore>,
    revision: u64,
    options: SyncOptions,
    groups: HashMap<String, Arc<Group>>,
    workers: JoinSet<()>,
    next_id: usize,
    telemetry: Arc<Telemetry>,
    exec: Option<ExecHandle>,
    /// The coordinator and instance name for gated resources.
    fleet: Arc<Fleet>,
    shutdown: CancellationToken,
}

impl Runtime {
    fn new(config: Config, context: &RunContext) -> Runtime {
        let Config {
            settings,
            resources,
            engine,
        } = config;
        let fleet = Arc::new(Fleet {
            // Only a coordinated resource needs it; the file and env backends have none.
            coordinator: resources
                .iter()
                .any(|r| r.coordination.is_some())
                .then(|| Coordinator::new(&settings).ok().flatten())
                .flatten(),
            instance: settings.instance.clone(),
        });
        let mut runtime = Runtime {
            options: sync_options(&settings),
            prefixes: Vec::new(),
            settings,
            engine: Arc::new(engine),
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

    fn new_slot(&mut self, resource: Resource) -> Slot {
        let id = self.next_id;
        self.next_id += 1;
        let resource = Arc::new(resource);
        let mut groups = Vec::new();
        for action in reload_actions(&resource, &self.settings, self.exec.as_ref()) {
            let group = self
                .groups
                .entry(action.key())
                .or_insert_with(|| Group::new(action, Arc::clone(&self.telemetry)));
            group.add_member(&resource.name);
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
    fn update_prefixes(&mut self) -> bool {
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
    async fn follow(
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

    fn replace_store(&mut self, listing: Listing) {
        self.revision = listing.revision;
        self.store = Arc::new(listing.entries.into_iter().collect());
        self.telemetry
            .store_changed(self.revision, self.store.len());
    }

    /// Applies one update to the store; returns the keys whose value changed.
    fn apply(&mut self, update: Update) -> Vec<String> {
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
    fn changed(&mut self, changed: &[String]) {
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
    fn render_due(&mut self) {
        let due: BTreeSet<usize> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| slot.debounce.take_if_due().then_some(index))
            .collect();
        self.render(due);
    }

    /// Renders every resource at once, whatever its `wait`: the first render is never delayed.
    fn render_all(&mut self) {
        for slot in &mut self.slots {
            slot.debounce.clear();
        }
        let all = (0..self.slots.len()).collect();
        self.render(all);
    }

    fn render(&mut self, indexes: BTreeSet<usize>) {
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
            let result = resource::render(&self.engine, &slot.resource, &slot.scope, &self.store);
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

    /// Re-reads the configuration. Errors leave everything as it is; a new backend restarts the
    /// run; otherwise resources are updated in place (unchanged ones keep their worker, their
    /// memory of failed checks and their pending `wait`).
    async fn reload_configuration(&mut self, cli: &Cli) -> Reconfigured {
        notify_systemd_reloading();
        info!("reloading the configuration");
        let config = match config::load(cli) {
            Ok(config) => config,
            Err(errors) => {
                for error in &errors.0 {
                    error!(error = %error, "configuration error");
                }
                error!(
                    errors = errors.len(),
                    "new configuration rejected; the running one stays"
                );
                return Reconfigured::Kept;
            }
        };
        if !config.settings.same_backend(&self.settings) {
            return match crate::connect_backend(&config.settings) {
                Ok(backend) => Reconfigured::NewBackend(Box::new(config), backend),
                Err(errors) => {
                    error!(error = %errors, "new backend settings rejected; the running configuration stays");
                    Reconfigured::Kept
                }
            };
        }
        for ignored in ["listen", "exec"] {
            let changed = match ignored {
                "listen" => config.settings.listen != self.settings.listen,
                _ => config.settings.exec != self.settings.exec,
            };
            if changed {
                warn!(
                    setting = ignored,
                    "this setting only changes with a restart of terad"
                );
            }
        }
        let Config {
            settings,
            resources,
            engine,
        } = config;
        let options_changed = sync_options(&settings) != self.options;
        self.options = sync_options(&settings);
        self.settings = settings;
        self.engine = Arc::new(engine);

        let mut old: Vec<Slot> = std::mem::take(&mut self.slots);
        let mut slots = Vec::with_capacity(resources.len());
        let (mut kept, mut started) = (0, 0);
        for resource in resources {
            let reuse = (!options_changed)
                .then(|| old.iter().position(|slot| *slot.resource == resource))
                .flatten();
            match reuse {
                Some(position) => {
                    kept += 1;
                    let mut slot = old.swap_remove(position);
                    slot.wait = slot.resource.wait.or(self.settings.wait);
                    slots.push(slot);
                }
                None => {
                    started += 1;
                    slots.push(self.new_slot(resource));
                }
            }
        }
        let stopped = old.len();
        for slot in old {
            // Its worker finishes what it is writing, then ends.
            slot.mailbox.close();
        }
        self.slots = slots;
        let prefixes_changed = self.update_prefixes();
        info!(kept, started, stopped, "configuration reloaded");
        Reconfigured::InPlace { prefixes_changed }
    }

    /// Lets every worker finish what it has (bounded by the shutdown timeout), then waits for
    /// running reloads.
    async fn stop(&mut self, context: &RunContext) {
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

enum Reconfigured {
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

/// The task following the backend, and the channel its updates arrive on.
struct WatchTask {
    updates: mpsc::Receiver<Update>,
    stop: CancellationToken,
}

impl WatchTask {
    fn start(backend: &Backend, runtime: &Runtime, shutdown: &CancellationToken) -> WatchTask {
        let (tx, updates) = mpsc::channel(UPDATE_QUEUE);
        let stop = shutdown.child_token();
        tokio::spawn(watch_loop(
            backend.clone(),
            runtime.prefixes.clone(),
            runtime.revision,
            tx,
            stop.clone(),
            Arc::clone(&runtime.telemetry),
        ));
        WatchTask { updates, stop }
    }

    fn stop(self) {
        self.stop.cancel();
    }
}

async fn recv(watch: &mut Option<WatchTask>) -> Option<Update> {
    match watch {
        Some(task) => task.updates.recv().await,
        None => std::future::pending().await,
    }
}

/// Rendering builds a value per key and drops them all at the end; for a large template that is
/// tens of MiB that glibc keeps mapped. Handing it back keeps a sidecar's resident memory at its
/// working set between changes. Skipped for small renders, where it would cost more than it saves.
fn release_free_memory(rendered_bytes: usize) {
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

/// The newest render for one worker. A render that arrives while the worker is busy replaces
/// the one waiting, so a slow check never builds a queue; the worker takes the content out,
/// so a large file is not kept in memory between changes.
#[derive(Default)]
struct Mailbox {
    latest: std::sync::Mutex<Option<Arc<Vec<u8>>>>,
    notify: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
}

impl Mailbox {
    fn put(&self, content: Vec<u8>) {
        *self.latest.lock().expect("mailbox lock") = Some(Arc::new(content));
        self.notify.notify_one();
    }

    fn take(&self) -> Option<Arc<Vec<u8>>> {
        self.latest.lock().expect("mailbox lock").take()
    }

    fn has_content(&self) -> bool {
        self.latest.lock().expect("mailbox lock").is_some()
    }

    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// What a resource's worker needs.
struct WorkerSetup {
    id: usize,
    resource: Arc<Resource>,
    mailbox: Arc<Mailbox>,
    groups: Vec<Arc<Group>>,
    options: SyncOptions,
    telemetry: Arc<Telemetry>,
    fleet: Arc<Fleet>,
    shutdown: CancellationToken,
}

/// Writes each newest render of one resource, then tells its reload groups.
async fn worker(setup: WorkerSetup) {
    let WorkerSetup {
        id,
        resource,
        mailbox,
        groups,
        options,
        telemetry,
        fleet,
        shutdown,
    } = setup;
    // A render check_cmd rejected (or that failed its health check), by content hash: not
    // tried again until the data changes.
    let mut rejected: Option<u64> = None;
    // Coordinated or health-checked changes take the gate, which runs their reload itself.
    let gated = (resource.coordination.is_some() || resource.health.is_some())
        && !options.noop
        && !options.sync_only;
    loop {
        let Some(content) = mailbox.take() else {
            if mailbox.is_closed() {
                return;
            }
            mailbox.notify.notified().await;
            continue;
        };
        // Hashing a large render costs milliseconds on the way to the file, so only when there
        // is a rejected render to compare with; a new rejection hashes its own content.
        let changed = if rejected.is_some_and(|hash| hash == content_hash(&content)) {
            debug!(resource = %resource.name, "same render as the one check_cmd rejected; not checked again");
            false
        } else if gated {
            let cx = GateContext {
                resource: &resource,
                groups: &groups,
                options,
                telemetry: &telemetry,
                fleet: &fleet,
                shutdown: &shutdown,
            };
            let (outcome, applied) = gate::apply(&cx, content, || mailbox.take()).await;
            match outcome {
                Gated::Rejected | Gated::RolledBack => rejected = Some(content_hash(&applied)),
                Gated::Applied | Gated::Unchanged => rejected = None,
                Gated::Failed | Gated::Stopped => {}
            }
            // The gate ran the reload itself.
            false
        } else {
            let result = resource::sync(&resource, Arc::clone(&content), options).await;
            let (outcome, in_sync, changed) = match &result {
                Ok(SyncOutcome::Unchanged) => ("unchanged", true, false),
                Ok(SyncOutcome::Pending) => ("pending", true, false),
                Ok(SyncOutcome::Updated { .. }) => ("updated", true, true),
                Err(_) => ("failed", false, false),
            };
            telemetry.synced(&resource.name, outcome, in_sync);
            match result {
                Ok(outcome) => {
                    rejected = None;
                    if let SyncOutcome::Updated {
                        checked_in: Some(took),
                    } = outcome
                    {
                        telemetry.checked(&resource.name, true, took);
                    }
                }
                Err(err) => {
                    if let SyncError::Check { took, .. } = &err {
                        rejected = Some(content_hash(&content));
                        telemetry.checked(&resource.name, false, *took);
                    }
                    error!(resource = %resource.name, dest = %resource.dest.display(), error = %err, "sync failed");
                }
            }
            changed
        };
        let more_waiting = mailbox.has_content();
        for group in &groups {
            group.member_done(id, changed, more_waiting);
        }
    }
}

fn content_hash(content: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    hasher.finish()
}

/// Follows the backend's changes, resuming after errors with backoff and re-listing when the
/// watch cannot resume. Runs until `stop` or until the runner stops reading.
async fn watch_loop(
    mut backend: Backend,
    prefixes: Vec<String>,
    mut revision: u64,
    updates: mpsc::Sender<Update>,
    stop: CancellationToken,
    telemetry: Arc<Telemetry>,
) {
    let mut backoff = Backoff::new();
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = backend.watch(&prefixes, &mut revision, &updates) => result,
        };
        match result {
            Ok(()) => return,
            Err(err) if err.needs_relist() => {
                warn!(backend = backend.name(), error = %err, "watch cannot resume; listing again");
                let Some(listing) =
                    list_with_retry(&mut backend, &prefixes, None, &stop, &telemetry).await
                else {
                    return;
                };
                revision = listing.revision;
                let update = Update::Listing {
                    prefixes: prefixes.clone(),
                    listing,
                };
                if updates.send(update).await.is_err() {
                    return;
                }
                backoff.reset();
            }
            Err(err) => {
                telemetry.backend_error(backend.name());
                let delay = backoff.next();
                warn!(
                    backend = backend.name(),
                    error = %err,
                    retry_in_ms = delay.as_millis() as u64,
                    "watch interrupted; keeping the last good files"
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                // Reachable again if the next attempt lists: the watch itself says nothing
                // until something changes.
                if backend.list(&prefixes).await.is_ok() {
                    telemetry.backend_ok();
                }
            }
        }
    }
}

/// Lists once; a failure is logged and the store keeps its last good state.
async fn list_once(
    backend: &mut Backend,
    prefixes: &[String],
    telemetry: &Telemetry,
) -> Option<Listing> {
    match backend.list(prefixes).await {
        Ok(listing) => {
            telemetry.backend_ok();
            Some(listing)
        }
        Err(err) => {
            telemetry.backend_error(backend.name());
            warn!(backend = backend.name(), error = %err, "listing failed; keeping the last good files");
            None
        }
    }
}

/// Lists, retrying failures with backoff until `deadline` (forever without one). `None` when the
/// deadline passed (the last error is logged) or on shutdown.
async fn list_with_retry(
    backend: &mut Backend,
    prefixes: &[String],
    deadline: Option<tokio::time::Instant>,
    shutdown: &CancellationToken,
    telemetry: &Telemetry,
) -> Option<Listing> {
    let mut backoff = Backoff::new();
    loop {
        let attempt = backend.list(prefixes);
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
                Ok(result) => result,
                Err(_) => Err(BackendError::Unreachable {
                    backend: backend.name(),
                    endpoints: backend.endpoints(),
                    message: "no answer within the backend timeout".to_owned(),
                }),
            },
            None => tokio::select! {
                result = attempt => result,
                _ = shutdown.cancelled() => return None,
            },
        };
        let err = match result {
            Ok(listing) => {
                telemetry.backend_ok();
                return Some(listing);
            }
            Err(err) => err,
        };
        telemetry.backend_error(backend.name());
        let delay = backoff.next();
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|deadline| now + delay >= deadline || !is_transient(&err)) {
            error!(backend = backend.name(), error = %err, "backend unavailable; giving up");
            return None;
        }
        warn!(
            backend = backend.name(),
            error = %err,
            retry_in_ms = delay.as_millis() as u64,
            "backend unavailable; retrying"
        );
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Whether retrying within a one-shot run can help: refused credentials or a file with a syntax
/// error will not fix themselves in seconds. (Without a deadline everything is retried: an
/// operator may fix either while terad waits.)
fn is_transient(err: &BackendError) -> bool {
    !matches!(err, BackendError::Denied { .. } | BackendError::File { .. })
}

/// Exponential backoff with jitter, so a fleet of sidecars does not retry in lockstep.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        // Full jitter on the upper half: between base/2 and base.
        let half = base / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(min_keys: Option<usize>, allow_empty: bool) -> Resource {
        Resource {
            name: "r".into(),
            file: "r.toml".into(),
            template: "t".into(),
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
            create_dirs: false,
            wait: None,
            min_keys,
            allow_empty,
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
    fn backoff_grows_to_a_cap_with_jitter() {
        let mut backoff = Backoff::new();
        let first = backoff.next();
        assert!(first >= BACKOFF_START / 2 && first <= BACKOFF_START);
        let mut last = first;
        for _ in 0..20 {
            last = backoff.next();
        }
        assert!(last >= BACKOFF_MAX / 2 && last <= BACKOFF_MAX);
        backoff.reset();
        assert!(backoff.next() <= BACKOFF_START);
    }
}
