//! The etcd v3 backend.
//!
//! Listing reads every watched prefix at one revision, in pages, so a large key space neither
//! hits the gRPC message limit nor mixes two states. Watching opens one gRPC stream carrying one
//! watch per merged prefix, starting at the listed revision + 1, with `require_leader` (a member
//! cut off from its cluster ends the watch instead of going silent). Keys are matched on `/`
//! boundaries client-side: etcd's own prefixes are plain byte prefixes, so the range for `/app`
//! is [`/app`, `/app0`) (which excludes `/app2`) and the few keys such as `/app-x` that share
//! the byte prefix are filtered out here.
//!
//! # Clusters
//!
//! Every `--node` is a member of one cluster, and terad talks to one member at a time: a client
//! per member, connected when first used, shared by every clone of the source (the runner's
//! listings, the watch task and the fleet's coordination calls). The member in use is chosen at
//! random at start, so a fleet spreads over the members. etcd-client's own multi-endpoint
//! channel (tonic's balancer) is not used: it sends each request to a random endpoint, does
//! not retry a request on another one, keeps a hung member in rotation (a SIGSTOPped process
//! still accepts TCP connections) and cannot say which endpoint failed.
//!
//! A member is left for the next one when a request to it fails at the transport, times out,
//! or says it has no leader; when its watch stream breaks; and when the watch stream stops
//! answering: after [`PROGRESS_INTERVAL`] without a message terad asks for a progress
//! notification, and a member that does not answer within [`PROGRESS_TIMEOUT`] is taken for
//! hung. A member failing is logged once, naming it and the fault, and so is its recovery
//! ([`members::Members`] keeps that state in one place). Only when no member answers does a
//! call fail, with each member's own error, and the runner retries with backoff;
//! [`EtcdSource::serving`] cuts that wait short as soon as a member reports a leader again.
//!
//! The client connects lazily (and authenticates, when credentials are given, on first use), so
//! an unreachable cluster is reported by the first listing, naming every endpoint.
//!
//! # Files
//!
//! - this one: [`EtcdSource`], its listing, and how an error is classified (another member, a
//!   new listing, or the store's answer);
//! - [`watch`]: following changes, and finding the member that serves the watch;
//! - [`members`]: the members, which one is in use, and their health.

mod members;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use tokio::sync::mpsc;

use self::members::Members;

use super::{BackendError, KeySource, Listing, Update, WatchCursor};
use crate::config::Settings;
use crate::retry::Backoff;
use crate::store::key_in_scope;

const BACKEND: &str = "etcd";
/// Keys per listing page. Large, because etcd 3.4 counts the rest of the range for every page
/// (a 100k-key listing in pages of 2000 took 0.5 s instead of 0.2 s); a page whose response is
/// too large is retried smaller.
const PAGE_SIZE: i64 = 200_000;
/// The largest gRPC message accepted: big values (etcd can be configured for values of many
/// MiB) and big watch batches must not break a listing or a watch. The default is 4 MiB.
const MAX_MESSAGE: usize = 512 * 1024 * 1024;
/// How long one listing request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a small request (opening a watch, the revision probe, a status) may take before
/// the member counts as hung.
const SHORT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a member may take to answer the status asked before a listing. Answered locally
/// (no quorum needed), so a second is plenty for a live member.
const LIST_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a watch stream may stay silent before terad asks the member for a progress
/// notification. etcd answers one at once; a member that does not is hung.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a member may take to answer a progress request before it counts as hung.
pub const PROGRESS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often, while no member answers, the members are asked whether they have a leader.
const SERVING_PROBE: Duration = Duration::from_millis(1000);
/// How long the member in use has to answer the probe that opens a watch before the other
/// members are asked as well (the first to answer serves the watch). A member still starting
/// after quorum came back accepts the connection and says nothing until [`SHORT_TIMEOUT`]; a
/// live member answers in a millisecond. Short enough to bound a failover, long enough that a
/// fleet reconnecting to a healthy member does not ask every member each time.
const HEDGE_DELAY: Duration = Duration::from_millis(300);

#[derive(Clone)]
pub struct EtcdSource {
    endpoints: Vec<String>,
    /// Why the endpoint is the default one, when it is (said in every error that names it).
    endpoint_note: Option<String>,
    /// The members, their clients and their health: one set per store, shared by every clone
    /// (the runner's listings, the watch task and the fleet's coordination calls), so none of
    /// them reconnects (or re-authenticates) per call and all agree on which member to use.
    members: Arc<Members>,
}

