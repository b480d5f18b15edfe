//! Following the backend: the watch task and listings with retry. A failed listing or a broken
//! watch never empties the store; the last good files stay until the backend answers again.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::backend::{Backend, BackendError, KeySource, Listing, Update, WatchCursor};
use crate::retry::Backoff;
use crate::telemetry::Telemetry;

/// How many updates may wait between the watch task and the runner.
const UPDATE_QUEUE: usize = 1024;

/// The task following the backend, and the channel its updates arrive on.
pub(super) struct WatchTask {
    pub(super) updates: mpsc::Receiver<Update>,
    pub(super) stop: CancellationToken,
}

impl WatchTask {
    /// Follows `prefixes` from `revision` on.
    pub(super) fn start(
        backend: &Backend,
        prefixes: &[String],
        revision: u64,
        telemetry: &Arc<Telemetry>,
        shutdown: &CancellationToken,
    ) -> WatchTask {
        let (tx, updates) = mpsc::channel(UPDATE_QUEUE);
        let stop = shutdown.child_token();
        tokio::spawn(watch_loop(
            backend.clone(),
            prefixes.to_vec(),
            WatchCursor::at(revision),
            tx,
            stop.clone(),
            Arc::clone(telemetry),
        ));
        WatchTask { updates, stop }
    }

    pub(super) fn stop(self) {
        self.stop.cancel();
    }
}

/// Follows the backend's changes, resuming after errors with backoff and re-listing when the
/// watch cannot resume. Runs until `stop` or until the runner stops reading.
pub(super) async fn watch_loop(
    mut backend: Backend,
    prefixes: Vec<String>,
    mut cursor: WatchCursor,
    updates: mpsc::Sender<Update>,
    stop: CancellationToken,
    telemetry: Arc<Telemetry>,
) {
    let mut backoff = Backoff::new(Backoff::BACKEND);
    // Whether the current outage was logged: once per outage, not once per retry.
    let mut logged = false;
    loop {
        let resumed_at = cursor.revision();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = backend.watch(&prefixes, &mut cursor, &updates) => result,
        };
        if cursor.revision() != resumed_at {
            // The watch delivered before it broke: this is a new outage, retried promptly.
            backoff.reset();
            logged = false;
        }
        match result {
            Ok(()) => return,
            Err(err) if err.needs_relist() => {
                warn!(backend = backend.name(), error = %err, "watch cannot resume; listing again");
                let Some(listing) =
                    list_with_retry(&mut backend, &prefixes, None, &stop, &telemetry).await
                else {
                    return;
                };
                cursor = WatchCursor::at(listing.revision);
                let update = Update::Listing {
                    prefixes: prefixes.clone(),
                    listing,
                };
                if updates.send(update).await.is_err() {
                    return;
                }
                backoff.reset();
            }
            Err(mut err) => {
                // Probe with a listing until the store answers, then watch again: the watch
                // itself says nothing until something changes. A failed attempt costs one
                // listing, not a listing and a watch: a fleet retries through the same
                // election all at once.
                let mut serving = serving_again(&backend);
                loop {
                    telemetry.backend_error(backend.name());
                    let delay = backoff.next_delay();
                    if logged {
                        debug!(backend = backend.name(), error = %err, retry_in_ms = delay.as_millis() as u64, "watch still interrupted");
                    } else {
                        warn!(
                            backend = backend.name(),
                            error = %err,
                            retry_in_ms = delay.as_millis() as u64,
                            "watch interrupted; keeping the last good files"
                        );
                        logged = true;
                    }
                    if !back_off(delay, &mut serving, &backend, &stop).await {
                        return;
                    }
                    match backend.list(&prefixes).await {
                        Ok(listing) => {
                            reachable(&telemetry, &backend, &listing);
                            backoff.reset();
                            logged = false;
                            break;
                        }
                        Err(probe) => err = probe,
                    }
                }
            }
        }
    }
}

/// Resolves when the backend says it serves again ([`KeySource::serving`]).
type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A [`Serving`] probe for one outage. One runs through a whole outage, beside the backoff's
/// sleeps: started afresh for each attempt it would ask every node again at each of the
/// backoff's short first steps, for a whole fleet at once.
fn serving_again(backend: &Backend) -> Serving {
    let prober = backend.clone();
    Box::pin(async move { prober.serving().await })
}

/// Sits out a backoff `delay`, cut short when the store says it serves again (the probe is then
/// armed again for the rest of the outage). False on shutdown.
async fn back_off(
    delay: Duration,
    serving: &mut Serving,
    backend: &Backend,
    stop: &CancellationToken,
) -> bool {
    let serves_again = tokio::select! {
        _ = stop.cancelled() => return false,
        _ = tokio::time::sleep(delay) => false,
        _ = serving.as_mut() => true,
    };
    if serves_again {
        *serving = serving_again(backend);
    }
    true
}

/// Marks the backend reachable; after an outage, says so once, with what it holds now.
fn reachable(telemetry: &Telemetry, backend: &Backend, listing: &Listing) {
    answered(telemetry, backend, listing.entries.len(), listing.revision);
}

