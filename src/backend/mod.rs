//! Where keys come from. Each backend is one module behind the small [`KeySource`] trait; the
//! closed set of backends is the [`Backend`] enum.
//!
//! A backend does two things: list every key under a set of prefixes at one point in time, and
//! (where it can) follow changes after that point, sending them as [`Update`]s. Everything else
//! (the live store, retries, deciding what to re-render) is the runner's job and shared by all
//! backends.

pub mod consul;
pub mod env;
pub mod etcd;
pub mod file;
#[cfg(test)]
pub mod memory;
pub(crate) mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::config::Settings;
use crate::store::{Change, key_in_scope};

/// Every key under some prefixes at one point in time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The backend's position (etcd revision, Consul index, file generation) the listing is at.
    pub revision: u64,
    pub entries: Vec<(String, String)>,
}

/// What a watching backend reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The complete current contents of `prefixes`, replacing what the store held there.
    Listing {
        prefixes: Vec<String>,
        listing: Listing,
    },
    /// Changes since the previous update, all taken at one `revision`. None at the revision
    /// already delivered: the watch is (re)established, which tells the runner the backend
    /// answers again.
    Changes { revision: u64, changes: Vec<Change> },
}

/// Where a broken watch resumes. The runner starts one at a listing and hands the same cursor
/// back to every retry; the backend advances it as it delivers and reads it when it resumes.
/// etcd, the file and the memory backend resume from one revision. Consul has no such thing:
/// each watched prefix has its own blocking-query index, so it keeps one [`PrefixPosition`] per
/// prefix, which its concurrent prefix loops update as they deliver.
#[derive(Debug, Default)]
pub struct WatchCursor {
    revision: u64,
    prefixes: Arc<Mutex<HashMap<String, PrefixPosition>>>,
}

/// What a backend with one index per prefix last delivered for a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixPosition {
    /// The index the next blocking query waits from.
    pub index: u64,
    /// A fingerprint of the entries delivered at `index` ([`fingerprint`]): a resumed watch
    /// whose first answer holds the same entries has nothing new to send.
    pub fingerprint: u64,
}

impl WatchCursor {
    /// A cursor right after a listing at `revision`.
    pub fn at(revision: u64) -> WatchCursor {
        WatchCursor {
            revision,
            prefixes: Arc::default(),
        }
    }

    /// The position of the last update delivered (for Consul, the highest index delivered).
    /// The runner compares it before and after a watch: a watch that moved it delivered.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Delivered an update at `revision`.
    pub(crate) fn advance(&mut self, revision: u64) {
        self.revision = revision;
    }

    /// The per-prefix positions, shared with the loops that update them.
    pub(crate) fn prefixes(&self) -> Arc<Mutex<HashMap<String, PrefixPosition>>> {
        Arc::clone(&self.prefixes)
    }

    /// After the per-prefix loops stopped: the highest index any of them delivered.
    pub(crate) fn settle_prefixes(&mut self) {
        let positions = self.prefixes.lock().expect("watch cursor lock");
        if let Some(highest) = positions.values().map(|p| p.index).max() {
            self.revision = self.revision.max(highest);
        }
    }
}

/// A fingerprint of a prefix's entries, to tell an answer that changed nothing without keeping
/// a copy of every entry (100k keys are megabytes). SipHash with fixed keys: the same entries
/// give the same value in every process.
pub fn fingerprint(entries: &[(String, String)]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    entries.hash(&mut hasher);
    hasher.finish()
}

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No endpoint answered; the endpoints are named so the operator can check them.
    #[error("cannot reach {backend} at {endpoints}: {message}")]
    Unreachable {
        backend: &'static str,
        endpoints: String,
        message: String,
    },
    /// The backend refused the credentials (or has none for us).
    #[error("{backend} refused access: {message}")]
    Denied {
        backend: &'static str,
        message: String,
    },
    /// The watch cannot resume where it stopped; only a fresh listing can continue.
    #[error("{backend}: history before revision {revision} was compacted")]
    Compacted {
        backend: &'static str,
        revision: u64,
    },
    /// A file of the file backend cannot be read or parsed.
    #[error("{path:?}: {message}")]
    File {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("{backend}: {message}")]
    Other {
        backend: &'static str,
        message: String,
    },
}

