//! The Consul KV backend: a small client over reqwest (rustls) for what terad reads,
//! `GET /v1/kv/<prefix>?recurse` (and `PUT /v1/txn` to list several prefixes at once).
//!
//! Watching runs one blocking query per merged prefix (`?index=N&wait=5m`), so a write outside
//! the resources' keys wakes nothing, unlike confd's single query over the whole prefix. A 404
//! is an empty prefix with its index kept, so a backend pool with no servers yet is watched like
//! any other; an index that goes backwards (a restarted agent) resets to 0; a return with the
//! same index or the same content renders nothing.
//!
//! Several `--node`s are tried in order from the one that answered last. A node that fails is
//! logged once (and its recovery once), not per retry. A blocking query cannot tell a quiet
//! prefix from a hung agent (a SIGSTOPped agent keeps its sockets open, and the request timeout
//! is the blocking wait plus [`REQUEST_SLACK`]), so while the queries wait the node in use is
//! probed every [`PROBE_INTERVAL`]; one that does not answer within [`PROBE_TIMEOUT`] is left
//! for the next node. Keys are Consul's without the leading `/`
//! (`proxy/frontend/web1` is `/proxy/frontend/web1` in templates); folder entries (keys ending
//! in `/`) carry no value and are skipped.
//!
//! With ACLs, Consul silently filters a recursive read down to what the token may see: without a
//! token, a protected prefix looks empty. A listing that finds a prefix empty therefore also
//! reads the prefix key itself, which Consul answers with 403 instead of filtering, so a missing
//! or wrong token is an error and never an empty render ([`listing`]: several prefixes are
//! listed in one transaction, and a watch starts blocking where the listing left off).
//!
//! The token goes only where it was meant to: redirects are not followed (a 3xx is an error
//! naming the node), TLS options with a plain `http://` node are a configuration error (as for
//! etcd), and so is a token or password sent over plain HTTP to a host that is not loopback.
//! An answer is read into memory only up to [`MAX_BODY`] bytes.
//!
//! [`catalog`] reads the service catalog (instances by health, services, nodes) for templates;
//! [`health`] follows instances by health in watch mode, from the catalog and the failing checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::mpsc;

mod catalog;
mod health;
mod listing;

pub use catalog::{QueryState, parse as parse_service_answer};
pub use health::{FailingChecksHandle, HealthFollower};

use super::{
    BackendError, KeySource, Listing, PrefixPosition, SetupError, Update, WatchCursor, fingerprint,
};
use crate::config::{Consistency, Secret, Settings};
use crate::retry::Backoff;
use crate::store::key_in_scope;

pub(crate) const BACKEND: &str = "consul";
/// A blocking query that returns with nothing new sooner than this is not repeated at once.
const MIN_QUERY_INTERVAL: Duration = Duration::from_millis(100);
/// Extra time on top of the blocking wait before a request counts as hung.
const REQUEST_SLACK: Duration = Duration::from_secs(10);
/// Timeout for a listing (non-blocking) request.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// While blocking queries wait, the node in use is asked something it answers from its own
/// memory this often (see [`ConsulSource::alive`]); a node that does not answer within
/// [`PROBE_TIMEOUT`] hangs (a stopped agent keeps its sockets open), and the queries move to the
/// next node instead of waiting out the blocking wait.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(1500);
/// How often, while no node answers, the nodes are asked whether they have a leader.
const SERVING_PROBE: Duration = Duration::from_secs(1);
/// How long the probe of the node in use may take before the node counts as hung. An agent
/// answers it from memory, so this is generous even on a loaded machine.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read for one prefix. Consul caps a value at 512 KiB, and a listing is
/// JSON with the values in base64, so this is over 40 000 keys of 1 KiB; a bigger prefix needs
/// splitting into several resources' keys. Without a bound a server (or anything that answers
/// in its place) could stream until terad runs out of memory.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// How much of an error answer is kept for the message.
const MAX_ERROR_BODY: usize = 4 * 1024;

#[derive(Clone)]
pub struct ConsulSource {
    http: reqwest::Client,
    nodes: Arc<Vec<reqwest::Url>>,
    /// The node that answered last; requests start there and fail over in order.
    current: Arc<AtomicUsize>,
    /// Which nodes are failing, for logging each failure and recovery once.
    health: Arc<std::sync::Mutex<NodeHealth>>,
    token: Option<Secret>,
    basic_auth: Option<(String, Secret)>,
    datacenter: Option<String>,
    consistency: Consistency,
    wait: Duration,
    /// Where the last listing left each prefix: the watch that follows it blocks from there.
    listed: Arc<listing::Listed>,
}

