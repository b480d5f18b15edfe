//! One task per resource that writes its newest render and tells its reload groups.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use crate::config::Resource;
use crate::fleet::Fleet;
use crate::fleet::gate::{self, GateContext, Gated};
use crate::reload::Group;
use crate::resource::{self, SyncError, SyncOptions, SyncOutcome};
use crate::retry::Backoff;
use crate::telemetry::{SyncLabel, Telemetry};

/// The newest render for one worker. A render that arrives while the worker is busy replaces
/// the one waiting, so a slow check never builds a queue; the worker takes the content out,
/// so a large file is not kept in memory between changes.
#[derive(Default)]
pub(super) struct Mailbox {
    latest: std::sync::Mutex<Option<Arc<Vec<u8>>>>,
    notify: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
    /// A render for this resource is running: the worker that finishes a write meanwhile
    /// keeps its reload groups waiting for it.
    expected: AtomicBool,
    /// The worker is writing (or checking, reloading) a render.
    working: AtomicBool,
}

impl Mailbox {
    pub(super) fn put(&self, content: Vec<u8>) {
        *self.latest.lock().expect("mailbox lock") = Some(Arc::new(content));
        self.expected.store(false, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// A render for this resource started.
    pub(super) fn expect(&self) {
        self.expected.store(true, Ordering::SeqCst);
    }

    /// The expected render failed. Returns whether the worker is idle, in which case nobody
    /// else will tell the reload groups that this member is done. (Sequentially consistent with
    /// [`Self::done_working`]: of the two sides, at least one sees the other's write, so the
    /// member is never left pending.)
    pub(super) fn expect_nothing(&self) -> bool {
        self.expected.store(false, Ordering::SeqCst);
        !self.working.load(Ordering::SeqCst)
    }

    /// The worker finished a render; returns whether a newer one is waiting or on its way.
    fn done_working(&self) -> bool {
        self.working.store(false, Ordering::SeqCst);
        self.has_content() || self.expected.load(Ordering::SeqCst)
    }

    pub(super) fn take(&self) -> Option<Arc<Vec<u8>>> {
        let content = self.latest.lock().expect("mailbox lock").take();
        if content.is_some() {
            self.working.store(true, Ordering::SeqCst);
        }
        content
    }

    pub(super) fn has_content(&self) -> bool {
        self.latest.lock().expect("mailbox lock").is_some()
    }

    pub(super) fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_one();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// What a resource's worker needs.
pub(super) struct WorkerSetup {
    pub(super) id: usize,
    pub(super) resource: Arc<Resource>,
    pub(super) mailbox: Arc<Mailbox>,
    pub(super) groups: Vec<Arc<Group>>,
    pub(super) options: SyncOptions,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) fleet: Arc<Fleet>,
    pub(super) shutdown: CancellationToken,
}

/// Writes each newest render of one resource, then tells its reload groups.
pub(super) async fn worker(setup: WorkerSetup) {
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
    // A render whose sync failed for a reason that may pass (an I/O error, a full disk, no
    // descriptors left): tried again with backoff until it works or a newer render replaces it.
    let mut retry: Option<(Arc<Vec<u8>>, tokio::time::Instant)> = None;
    let mut backoff = Backoff::new(Backoff::BACKEND);
    loop {
        let content = match mailbox.take() {
            Some(content) => {
                retry = None;
                content
            }
            None if mailbox.is_closed() => return,
            None => match retry.take() {
                Some((content, at)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = mailbox.notify.notified() => {
                            retry = Some((content, at));
                            continue;
                        }
                    }
                    mailbox.working.store(true, Ordering::SeqCst);
                    info!(resource = %resource.name, "retrying the failed sync");
                    content
                }
                None => {
                    mailbox.notify.notified().await;
                    continue;
                }
            },
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
                Gated::Applied | Gated::Unchanged => {
                    rejected = None;
                    backoff.reset();
                }
                Gated::Failed => {
                    retry = Some((applied, tokio::time::Instant::now() + backoff.next_delay()))
                }
                Gated::Stopped | Gated::SlotLost => {}
            }
            // The gate ran the reload itself.
            false
        } else {
            let result = resource::sync(&resource, Arc::clone(&content), options).await;
            let (outcome, changed) = match &result {
                Ok(SyncOutcome::Unchanged) => (SyncLabel::Unchanged, false),
                Ok(SyncOutcome::Pending) => (SyncLabel::Pending, false),
                Ok(SyncOutcome::Updated { .. }) => (SyncLabel::Updated, true),
                Err(_) => (SyncLabel::Failed, false),
            };
            telemetry.synced(&resource.name, outcome);
            match result {
                Ok(outcome) => {
                    rejected = None;
                    backoff.reset();
                    if let SyncOutcome::Updated {
                        checked_in: Some(took),
                    } = outcome
                    {
                        telemetry.checked(&resource.name, true, took);
                    }
                }
                Err(err) => {
                    if let SyncError::Check { took, .. } = &err {
                        // The data must change first: the same render would be refused again.
                        rejected = Some(content_hash(&content));
                        telemetry.checked(&resource.name, false, *took);
                        error!(resource = %resource.name, dest = %resource.dest.display(), error = %err, "sync failed");
                    } else {
                        let delay = backoff.next_delay();
                        error!(resource = %resource.name, dest = %resource.dest.display(), error = %err, retry_in_ms = delay.as_millis() as u64, "sync failed");
                        retry = Some((Arc::clone(&content), tokio::time::Instant::now() + delay));
                    }
                }
            }
            changed
        };
        let more_waiting = mailbox.done_working();
        for group in &groups {
            group.member_done(id, changed, more_waiting);
        }
    }
}

pub(super) fn content_hash(content: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    hasher.finish()
}
