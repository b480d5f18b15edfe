//! The fleet primitives on etcd: leases kept alive by a stream, keys bound to them, listings
//! ordered by creation revision, and watches to wait for a change.

use std::time::Duration;

use etcd_client::{GetOptions, PutOptions, SortOrder, SortTarget, WatchOptions};
use tracing::warn;

use super::{Entry, LeaseId};
use crate::backend::BackendError;
use crate::backend::etcd::EtcdSource;

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

    async fn client(&self) -> Result<etcd_client::Client, BackendError> {
        self.source.client().await
    }

    /// Grants a lease of `ttl` and keeps it alive (a keep-alive every ttl/3) until the returned
    /// task is aborted. The task ends by itself when etcd reports the lease gone.
    pub async fn grant(
        &self,
        ttl: Duration,
    ) -> Result<(LeaseId, tokio::task::JoinHandle<()>), BackendError> {
        let mut client = self.client().await?;
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let granted = tokio::time::timeout(REQUEST_TIMEOUT, client.lease_grant(seconds, None))
            .await
            .map_err(|_| timed_out("granting a lease"))?
            .map_err(|e| self.source.error(e))?;
        let id = granted.id();
        let (mut keeper, mut responses) = client
            .lease_keep_alive(id)
            .await
            .map_err(|e| self.source.error(e))?;
        let period = (ttl / 3).max(Duration::from_millis(500));
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                if let Err(error) = keeper.keep_alive().await {
                    warn!(lease = %format!("{id:x}"), error = %error, "lease keep-alive failed");
                    return;
                }
                match tokio::time::timeout(REQUEST_TIMEOUT, responses.message()).await {
                    Ok(Ok(Some(answer))) if answer.ttl() > 0 => {}
                    Ok(Ok(Some(_))) => {
                        warn!(lease = %format!("{id:x}"), "lease expired");
                        return;
                    }
                    other => {
                        warn!(lease = %format!("{id:x}"), answer = ?other.map(|r| r.map(|_| ())), "lease keep-alive got no answer");
                    }
                }
            }
        });
        Ok((LeaseId(format!("{id:x}")), task))
    }

    fn lease_number(lease: &LeaseId) -> i64 {
        i64::from_str_radix(&lease.0, 16).unwrap_or(0)
    }

    pub async fn revoke(&self, lease: &LeaseId) -> Result<(), BackendError> {
        let mut client = self.client().await?;
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
        let mut client = self.client().await?;
        let options = lease.map(|lease| PutOptions::new().with_lease(Self::lease_number(lease)));
        tokio::time::timeout(REQUEST_TIMEOUT, client.put(key, value, options))
            .await
            .map_err(|_| timed_out("writing a key"))?
            .map(|_| ())
            .map_err(|e| self.source.error(e))
    }

    pub async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let mut client = self.client().await?;
        tokio::time::timeout(REQUEST_TIMEOUT, client.delete(key, None))
            .await
            .map_err(|_| timed_out("deleting a key"))?
            .map(|answer| answer.deleted() > 0)
            .map_err(|e| self.source.error(e))
    }

    /// Every key under `prefix` (or the key itself), oldest first, and the store's revision.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), BackendError> {
        let mut client = self.client().await?;
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend);
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.get(prefix, Some(options)))
            .await
            .map_err(|_| timed_out("listing keys"))?
            .map_err(|e| self.source.error(e))?;
        let revision = answer
            .header()
            .map(|h| u64::try_from(h.revision()).unwrap_or(0))
            .unwrap_or(0);
        let entries = answer
            .kvs()
            .iter()
            .map(|kv| Entry {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: String::from_utf8_lossy(kv.value()).into_owned(),
                held: kv.lease() != 0,
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
        let mut client = self.client().await?;
        let start = i64::try_from(revision).unwrap_or(i64::MAX - 1) + 1;
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let wait = async {
            let mut stream = client
                .watch(prefix, Some(options))
                .await
                .map_err(|e| self.source.error(e))?;
            loop {
                match stream.message().await {
                    Ok(Some(answer)) if answer.canceled() => return Ok(()),
                    Ok(Some(answer)) if !answer.events().is_empty() => return Ok(()),
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
