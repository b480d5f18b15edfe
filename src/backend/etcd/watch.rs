//! Following changes: one watch stream on one member carries a watch per prefix, and a member
//! that fails, hangs or loses its leader is left for the next, the watch resuming from the
//! revision it had reached. Split from the listing because the stream's watchdog (progress
//! requests), the race between members to serve it and the revision bookkeeping are a whole
//! of their own.

use tokio::sync::mpsc;

use super::api::etcdserverpb::{RangeRequest, WatchCreateRequest};
use super::api::mvccpb::event::EventType;
use super::client::Client;
use super::{
    BACKEND, EtcdSource, HEDGE_DELAY, MAX_MESSAGE, PROGRESS_INTERVAL, PROGRESS_TIMEOUT,
    SHORT_TIMEOUT, decode, no_answer, scope_range,
};
use crate::backend::{BackendError, Update, WatchCursor};
use crate::store::{Change, key_in_scope};

/// How a watch on one member ended.
struct WatchEnd {
    error: BackendError,
    /// Whether the stream was open before it failed (a later failure is a new episode).
    opened: bool,
}

impl EtcdSource {
    /// Follows `prefixes` from `cursor` on the member that answers first, moving on to the
    /// next member when the one serving fails (see [`crate::backend::KeySource::watch`]).
    pub(super) async fn watch_members(
        &self,
        prefixes: &[String],
        cursor: &mut WatchCursor,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        // A member that fails is left for the next at once, resuming from the same revision
        // (revisions are the cluster's, not the member's); the watch fails only when no member
        // can serve it, and the runner then retries with backoff.
        let mut tried = vec![false; self.endpoints.len()];
        let mut failures = Vec::new();
        let (probe, _) = scope_range(&prefixes[0]);
        loop {
            let candidates: Vec<usize> = self
                .members
                .order()
                .into_iter()
                .filter(|&i| !tried[i])
                .collect();
            let (winner, failed) = self.first_answering(&candidates, &probe).await;
            for (index, message) in failed {
                self.members.failed(index, &message);
                tried[index] = true;
                failures.push((index, message));
            }
            let (index, client, current) = match winner {
                Some(Ok(winner)) => winner,
                Some(Err(error)) => return Err(error),
                None => return Err(self.none_answered(&failures)),
            };
            tried[index] = true;
            self.members.answered(index);
            // etcd's position is the cluster's revision: one number resumes every prefix.
            let mut revision = cursor.revision();
            let result = self
                .watch_member(index, client, current, prefixes, &mut revision, updates)
                .await;
            cursor.advance(revision);
            let end = match result {
                Ok(()) => return Ok(()),
                Err(end) => end,
            };
            let BackendError::Unreachable { message, .. } = &end.error else {
                return Err(end.error);
            };
            self.members.failed(index, message);
            if end.opened {
                // It served for a while: a new episode, in which every other member may be
                // tried again.
                tried.iter_mut().for_each(|tried| *tried = false);
                tried[index] = true;
                failures.clear();
            }
            failures.push((index, message.clone()));
        }
    }

    /// Member `index`'s client and the cluster's current revision, read through it with a
    /// linearizable request on `probe` (so it needs the member to be in a cluster with a
    /// leader, as a watch does).
    async fn revision_through(
        &self,
        index: usize,
        probe: Vec<u8>,
    ) -> Result<(Client, i64), BackendError> {
        let client = self.connect(index).await?;
        let read = client.range(RangeRequest {
            key: probe,
            keys_only: true,
            limit: 1,
            ..RangeRequest::default()
        });
        match tokio::time::timeout(SHORT_TIMEOUT, read).await {
            Ok(result) => {
                let revision = result
                    .map_err(|e| self.classify(index, e))?
                    .header
                    .map_or(0, |h| h.revision);
                Ok((client, revision))
            }
            Err(_) => Err(self.unreachable(index, no_answer(SHORT_TIMEOUT))),
        }
    }

