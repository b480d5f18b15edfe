//! Following a service's instances by health in watch mode: the catalog's instances of the
//! service (`/v1/catalog/service/<name>`), and the checks that are not passing, shared by every
//! service of a datacenter (`/v1/health/state/critical` and `/v1/health/state/warning`).
//!
//! Why not `/v1/health/service/<name>?passing`, which answers both at once (and which one-shot
//! runs still read, one request being quickest there): Consul rebuilds and encodes that whole
//! answer, instances and all their checks, on every check change of the service and for every
//! watcher. At 1 000 instances it is 2.4 MB and a check flip reaches a blocked client after
//! 77 ms. The catalog query wakes only when instances come, go or change, and each state query
//! only when a check enters or leaves its state, with an answer as small as the number of
//! failing checks: the same flip arrives by `state/critical` in 9.8 ms.
//!
//! An instance registered with a failing check must never show as passing, even for one render.
//! Consul writes an instance and its checks in one transaction, so a view of the checks read
//! after the catalog answer arrived knows them: a changed catalog answer asks the checks
//! follower for such a read (a refresh ticket) and is combined only with a view that served
//! it. And a check that leaves one state may have entered the other (critical → warning), so
//! the other state is re-read before the view is published.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    BACKEND, ConsulSource, MAX_BODY, MIN_QUERY_INTERVAL, blocking_query, consul_index, error_text,
    read_body,
};
use crate::backend::BackendError;
use crate::catalog::{
    Health, HealthCheck, HealthQuery, NodeDetail, ServiceData, ServiceInstance, ServiceQuery,
};
use crate::retry::Backoff;

/// One instance as `/v1/catalog/service/<name>` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CatalogEntry {
    node: String,
    #[serde(default)]
    address: String,
    #[serde(rename = "ServiceID")]
    service_id: String,
    service_name: String,
    #[serde(default)]
    service_tags: Option<Vec<String>>,
    #[serde(default)]
    service_address: String,
    #[serde(default)]
    service_meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    service_port: u16,
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    datacenter: String,
    #[serde(default)]
    tagged_addresses: Option<BTreeMap<String, String>>,
    #[serde(default)]
    node_meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    service_tagged_addresses: Option<BTreeMap<String, super::catalog::TaggedAddress>>,
}

/// One check as `/v1/health/state/<state>` lists it. A node's own checks have no service id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StateCheck {
    node: String,
    #[serde(rename = "CheckID")]
    check_id: String,
    #[serde(rename = "ServiceID", default)]
    service_id: String,
    status: String,
}

/// The two check states that keep an instance from passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailingState {
    Critical,
    Warning,
}

impl FailingState {
    fn name(self) -> &'static str {
        match self {
            FailingState::Critical => "critical",
            FailingState::Warning => "warning",
        }
    }

    fn other(self) -> FailingState {
        match self {
            FailingState::Critical => FailingState::Warning,
            FailingState::Warning => FailingState::Critical,
        }
    }
}

/// The checks of one state as last read, and the index to block on for the next change.
#[derive(Debug, Default, Clone)]
struct StateList {
    index: u64,
    checks: Vec<StateCheck>,
}

/// The failing checks of a datacenter: what an instance's health is computed from.
#[derive(Debug, Default)]
pub struct FailingChecks {
    /// The last refresh ticket this view answers: it was read after the ticket was asked for.
    served: u64,
    /// Node → its failing checks, the node's own and its services'.
    by_node: HashMap<String, Vec<StateCheck>>,
}

impl FailingChecks {
    fn new(served: u64, critical: &StateList, warning: &StateList) -> FailingChecks {
        let mut by_node: HashMap<String, Vec<StateCheck>> = HashMap::new();
        for check in critical.checks.iter().chain(&warning.checks) {
            by_node
                .entry(check.node.clone())
                .or_default()
                .push(check.clone());
        }
        FailingChecks { served, by_node }
    }

    /// The failing checks of service instance `service_id` on `node` (its own and its node's):
    /// what watch mode knows of an instance's checks.
    fn of(&self, node: &str, service_id: &str) -> Vec<HealthCheck> {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter(|check| check.service_id.is_empty() || check.service_id == service_id)
            .map(|check| HealthCheck {
                node: check.node.clone(),
                check_id: check.check_id.clone(),
                status: check.status.clone(),
                service_id: check.service_id.clone(),
                ..HealthCheck::default()
            })
            .collect()
    }