impl std::fmt::Debug for ConsulSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulSource")
            .field("nodes", &self.nodes_text())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KvPair {
    key: String,
    value: Option<String>,
}

/// Which nodes are failing since when, the node last logged as in use, and when a node last
/// answered (a blocking query's return counts).
#[derive(Debug)]
struct NodeHealth {
    failing: Vec<Option<Instant>>,
    announced: Option<usize>,
    last_answer: Option<Instant>,
}

impl ConsulSource {
    pub fn new(settings: &Settings) -> Result<ConsulSource, SetupError> {
        let nodes = settings
            .nodes
            .iter()
            .map(|node| {
                reqwest::Url::parse(node).map_err(|source| SetupError::InvalidNode {
                    node: crate::redact::url(node).into_owned(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(SetupError::NoNode("Consul"));
        }
        refuse_clear_text(&nodes, settings)?;
        // Plain-HTTP agents (the usual local agent) need no trust store: loading the system's
        // roots costs a few hundred KiB of memory for nothing.
        let tls = if nodes.iter().any(|node| node.scheme() == "https") {
            super::tls::client_config(&settings.tls)?
        } else {
            super::tls::plain_config()
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            // Consul's HTTP API is HTTP/1.1; one idle connection per prefix loop is all terad
            // reuses, and each idle connection keeps its read buffer.
            .http1_only()
            .pool_max_idle_per_host(4)
            // A redirect would carry X-Consul-Token to wherever it points; `call` refuses it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| SetupError::Client {
                backend: "Consul",
                source,
            })?;
        let basic_auth = match (&settings.auth.username, &settings.auth.password) {
            (Some(user), password) if settings.auth.basic_auth => Some((
                user.clone(),
                password.clone().unwrap_or_else(|| Secret::new("")),
            )),
            _ => None,
        };
        Ok(ConsulSource {
            http,
            health: Arc::new(std::sync::Mutex::new(NodeHealth {
                failing: vec![None; nodes.len()],
                announced: None,
                last_answer: None,
            })),
            nodes: Arc::new(nodes),
            current: Arc::new(AtomicUsize::new(0)),
            token: settings.auth.token.clone(),
            basic_auth,
            datacenter: settings.consul.datacenter.clone(),
            consistency: settings.consul.consistency,
            wait: settings.consul.wait,
            listed: Arc::default(),
        })
    }

    /// The nodes for messages, credentials in a URL masked.
    fn nodes_text(&self) -> String {
        self.nodes
            .iter()
            .map(node_text)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `METHOD /v1/<endpoint>/<key>` on one node, with the query parameters this source always
    /// sends (datacenter; the consistency mode on reads).
    fn request(
        &self,
        method: &reqwest::Method,
        node: &reqwest::Url,
        endpoint: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        let mut url = node.clone();
        {
            let mut segments = url.path_segments_mut().expect("http(s) URLs have a path");
            segments
                .pop_if_empty()
                .push("v1")
                .extend(endpoint.split('/'));
            // Each key segment is percent-encoded on its own: keys may hold spaces or unicode.
            if !key.is_empty() {
                segments.extend(key.split('/'));
            } else if endpoint == "kv" {
                // The root of the KV store is `/v1/kv/`: Consul answers `/v1/kv` with a
                // redirect, which is never followed.
                segments.push("");
            }
        }
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
            if let Some(dc) = &self.datacenter {
                pairs.append_pair("dc", dc);
            }
            // A transaction of reads takes the consistency mode as a read does.
            match self.consistency {
                _ if *method != reqwest::Method::GET && endpoint != "txn" => {}
                Consistency::Default => {}
                Consistency::Stale => {
                    pairs.append_key_only("stale");
                }
                Consistency::Consistent => {
                    pairs.append_key_only("consistent");
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut request = self.http.request(method.clone(), url);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token.expose());
        }
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password.expose()));
        }
        request
    }

    /// Sends a KV read to the current node, failing over to the others in turn.
    async fn send(
        &self,
        key: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<reqwest::Response, BackendError> {
        self.call(reqwest::Method::GET, "kv", key, query, None, timeout)
            .await
    }

    /// Sends `METHOD /v1/<endpoint>/<key>` with an optional body to the current node, failing
    /// over to the others in turn. For the fleet features (sessions, writes) as well as reads.
    ///
    /// A node that does not answer is left for the next one at once. A node that answers with a
    /// server error ends the attempt, and the next attempt (after the caller's backoff) starts at
    /// the next node: an agent that fails to get an answer from the servers is most often in an
    /// election or a lost quorum, which every other node would answer the same, and asking every
    /// node for every retry of every instance multiplied a fleet's load on the servers just as
    /// they recovered (200 instances: 2 673 reads in the busiest second of a leader election).
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        endpoint: &str,
        key: &str,
        query: &[(&str, String)],
        body: Option<String>,
        timeout: Duration,
    ) -> Result<reqwest::Response, BackendError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last_error = String::new();
        for attempt in 0..self.nodes.len() {
            let index = (start + attempt) % self.nodes.len();
            let node = &self.nodes[index];
            let mut request = self.request(&method, node, endpoint, key, query);
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            match request.timeout(timeout).send().await {
                Ok(response) if response.status().is_server_error() => {
                    let status = response.status();
                    last_error = format!(
                        "{} answered {status}: {}",
                        node_text(node),
                        error_text(response).await
                    );
                    self.node_failed(index, &last_error);
                    break;
                }
                Ok(response) if response.status().is_redirection() => {
                    let location = response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|value| value.to_str().ok())
                        .map(|location| crate::redact::urls_in(location).into_owned())
                        .unwrap_or_default();
                    last_error = format!(
                        "{} answered {} to {location:?}; terad does not follow redirects, which would take the ACL token along",
                        node_text(node),
                        response.status(),
                    );
                }
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    self.node_answered(index);
                    return Ok(response);
                }
                Err(error) => {
                    last_error = describe(&error);
                    self.node_failed(index, &last_error);
                }
            }
        }
        Err(BackendError::Unreachable {
            backend: BACKEND,
            endpoints: self.nodes_text(),
            message: last_error,
        })
    }

    /// Node `index` failed with `fault`: logged when it starts failing, not per retry; the next
    /// request starts at the next node.
    fn node_failed(&self, index: usize, fault: &str) {
        let _ = self.current.compare_exchange(
            index,
            (index + 1) % self.nodes.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let mut health = self.health.lock().expect("node health");
        if health.failing[index].is_some() {
            drop(health);
            tracing::debug!(node = %node_text(&self.nodes[index]), error = %fault, "consul node still failing");
            return;
        }
        health.failing[index] = Some(Instant::now());
        drop(health);
        tracing::warn!(node = %node_text(&self.nodes[index]), error = %fault, "consul node failed; trying the next node");
    }

    /// Node `index` answered: its failure (if any) is over, and it is the node in use.
    fn node_answered(&self, index: usize) {
        let mut health = self.health.lock().expect("node health");
        health.last_answer = Some(Instant::now());
        let recovered = health.failing[index].take();
        let announce = self.nodes.len() > 1 && health.announced != Some(index);
        health.announced = Some(index);
        drop(health);
        let node = node_text(&self.nodes[index]);
        if let Some(since) = recovered {
            tracing::info!(node = %node, "consul node answers again after {:.1}s", since.elapsed().as_secs_f64());
        }
        if announce {
            tracing::info!(node = %node, "consul node in use");
        }
    }

    /// `GET /v1/status/leader` on node `index` within [`PROBE_TIMEOUT`]: the leader it knows,
    /// if any; the fault when it does not answer or answers with an error.
    async fn probe(&self, index: usize) -> Result<Option<String>, NodeFault> {
        let node = &self.nodes[index];
        let request = self.request(&reqwest::Method::GET, node, "status", "leader", &[]);
        match request.timeout(PROBE_TIMEOUT).send().await {
            Ok(response) if response.status().is_success() => {
                let body = response.text().await.unwrap_or_default();
                let leader = body.trim().trim_matches('"');
                Ok((!leader.is_empty()).then(|| leader.to_owned()))
            }
            Ok(response) => Err(NodeFault::Status(response.status())),
            Err(error) if error.is_timeout() => Err(NodeFault::Hangs {
                path: "/v1/status/leader",
            }),
            Err(error) => Err(NodeFault::Unreachable(describe(&error))),
        }
    }

    /// Whether node `index` answers at all within [`PROBE_TIMEOUT`]: `GET /v1/agent/checks`
    /// filtered down to nothing (`{}`, whatever the token may read), which an agent answers
    /// from its own memory. `/v1/status/leader`, asked before, is forwarded by a client agent to
    /// a server: 200 idle sidecars on one agent cost the servers 133 RPCs a second for it.
    async fn alive(&self, index: usize) -> Result<(), NodeFault> {
        let filter = [("filter", "CheckID == \"\"".to_owned())];
        let request = self.request(
            &reqwest::Method::GET,
            &self.nodes[index],
            "agent",
            "checks",
            &filter,
        );
        match request.timeout(PROBE_TIMEOUT).send().await {
            // Any answer, even a refusal, comes from a live agent.
            Ok(_) => Ok(()),
            Err(error) if error.is_timeout() => Err(NodeFault::Hangs {
                path: "/v1/agent/checks",
            }),
            Err(error) => Err(NodeFault::Unreachable(describe(&error))),
        }
    }

    /// Probes the node in use every [`PROBE_INTERVAL`] while the blocking queries wait; returns
    /// the fault of the first node that does not answer (now marked failing, so the next
    /// requests go elsewhere). `hung` counts the nodes found hung in a row.
    async fn watchdog(&self, hung: &mut usize) -> String {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            // An answer within the interval (a blocking query returned, a catalog read) already
            // proved the node alive: no probe, so a busy watch adds no requests of its own.
            let answered = self.health.lock().expect("node health").last_answer;
            if answered.is_some_and(|at| at.elapsed() < PROBE_INTERVAL) {
                continue;
            }
            let index = self.current.load(Ordering::Relaxed);
            match self.alive(index).await {
                Ok(()) => *hung = 0,
                Err(fault) => {
                    *hung += 1;
                    let fault = fault.to_string();
                    self.node_failed(index, &fault);
                    return format!("{}: {fault}", node_text(&self.nodes[index]));
                }
            }
        }
    }

    /// Resolves once the nodes report a new leader (see [`KeySource::serving`]): a leader
    /// after none, or another one than at the first look (which may still name the one that
    /// died). About once a second, jittered, the nodes are asked in turn until one answers.
    pub async fn serving(&self) {
        let mut first: Option<Option<String>> = None;
        let mut probes = Backoff::new((SERVING_PROBE, SERVING_PROBE));
        loop {
            // The first node that answers speaks for the cluster: every agent asks the servers,
            // and asking the others too would only add to a fleet's load during an election.
            let mut leader = None;
            for index in 0..self.nodes.len() {
                if let Ok(answer) = self.probe(index).await {
                    leader = answer;
                    break;
                }
            }
            match &first {
                None => first = Some(leader),
                Some(before) if leader.is_some() && leader != *before => return,
                Some(_) => {}
            }
            // The backoff's jitter on a step that does not grow: a fleet probes spread out.
            tokio::time::sleep(probes.next_delay()).await;
        }
    }

    /// Reads a prefix, blocking until its index passes `index` when `wait` is given. Returns
    /// the new index and the entries (absolute keys, on `/` boundaries).
    async fn read_prefix(
        &self,
        prefix: &str,
        index: u64,
        wait: Option<Duration>,
    ) -> Result<(u64, Vec<(String, String)>), BackendError> {
        let key = consul_key(prefix);
        let mut query = vec![("recurse", "true".to_owned())];
        let timeout = blocking_query(&mut query, wait.map(|wait| (index, wait)));
        let response = self.send(key, &query, timeout).await?;
        let status = response.status();
        let new_index = consul_index(&response);
        match status {
            StatusCode::OK => {
                let body = read_body(response, MAX_BODY, key).await?;
                let pairs: Vec<KvPair> =
                    serde_json::from_slice(&body).map_err(|e| BackendError::Other {
                        backend: BACKEND,
                        message: format!("unreadable answer for {key:?}: {e}"),
                    })?;
                drop(body);
                Ok((new_index, entries(prefix, pairs)))
            }
            // An empty prefix: nothing yet, but the index is real and can be blocked on.
            StatusCode::NOT_FOUND => Ok((new_index, Vec::new())),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                Err(self.denied(key, response).await)
            }
            other => Err(BackendError::Other {
                backend: BACKEND,
                message: format!(
                    "reading {key:?} answered {other}: {}",
                    error_text(response).await
                ),
            }),
        }
    }

    pub(crate) async fn denied(&self, key: &str, response: reqwest::Response) -> BackendError {
        let reason = error_text(response).await;
        let hint = if self.token.is_some() {
            "check that the ACL token may read it"
        } else {
            "give an ACL token with --auth-token, --auth-token-file or CONSUL_HTTP_TOKEN"
        };
        BackendError::Denied {
            backend: BACKEND,
            message: format!("reading {key:?}: {} ({hint})", reason.trim()),
        }
    }

    /// Follows one prefix with blocking queries, sending its full contents whenever they change.
    ///
    /// `positions` is the watch cursor's: what this prefix last delivered survives a restart of
    /// the watch. The first query after a (re)start does not block, so the node proves it
    /// serves, and a restart that finds the same entries sends only an empty update (the runner
    /// learns the backend answers) instead of the whole prefix again.
    async fn follow_prefix(
        self,
        prefix: String,
        positions: Arc<Mutex<HashMap<String, PrefixPosition>>>,
        updates: mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        let resumed = positions
            .lock()
            .expect("watch cursor lock")
            .get(&prefix)
            .map(|delivered| delivered.fingerprint);
        let listed = self.listed.take_fresh(&prefix);
        // After a listing the runner just applied, the first query blocks from where the
        // listing left the prefix: the listing proved the node serves. Otherwise index 0 makes
        // the first query answer at once.
        let (mut last, mut index, mut first) = match (resumed, listed) {
            (None, Some(listed)) => {
                // What the listing delivered is the cursor's, as if this loop had sent it: a
                // restart compares against it.
                positions
                    .lock()
                    .expect("watch cursor lock")
                    .insert(prefix.clone(), listed);
                (Some(listed.fingerprint), listed.index, false)
            }
            (resumed, _) => (resumed, 0u64, true),
        };
        loop {
            let started = Instant::now();
            let (new_index, entries) = self.read_prefix(&prefix, index, Some(self.wait)).await?;
            let unchanged_index = new_index == index;
            // Consul's index only grows; a smaller one means a new agent or a restored
            // snapshot, and blocking on the old value would wait for a long time.
            index = if new_index < index { 0 } else { new_index };
            let seen = fingerprint(&entries);
            let update = if last != Some(seen) {
                last = Some(seen);
                // Recorded as delivered: the cursor moves, and a restart compares against it.
                positions.lock().expect("watch cursor lock").insert(
                    prefix.clone(),
                    PrefixPosition {
                        index: new_index,
                        fingerprint: seen,
                    },
                );
                Some(Update::Listing {
                    prefixes: vec![prefix.clone()],
                    listing: Listing {
                        revision: new_index,
                        entries,
                    },
                })
            } else if first {
                // Nothing new since before the restart: the cursor stays where it was.
                tracing::debug!(prefix = %prefix, index = new_index, "consul watch resumed; nothing new under the prefix");
                Some(Update::Changes {
                    revision: new_index,
                    changes: Vec::new(),
                })
            } else {
                None
            };
            first = false;
            if let Some(update) = update {
                if updates.send(update).await.is_err() {
                    return Ok(());
                }
            } else if unchanged_index || started.elapsed() < MIN_QUERY_INTERVAL {
                // Nothing new, and Consul answered early: do not spin.
                let rest = MIN_QUERY_INTERVAL.saturating_sub(started.elapsed());
                tokio::time::sleep(rest).await;
            }
        }
    }
}

