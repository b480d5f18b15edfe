//! Consul's service catalog for the templates: one task per distinct query, shared by every
//! resource that uses it (a health query blocks on its service's catalog entry and combines it
//! with the failing checks, followed once per datacenter for all of them; `services()` and
//! `nodes()` block on their catalog endpoint), and the snapshot every render reads.
//!
//! A query's task reports only changes. When Consul cannot be reached, the last answer stays
//! (the files rendered from it stay too) and the query is retried with backoff; a query that
//! never had an answer reports the error instead, so a render that needs it says why. An ACL
//! refusal always replaces the answer: a list the token may not read is an error, never an old
//! or empty list.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backend::consul::{ConsulSource, FailingChecksHandle, HealthFollower, QueryState};
use crate::backend::{Backend, BackendError, KeySource};
use crate::catalog::{QueryResult, ServiceData, ServiceInput, ServiceQuery, ServiceSnapshot};
use crate::retry::Backoff;
use crate::telemetry::Telemetry;

/// How many answers may wait between the query tasks and the runner.
const UPDATE_QUEUE: usize = 256;

/// A query's new answer, or why it has none.
#[derive(Debug)]
pub(super) struct ServiceUpdate {
    pub(super) query: ServiceQuery,
    pub(super) result: Result<ServiceData, BackendError>,
}

/// The watched queries and their answers.
pub(super) struct Catalog {
    /// The Consul client; `None` with another backend (every render that asks fails, naming it).
    source: Option<ConsulSource>,
    snapshot: Arc<ServiceSnapshot>,
    tasks: HashMap<ServiceQuery, CancellationToken>,
    /// The failing checks of each datacenter some health query follows, shared by those
    /// queries.
    failing_checks: HashMap<Option<String>, (FailingChecksHandle, CancellationToken)>,
    tx: mpsc::Sender<ServiceUpdate>,
    pub(super) updates: mpsc::Receiver<ServiceUpdate>,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
}

impl Catalog {
    pub(super) fn new(
        backend: &Backend,
        shutdown: &CancellationToken,
        telemetry: &Arc<Telemetry>,
    ) -> Catalog {
        let (source, snapshot) = match backend {
            Backend::Consul(source) => (Some((**source).clone()), ServiceSnapshot::default()),
            other => (None, ServiceSnapshot::unavailable(other.name())),
        };
        let (tx, updates) = mpsc::channel(UPDATE_QUEUE);
        Catalog {
            source,
            snapshot: Arc::new(snapshot),
            tasks: HashMap::new(),
            failing_checks: HashMap::new(),
            tx,
            updates,
            shutdown: shutdown.clone(),
            telemetry: Arc::clone(telemetry),
        }
    }

    /// What a render reads: the catalog as it is now, and a fresh record of what it asks.
    pub(super) fn input(&self) -> ServiceInput {
        ServiceInput::new(Arc::clone(&self.snapshot))
    }

    pub(super) fn snapshot(&self) -> &ServiceSnapshot {
        &self.snapshot
    }

    /// Whether a render can use `query` now: it has an answer (or can never have one, and the
    /// render says so).
    pub(super) fn ready(&self, query: &ServiceQuery) -> bool {
        self.source.is_none() || self.snapshot.has(query)
    }

    /// Starts following each query not followed yet.
    pub(super) fn watch<'a>(&mut self, queries: impl IntoIterator<Item = &'a ServiceQuery>) {
        let Some(source) = &self.source else {
            return;
        };
        for query in queries {
            if self.tasks.contains_key(query) {
                continue;
            }
            let stop = self.shutdown.child_token();
            self.tasks.insert(query.clone(), stop.clone());
            let follower = match query {
                ServiceQuery::Health(health) => {
                    let (checks, _) = self
                        .failing_checks
                        .entry(health.datacenter.clone())
                        .or_insert_with(|| {
                            let stop = self.shutdown.child_token();
                            let handle = FailingChecksHandle::spawn(
                                source,
                                health.datacenter.clone(),
                                stop.clone(),
                            );
                            (handle, stop)
                        });
                    Follower::Health(Box::new(HealthFollower::new(
                        source,
                        health.clone(),
                        checks.clone(),
                    )))
                }
                _ => Follower::Catalog(source.clone(), QueryState::default()),
            };
            tokio::spawn(follow(
                follower,
                query.clone(),
                self.tx.clone(),
                stop,
                Arc::clone(&self.telemetry),
            ));
        }
    }

    /// Stops following the queries no resource uses any more, and forgets their answers.
    pub(super) fn retain(&mut self, used: &BTreeSet<&ServiceQuery>) {
        let unused: Vec<ServiceQuery> = self
            .tasks
            .keys()
            .filter(|query| !used.contains(query))
            .cloned()
            .collect();
        if unused.is_empty() {
            return;
        }
        let snapshot = Arc::make_mut(&mut self.snapshot);
        for query in unused {
            if let Some(stop) = self.tasks.remove(&query) {
                stop.cancel();
            }
            snapshot.results.remove(&query);
        }
        let datacenters: BTreeSet<Option<&str>> = self
            .tasks
            .keys()
            .filter_map(|query| match query {
                ServiceQuery::Health(health) => Some(health.datacenter.as_deref()),
                _ => None,
            })
            .collect();
        self.failing_checks.retain(|datacenter, (_, stop)| {
            let used = datacenters.contains(&datacenter.as_deref());
            if !used {
                stop.cancel();
            }
            used
        });
    }

    /// Records an answer; returns whether it changed what renders see. Answers of queries no
    /// longer followed are dropped.
    pub(super) fn apply(&mut self, update: ServiceUpdate) -> bool {
        if !self.tasks.contains_key(&update.query) {
            return false;
        }
        let result = update
            .result
            .map(Arc::new)
            .map_err(|error| Arc::<str>::from(error.to_string()));
        let snapshot = Arc::make_mut(&mut self.snapshot);
        if snapshot.results.get(&update.query) == Some(&result) {
            return false;
        }
        snapshot.results.insert(update.query, result);
        true
    }

    pub(super) fn watched(&self) -> usize {
        self.tasks.len()
    }

    pub(super) fn stop(&mut self) {
        for (_, stop) in self.tasks.drain() {
            stop.cancel();
        }
        for (_, (_, stop)) in self.failing_checks.drain() {
            stop.cancel();
        }
    }
}