    /// The health of service instance `service_id` on `node`: passing unless one of its own
    /// checks or one of its node's fails.
    fn health(&self, node: &str, service_id: &str) -> Health {
        let Some(checks) = self.by_node.get(node) else {
            return Health::Passing;
        };
        Health::aggregate(
            checks
                .iter()
                .filter(|check| check.service_id.is_empty() || check.service_id == service_id)
                .map(|check| (check.check_id.as_str(), check.status.as_str())),
        )
    }
}

/// The instances of `query` in the catalog answer `entries`, with their health from `checks`,
/// filtered by the query's status and sorted.
pub fn combine(
    query: &HealthQuery,
    entries: &[CatalogEntry],
    checks: &FailingChecks,
) -> ServiceData {
    // One node detail per node, shared by its instances.
    let mut nodes: HashMap<&str, Arc<NodeDetail>> = HashMap::new();
    let all = entries
        .iter()
        .map(|entry| ServiceInstance {
            id: entry.service_id.clone(),
            name: entry.service_name.clone(),
            node: entry.node.clone(),
            address: if entry.service_address.is_empty() {
                entry.address.clone()
            } else {
                entry.service_address.clone()
            },
            port: entry.service_port,
            tags: entry.service_tags.clone().unwrap_or_default(),
            meta: entry.service_meta.clone().unwrap_or_default(),
            status: checks.health(&entry.node, &entry.service_id),
            node_detail: Arc::clone(nodes.entry(&entry.node).or_insert_with(|| {
                Arc::new(NodeDetail {
                    id: entry.id.clone(),
                    address: entry.address.clone(),
                    datacenter: entry.datacenter.clone(),
                    tagged_addresses: entry.tagged_addresses.clone().unwrap_or_default(),
                    meta: entry.node_meta.clone().unwrap_or_default(),
                })
            })),
            tagged_addresses: entry
                .service_tagged_addresses
                .as_ref()
                .map(|tagged| {
                    tagged
                        .iter()
                        .map(|(name, t)| (name.clone(), (t.address.clone(), t.port)))
                        .collect()
                })
                .unwrap_or_default(),
            checks: checks.of(&entry.node, &entry.service_id),
        })
        .collect();
    ServiceData::instances(query, all)
}

impl ConsulSource {
    /// The catalog's instances of `query`'s service (with its tag), blocking until the index
    /// passes `blocking`'s when given. A 404 is no instances.
    async fn read_catalog_service(
        &self,
        query: &HealthQuery,
        blocking: Option<(u64, Duration)>,
    ) -> Result<(u64, Vec<CatalogEntry>), BackendError> {
        let source = self.in_datacenter(query.datacenter.as_deref());
        let mut params = Vec::new();
        if let Some(tag) = &query.tag {
            params.push(("tag", tag.clone()));
        }
        let timeout = blocking_query(&mut params, blocking);
        let what = format!("the catalog's instances of {:?}", query.name);
        let response = source
            .call(
                reqwest::Method::GET,
                "catalog/service",
                &query.name,
                &params,
                None,
                timeout,
            )
            .await?;
        let index = consul_index(&response);
        let entries: Vec<CatalogEntry> = match response.status() {
            StatusCode::OK => {
                let body = read_body(response, MAX_BODY, &what).await?;
                serde_json::from_slice(&body).map_err(|e| BackendError::Other {
                    backend: BACKEND,
                    message: format!("unreadable answer for {what}: {e}"),
                })?
            }
            StatusCode::NOT_FOUND => Vec::new(),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                let reason = error_text(response).await;
                return Err(source.refused(&ServiceQuery::Health(query.clone()), reason.trim()));
            }
            other => {
                return Err(BackendError::Other {
                    backend: BACKEND,
                    message: format!(
                        "reading {what} answered {other}: {}",
                        error_text(response).await
                    ),
                });
            }
        };
        if entries.is_empty() {
            source
                .check_empty_answer(&ServiceQuery::Health(query.clone()))
                .await?;
        }
        Ok((index, entries))
    }

    /// The checks of a datacenter in `state`, blocking until the index passes `blocking`'s
    /// when given, sorted.
    async fn read_state(
        &self,
        datacenter: Option<&str>,
        state: FailingState,
        blocking: Option<(u64, Duration)>,
    ) -> Result<StateList, BackendError> {
        let source = self.in_datacenter(datacenter);
        let mut params = Vec::new();
        let timeout = blocking_query(&mut params, blocking);
        let response = source
            .call(
                reqwest::Method::GET,
                "health/state",
                state.name(),
                &params,
                None,
                timeout,
            )
            .await?;
        let what = format!("the checks in state {:?}", state.name());
        let status = response.status();
        if status != StatusCode::OK {
            return Err(BackendError::Other {
                backend: BACKEND,
                message: format!(
                    "reading {what} answered {status}: {}",
                    error_text(response).await
                ),
            });
        }
        let index = consul_index(&response);
        let body = read_body(response, MAX_BODY, &what).await?;
        let mut checks: Vec<StateCheck> =
            serde_json::from_slice(&body).map_err(|e| BackendError::Other {
                backend: BACKEND,
                message: format!("unreadable answer for {what}: {e}"),
            })?;
        checks.sort();
        Ok(StateList { index, checks })
    }
}

