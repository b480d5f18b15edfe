//! The fleet primitives on etcd: leases kept alive by a stream, keys bound to them, listings
//! ordered by creation revision, and watches to wait for a change.

use std::time::Duration;

use tracing::{info, warn};

use crate::retry::Backoff;

use super::{Entry, LeaseId};
use crate::backend::BackendError;
use crate::backend::etcd::EtcdSource;
use crate::backend::etcd::api::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::backend::etcd::api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, WatchCreateRequest,
};
use crate::backend::etcd::client::{Client, prefix_end};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct EtcdFleet {
    source: EtcdSource,
}

fn timed_out(what: &str) -> BackendError {
    BackendError::Other {
        backend: "etcd",
        message: format!("{what}: no answer within {}s", REQUEST_TIMEOUT.as_secs()),
    }
}

impl EtcdFleet {
    pub fn new(source: EtcdSource) -> EtcdFleet {
        EtcdFleet { source }
    }

    async fn client(&self) -> Result<Client, BackendError> {
        self.source.client().await
    }

    /// Grants a lease of `ttl`, returning it with the future that keeps it alive (a keep-alive
    /// every ttl/3). The future ends when the lease is gone.
    pub async fn grant(
        &self,
        ttl: Duration,
    ) -> Result<(LeaseId, impl Future<Output = ()> + Send + 'static), BackendError> {
        let client = self.client().await?;
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let granted = tokio::time::timeout(REQUEST_TIMEOUT, client.lease_grant(seconds))
            .await
            .map_err(|_| timed_out("granting a lease"))?
            .map_err(|e| self.source.error(e))?;
        let id = granted.id;
        let granted_ttl = Duration::from_secs(u64::try_from(granted.ttl).unwrap_or(1).max(1));
        let period = (ttl / 3).max(Duration::from_millis(500));
        let fleet = self.clone();
        let keeper = async move { fleet.keep_alive(id, granted_ttl, period).await };
        Ok((LeaseId(format!("{id:x}")), keeper))
    }

    /// Keeps lease `id` alive every `period` until it is gone. A failed keep-alive (a member
    /// failing over, a blip) is retried on a fresh stream until the lease's own deadline, the
    /// last confirmed keep-alive plus its TTL: until then the lease is still alive in etcd and
    /// giving up would free a slot this instance still holds. Returns when the lease is gone,
    /// which is how [`super::Lease::is_lost`] learns it.
    async fn keep_alive(&self, id: i64, ttl: Duration, period: Duration) {
        let lease = format!("{id:x}");
        let mut deadline = tokio::time::Instant::now() + ttl;
        let mut backoff = Backoff::new((Duration::from_millis(100), period));
        let mut failing = false;
        loop {
            // Every step waits at most until the lease's deadline, which each confirmed
            // keep-alive moves on.
            let attempt = async {
                let client = tokio::time::timeout_at(deadline, self.client())
                    .await
                    .map_err(|_| None)?
                    .map_err(Some)?;
                let (mut keeper, mut responses) =
                    tokio::time::timeout_at(deadline, client.lease_keep_alive(id))
                        .await
                        .map_err(|_| None)?
                        .map_err(|e| Some(self.source.error(e)))?;
                let mut ticker = tokio::time::interval(period);
                loop {
                    ticker.tick().await;
                    tokio::time::timeout_at(deadline, keeper.keep_alive())
                        .await
                        .map_err(|_| None)?
                        .map_err(|e| Some(self.source.error(e)))?;
                    let answer = tokio::time::timeout_at(deadline, responses.message())
                        .await
                        .map_err(|_| None)?
                        .map_err(|e| Some(self.source.error(e)))?;
                    match answer {
                        Some(answer) if answer.ttl > 0 => {
                            let left = Duration::from_secs(answer.ttl.unsigned_abs());
                            deadline = tokio::time::Instant::now() + left;
                            if failing {
                                info!(lease = %lease, "lease keep-alive works again");
                                failing = false;
                            }
                        }
                        // etcd says the lease is gone: nothing to retry.
                        Some(_) => return Ok::<(), Option<BackendError>>(()),
                        None => {
                            return Err(Some(BackendError::Other {
                                backend: "etcd",
                                message: "the keep-alive stream ended".to_owned(),
                            }));
                        }
                    }
                }
            };
            match attempt.await {
                Ok(()) => {
                    warn!(lease = %lease, "lease expired");
                    return;
                }
                // The deadline passed while waiting.
                Err(None) => break,
                Err(Some(error)) if !failing => {
                    warn!(lease = %lease, error = %error, "lease keep-alive failed; retrying until the lease's deadline");
                    failing = true;
                }
                Err(Some(_)) => {}
            }
            let pause = backoff.next_delay();
            if tokio::time::Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        warn!(lease = %lease, "no keep-alive reached etcd before the lease's deadline; the lease is lost");
    }

    fn lease_number(lease: &LeaseId) -> i64 {
        i64::from_str_radix(&lease.0, 16).unwrap_or(0)
    }

    pub async fn revoke(&self, lease: &LeaseId) -> Result<(), BackendError> {
        let client = self.client().await?;
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.lease_revoke(Self::lease_number(lease)),
        )
        .await
        .map_err(|_| timed_out("revoking a lease"))?
        .map(|_| ())
        .or_else(|error| {
            // Already expired: what revoking was for.
            if error.to_string().contains("lease not found") {
                Ok(())
            } else {
                Err(self.source.error(error))
            }
        })
    }