impl std::fmt::Debug for EtcdSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // ConnectOptions holds the password: never print it.
        f.debug_struct("EtcdSource")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdSource {
    /// Prepares a client for the configured nodes, TLS and credentials. Nothing is contacted
    /// yet; certificate files are read here so a bad one is reported at start.
    pub fn new(settings: &Settings) -> Result<EtcdSource, String> {
        // HTTP/2 keep-alive finds a dead connection the watchdog cannot (a member whose host
        // vanished); etcd refuses pings more often than every 5 s (`too_many_pings`).
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true)
            .with_auto_token_refresh(true);
        if let Some(username) = &settings.auth.username {
            let password = settings
                .auth
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            options = options.with_user(username.clone(), password);
        }
        let tls = &settings.tls;
        if tls.insecure {
            return Err(
                "--client-insecure is not supported for etcd: give the CA with --client-ca-keys"
                    .to_owned(),
            );
        }
        if tls.ca.is_some() || tls.cert.is_some() {
            let mut config = TlsOptions::new();
            if let Some(ca) = &tls.ca {
                let pem = std::fs::read(ca).map_err(|e| format!("cannot read {ca:?}: {e}"))?;
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                let cert_pem =
                    std::fs::read(cert).map_err(|e| format!("cannot read {cert:?}: {e}"))?;
                let key_pem =
                    std::fs::read(key).map_err(|e| format!("cannot read {key:?}: {e}"))?;
                config = config.identity(Identity::from_pem(cert_pem, key_pem));
            }
            options = options.with_tls(config);
        }
        if settings.nodes.is_empty() {
            return Err("no etcd node given".to_owned());
        }
        Ok(EtcdSource {
            endpoints: settings.nodes.clone(),
            endpoint_note: settings.endpoint_note.clone(),
            members: Arc::new(Members::new(&settings.nodes, options)),
        })
    }

    /// The endpoints for messages, credentials in a URL masked.
    fn endpoints_text(&self) -> String {
        let endpoints = self
            .endpoints
            .iter()
            .map(|endpoint| crate::redact::url(endpoint))
            .collect::<Vec<_>>()
            .join(", ");
        match &self.endpoint_note {
            Some(note) => format!("{endpoints} ({note})"),
            None => endpoints,
        }
    }

    /// The client of the member in use, for the fleet's coordination calls; their errors go
    /// through [`EtcdSource::error`], which moves on to another member when this one failed.
    pub(crate) async fn client(&self) -> Result<Client, BackendError> {
        let index = self.members.current();
        self.connect(index).await.inspect_err(|error| {
            if let BackendError::Unreachable { message, .. } = error {
                self.members.failed(index, message);
            }
        })
    }

    /// The client for member `index`, a failure to connect classified.
    async fn connect(&self, index: usize) -> Result<Client, BackendError> {
        self.members
            .connect(index)
            .await
            .map_err(|error| match error {
                Some(error) => self.classify(index, error),
                None => self.unreachable(index, no_answer(REQUEST_TIMEOUT)),
            })
    }

    /// Member `index` did not answer.
    fn unreachable(&self, index: usize, message: String) -> BackendError {
        BackendError::Unreachable {
            backend: BACKEND,
            endpoints: if self.endpoints.len() == 1 {
                self.endpoints_text()
            } else {
                self.members.url(index)
            },
            message,
        }
    }

    /// No member answered: the error names each with its own fault.
    fn none_answered(&self, failures: &[(usize, String)]) -> BackendError {
        let message = if self.endpoints.len() == 1 {
            failures
                .first()
                .map(|(_, message)| message.clone())
                .unwrap_or_default()
        } else {
            failures
                .iter()
                .map(|(index, message)| format!("{}: {message}", self.members.url(*index)))
                .collect::<Vec<_>>()
                .join("; ")
        };
        BackendError::Unreachable {
            backend: BACKEND,
            endpoints: self.endpoints_text(),
            message,
        }
    }

    /// Classifies an error of a fleet call on the member in use (see [`EtcdSource::client`]):
    /// a member that did not answer is left for another.
    pub(crate) fn error(&self, error: etcd_client::Error) -> BackendError {
        let index = self.members.current();
        let error = self.classify(index, error);
        if let BackendError::Unreachable { message, .. } = &error {
            self.members.failed(index, message);
        }
        error
    }

    /// Classifies a client error of member `index` so the caller knows whether to try another
    /// member, re-list or give up.
    fn classify(&self, index: usize, error: etcd_client::Error) -> BackendError {
        use etcd_client::Error as E;
        use tonic::Code;
        let message = error.to_string();
        match &error {
            E::GRpcStatus(status) => match status.code() {
                Code::Unauthenticated | Code::PermissionDenied => BackendError::Denied {
                    backend: BACKEND,
                    message: status.message().to_owned(),
                },
                Code::InvalidArgument if status.message().contains("authentication") => {
                    BackendError::Denied {
                        backend: BACKEND,
                        message: status.message().to_owned(),
                    }
                }
                Code::OutOfRange if status.message().contains("compacted") => {
                    BackendError::Compacted {
                        backend: BACKEND,
                        revision: 0,
                    }
                }
                Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => {
                    let mut text = status.message().to_owned();
                    if text.is_empty() {
                        text = message;
                    }
                    self.unreachable(index, text)
                }
                _ => BackendError::Other {
                    backend: BACKEND,
                    message,
                },
            },
            E::TransportError(_) | E::IoError(_) | E::WatchError(_) => {
                self.unreachable(index, describe(&error))
            }
            _ => BackendError::Other {
                backend: BACKEND,
                message,
            },
        }
    }

    /// Runs `call` on the member in use, moving on to the next member while members fail at
    /// the transport or time out (`timeout` per member). Other errors are the store's answer
    /// and returned as they are.
    async fn on_any_member<T, F, Fut>(
        &self,
        timeout: Duration,
        mut call: F,
    ) -> Result<T, BackendError>
    where
        F: FnMut(usize, Client) -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let mut failures = Vec::new();
        for index in self.members.order() {
            let result = match self.connect(index).await {
                Ok(client) => match tokio::time::timeout(timeout, call(index, client)).await {
                    Ok(result) => result,
                    Err(_) => Err(self.unreachable(index, no_answer(timeout))),
                },
                Err(error) => Err(error),
            };
            match result {
                Ok(value) => {
                    self.members.answered(index);
                    return Ok(value);
                }
                Err(BackendError::Unreachable { message, .. }) => {
                    self.members.failed(index, &message);
                    failures.push((index, message));
                }
                Err(other) => {
                    self.members.answered(index);
                    return Err(other);
                }
            }
        }
        Err(self.none_answered(&failures))
    }

    /// Resolves once the members report a new leader: one after none, or another than at the
    /// first look (which may still name the member that died). The runner waits on it beside
    /// its backoff, so a fleet whose cluster lost quorum for a minute is back a second after
    /// quorum is, not at its next (up to 10 s) retry. Asks the members for their status
    /// (answered locally, without quorum) about once a second, jittered.
    pub async fn serving(&self) {
        let mut first: Option<u64> = None;
        let mut probes = Backoff::new((SERVING_PROBE, SERVING_PROBE));
        loop {
            let mut leader = 0;
            for index in self.members.order() {
                let Ok(client) = self.connect(index).await else {
                    continue;
                };
                let mut maintenance = client.maintenance_client();
                if let Ok(Ok(status)) =
                    tokio::time::timeout(Duration::from_secs(1), maintenance.status()).await
                    && status.leader() != 0
                {
                    leader = status.leader();
                    break;
                }
            }
            match first {
                None => first = Some(leader),
                Some(before) if leader != 0 && leader != before => return,
                Some(_) => {}
            }
            // The backoff's jitter on a step that does not grow: a fleet probes spread out.
            tokio::time::sleep(probes.next_delay()).await;
        }
    }

    /// Reads one prefix at `revision` (0: the newest, which the first page then fixes) from
    /// member `index`.
    async fn list_prefix(
        &self,
        index: usize,
        client: &mut Client,
        prefix: &str,
        revision: &mut i64,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), BackendError> {
        let (start, end) = scope_range(prefix);
        let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
        let mut from = start;
        let mut page_size = PAGE_SIZE;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(page_size);
            if *revision > 0 {
                options = options.with_revision(*revision);
            }
            let mut page =
                match tokio::time::timeout(REQUEST_TIMEOUT, kv.get(from.clone(), Some(options)))
                    .await
                {
                    Err(_) => {
                        return Err(self.unreachable(
                            index,
                            format!(
                                "a listing request took longer than {}s",
                                REQUEST_TIMEOUT.as_secs()
                            ),
                        ));
                    }
                    Ok(Err(error)) if page_size > 1 && is_too_large(&error) => {
                        page_size = (page_size / 4).max(1);
                        tracing::debug!(page_size, "listing page too large; retrying smaller");
                        continue;
                    }
                    Ok(result) => result.map_err(|e| self.classify(index, e))?,
                };
            if *revision <= 0 {
                *revision = page.header().map_or(0, |h| h.revision());
            }
            let more = page.more();
            let kvs = page.take_kvs();
            // The next page starts right after the last key returned.
            let next = kvs.last().map(|last| {
                let mut next = last.key().to_vec();
                next.push(0);
                next
            });
            for kv in kvs {
                let (key, value) = kv.into_key_value();
                if let Some((key, value)) = decode_owned(key, value)
                    && key_in_scope(prefix, &key)
                {
                    out.push((key, value));
                }
            }
            match (more, next) {
                (true, Some(next)) => from = next,
                _ => return Ok(()),
            }
        }
    }

    /// Lists every prefix on member `index`, at one revision.
    async fn list_member(
        &self,
        index: usize,
        mut client: Client,
        prefixes: &[String],
    ) -> Result<Listing, BackendError> {
        // A status first, with a short timeout: the channel of a member that died holds
        // requests while it reconnects instead of failing them, and a listing (which may take
        // seconds) cannot have a short timeout of its own. Without it a member that stayed
        // dead after quorum came back kept the listing for 7 s.
        let status = match tokio::time::timeout(LIST_PROBE_TIMEOUT, client.status()).await {
            Ok(result) => result.map_err(|e| self.classify(index, e))?,
            Err(_) => return Err(self.unreachable(index, no_answer(LIST_PROBE_TIMEOUT))),
        };
        let mut revision = 0i64;
        let mut entries = Vec::new();
        for prefix in prefixes {
            self.list_prefix(index, &mut client, prefix, &mut revision, &mut entries)
                .await?;
        }
        if prefixes.is_empty() {
            // Nothing to list, but the revision still has to come from somewhere.
            revision = status.header().map_or(0, |h| h.revision());
        }
        Ok(Listing {
            revision: u64::try_from(revision).unwrap_or(0),
            entries,
        })
    }
}