type StateRead = Pin<Box<dyn Future<Output = Result<StateList, BackendError>> + Send>>;

/// The checks follower of one datacenter, as the health queries of that datacenter hold it.
#[derive(Clone)]
pub struct FailingChecksHandle {
    view: watch::Receiver<Arc<FailingChecks>>,
    /// The last refresh ticket handed out.
    asked: Arc<AtomicU64>,
    /// Wakes the follower to serve the tickets asked for.
    wake: Arc<Notify>,
}

impl FailingChecksHandle {
    /// Starts following the failing checks of `datacenter` until `stop`.
    pub fn spawn(
        source: &ConsulSource,
        datacenter: Option<String>,
        stop: CancellationToken,
    ) -> FailingChecksHandle {
        let (view_tx, view) = watch::channel(Arc::new(FailingChecks::default()));
        let asked = Arc::new(AtomicU64::new(0));
        let wake = Arc::new(Notify::new());
        tokio::spawn(follow_failing_checks(
            source.clone(),
            datacenter,
            Refreshes {
                asked: Arc::clone(&asked),
                wake: Arc::clone(&wake),
            },
            view_tx,
            stop,
        ));
        FailingChecksHandle { view, asked, wake }
    }

    /// Asks for a view read from now on; returns the ticket that view will serve.
    fn ask_refresh(&self) -> u64 {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        ticket
    }
}

/// The refresh tickets as the follower sees them: every ticket up to `asked` when its reads
/// start is served by them.
struct Refreshes {
    asked: Arc<AtomicU64>,
    wake: Arc<Notify>,
}

impl Refreshes {
    /// The ticket to serve next: the one whose reads failed, after a backoff, or the last one
    /// asked for once woken.
    async fn next(&self, unserved: &mut bool, backoff: &mut Backoff) -> u64 {
        if *unserved {
            tokio::time::sleep(backoff.next_delay()).await;
            *unserved = false;
        } else {
            self.wake.notified().await;
        }
        self.asked.load(Ordering::SeqCst)
    }
}

/// Follows the critical and the warning checks of a datacenter with one blocking query each,
/// publishing a view whenever either changes or a refresh is asked for.
async fn follow_failing_checks(
    source: ConsulSource,
    datacenter: Option<String>,
    refreshes: Refreshes,
    view: watch::Sender<Arc<FailingChecks>>,
    stop: CancellationToken,
) {
    let wait = source.wait;
    let read = |state: FailingState, index: u64, delay: Duration| -> StateRead {
        let source = source.clone();
        let datacenter = datacenter.clone();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            source
                .read_state(datacenter.as_deref(), state, Some((index, wait)))
                .await
        })
    };
    let mut checks = ChecksState {
        source: source.clone(),
        datacenter: datacenter.clone(),
        critical: StateList::default(),
        warning: StateList::default(),
        served: 0,
        failing: None,
        view,
    };
    let mut critical_read = read(FailingState::Critical, 0, Duration::ZERO);
    let mut warning_read = read(FailingState::Warning, 0, Duration::ZERO);
    let mut backoff = Backoff::new(Backoff::BACKEND);
    // Whether the last refresh failed: served again after a backoff, since a health query
    // waits for it.
    let mut unserved = false;
    loop {
        let (state, result) = tokio::select! {
            _ = stop.cancelled() => return,
            result = &mut critical_read => (FailingState::Critical, result),
            result = &mut warning_read => (FailingState::Warning, result),
            ticket = refreshes.next(&mut unserved, &mut backoff) => {
                if checks.refresh(ticket).await {
                    backoff.reset();
                    // Block from the new indexes: an answer still on its way from the old
                    // ones could be older than what was just read.
                    critical_read = read(FailingState::Critical, checks.critical.index, Duration::ZERO);
                    warning_read = read(FailingState::Warning, checks.warning.index, Duration::ZERO);
                } else {
                    unserved = true;
                }
                continue;
            }
        };
        let next = match result {
            Ok(list) => {
                backoff.reset();
                // An answer that brings nothing new (a wait that ran out, or Consul answering
                // early) is not asked again at once, so a misbehaving agent cannot make this
                // spin; a change is followed at once.
                let mut delay = Duration::ZERO;
                match checks.apply(state, list).await {
                    Applied::Published { other_read: true } => {
                        let other = state.other();
                        let again = read(other, checks.list(other).index, Duration::ZERO);
                        match other {
                            FailingState::Critical => critical_read = again,
                            FailingState::Warning => warning_read = again,
                        }
                    }
                    Applied::Published { other_read: false } => {}
                    Applied::Unchanged => delay = MIN_QUERY_INTERVAL,
                    // Nothing published: serve the current ticket again, reading both.
                    Applied::Held => unserved = true,
                }
                read(state, checks.list(state).index, delay)
            }
            Err(err) => {
                checks.failed(&err);
                read(state, checks.list(state).index, backoff.next_delay())
            }
        };
        match state {
            FailingState::Critical => critical_read = next,
            FailingState::Warning => warning_read = next,
        }
    }
}