/// The backend answered (a listing, or the watch delivered) and the store holds `keys` at
/// `revision`. The watch counts too: when the cluster comes back between the watch loop's
/// probing listing and its next watch, the watch is what works first, and without this `/ready`
/// would stay false for as long as that watch lasts.
pub(super) fn answered(telemetry: &Telemetry, backend: &Backend, keys: usize, revision: u64) {
    if let Some(outage) = telemetry.backend_ok() {
        info!(
            backend = backend.name(),
            keys,
            revision,
            "backend reachable again after {:.1}s",
            outage.as_secs_f64()
        );
    }
}

/// Lists once; a failure is logged and the store keeps its last good state.
pub(super) async fn list_once(
    backend: &mut Backend,
    prefixes: &[String],
    telemetry: &Telemetry,
) -> Option<Listing> {
    match backend.list(prefixes).await {
        Ok(listing) => {
            reachable(telemetry, backend, &listing);
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
pub(super) async fn list_with_retry(
    backend: &mut Backend,
    prefixes: &[String],
    deadline: Option<tokio::time::Instant>,
    shutdown: &CancellationToken,
    telemetry: &Telemetry,
) -> Option<Listing> {
    let mut backoff = Backoff::new(Backoff::BACKEND);
    let mut logged = false;
    let mut serving = serving_again(backend);
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
                reachable(telemetry, backend, &listing);
                return Some(listing);
            }
            Err(err) => err,
        };
        telemetry.backend_error(backend.name());
        let mut delay = backoff.next_delay();
        if let Some(deadline) = deadline {
            // The whole backend timeout is used: the last attempt starts at the deadline at the
            // latest, and only an attempt that fails there (or a permanent error) gives up.
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !is_transient(&err) {
                error!(backend = backend.name(), error = %err, "backend unavailable; giving up");
                return None;
            }
            delay = delay.min(left);
        }
        if logged {
            debug!(backend = backend.name(), error = %err, retry_in_ms = delay.as_millis() as u64, "backend still unavailable");
        } else {
            warn!(
                backend = backend.name(),
                error = %err,
                retry_in_ms = delay.as_millis() as u64,
                "backend unavailable; retrying"
            );
            logged = true;
        }
        if !back_off(delay, &mut serving, backend, shutdown).await {
            return None;
        }
    }
}

/// Whether retrying within a one-shot run can help: refused credentials or a file with a syntax
/// error will not fix themselves in seconds. (Without a deadline everything is retried: an
/// operator may fix either while terad waits.)
pub(super) fn is_transient(err: &BackendError) -> bool {
    !matches!(err, BackendError::Denied { .. } | BackendError::File { .. })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::memory::{MemorySource, WatchStep};
    use crate::store::Change;

    /// Issue 13: after a first outage had grown the backoff, the first retry of a second outage
    /// came seconds late. A watch that delivered (or a listing that worked) resets it.
    #[tokio::test(start_paused = true)]
    async fn the_backoff_starts_over_once_the_watch_delivered() {
        let source = MemorySource::default();
        {
            let mut watch = source.watch_script.lock().unwrap();
            let mut list = source.list_script.lock().unwrap();
            // A first outage: the watch fails, and the probing listings keep failing (the
            // backoff grows)…
            watch.push_back(WatchStep::Fails);
            for _ in 0..5 {
                list.push_back(false);
            }
            // …then a listing works, the watch is back and delivers, and a second outage
            // starts at once.
            list.push_back(true);
            watch.push_back(WatchStep::DeliversThenFails(Update::Changes {
                revision: 7,
                changes: vec![Change::Put {
                    key: "/a".into(),
                    value: "1".into(),
                }],
            }));
            watch.push_back(WatchStep::Fails);
            list.push_back(false);
        }
        let (watches, lists) = (
            Arc::clone(&source.watch_calls),
            Arc::clone(&source.list_calls),
        );
        let (tx, mut rx) = mpsc::channel(8);
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch_loop(
            Backend::Memory(source),
            vec!["/".into()],
            WatchCursor::at(0),
            tx,
            stop.clone(),
            Arc::new(Telemetry::new(Duration::from_secs(30))),
        ));
        let delivered = rx.recv().await.expect("the update");
        assert!(matches!(delivered, Update::Changes { revision: 7, .. }));
        while lists.lock().unwrap().len() < 8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        let _ = task.await;
        let watches = watches.lock().unwrap().clone();
        let lists = lists.lock().unwrap().clone();
        // A failed attempt is one listing: the watch is tried again only once one worked.
        assert_eq!(watches.len(), 3, "{watches:?}");
        let gaps: Vec<Duration> = lists.windows(2).map(|w| w[1] - w[0]).collect();
        // The first outage backs off: 50–100 ms, 100–200, 200–400, 400–800, 800–1600 ms.
        assert!(gaps[4] >= Duration::from_millis(800), "{gaps:?}");
        // After the delivery the second outage is probed at the first step again.
        let second = lists[6] - watches[2];
        assert!(second <= Duration::from_millis(100), "{second:?}");
    }
}