fn no_answer(timeout: Duration) -> String {
    format!("no answer within {}s", timeout.as_secs())
}

/// A transport error with its cause: tonic's own text is only "transport error".
fn describe(error: &etcd_client::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a request failed because its response exceeded a message size limit.
fn is_too_large(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            matches!(
                status.code(),
                tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
            ) && !status.message().contains("compacted")
        }
        _ => false,
    }
}

/// The byte range covering a scope: [`/app`, `/app0`) (`0` follows `/`), or every key for the root.
fn scope_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        (vec![0], vec![0])
    } else {
        (
            trimmed.as_bytes().to_vec(),
            format!("{trimmed}0").into_bytes(),
        )
    }
}

/// Keys and values are text for templates. A non-UTF-8 key or value is skipped with a warning
/// naming it; a template that needs it then fails with the key named.
fn decode(key: &[u8], value: &[u8]) -> Option<(String, String)> {
    let Ok(key) = std::str::from_utf8(key) else {
        tracing::warn!(key = %String::from_utf8_lossy(key), "etcd key is not valid UTF-8; skipped");
        return None;
    };
    match std::str::from_utf8(value) {
        Ok(value) => Some((key.to_owned(), value.to_owned())),
        Err(_) => {
            tracing::warn!(key = %key, "etcd value is not valid UTF-8; key skipped");
            None
        }
    }
}