/// What became of a blocking query's answer.
enum Applied {
    Unchanged,
    /// A new view is out; `other_read` when the other state was read again for it.
    Published {
        other_read: bool,
    },
    /// Changed, but the other state could not be read again: nothing published.
    Held,
}

/// What the checks follower knows, and where it publishes.
struct ChecksState {
    source: ConsulSource,
    datacenter: Option<String>,
    critical: StateList,
    warning: StateList,
    served: u64,
    /// The error last logged, so an outage is logged once, not per retry.
    failing: Option<String>,
    view: watch::Sender<Arc<FailingChecks>>,
}

impl ChecksState {
    fn list(&mut self, state: FailingState) -> &mut StateList {
        match state {
            FailingState::Critical => &mut self.critical,
            FailingState::Warning => &mut self.warning,
        }
    }

    fn publish(&self) {
        self.view.send_replace(Arc::new(FailingChecks::new(
            self.served,
            &self.critical,
            &self.warning,
        )));
    }

    fn failed(&mut self, err: &BackendError) {
        let message = err.to_string();
        if self.failing.as_ref() != Some(&message) {
            warn!(datacenter = ?self.datacenter, error = %message, "reading the failing checks failed; retrying");
            self.failing = Some(message);
        }
    }

    fn answered(&mut self) {
        if self.failing.take().is_some() {
            info!(datacenter = ?self.datacenter, "Consul answers the health state queries again");
        }
    }

    /// Reads both states now and publishes them as serving `ticket`; false when a read failed.
    async fn refresh(&mut self, ticket: u64) -> bool {
        let dc = self.datacenter.as_deref();
        let both = tokio::try_join!(
            self.source.read_state(dc, FailingState::Critical, None),
            self.source.read_state(dc, FailingState::Warning, None),
        );
        match both {
            Ok((critical, warning)) => {
                self.answered();
                self.critical = critical;
                self.warning = warning;
                self.served = ticket;
                self.publish();
                true
            }
            Err(err) => {
                self.failed(&err);
                false
            }
        }
    }

    /// Takes a blocking query's answer for `state`, publishing a view when it changed.
    async fn apply(&mut self, state: FailingState, list: StateList) -> Applied {
        self.answered();
        let mine = self.list(state);
        // Consul's index only grows; a smaller one is a new agent or a restored snapshot.
        mine.index = if list.index < mine.index {
            0
        } else {
            list.index
        };
        if list.checks == mine.checks {
            return Applied::Unchanged;
        }
        let now: HashSet<&StateCheck> = list.checks.iter().collect();
        let left = mine.checks.iter().any(|check| !now.contains(check));
        mine.checks = list.checks;
        if left {
            // A check that left this state may have entered the other one: read that before
            // publishing, or a critical → warning move would show the instance passing.
            let other = state.other();
            match self
                .source
                .read_state(self.datacenter.as_deref(), other, None)
                .await
            {
                Ok(list) => *self.list(other) = list,
                Err(err) => {
                    self.failed(&err);
                    return Applied::Held;
                }
            }
        }
        self.publish();
        Applied::Published { other_read: left }
    }
}