/// Why a node failed a probe.
#[derive(Debug, thiserror::Error)]
enum NodeFault {
    #[error("answered {0}")]
    Status(reqwest::StatusCode),
    #[error("no answer to GET {path} within {}s (the node hangs)", PROBE_TIMEOUT.as_secs())]
    Hangs { path: &'static str },
    /// The transport's error, with its causes and any password in a URL masked.
    #[error("{0}")]
    Unreachable(String),
}

/// Refuses settings that would send a secret in clear text: TLS options (which say the
/// operator expects TLS) with a plain `http://` node, as the etcd client does; and a token or
/// password over plain HTTP to anything but loopback (the local agent).
fn refuse_clear_text(nodes: &[reqwest::Url], settings: &Settings) -> Result<(), SetupError> {
    let tls = &settings.tls;
    let tls_options: Vec<&str> = [
        ("--client-ca-keys", tls.ca.is_some()),
        ("--client-cert", tls.cert.is_some()),
        ("--client-key", tls.key.is_some()),
        ("--client-insecure", tls.insecure),
    ]
    .into_iter()
    .filter_map(|(option, set)| set.then_some(option))
    .collect();
    let secret = if settings.auth.token.is_some() {
        Some("the ACL token")
    } else if settings.auth.basic_auth && settings.auth.password.is_some() {
        Some("the password")
    } else {
        None
    };
    for node in nodes.iter().filter(|node| node.scheme() == "http") {
        if !tls_options.is_empty() {
            return Err(SetupError::TlsOptionsOverHttp {
                node: node_text(node),
                options: tls_options,
            });
        }
        if let Some(secret) = secret
            && !is_loopback(node)
        {
            return Err(SetupError::SecretOverHttp {
                node: node_text(node),
                secret,
            });
        }
    }
    Ok(())
}

/// Whether `node` is this host: a loopback address or `localhost`.
fn is_loopback(node: &reqwest::Url) -> bool {
    let Some(host) = node.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let host = host.to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    }
}