/// Why a client for a backend cannot be built from the settings: a configuration error, found
/// at start before anything is contacted.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no {0} node given")]
    NoNode(&'static str),
    #[error("invalid node {node:?}: {source}")]
    InvalidNode {
        /// With any password masked.
        node: String,
        #[source]
        source: <reqwest::Url as std::str::FromStr>::Err,
    },
    #[error("--client-insecure is not supported for etcd: give the CA with --client-ca-keys")]
    InsecureEtcd,
    #[error("cannot read {path:?}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// TLS options (which say the operator expects TLS) with a plain `http://` node.
    #[error(
        "node {node:?} is plain http, but {} {} set: use an https:// node (or drop the TLS options)",
        options.join(", "),
        if options.len() == 1 { "is" } else { "are" }
    )]
    TlsOptionsOverHttp {
        node: String,
        options: Vec<&'static str>,
    },
    /// A token or password over plain HTTP to anything but loopback.
    #[error(
        "node {node:?} is plain http to a host that is not loopback, so {secret} would cross the network in clear text: use an https:// node"
    )]
    SecretOverHttp { node: String, secret: &'static str },
    #[error("cannot set up the {backend} client: {source}")]
    Client {
        backend: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

impl BackendError {
    /// Whether the only way forward is a new listing (as opposed to retrying the watch).
    pub fn needs_relist(&self) -> bool {
        matches!(self, BackendError::Compacted { .. })
    }
}

/// The interface every backend implements.
pub trait KeySource {
    /// A short name for logs and metrics: `etcd`, `consul`, `file`, `env`.
    fn name(&self) -> &'static str;

    /// Whether [`KeySource::watch`] follows changes; a backend without watches is polled.
    fn supports_watch(&self) -> bool;

    /// Where the keys come from (endpoints, files), for messages.
    fn endpoints(&self) -> String;

    /// Lists every key under `prefixes` at one point in time.
    fn list(
        &mut self,
        prefixes: &[String],
    ) -> impl Future<Output = Result<Listing, BackendError>> + Send;

    /// Sends every change under `prefixes` after `cursor` to `updates`, advancing `cursor` as
    /// it delivers so a broken watch resumes where it stopped. Returns `Ok` when `updates` is
    /// closed (shutdown), an error when the watch broke.
    fn watch(
        &mut self,
        prefixes: &[String],
        cursor: &mut WatchCursor,
        updates: &mpsc::Sender<Update>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Resolves when a backend that stopped answering can serve again, as far as a cheap probe
    /// tells (etcd: a member reports a leader). The runner waits on it beside its backoff, so a
    /// long outage ends for terad when it ends for the store, not at the next retry. Never
    /// resolves for backends without such a probe.
    fn serving(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// The backends terad supports. Cloning gives a second handle on the same backend (the watch
/// task and the runner's re-listing each hold one).
#[derive(Debug, Clone)]
pub enum Backend {
    Consul(Box<consul::ConsulSource>),
    Etcd(Box<etcd::EtcdSource>),
    File(file::FileSource),
    Env(env::EnvSource),
    #[cfg(test)]
    Memory(memory::MemorySource),
}

impl Backend {
    /// Connects the configured backend. A client that cannot be built from the settings (a bad
    /// certificate, credentials over clear text) is a configuration error of `--backend`.
    pub fn connect(settings: &Settings) -> Result<Backend, crate::diagnostic::ConfigErrors> {
        use crate::config::BackendKind;
        let refused = |error: SetupError| {
            crate::diagnostic::ConfigError::option("--backend", error.to_string()).into()
        };
        match settings.backend {
            BackendKind::File => Ok(Backend::File(file::FileSource::new(settings.files.clone()))),
            BackendKind::Env => Ok(Backend::Env(env::EnvSource)),
            BackendKind::Etcd => etcd::EtcdSource::new(settings)
                .map(|source| Backend::Etcd(Box::new(source)))
                .map_err(refused),
            BackendKind::Consul => consul::ConsulSource::new(settings)
                .map(|source| Backend::Consul(Box::new(source)))
                .map_err(refused),
        }
    }
}

impl KeySource for Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Consul(source) => source.name(),
            Backend::Etcd(source) => source.name(),
            Backend::File(source) => source.name(),
            Backend::Env(source) => source.name(),
            #[cfg(test)]
            Backend::Memory(source) => source.name(),
        }
    }

    fn supports_watch(&self) -> bool {
        match self {
            Backend::Consul(source) => source.supports_watch(),
            Backend::Etcd(source) => source.supports_watch(),
            Backend::File(source) => source.supports_watch(),
            Backend::Env(source) => source.supports_watch(),
            #[cfg(test)]
            Backend::Memory(source) => source.supports_watch(),
        }
    }

    fn endpoints(&self) -> String {
        match self {
            Backend::Consul(source) => source.endpoints(),
            Backend::Etcd(source) => source.endpoints(),
            Backend::File(source) => source.endpoints(),
            Backend::Env(source) => source.endpoints(),
            #[cfg(test)]
            Backend::Memory(source) => source.endpoints(),
        }
    }

    async fn list(&mut self, prefixes: &[String]) -> Result<Listing, BackendError> {
        match self {
            Backend::Consul(source) => source.list(prefixes).await,
            Backend::Etcd(source) => source.list(prefixes).await,
            Backend::File(source) => source.list(prefixes).await,
            Backend::Env(source) => source.list(prefixes).await,
            #[cfg(test)]
            Backend::Memory(source) => source.list(prefixes).await,
        }
    }

    async fn watch(
        &mut self,
        prefixes: &[String],
        cursor: &mut WatchCursor,
        updates: &mpsc::Sender<Update>,
    ) -> Result<(), BackendError> {
        match self {
            Backend::Consul(source) => source.watch(prefixes, cursor, updates).await,
            Backend::Etcd(source) => source.watch(prefixes, cursor, updates).await,
            Backend::File(source) => source.watch(prefixes, cursor, updates).await,
            Backend::Env(source) => source.watch(prefixes, cursor, updates).await,
            #[cfg(test)]
            Backend::Memory(source) => source.watch(prefixes, cursor, updates).await,
        }
    }

    async fn serving(&self) {
        match self {
            Backend::Etcd(source) => KeySource::serving(&**source).await,
            Backend::Consul(source) => source.serving().await,
            _ => std::future::pending().await,
        }
    }
}

/// Reduces the resources' keys to the distinct prefixes to list and watch: a key covered by
/// another (on `/` boundaries) is dropped, so fifty resources under `/proxy` share one watch.
pub fn merge_prefixes<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut sorted: Vec<&String> = keys.into_iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut merged: Vec<String> = Vec::new();
    for key in sorted {
        // Sorted order puts a covering prefix before everything it covers.
        if !merged.iter().any(|prefix| key_in_scope(prefix, key)) {
            merged.push(key.clone());
        }
    }
    merged
}

/// Keeps the entries that lie under one of `prefixes`.
pub fn within_prefixes(
    entries: impl IntoIterator<Item = (String, String)>,
    prefixes: &[String],
) -> Vec<(String, String)> {
    entries
        .into_iter()
        .filter(|(key, _)| prefixes.iter().any(|prefix| key_in_scope(prefix, key)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covered_prefixes_merge_on_segment_boundaries() {
        let keys: Vec<String> = [
            "/proxy/frontend",
            "/proxy",
            "/proxy2/x",
            "/app/db",
            "/app/db/host",
            "/app",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(merge_prefixes(&keys), ["/app", "/proxy", "/proxy2/x"]);
        let root = vec!["/a".to_owned(), "/".to_owned()];
        assert_eq!(merge_prefixes(&root), ["/"]);
        let fifty: Vec<String> = (0..50).map(|_| "/proxy".to_owned()).collect();
        assert_eq!(merge_prefixes(&fifty).len(), 1);
    }

    #[test]
    fn within_prefixes_respects_boundaries() {
        let entries = vec![
            ("/app/x".to_owned(), "1".to_owned()),
            ("/app2/x".to_owned(), "2".to_owned()),
        ];
        assert_eq!(within_prefixes(entries, &["/app".to_owned()]).len(), 1);
    }
}
