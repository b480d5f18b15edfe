//! The etcd v3 backend.
//!
//! Listing reads every watched prefix at one revision, in pages, so a large key space neither
//! hits the gRPC message limit nor mixes two states. Watching opens one gRPC stream carrying one
//! watch per merged prefix, starting at the listed revision + 1, with progress notifications and
//! `require_leader` (a member cut off from its cluster ends the watch instead of going silent).
//! Keys are matched on `/` boundaries client-side: etcd's own prefixes are plain byte prefixes,
//! so the range for `/app` is [`/app`, `/app0`) (which excludes `/app2`) and the few keys such as
//! `/app-x` that share the byte prefix are filtered out here.
//!
//! The client connects lazily (and authenticates, when credentials are given, on first use), so
//! an unreachable cluster is reported by the first listing, naming every endpoint.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, TlsOptions, WatchOptions,
};
use tokio::sync::mpsc;

use super::{BackendError, KeySource, Listing, Update};
use crate::config::Settings;
use crate::store::{Change, key_in_scope};

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

#[derive(Clone)]
pub struct EtcdSource {
    endpoints: Vec<String>,
    /// Why the endpoint is the default one, when it is (said in every error that names it).
    endpoint_note: Option<String>,
    options: ConnectOptions,
    /// One connection per store, shared by every clone: the runner's listings, the watch task
    /// and the fleet's coordination calls all use it, so none of them reconnects (or
    /// re-authenticates) per call.
    client: Arc<tokio::sync::OnceCell<Client>>,
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
        Ok(EtcdSource {
            endpoints: settings.nodes.clone(),
            endpoint_note: settings.endpoint_note.clone(),
            options,
            client: Arc::default(),
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

    pub(crate) async fn client(&self) -> Result<Client, BackendError> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let connect = Client::connect(&self.endpoints, Some(self.options.clone()));
                match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
                    Ok(Ok(client)) => Ok(client),
                    Ok(Err(error)) => Err(self.error(error)),
                    Err(_) => Err(BackendError::Unreachable {
                        backend: BACKEND,
                        endpoints: self.endpoints_text(),
                        message: "no answer within 10s".to_owned(),
                    }),
                }
            })
            .await?;
        Ok(client.clone())
    }

    /// Classifies a client error so the runner knows whether to retry, re-list or give up.
    pub(crate) fn error(&self, error: etcd_client::Error) -> BackendError {
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
                    BackendError::Unreachable {
                        backend: BACKEND,
                        endpoints: self.endpoints_text(),
                        message: status.message().to_owned(),
                    }
                }
                _ => BackendError::Other {
                    backend: BACKEND,
                    message,
                },
            },
            E::TransportError(_) | E::IoError(_) => BackendError::Unreachable {
                backend: BACKEND,
                endpoints: self.endpoints_text(),
                message,
            },
            _ => BackendError::Other {
                backend: BACKEND,
                message,
            },
        }
    }

    /// Reads one prefix at `revision` (0: the newest, which the first page then fixes).
    async fn list_prefix(
        &self,
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
                        return Err(BackendError::Unreachable {
                            backend: BACKEND,
                            endpoints: self.endpoints_text(),
                            message: "a listing request took longer than 10s".to_owned(),
                        });
                    }
                    Ok(Err(error)) if page_size > 1 && is_too_large(&error) => {
                        page_size = (page_size / 4).max(1);
                        tracing::debug!(page_size, "listing page too large; retrying smaller");
                        continue;
                    }
                    Ok(result) => result.map_err(|e| self.error(e))?,
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
        let mut client = self.client().await?;
        let mut revision = 0i64;
        let mut entries = Vec::new();
        for prefix in prefixes {
            self.list_prefix(&mut client, prefix, &mut revision, &mut entries)
                .await?;
        }
        if prefixes.is_empty() {
            // Nothing to list, but the revision still has to come from somewhere.
            let status = client.status().await.map_err(|e| self.error(e))?;
            revision = status.header().map_or(0, |h| h.revision());
        }
        Ok(Listing {
            revision: u64::try_from(revision).unwrap_or(0),
            entries,
        })
    }

    async fn watch(
        &mut self,
        prefixes: &[String],
        revision: &mut u64,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        if prefixes.is_empty() {
            updates.closed().await;
            return Ok(());
        }
        let mut client = self.client().await?;
        // An etcd that came back with less history than terad has seen (restored from an old
        // snapshot, or wiped and restarted empty) would make a watch from the old revision
        // wait for revisions that mean something else: list again instead.
        let (probe, _) = scope_range(&prefixes[0]);
        let current = client
            .get(
                probe,
                Some(GetOptions::new().with_keys_only().with_limit(1)),
            )
            .await
            .map_err(|e| self.error(e))?
            .header()
            .map_or(0, |h| h.revision());
        if u64::try_from(current).unwrap_or(0) < *revision {
            tracing::warn!(
                seen = *revision,
                current,
                "etcd's revision went backwards (restored or restarted empty); listing again"
            );
            return Err(BackendError::Compacted {
                backend: BACKEND,
                revision: u64::try_from(current).unwrap_or(0),
            });
        }
        let mut watch_client = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        let start = i64::try_from(*revision).unwrap_or(i64::MAX - 1) + 1;
        let options = |end: Vec<u8>| {
            WatchOptions::new()
                .with_range(end)
                .with_start_revision(start)
                .with_progress_notify()
        };
        let (first_start, first_end) = scope_range(&prefixes[0]);
        let mut stream = watch_client
            .watch(first_start, Some(options(first_end)))
            .await
            .map_err(|e| self.error(e))?;
        // The other prefixes share the stream: one connection, one ordered event sequence.
        for prefix in &prefixes[1..] {
            let (key, end) = scope_range(prefix);
            stream
                .watch(key, Some(options(end)))
                .await
                .map_err(|e| self.error(e))?;
        }
        tracing::debug!(
            prefixes = crate::logging::json(prefixes),
            start_revision = start,
            "etcd watch open"
        );

        // How far each watch (by id) is known complete. Watches on one stream may lag each
        // other while catching up, so the stream resumes from the slowest one; events seen
        // twice after a resume are idempotent puts and deletes.
        let mut progress: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                _ = updates.closed() => return Ok(()),
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => {
                    return Err(BackendError::Unreachable {
                        backend: BACKEND,
                        endpoints: self.endpoints_text(),
                        message: "the watch stream ended".to_owned(),
                    });
                }
                Err(error) => return Err(self.error(error)),
            };
            if response.canceled() {
                let compacted = response.compact_revision();
                if compacted > 0 {
                    return Err(BackendError::Compacted {
                        backend: BACKEND,
                        revision: u64::try_from(compacted).unwrap_or(0),
                    });
                }
                return Err(BackendError::Other {
                    backend: BACKEND,
                    message: format!("watch canceled: {}", response.cancel_reason()),
                });
            }
            let watched = progress.entry(response.watch_id()).or_insert(start - 1);
            if response.created() {
                continue;
            }
            let mut changes = Vec::new();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                *watched = (*watched).max(kv.mod_revision());
                let Ok(key) = std::str::from_utf8(kv.key()) else {
                    continue;
                };
                if !prefixes.iter().any(|prefix| key_in_scope(prefix, key)) {
                    continue;
                }
                match event.event_type() {
                    EventType::Put => match decode(kv.key(), kv.value()) {
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
            if response.events().is_empty() {
                // A progress notification: this (synced) watch has seen everything up to the
                // header revision.
                let header = response.header().map_or(0, |h| h.revision());
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