/// Reads an answer's body, at most `limit` bytes; more is an error naming `key`, the prefix read.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    key: &str,
) -> Result<Vec<u8>, BackendError> {
    let too_large = || BackendError::Other {
        backend: BACKEND,
        message: format!(
            "the answer for {key:?} is larger than {limit} bytes; terad reads no more (split the prefix across resources)"
        ),
    };
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await.map_err(|e| BackendError::Other {
        backend: BACKEND,
        message: format!("unreadable answer for {key:?}: {}", describe(&e)),
    })? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of an error answer's body, for a message: at most [`MAX_ERROR_BODY`] bytes.
pub(crate) async fn error_text(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    String::from_utf8_lossy(&body).trim().to_owned()
}

/// One node for messages: no trailing `/`, credentials masked.
fn node_text(node: &reqwest::Url) -> String {
    crate::redact::url(node.as_str().trim_end_matches('/')).into_owned()
}

/// Consul's name for a key or prefix: no leading `/`; the root is the empty key.
pub(crate) fn consul_key(prefix: &str) -> &str {
    prefix.trim_start_matches('/').trim_end_matches('/')
}

/// Turns Consul's pairs into absolute keys with text values, keeping those on `/` boundaries
/// of `prefix` and skipping folders and values that are not UTF-8.
fn entries(prefix: &str, pairs: Vec<KvPair>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(pairs.len());
    for pair in pairs {
        if pair.key.ends_with('/') {
            continue;
        }
        let key = format!("/{}", pair.key);
        if !key_in_scope(prefix, &key) {
            continue;
        }
        let value = match pair.value {
            None => String::new(),
            Some(encoded) => {
                let bytes = match base64::engine::general_purpose::STANDARD.decode(encoded) {
                    Ok(bytes) => bytes,
                    Err(_) => {
                        tracing::warn!(key = %key, "Consul value is not base64; key skipped");
                        continue;
                    }
                };
                match String::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(_) => {
                        tracing::warn!(key = %key, "Consul value is not valid UTF-8; key skipped");
                        continue;
                    }
                }
            }
        };
        out.push((key, value));
    }
    out.sort();
    out
}