    pub async fn put(
        &self,
        key: &str,
        value: &str,
        lease: Option<&LeaseId>,
    ) -> Result<(), BackendError> {
        let client = self.client().await?;
        let request = PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease: lease.map_or(0, Self::lease_number),
            ..PutRequest::default()
        };
        tokio::time::timeout(REQUEST_TIMEOUT, client.put(request))
            .await
            .map_err(|_| timed_out("writing a key"))?
            .map(|_| ())
            .map_err(|e| self.source.error(e))
    }

    pub async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let client = self.client().await?;
        let request = DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..DeleteRangeRequest::default()
        };
        tokio::time::timeout(REQUEST_TIMEOUT, client.delete_range(request))
            .await
            .map_err(|_| timed_out("deleting a key"))?
            .map(|answer| answer.deleted > 0)
            .map_err(|e| self.source.error(e))
    }

    /// Every key under `prefix` (or the key itself), oldest first, and the store's revision.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), BackendError> {
        let client = self.client().await?;
        let (key, range_end) = prefix_range(prefix);
        let request = RangeRequest {
            key,
            range_end,
            sort_order: SortOrder::Ascend.into(),
            sort_target: SortTarget::Create.into(),
            ..RangeRequest::default()
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.range(request))
            .await
            .map_err(|_| timed_out("listing keys"))?
            .map_err(|e| self.source.error(e))?;
        let revision = answer
            .header
            .map(|h| u64::try_from(h.revision).unwrap_or(0))
            .unwrap_or(0);
        let entries = answer
            .kvs
            .iter()
            .map(|kv| Entry {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                value: String::from_utf8_lossy(&kv.value).into_owned(),
                held: kv.lease != 0,
            })
            .collect();
        Ok((entries, revision))
    }

    /// Returns once anything under `prefix` changed after `revision`, or after `limit`.
    pub async fn wait_change(
        &self,
        prefix: &str,
        revision: u64,
        limit: Duration,
    ) -> Result<(), BackendError> {
        let client = self.client().await?;
        let start = i64::try_from(revision).unwrap_or(i64::MAX - 1) + 1;
        let (key, range_end) = prefix_range(prefix);
        let request = WatchCreateRequest {
            key,
            range_end,
            start_revision: start,
            ..WatchCreateRequest::default()
        };
        let wait = async {
            let mut stream = client
                .watch(request)
                .await
                .map_err(|e| self.source.error(e))?;
            loop {
                match stream.message().await {
                    Ok(Some(answer)) if answer.canceled => return Ok(()),
                    Ok(Some(answer)) if !answer.events.is_empty() => return Ok(()),
                    Ok(Some(_)) => continue,
                    Ok(None) => return Ok(()),
                    Err(error) => return Err(self.source.error(error)),
                }
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(result) => result,
            Err(_) => Ok(()),
        }
    }
}

/// The range of every key that starts with `prefix` (every key for an empty prefix).
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.as_bytes().to_vec(), prefix_end(prefix.as_bytes()))
    }
}
