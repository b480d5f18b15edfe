//! The orchestrator: one-shot, polling and watch modes over one live key store.
//!
//! The runner owns the store. Backend listings and watch updates are applied to it in place, and
//! after each batch only the resources whose keys the batch touched are rendered. Rendering
//! happens here, between batches, so every render reads exactly one state of the store. The
//! rendered bytes go to one worker task per resource, which writes, checks and reloads; a worker
//! busy with a slow reload only ever picks up the newest render after it (intermediate ones are
//! skipped, never queued).
//!
//! A failed listing or a broken watch never empties the store: the last good files stay until
//! the backend answers again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, BackendError, KeySource, Listing, Update, merge_prefixes};
use crate::config::{Config, Mode, Resource};
use crate::resource::{self, SyncOptions, SyncOutcome};
use crate::store::{KeyStore, key_in_scope};
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

/// One resource with what the runner keeps for it.
struct Slot {
    resource: Arc<Resource>,
    scope: Arc<KeyScope>,
}

/// Runs the configured mode until it completes (one-shot) or `shutdown` is cancelled.
pub async fn run(config: Config, backend: Backend, shutdown: CancellationToken) -> RunOutcome {
    let Config {
        settings,
        resources,
        engine,
    } = config;
    for key in &settings.ignored {
        warn!(key = %key, "confd setting ignored: terad does not use it");
    }
    let options = SyncOptions {
        noop: settings.noop,
        sync_only: settings.sync_only,
        keep_stage_file: settings.keep_stage_file,
    };
    if !options.noop {
        for resource in &resources {
            for stale in crate::fs::remove_stale_stage_files(&resource.dest) {
                info!(resource = %resource.name, path = %stale.display(), "removed a stage file left by an earlier run");
            }
        }
    }
    let slots: Vec<Slot> = resources
        .into_iter()
        .map(|resource| Slot {
            scope: Arc::new(resource::key_scope(&resource)),
            resource: Arc::new(resource),
        })
        .collect();
    let prefixes = merge_prefixes(slots.iter().flat_map(|slot| slot.resource.keys.iter()));
    info!(
        backend = backend.name(),
        resources = slots.len(),
        prefixes = ?prefixes,
        "starting"
    );

    let mut runtime = Runtime {
        engine: Arc::new(engine),
        slots,
        prefixes,
        store: Arc::new(KeyStore::new()),
        options,
        shutdown,
    };
    let mode = match settings.mode {
        Mode::Watch { reconcile } if !backend.supports_watch() => {
            let interval = reconcile.unwrap_or(crate::config::DEFAULT_INTERVAL);
            warn!(
                backend = backend.name(),
                interval_secs = interval.as_secs(),
                "this backend cannot be watched; polling instead"
            );
            Mode::Poll { interval }
        }
        mode => mode,
    };
    match mode {
        Mode::Onetime => {
            let outcome = runtime.onetime(backend, settings.backend_timeout).await;
            // The process exits next: freeing a large store and template engine value by value
            // would only delay the exit (by ~20 ms at 100k keys).
            std::mem::forget(runtime);
            outcome
        }
        Mode::Poll { interval } => runtime.follow(backend, None, Some(interval)).await,
        Mode::Watch { reconcile } => {
            let watcher = backend.clone();
            runtime.follow(backend, Some(watcher), reconcile).await
        }
    }
}

struct Runtime {
    engine: Arc<Engine>,
    slots: Vec<Slot>,
    /// The merged prefixes every listing and watch covers.
    prefixes: Vec<String>,
    store: Arc<KeyStore>,
    options: SyncOptions,
    shutdown: CancellationToken,
}