    /// Asks `candidates` for the current revision, the first at once and each next one after
    /// [`HEDGE_DELAY`] or as soon as an earlier one failed; the first to answer wins and the
    /// questions still open are dropped. Returns the winner, or the error that is the store's
    /// answer (not a member failing), and the members that failed meanwhile, in order.
    #[allow(clippy::type_complexity)]
    async fn first_answering(
        &self,
        candidates: &[usize],
        probe: &[u8],
    ) -> (
        Option<Result<(usize, Client, i64), BackendError>>,
        Vec<(usize, String)>,
    ) {
        let mut asking = tokio::task::JoinSet::new();
        let mut next = candidates.iter().copied();
        let mut failures = Vec::new();
        let ask = |asking: &mut tokio::task::JoinSet<_>, index: usize| {
            let source = self.clone();
            let probe = probe.to_vec();
            asking.spawn(async move { (index, source.revision_through(index, probe).await) });
        };
        if let Some(first) = next.next() {
            ask(&mut asking, first);
        }
        loop {
            let more = next.len() > 0;
            tokio::select! {
                joined = asking.join_next() => {
                    let Some(joined) = joined else {
                        return (None, failures);
                    };
                    // A probe that panicked tells nothing: ask the next member instead.
                    let Ok((index, result)) = joined else {
                        if let Some(index) = next.next() {
                            ask(&mut asking, index);
                        }
                        continue;
                    };
                    match result {
                        Ok((client, revision)) => return (Some(Ok((index, client, revision))), failures),
                        Err(BackendError::Unreachable { message, .. }) => {
                            failures.push((index, message));
                            if let Some(index) = next.next() {
                                ask(&mut asking, index);
                            }
                        }
                        Err(other) => return (Some(Err(other)), failures),
                    }
                }
                _ = tokio::time::sleep(HEDGE_DELAY), if more => {
                    if let Some(index) = next.next() {
                        ask(&mut asking, index);
                    }
                }
            }
        }
    }