/// A transport error with its cause, credentials in a URL masked.
fn describe(error: &reqwest::Error) -> String {
    crate::redact::urls_in(&crate::logging::chain(error)).into_owned()
}

impl KeySource for ConsulSource {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn endpoints(&self) -> String {
        self.nodes_text()
    }

    fn supports_watch(&self) -> bool {
        true
    }

    async fn list(&mut self, prefixes: &[String]) -> Result<Listing, BackendError> {
        self.list_prefixes(prefixes).await
    }

    async fn watch(
        &mut self,
        prefixes: &[String],
        cursor: &mut WatchCursor,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        if prefixes.is_empty() {
            updates.closed().await;
            return Ok(());
        }
        let mut hung = 0;
        let first = loop {
            let mut loops = tokio::task::JoinSet::new();
            for prefix in prefixes {
                loops.spawn(self.clone().follow_prefix(
                    prefix.clone(),
                    cursor.prefixes(),
                    updates.clone(),
                ));
            }
            // The first loop to stop decides: an error restarts them all (with backoff), a
            // clean end means shutdown. A node found hung restarts them on the next node at
            // once (each starts with a full read), unless every node hung in turn.
            let first = tokio::select! {
                result = loops.join_next() => result,
                _ = updates.closed() => None,
                fault = self.watchdog(&mut hung) => {
                    loops.abort_all();
                    if hung < self.nodes.len() {
                        continue;
                    }
                    Some(Ok(Err(BackendError::Unreachable {
                        backend: BACKEND,
                        endpoints: self.nodes_text(),
                        message: fault,
                    })))
                }
            };
            loops.abort_all();
            break first;
        };
        cursor.settle_prefixes();
        match first {
            Some(Ok(result)) => result,
            Some(Err(join_error)) => Err(BackendError::Other {
                backend: BACKEND,
                message: format!("watch task failed: {join_error}"),
            }),
            None => Ok(()),
        }
    }
}