impl Runtime {
    /// `--onetime`: list once (retrying an unreachable backend up to `timeout`), sync every
    /// resource in order, and report whether all succeeded.
    async fn onetime(&mut self, mut backend: Backend, timeout: Duration) -> RunOutcome {
        let deadline = tokio::time::Instant::now() + timeout;
        let listing =
            match list_with_retry(&mut backend, &self.prefixes, Some(deadline), &self.shutdown)
                .await
            {
                Some(listing) => listing,
                None => return RunOutcome::Failed,
            };
        self.store = Arc::new(listing.entries.into_iter().collect());
        let mut failed = 0;
        for slot in &self.slots {
            let rendered = match resource::render(
                &self.engine,
                &slot.resource,
                &slot.scope,
                &self.store,
            ) {
                Ok(rendered) => rendered,
                Err(err) => {
                    error!(resource = %slot.resource.name, dest = %slot.resource.dest.display(), error = %err, "render failed; destination left unchanged");
                    failed += 1;
                    continue;
                }
            };
            if let Err(err) = resource::sync(&slot.resource, Arc::new(rendered), self.options).await
            {
                error!(resource = %slot.resource.name, dest = %slot.resource.dest.display(), error = %err, "sync failed");
                failed += 1;
            }
        }
        if failed == 0 {
            RunOutcome::Success
        } else {
            error!(
                failed,
                total = self.slots.len(),
                "one-shot run had failures"
            );
            RunOutcome::Failed
        }
    }