type CatalogRead =
    Pin<Box<dyn Future<Output = Result<(u64, Vec<CatalogEntry>), BackendError>> + Send>>;

/// Follows one health query: its service's catalog answer, combined with the failing checks of
/// its datacenter, reported whenever the combination changes.
pub struct HealthFollower {
    source: ConsulSource,
    query: HealthQuery,
    checks: FailingChecksHandle,
    /// The catalog index to block on.
    index: u64,
    entries: Option<Vec<CatalogEntry>>,
    /// The refresh ticket a view must serve before it may be combined with `entries`.
    needs: u64,
    /// The catalog read in flight; kept across calls so a check change does not restart it.
    read: Option<CatalogRead>,
    /// How long the next catalog read waits before it is sent.
    delay: Duration,
    last: Option<ServiceData>,
}

impl HealthFollower {
    pub fn new(source: &ConsulSource, query: HealthQuery, checks: FailingChecksHandle) -> Self {
        HealthFollower {
            source: source.clone(),
            query,
            checks,
            index: 0,
            entries: None,
            needs: 0,
            read: None,
            delay: Duration::ZERO,
            last: None,
        }
    }

    /// Starts over: the next answer is read at once and reported even if it equals the last
    /// (after an error was reported in its place).
    pub fn forget(&mut self) {
        self.index = 0;
        self.entries = None;
        self.read = None;
        self.delay = Duration::ZERO;
        self.last = None;
    }