    /// Follows `prefixes` on member `index` (whose `client` read the cluster at `current`)
    /// from `revision` + 1 until the stream fails or `updates` closes.
    async fn watch_member(
        &self,
        index: usize,
        client: Client,
        current: i64,
        prefixes: &[String],
        revision: &mut u64,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), WatchEnd> {
        let closed = |error: BackendError| WatchEnd {
            error,
            opened: false,
        };
        // An etcd that came back with less history than terad has seen (restored from an old
        // snapshot, or wiped and restarted empty) would make a watch from the old revision
        // wait for revisions that mean something else: list again instead.
        if u64::try_from(current).unwrap_or(0) < *revision {
            tracing::warn!(
                seen = *revision,
                current,
                member = %self.members.url(index),
                "etcd's revision went backwards (restored or restarted empty); listing again"
            );
            return Err(closed(BackendError::Compacted {
                backend: BACKEND,
                revision: u64::try_from(current).unwrap_or(0),
            }));
        }
        let client = client.max_decoding_message_size(MAX_MESSAGE);
        let start = i64::try_from(*revision).unwrap_or(i64::MAX - 1) + 1;
        let request = |prefix: &str| {
            let (key, range_end) = scope_range(prefix);
            WatchCreateRequest {
                key,
                range_end,
                start_revision: start,
                progress_notify: true,
                ..WatchCreateRequest::default()
            }
        };
        let open = async {
            let mut stream = client.watch(request(&prefixes[0])).await?;
            // The other prefixes share the stream: one connection, one ordered event sequence.
            for prefix in &prefixes[1..] {
                stream.watch(request(prefix)).await?;
            }
            Ok::<_, super::client::Error>(stream)
        };
        let mut stream = match tokio::time::timeout(SHORT_TIMEOUT, open).await {
            Ok(result) => result.map_err(|e| closed(self.classify(index, e)))?,
            Err(_) => return Err(closed(self.unreachable(index, no_answer(SHORT_TIMEOUT)))),
        };
        tracing::debug!(
            prefixes = crate::logging::json(prefixes),
            start_revision = start,
            member = %self.members.url(index),
            "etcd watch open"
        );
        // The runner learns that the backend answers again from what the watch sends; a watch
        // reopened after an outage may have nothing to send for a long time, so it says so
        // with an update that changes nothing (same revision, no changes). Without it, a
        // member back while the runner's probing listing failed left /ready false and the
        // outage unended until the next change.
        let alive = Update::Changes {
            revision: *revision,
            changes: Vec::new(),
        };
        if updates.send(alive).await.is_err() {
            return Ok(());
        }
        let broken = |error: BackendError| WatchEnd {
            error,
            opened: true,
        };

        // How far each watch (by id) is known complete. Watches on one stream may lag each
        // other while catching up, so the stream resumes from the slowest one; events seen
        // twice after a resume are idempotent puts and deletes.
        let mut progress: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        // The watchdog: a stream silent for PROGRESS_INTERVAL is asked for a progress
        // notification, and one that does not answer within PROGRESS_TIMEOUT is hung (a
        // SIGSTOPped or wedged member keeps its TCP connection open and says nothing).
        let mut heard = tokio::time::Instant::now();
        let mut asked: Option<tokio::time::Instant> = None;
        loop {
            let alarm = match asked {
                Some(at) => at + PROGRESS_TIMEOUT,
                None => heard + PROGRESS_INTERVAL,
            };
            let message = tokio::select! {
                message = stream.message() => message,
                _ = updates.closed() => return Ok(()),
                _ = tokio::time::sleep_until(alarm) => {
                    if asked.is_some() {
                        return Err(broken(self.unreachable(
                            index,
                            format!(
                                "the watch stream did not answer a progress request within {}s (the member hangs)",
                                PROGRESS_TIMEOUT.as_secs()
                            ),
                        )));
                    }
                    stream
                        .request_progress()
                        .await
                        .map_err(|e| broken(self.classify(index, e)))?;
                    asked = Some(tokio::time::Instant::now());
                    continue;
                }
            };
            heard = tokio::time::Instant::now();
            asked = None;
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => {
                    return Err(broken(
                        self.unreachable(index, "the watch stream ended".to_owned()),
                    ));
                }
                Err(error) => return Err(broken(self.classify(index, error))),
            };
            if response.canceled {
                let compacted = response.compact_revision;
                if compacted > 0 {
                    return Err(broken(BackendError::Compacted {
                        backend: BACKEND,
                        revision: u64::try_from(compacted).unwrap_or(0),
                    }));
                }
                let reason = response.cancel_reason;
                if reason.contains("no leader") {
                    return Err(broken(self.unreachable(index, reason)));
                }
                return Err(broken(BackendError::Other {
                    backend: BACKEND,
                    message: format!("watch canceled: {reason}"),
                }));
            }
            if response.watch_id == PROGRESS_WATCH_ID {
                // The answer to a progress request: the member is alive. (Its revision is not
                // taken as progress: etcd 3.4 may send it before every watch has caught up.)
                continue;
            }
            let watched = progress.entry(response.watch_id).or_insert(start - 1);
            if response.created {
                continue;
            }
            let mut changes = Vec::new();
            for event in &response.events {
                let Some(kv) = &event.kv else { continue };
                *watched = (*watched).max(kv.mod_revision);
                let Ok(key) = std::str::from_utf8(&kv.key) else {
                    continue;
                };
                if !prefixes.iter().any(|prefix| key_in_scope(prefix, key)) {
                    continue;
                }
                // etcd has no other kind of event.
                let Ok(kind) = EventType::try_from(event.r#type) else {
                    continue;
                };
                match kind {
                    EventType::Put => match decode(&kv.key, &kv.value) {
                        Some((key, value)) => changes.push(Change::Put { key, value }),
                        // An unreadable value counts as gone, so stale text is not kept.
                        None => changes.push(Change::Delete {
                            key: key.to_owned(),
                        }),
                    },
                    EventType::Delete => changes.push(Change::Delete {
                        key: key.to_owned(),
                    }),
                }
            }
            if response.events.is_empty() {
                // A progress notification: this (synced) watch has seen everything up to the
                // header revision.
                let header = response.header.map_or(0, |h| h.revision);
                *watched = (*watched).max(header);
            }
            if progress.len() == prefixes.len() {
                let slowest = progress.values().copied().min().unwrap_or(0);
                *revision = (*revision).max(u64::try_from(slowest).unwrap_or(0));
            }
            if changes.is_empty() {
                continue;
            }
            let update = Update::Changes {
                revision: *revision,
                changes,
            };
            if updates.send(update).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// The watch id etcd puts on its answer to a progress request.
const PROGRESS_WATCH_ID: i64 = -1;