    /// Poll and watch modes: an initial listing, then updates from the watch task and/or a
    /// periodic re-listing, until shutdown.
    async fn follow(
        &mut self,
        mut lister: Backend,
        watcher: Option<Backend>,
        relist_every: Option<Duration>,
    ) -> RunOutcome {
        let workers = Workers::start(&self.slots, self.options);

        // The first listing: wait for the backend as long as it takes (the last good files
        // stay meanwhile).
        let Some(listing) =
            list_with_retry(&mut lister, &self.prefixes, None, &self.shutdown).await
        else {
            workers.stop().await;
            return RunOutcome::Success;
        };
        let mut revision = listing.revision;
        self.store = Arc::new(listing.entries.into_iter().collect());
        self.render_all(&workers);

        let (updates_tx, mut updates) = mpsc::channel(UPDATE_QUEUE);
        let mut watch_task = watcher.map(|watcher| {
            tokio::spawn(watch_loop(
                watcher,
                self.prefixes.clone(),
                revision,
                updates_tx,
                self.shutdown.clone(),
            ))
        });
        let mut relist = relist_every.map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });

        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                update = updates.recv(), if watch_task.is_some() => match update {
                    Some(update) => {
                        let mut changed = self.apply(update, &mut revision);
                        // Drain what queued up meanwhile: one render for a burst.
                        while let Ok(more) = updates.try_recv() {
                            changed.extend(self.apply(more, &mut revision));
                        }
                        self.render_affected(&changed, &workers);
                    }
                    None => {
                        // The watch task ended (it only does on shutdown).
                        watch_task = None;
                    }
                },
                _ = tick(&mut relist) => {
                    if let Some(listing) = list_once(&mut lister, &self.prefixes).await {
                        let update = Update::Listing { prefixes: self.prefixes.clone(), listing };
                        let changed = self.apply(update, &mut revision);
                        self.render_affected(&changed, &workers);
                    }
                }
            }
        }
        if let Some(task) = watch_task {
            task.abort();
        }
        workers.stop().await;
        RunOutcome::Success
    }

    /// Applies one update to the store; returns the keys whose value changed.
    fn apply(&mut self, update: Update, revision: &mut u64) -> Vec<String> {
        let store = Arc::make_mut(&mut self.store);
        match update {
            Update::Listing { prefixes, listing } => {
                *revision = listing.revision;
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
            Update::Changes {
                revision: at,
                changes,
            } => {
                *revision = at;
                changes
                    .into_iter()
                    .filter_map(|change| {
                        let key = change.key().to_owned();
                        store.apply(change).then_some(key)
                    })
                    .collect()
            }
        }
    }

    fn render_all(&self, workers: &Workers) {
        let rendered: usize = (0..self.slots.len())
            .map(|index| self.render_one(index, workers))
            .sum();
        release_free_memory(rendered);
    }

    /// Renders the resources watching any of `changed`.
    fn render_affected(&self, changed: &[String], workers: &Workers) {
        if changed.is_empty() {
            return;
        }
        let affected: BTreeSet<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| {
                changed.iter().any(|key| {
                    slot.resource
                        .keys
                        .iter()
                        .any(|scope| key_in_scope(scope, key))
                })
            })
            .map(|(index, _)| index)
            .collect();
        debug!(
            changed = changed.len(),
            resources = affected.len(),
            "store changed"
        );
        let rendered: usize = affected
            .into_iter()
            .map(|index| self.render_one(index, workers))
            .sum();
        release_free_memory(rendered);
    }

    /// Renders one resource and hands the result to its worker; returns the rendered size.
    fn render_one(&self, index: usize, workers: &Workers) -> usize {
        let slot = &self.slots[index];
        match resource::render(&self.engine, &slot.resource, &slot.scope, &self.store) {
            Ok(rendered) => {
                let size = rendered.len();
                workers.submit(index, rendered);
                size
            }
            Err(err) => {
                error!(
                    resource = %slot.resource.name,
                    dest = %slot.resource.dest.display(),
                    error = %err,
                    "render failed; destination left unchanged"
                );
                0
            }
        }
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

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// One task per resource applying the newest render.
struct Workers {
    mailboxes: Vec<Arc<Mailbox>>,
    tasks: JoinSet<()>,
}

/// The newest render for one worker. A render that arrives while the worker is busy replaces
/// the one waiting, so a slow reload never builds a queue; the worker takes the content out,
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

    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl Workers {
    fn start(slots: &[Slot], options: SyncOptions) -> Workers {
        let mut mailboxes = Vec::with_capacity(slots.len());
        let mut tasks = JoinSet::new();
        for slot in slots {
            let mailbox = Arc::new(Mailbox::default());
            mailboxes.push(Arc::clone(&mailbox));
            tasks.spawn(worker(Arc::clone(&slot.resource), mailbox, options));
        }
        Workers { mailboxes, tasks }
    }

    fn submit(&self, index: usize, rendered: Vec<u8>) {
        self.mailboxes[index].put(rendered);
    }

    /// Lets every worker finish what it has (the newest render included), then stops them.
    async fn stop(self) {
        let Workers {
            mailboxes,
            mut tasks,
        } = self;
        for mailbox in &mailboxes {
            mailbox.close();
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn worker(resource: Arc<Resource>, mailbox: Arc<Mailbox>, options: SyncOptions) {
    loop {
        let Some(content) = mailbox.take() else {
            if mailbox.is_closed() {
                return;
            }
            mailbox.notify.notified().await;
            continue;
        };
        match resource::sync(&resource, content, options).await {
            Ok(SyncOutcome::Unchanged | SyncOutcome::Pending | SyncOutcome::Updated { .. }) => {}
            Err(err) => error!(
                resource = %resource.name,
                dest = %resource.dest.display(),
                error = %err,
                "sync failed"
            ),
        }
    }
}

/// Follows the backend's changes, resuming after errors with backoff and re-listing when the
/// watch cannot resume. Runs until shutdown or until the runner stops reading.
async fn watch_loop(
    mut backend: Backend,
    prefixes: Vec<String>,
    mut revision: u64,
    updates: mpsc::Sender<Update>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = backend.watch(&prefixes, &mut revision, &updates) => result,
        };
        match result {
            Ok(()) => return,
            Err(err) if err.needs_relist() => {
                warn!(backend = backend.name(), error = %err, "watch cannot resume; listing again");
                let Some(listing) = list_with_retry(&mut backend, &prefixes, None, &shutdown).await
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
                let delay = backoff.next();
                warn!(
                    backend = backend.name(),
                    error = %err,
                    retry_in_ms = delay.as_millis() as u64,
                    "watch interrupted; keeping the last good files"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Lists once; a failure is logged and the store keeps its last good state.
async fn list_once(backend: &mut Backend, prefixes: &[String]) -> Option<Listing> {
    match backend.list(prefixes).await {
        Ok(listing) => Some(listing),
        Err(err) => {
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
) -> Option<Listing> {
    let mut backoff = Backoff::new();
    loop {
        let attempt = backend.list(prefixes);
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, attempt).await {
                Ok(result) => result,
                Err(_) => Err(BackendError::Other {
                    backend: backend.name(),
                    message: "no answer before the backend timeout".to_owned(),
                }),
            },
            None => attempt.await,
        };
        let err = match result {
            Ok(listing) => return Some(listing),
            Err(err) => err,
        };
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