/// [`decode`] for owned bytes, without copying them.
fn decode_owned(key: Vec<u8>, value: Vec<u8>) -> Option<(String, String)> {
    match (String::from_utf8(key), String::from_utf8(value)) {
        (Ok(key), Ok(value)) => Some((key, value)),
        // Not text: `decode` logs which key and skips it.
        (key, value) => {
            let key = key.map_or_else(|e| e.into_bytes(), String::into_bytes);
            let value = value.map_or_else(|e| e.into_bytes(), String::into_bytes);
            decode(&key, &value)
        }
    }
}

impl KeySource for EtcdSource {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn endpoints(&self) -> String {
        self.endpoints_text()
    }

    fn supports_watch(&self) -> bool {
        true
    }

    async fn list(&mut self, prefixes: &[String]) -> Result<Listing, BackendError> {
        // Each member's attempt lists everything again: one listing is one member's state at
        // one revision. The timeouts are per request inside.
        self.on_any_member(Duration::MAX, |index, client| {
            self.list_member(index, client, prefixes)
        })
        .await
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
        self.watch_members(prefixes, cursor, updates).await
    }

    async fn serving(&self) {
        EtcdSource::serving(self).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_ranges_exclude_sibling_prefixes() {
        assert_eq!(scope_range("/app"), (b"/app".to_vec(), b"/app0".to_vec()));
        assert_eq!(scope_range("/app/"), (b"/app".to_vec(), b"/app0".to_vec()));
        assert_eq!(scope_range("/"), (vec![0], vec![0]));
        let (start, end) = scope_range("/app");
        let inside = |key: &[u8]| key >= start.as_slice() && key < end.as_slice();
        assert!(inside(b"/app") && inside(b"/app/x") && inside(b"/app-x"));
        assert!(!inside(b"/app2/x") && !inside(b"/ap"));
    }

    #[test]
    fn non_utf8_is_skipped() {
        assert_eq!(decode(b"/k", b"v"), Some(("/k".to_owned(), "v".to_owned())));
        assert_eq!(decode(b"/k", &[0xff, 0xfe]), None);
        assert_eq!(decode(&[0xff], b"v"), None);
    }
}