impl Drop for Catalog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one query for a one-shot run, retrying what may pass for up to `timeout`: its answer,
/// or the error a render that uses it reports.
pub(super) async fn read_once(
    source: &ConsulSource,
    query: &ServiceQuery,
    timeout: std::time::Duration,
    shutdown: &CancellationToken,
) -> QueryResult {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Backoff::new(Backoff::BACKEND);
    loop {
        let attempt = tokio::time::timeout_at(deadline, source.read_service(query, 0, None));
        let err = tokio::select! {
            _ = shutdown.cancelled() => return Err(Arc::from("stopped")),
            result = attempt => match result {
                Ok(Ok((_, data))) => return Ok(Arc::new(data)),
                Ok(Err(err)) => err,
                Err(_) => return Err(Arc::from(format!("{query}: no answer from Consul within the backend timeout"))),
            },
        };
        let delay = backoff.next_delay();
        if matches!(err, BackendError::Denied { .. })
            || tokio::time::Instant::now() + delay >= deadline
        {
            return Err(Arc::from(err.to_string()));
        }
        warn!(query = %query, error = %err, retry_in_ms = delay.as_millis() as u64, "service query failed; retrying");
        tokio::select! {
            _ = shutdown.cancelled() => return Err(Arc::from("stopped")),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// How a query is followed: health queries from the catalog and the failing checks (see
/// [`HealthFollower`]), the catalog's services and nodes by one blocking query each.
enum Follower {
    Health(Box<HealthFollower>),
    Catalog(ConsulSource, QueryState),
}

impl Follower {
    /// The next answer when it changed, `None` when Consul came back with nothing new.
    async fn next_answer(
        &mut self,
        query: &ServiceQuery,
    ) -> Result<Option<ServiceData>, BackendError> {
        match self {
            Follower::Health(follower) => follower.next_answer().await,
            Follower::Catalog(source, state) => source.next_answer(query, state).await,
        }
    }

    /// Starts over: the next answer is reported even if it equals the last.
    fn forget(&mut self) {
        match self {
            Follower::Health(follower) => follower.forget(),
            Follower::Catalog(_, state) => state.forget(),
        }
    }
}

/// Follows one query until `stop`: its answer whenever it changes, errors with backoff.
async fn follow(
    mut follower: Follower,
    query: ServiceQuery,
    updates: mpsc::Sender<ServiceUpdate>,
    stop: CancellationToken,
    telemetry: Arc<Telemetry>,
) {
    let mut backoff = Backoff::new(Backoff::BACKEND);
    // Whether the runner holds an answer (not an error) from this task.
    let mut answered = false;
    let mut last_error: Option<String> = None;
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = follower.next_answer(&query) => result,
        };
        match result {
            Ok(changed) => {
                backoff.reset();
                if last_error.take().is_some() {
                    info!(query = %query, "Consul answers the service query again");
                }
                if let Some(data) = changed {
                    answered = true;
                    let update = ServiceUpdate {
                        query: query.clone(),
                        result: Ok(data),
                    };
                    if updates.send(update).await.is_err() {
                        return;
                    }
                }
            }
            Err(err) => {
                telemetry.backend_error(crate::backend::consul::BACKEND);
                let delay = backoff.next_delay();
                let denied = matches!(err, BackendError::Denied { .. });
                let message = err.to_string();
                let error = err;
                let repeated = last_error.as_ref() == Some(&message);
                let report = (denied || !answered) && !repeated;
                if !repeated {
                    warn!(
                        query = %query,
                        error = %message,
                        retry_in_ms = delay.as_millis() as u64,
                        "service query failed; {}",
                        if denied || !answered {
                            "renders that use it fail until it answers"
                        } else {
                            "keeping its last answer"
                        }
                    );
                }
                last_error = Some(message.clone());
                if report {
                    // The next answer is read at once and reported, even if it equals the last.
                    follower.forget();
                    answered = false;
                    let update = ServiceUpdate {
                        query: query.clone(),
                        result: Err(error),
                    };
                    if updates.send(update).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