/// Makes `query` a blocking query when `blocking` gives an index and a wait, and returns the
/// request's timeout: the wait, plus the up to wait/16 of jitter Consul adds, plus
/// [`REQUEST_SLACK`]; [`LIST_TIMEOUT`] for a read that does not block.
pub(crate) fn blocking_query(
    query: &mut Vec<(&'static str, String)>,
    blocking: Option<(u64, Duration)>,
) -> Duration {
    match blocking {
        Some((index, wait)) => {
            query.push(("index", index.to_string()));
            query.push(("wait", format!("{}ms", wait.as_millis())));
            wait + wait / 16 + REQUEST_SLACK
        }
        None => LIST_TIMEOUT,
    }
}

/// The `X-Consul-Index` of an answer: the position a blocking query waits from. 0 when absent
/// or unreadable, which makes the next query return at once.
pub(crate) fn consul_index(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, value: Option<&str>) -> KvPair {
        KvPair {
            key: key.to_owned(),
            value: value.map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
        }
    }

    #[test]
    fn keys_gain_a_slash_folders_are_skipped_and_boundaries_hold() {
        let pairs = vec![
            pair("proxy/frontend/", None),
            pair("proxy/frontend/b", Some("10.0.0.2:80")),
            pair("proxy/frontend/a", Some("10.0.0.1:80")),
            pair("proxy2/x", Some("no")),
            pair("proxy/empty", None),
        ];
        assert_eq!(
            entries("/proxy", pairs),
            [
                ("/proxy/empty".to_owned(), String::new()),
                ("/proxy/frontend/a".to_owned(), "10.0.0.1:80".to_owned()),
                ("/proxy/frontend/b".to_owned(), "10.0.0.2:80".to_owned()),
            ]
        );
    }

    #[test]
    fn non_utf8_and_bad_base64_values_are_skipped() {
        let pairs = vec![
            KvPair {
                key: "a/bin".to_owned(),
                value: Some(base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe])),
            },
            KvPair {
                key: "a/garbage".to_owned(),
                value: Some("***".to_owned()),
            },
            pair("a/ok", Some("fine")),
        ];
        assert_eq!(
            entries("/a", pairs),
            [("/a/ok".to_owned(), "fine".to_owned())]
        );
    }

    #[test]
    fn only_this_host_counts_as_loopback() {
        for (node, loopback) in [
            ("http://127.0.0.1:8500", true),
            ("http://127.8.9.10:8500", true),
            ("http://[::1]:8500", true),
            ("http://localhost:8500", true),
            ("http://LOCALHOST:8500", true),
            ("http://10.0.0.1:8500", false),
            ("http://[fe80::1]:8500", false),
            ("http://consul.service:8500", false),
            ("http://localhost.example.com:8500", false),
        ] {
            let url = reqwest::Url::parse(node).unwrap();
            assert_eq!(is_loopback(&url), loopback, "{node}");
        }
    }

    #[test]
    fn consul_keys_drop_the_leading_slash() {
        assert_eq!(consul_key("/proxy/frontend"), "proxy/frontend");
        assert_eq!(consul_key("/"), "");
    }
}
