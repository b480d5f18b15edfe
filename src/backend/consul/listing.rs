//! Listing prefixes: what a one-shot run, a poll and the start of a watch read.
//!
//! One prefix is one recursive read. Several are read together in transactions of up to
//! [`TXN_OPS`] `get-tree` operations: a template set that reads a hundred keys of its own (a
//! consul-template template per application, each with its `key "app/N"`) is listed in two
//! requests instead of a hundred. Where the listing leaves each prefix is kept
//! ([`Listed`]), so the watch that follows blocks from there at once instead of first asking
//! again for what the runner has just applied.
//!
//! A prefix that comes back empty is asked for its own key as well: Consul filters a recursive
//! read (and a transaction's `get-tree`) down to what the token may see, but answers a
//! single-key read the token may not see with 403, so a missing or wrong token is an error and
//! never an empty render.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;

use super::{
    BACKEND, ConsulSource, KvPair, LIST_TIMEOUT, MAX_BODY, consul_key, entries, error_text,
    read_body,
};
use crate::backend::{BackendError, Listing, PrefixPosition, fingerprint};
use crate::store::key_in_scope;

/// The most operations Consul takes in one transaction (its `maxTxnOps`, 64 in 1.8).
const TXN_OPS: usize = 64;

/// How long a listed position may start a watch: the watch that follows a listing starts
/// within milliseconds; a position older than this belongs to a listing the runner may have
/// replaced since.
const LISTED_FRESH: Duration = Duration::from_secs(10);

/// Where the last listing left each prefix, for the watch that follows it.
#[derive(Debug, Default)]
pub(super) struct Listed(Mutex<HashMap<String, (Instant, PrefixPosition)>>);

impl Listed {
    fn record(&self, prefix: &str, position: PrefixPosition) {
        self.0
            .lock()
            .expect("listed positions")
            .insert(prefix.to_owned(), (Instant::now(), position));
    }

    /// The position a listing left `prefix` at, if recent; used once.
    pub(super) fn take_fresh(&self, prefix: &str) -> Option<PrefixPosition> {
        let (at, position) = self.0.lock().expect("listed positions").remove(prefix)?;
        (at.elapsed() < LISTED_FRESH).then_some(position)
    }
}

/// A transaction's answer: each `get-tree`'s pairs, one after the other.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnAnswer {
    #[serde(default)]
    results: Option<Vec<TxnResult>>,
    #[serde(default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Debug, Deserialize)]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<TxnPair>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnPair {
    key: String,
    value: Option<String>,
    modify_index: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    what: String,
}

impl ConsulSource {
    /// Lists `prefixes`; see the module's documentation.
    pub(super) async fn list_prefixes(&self, prefixes: &[String]) -> Result<Listing, BackendError> {
        let mut revision = 0;
        let mut all = Vec::new();
        let read = if prefixes.len() > 1 {
            let mut read = Vec::with_capacity(prefixes.len());
            for chunk in prefixes.chunks(TXN_OPS) {
                match self.read_prefixes_together(chunk).await? {
                    Some(together) => read.extend(together),
                    // Refused (an ACL, an old agent): one read each, whose errors name the key.
                    None => {
                        for prefix in chunk {
                            read.push(self.read_prefix(prefix, 0, None).await?);
                        }
                    }
                }
            }
            read
        } else {
            let mut read = Vec::new();
            for prefix in prefixes {
                read.push(self.read_prefix(prefix, 0, None).await?);
            }
            read
        };
        for (prefix, (index, entries)) in prefixes.iter().zip(read) {
            if entries.is_empty() {
                self.check_access(prefix).await?;
            }
            self.listed.record(
                prefix,
                PrefixPosition {
                    index,
                    fingerprint: fingerprint(&entries),
                },
            );
            revision = revision.max(index);
            all.extend(entries);
        }
        Ok(Listing {
            revision,
            entries: all,
        })
    }

    /// Reads `prefixes` in one transaction: for each, the index its blocking query waits from
    /// (the highest `ModifyIndex` under it; 0 when it is empty, so that query answers at once)
    /// and its entries. `None` when Consul refuses the transaction or one of its operations:
    /// the caller reads the prefixes one by one, and a refusal is then reported for its key.
    async fn read_prefixes_together(
        &self,
        prefixes: &[String],
    ) -> Result<Option<Vec<(u64, Vec<(String, String)>)>>, BackendError> {
        let operations: Vec<serde_json::Value> = prefixes
            .iter()
            .map(|prefix| {
                serde_json::json!({ "KV": { "Verb": "get-tree", "Key": consul_key(prefix) } })
            })
            .collect();
        let body = serde_json::to_string(&operations).expect("JSON of strings");
        let response = self
            .call(
                reqwest::Method::PUT,
                "txn",
                "",
                &[],
                Some(body),
                LIST_TIMEOUT,
            )
            .await?;
        let status = response.status();
        if matches!(
            status,
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED | StatusCode::CONFLICT
        ) {
            tracing::debug!(status = %status, "consul refused a transaction of reads; reading the prefixes one by one");
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(BackendError::Other {
                backend: BACKEND,
                message: format!(
                    "reading {} prefixes in a transaction answered {status}: {}",
                    prefixes.len(),
                    error_text(response).await
                ),
            });
        }
        let body = read_body(response, MAX_BODY, "txn").await?;
        let answer: TxnAnswer = serde_json::from_slice(&body).map_err(|e| BackendError::Other {
            backend: BACKEND,
            message: format!("unreadable transaction answer: {e}"),
        })?;
        drop(body);
        if let Some(error) = answer.errors.as_ref().and_then(|errors| errors.first()) {
            tracing::debug!(error = %error.what, "consul refused a read of a transaction; reading the prefixes one by one");
            return Ok(None);
        }
        // Each pair with its absolute key, made once for all the prefixes that test it.
        let pairs: Vec<(String, TxnPair)> = answer
            .results
            .unwrap_or_default()
            .into_iter()
            .filter_map(|result| result.kv)
            .map(|pair| (format!("/{}", pair.key), pair))
            .collect();
        // A `get-tree` matches keys as text (`app/1` also lists `app/10`); each prefix keeps
        // what lies on its `/` boundaries, as a recursive read's answer is kept.
        Ok(Some(
            prefixes
                .iter()
                .map(|prefix| {
                    let mine: Vec<&TxnPair> = pairs
                        .iter()
                        .filter(|(key, _)| key_in_scope(prefix, key))
                        .map(|(_, pair)| pair)
                        .collect();
                    let index = mine.iter().map(|pair| pair.modify_index).max().unwrap_or(0);
                    let kv = mine
                        .into_iter()
                        .map(|pair| KvPair {
                            key: pair.key.clone(),
                            value: pair.value.clone(),
                        })
                        .collect();
                    (index, entries(prefix, kv))
                })
                .collect(),
        ))
    }

    /// Reads the prefix key itself. Consul answers a single-key read the token may not see with
    /// 403, where a recursive read would quietly come back empty.
    async fn check_access(&self, prefix: &str) -> Result<(), BackendError> {
        let key = consul_key(prefix);
        let response = self.send(key, &[], LIST_TIMEOUT).await?;
        match response.status() {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                Err(self.denied(key, response).await)
            }
            _ => Ok(()),
        }
    }
}