    /// Waits until the query's answer changes and returns it.
    pub async fn next_answer(&mut self) -> Result<Option<ServiceData>, BackendError> {
        loop {
            if let Some(entries) = &self.entries {
                let view = Arc::clone(&self.checks.view.borrow_and_update());
                if view.served >= self.needs {
                    let data = combine(&self.query, entries, &view);
                    if self.last.as_ref() != Some(&data) {
                        self.last = Some(data.clone());
                        return Ok(Some(data));
                    }
                }
            }
            let read = self.read.get_or_insert_with(|| {
                let source = self.source.clone();
                let query = self.query.clone();
                let (index, delay) = (self.index, self.delay);
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    source
                        .read_catalog_service(&query, Some((index, source.wait)))
                        .await
                })
            });
            tokio::select! {
                result = read => {
                    self.read = None;
                    let (index, entries) = result?;
                    // Consul's index only grows; a smaller one is a new agent or a restored
                    // snapshot.
                    self.index = if index < self.index { 0 } else { index };
                    // Nothing new is not asked again at once (see the checks follower).
                    self.delay = MIN_QUERY_INTERVAL;
                    if self.entries.as_ref() != Some(&entries) {
                        self.entries = Some(entries);
                        self.needs = self.checks.ask_refresh();
                        self.delay = Duration::ZERO;
                    }
                }
                changed = self.checks.view.changed() => {
                    if changed.is_err() {
                        return Err(BackendError::Other {
                            backend: BACKEND,
                            message: "the failing checks are no longer followed".to_owned(),
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StatusFilter;

    const CATALOG: &str = r#"[
      {"Node": "n2", "Address": "10.0.0.2", "ServiceID": "web-b", "ServiceName": "web",
       "ServiceTags": ["v2"], "ServiceAddress": "", "ServiceMeta": {"zone": "b"}, "ServicePort": 8080},
      {"Node": "n1", "Address": "10.0.0.1", "ServiceID": "web-a", "ServiceName": "web",
       "ServiceTags": null, "ServiceAddress": "192.168.1.1", "ServiceMeta": null, "ServicePort": 80},
      {"Node": "n1", "Address": "10.0.0.1", "ServiceID": "web-c", "ServiceName": "web",
       "ServiceAddress": "", "ServicePort": 81},
      {"Node": "n3", "Address": "10.0.0.3", "ServiceID": "web-d", "ServiceName": "web", "ServicePort": 82}
    ]"#;

    fn list(json: &str) -> StateList {
        let mut checks: Vec<StateCheck> = serde_json::from_str(json).unwrap();
        checks.sort();
        StateList { index: 7, checks }
    }

    #[test]
    fn an_instance_takes_its_own_and_its_nodes_failing_checks_and_no_others() {
        let entries: Vec<CatalogEntry> = serde_json::from_str(CATALOG).unwrap();
        // web-b warns; web-c is in maintenance; node n3 fails, so web-d with it; a check of
        // another service on n1 touches neither web-a nor web-c.
        let critical = list(
            r#"[{"Node": "n1", "CheckID": "_service_maintenance:web-c", "ServiceID": "web-c", "Status": "critical"},
                {"Node": "n1", "CheckID": "service:db", "ServiceID": "db", "Status": "critical"},
                {"Node": "n3", "CheckID": "serfHealth", "ServiceID": "", "Status": "critical"}]"#,
        );
        let warning = list(
            r#"[{"Node": "n2", "CheckID": "service:web-b", "ServiceID": "web-b", "Status": "warning"}]"#,
        );
        let checks = FailingChecks::new(1, &critical, &warning);
        let any = HealthQuery::new("web")
            .unwrap()
            .with_status(StatusFilter::Any);
        let ServiceData::Instances(all) = combine(&any, &entries, &checks) else {
            panic!()
        };
        let summary: Vec<(&str, &str, &str, u16, Health)> = all
            .iter()
            .map(|i| {
                (
                    i.node.as_str(),
                    i.id.as_str(),
                    i.address.as_str(),
                    i.port,
                    i.status,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("n1", "web-a", "192.168.1.1", 80, Health::Passing),
                ("n1", "web-c", "10.0.0.1", 81, Health::Maintenance),
                ("n2", "web-b", "10.0.0.2", 8080, Health::Warning),
                ("n3", "web-d", "10.0.0.3", 82, Health::Critical),
            ]
        );
        assert_eq!(all[2].tags, ["v2"]);
        assert_eq!(all[2].meta["zone"], "b");

        let passing = HealthQuery::new("web").unwrap();
        let ServiceData::Instances(healthy) = combine(&passing, &entries, &checks) else {
            panic!()
        };
        assert_eq!(healthy.len(), 1);
        assert_eq!(healthy[0].id, "web-a");
    }

    /// The same instances through the health endpoint (what one-shot runs read) and through the
    /// catalog and the failing checks (what watch mode reads) come out the same.
    #[test]
    fn watch_mode_and_one_shot_agree() {
        let health = r#"[
          {"Node": {"Node": "n1", "Address": "10.0.0.1"},
           "Service": {"ID": "web-a", "Service": "web", "Tags": ["x"], "Address": "", "Meta": {"k": "v"}, "Port": 80},
           "Checks": [{"CheckID": "serfHealth", "Status": "passing"}, {"CheckID": "service:web-a", "Status": "warning"}]},
          {"Node": {"Node": "n2", "Address": "10.0.0.2"},
           "Service": {"ID": "web-b", "Service": "web", "Tags": null, "Address": "192.168.0.2", "Meta": null, "Port": 81},
           "Checks": [{"CheckID": "serfHealth", "Status": "passing"}]}
        ]"#;
        let catalog = r#"[
          {"Node": "n1", "Address": "10.0.0.1", "ServiceID": "web-a", "ServiceName": "web",
           "ServiceTags": ["x"], "ServiceAddress": "", "ServiceMeta": {"k": "v"}, "ServicePort": 80},
          {"Node": "n2", "Address": "10.0.0.2", "ServiceID": "web-b", "ServiceName": "web",
           "ServiceTags": null, "ServiceAddress": "192.168.0.2", "ServiceMeta": null, "ServicePort": 81}
        ]"#;
        let warning = list(
            r#"[{"Node": "n1", "CheckID": "service:web-a", "ServiceID": "web-a", "Status": "warning"}]"#,
        );
        let checks = FailingChecks::new(1, &StateList::default(), &warning);
        let entries: Vec<CatalogEntry> = serde_json::from_str(catalog).unwrap();
        // Watch mode knows only the failing checks (consul-template's `.Checks` lists them
        // all in a one-shot run): everything else agrees.
        let without_checks = |data: ServiceData| match data {
            ServiceData::Instances(mut instances) => {
                for instance in &mut instances {
                    instance.checks.clear();
                }
                ServiceData::Instances(instances)
            }
            other => other,
        };
        for status in [StatusFilter::Any, StatusFilter::Passing] {
            let query = HealthQuery::new("web").unwrap().with_status(status);
            assert_eq!(
                without_checks(combine(&query, &entries, &checks)),
                without_checks(
                    super::super::parse_service_answer(
                        &ServiceQuery::Health(query),
                        health.as_bytes()
                    )
                    .unwrap()
                )
            );
        }
    }
}
