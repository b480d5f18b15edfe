//! Fleet choreography: instances of a service that take turns through the shared store.
//!
//! - **Coordinated changes.** A resource with `[template.coordination]` takes a slot of its
//!   group's distributed semaphore before check, swap, reload and health check, and gives it
//!   back afterwards; at most `max_concurrent` instances of a group are mid-change at once. A
//!   slot is a key bound to an etcd lease or a Consul session that the holder keeps alive, so a
//!   crashed holder's slot frees itself when the lease or session expires.
//! - **Health-gated rollback.** After the reload, the resource's health check runs; on failure
//!   the previous file is restored and reloaded, the failed render is not tried again until the
//!   data changes, and a halt marker stops every instance of the group until an operator runs
//!   `terad rollout resume GROUP`.
//! - **Counting unhealthy peers.** A group that names a Consul service (`service = "api"`)
//!   starts a change only while fewer than `max_unavailable` other instances of it are
//!   unavailable, and puts its own instance in maintenance mode for the change ([`service`]).
//! - **Self-registration.** `terad register` keeps a key alive under a lease or session while
//!   a health command passes ([`register`]).
//!
//! Everything lives under [`RESERVED_PREFIX`] (`terad/coordination/…` in Consul):
//! `<group>/slots/<lease-or-session>` = the holder's name, `<group>/halt` = a [`Halt`] as JSON.

pub mod consul;
pub mod etcd;
pub mod health;
pub mod register;
pub mod service;
pub mod turn;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::backend::BackendError;
use crate::config::coordination::Coordination;
use crate::config::{BackendKind, Settings};

/// Where coordination keys live in the store.
pub const RESERVED_PREFIX: &str = "/terad/coordination";

/// How long one wait for a change in the store blocks before the state is read again.
const WAIT_SLICE: Duration = Duration::from_secs(5);

pub fn slots_prefix(group: &str) -> String {
    format!("{RESERVED_PREFIX}/{group}/slots/")
}

pub fn halt_key(group: &str) -> String {
    format!("{RESERVED_PREFIX}/{group}/halt")
}

/// An etcd lease id (hex) or a Consul session id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseId(pub String);

/// A key in the store, as listed oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// Bound to a live lease or session.
    pub held: bool,
}

/// The store the fleet features talk to: the one the resources read from.
#[derive(Debug, Clone)]
pub enum Coordinator {
    Etcd(Box<etcd::EtcdFleet>),
    Consul(consul::ConsulFleet),
}

/// A lease (etcd) or session (Consul) kept alive by a background task until revoked or dropped.
pub struct Lease {
    pub id: LeaseId,
    keeper: tokio::task::JoinHandle<()>,
    /// Cancelled the moment the keeper ends: the lease expired, or no keep-alive reached the
    /// store before its deadline. Whoever acts under the lease checks it before acting.
    lost: tokio_util::sync::CancellationToken,
    coordinator: Coordinator,
    revoked: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
        if !self.revoked {
            // Best effort: the lease expires after its TTL anyway.
            let coordinator = self.coordinator.clone();
            let id = self.id.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = coordinator.revoke_id(&id).await;
                });
            }
        }
    }
}

impl Lease {
    /// Revokes the lease; the keys bound to it go with it.
    pub async fn revoke(mut self) -> Result<(), BackendError> {
        self.keeper.abort();
        self.revoked = true;
        self.coordinator.revoke_id(&self.id).await
    }

    /// Whether the keep-alive task gave up (the lease expired or the store stayed away).
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// A token cancelled when the lease is lost.
    pub fn lost(&self) -> &tokio_util::sync::CancellationToken {
        &self.lost
    }
}

impl Coordinator {
    /// The coordinator for the configured backend; `None` for the file and env backends,
    /// which are not shared between instances.
    pub fn new(settings: &Settings) -> Result<Option<Coordinator>, crate::backend::SetupError> {
        Ok(match settings.backend {
            BackendKind::Etcd => Some(Coordinator::Etcd(Box::new(etcd::EtcdFleet::new(
                crate::backend::etcd::EtcdSource::new(settings)?,
            )))),
            BackendKind::Consul => Some(Coordinator::Consul(consul::ConsulFleet::new(
                crate::backend::consul::ConsulSource::new(settings)?,
            ))),
            BackendKind::File | BackendKind::Env => None,
        })
    }

    /// The coordinator over the renderer's own backend, sharing its connection; `None` for
    /// the file and env backends.
    pub fn for_backend(backend: &crate::backend::Backend) -> Option<Coordinator> {
        use crate::backend::Backend;
        match backend {
            Backend::Etcd(source) => Some(Coordinator::Etcd(Box::new(etcd::EtcdFleet::new(
                (**source).clone(),
            )))),
            Backend::Consul(source) => Some(Coordinator::Consul(consul::ConsulFleet::new(
                (**source).clone(),
            ))),
            Backend::File(_) | Backend::Env(_) => None,
            #[cfg(test)]
            Backend::Memory(_) => None,
        }
    }

    pub async fn grant(&self, ttl: Duration) -> Result<Lease, BackendError> {
        let lost = tokio_util::sync::CancellationToken::new();
        let gone = lost.clone().drop_guard();
        let (id, keeper) = match self {
            Coordinator::Etcd(etcd) => {
                let (id, keeper) = etcd.grant(ttl).await?;
                (
                    id,
                    tokio::spawn(async move {
                        let _gone = gone;
                        keeper.await
                    }),
                )
            }
            Coordinator::Consul(consul) => {
                let (id, keeper) = consul.grant(ttl).await?;
                (
                    id,
                    tokio::spawn(async move {
                        let _gone = gone;
                        keeper.await
                    }),
                )
            }
        };
        Ok(Lease {
            id,
            keeper,
            lost,
            coordinator: self.clone(),
            revoked: false,
        })
    }

    async fn revoke_id(&self, id: &LeaseId) -> Result<(), BackendError> {
        match self {
            Coordinator::Etcd(etcd) => etcd.revoke(id).await,
            Coordinator::Consul(consul) => consul.revoke(id).await,
        }
    }

    /// Writes `key`, bound to `lease` when given (it goes when the lease goes).
    pub async fn put(
        &self,
        key: &str,
        value: &str,
        lease: Option<&Lease>,
    ) -> Result<(), BackendError> {
        let lease = lease.map(|lease| &lease.id);
        match self {
            Coordinator::Etcd(etcd) => etcd.put(key, value, lease).await,
            Coordinator::Consul(consul) => consul.put(key, value, lease).await,
        }
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        match self {
            Coordinator::Etcd(etcd) => etcd.delete(key).await,
            Coordinator::Consul(consul) => consul.delete(key).await,
        }
    }

    /// Keys under `prefix`, oldest first, and the store's position for [`Self::wait_change`].
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), BackendError> {
        match self {
            Coordinator::Etcd(etcd) => etcd.list(prefix).await,
            Coordinator::Consul(consul) => consul.list(prefix).await,
        }
    }

    /// Returns when something under `prefix` changed after `position`, or after about `limit`.
    pub async fn wait_change(
        &self,
        prefix: &str,
        position: u64,
        limit: Duration,
    ) -> Result<(), BackendError> {
        match self {
            Coordinator::Etcd(etcd) => etcd.wait_change(prefix, position, limit).await,
            Coordinator::Consul(consul) => consul.wait_change(prefix, position, limit).await,
        }
    }

    /// The value of exactly `key`, and the store's position.
    pub async fn get(&self, key: &str) -> Result<(Option<String>, u64), BackendError> {
        let (entries, position) = self.list(key).await?;
        let value = entries
            .into_iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value);
        Ok((value, position))
    }
}

/// A halt marker: why a group stopped applying changes, and who stopped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    pub instance: String,
    pub resource: String,
    /// The keyed hash (see [`crate::redact::content_hash`]) of the render whose health check
    /// failed, as the failing instance logged it. Markers of older versions called it `md5`.
    #[serde(alias = "md5")]
    pub hash: String,
    pub reason: String,
    /// Unix time of the failure.
    pub at: u64,
}

impl Halt {
    pub fn new(instance: &str, resource: &str, hash: String, reason: String) -> Halt {
        Halt {
            instance: instance.to_owned(),
            resource: resource.to_owned(),
            hash,
            reason,
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        }
    }

    fn parse(text: &str) -> Halt {
        serde_json::from_str(text).unwrap_or_else(|_| Halt {
            instance: "unknown".to_owned(),
            resource: "unknown".to_owned(),
            hash: String::new(),
            reason: text.to_owned(),
            at: 0,
        })
    }
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, render {}) failed its health check: {}",
            self.instance, self.resource, self.hash, self.reason
        )
    }
}

/// The group's halt marker, if one is set.
pub async fn halted(coordinator: &Coordinator, group: &str) -> Result<Option<Halt>, BackendError> {
    let (value, _) = coordinator.get(&halt_key(group)).await?;
    Ok(value.as_deref().map(Halt::parse))
}

/// Sets the group's halt marker. It has no lease: it stays until an operator clears it.
pub async fn halt(coordinator: &Coordinator, group: &str, halt: &Halt) -> Result<(), BackendError> {
    let value = serde_json::to_string(halt).expect("a halt marker serializes");
    coordinator.put(&halt_key(group), &value, None).await
}

/// Clears the group's halt marker (`terad rollout resume`); whether there was one.
pub async fn resume(coordinator: &Coordinator, group: &str) -> Result<bool, BackendError> {
    coordinator.delete(&halt_key(group)).await
}

/// Waits while the group is halted, logging the marker once.
pub async fn wait_until_resumed(
    coordinator: &Coordinator,
    group: &str,
    resource: &str,
) -> Result<(), BackendError> {
    let key = halt_key(group);
    let mut logged = false;
    loop {
        let (value, position) = coordinator.get(&key).await?;
        let Some(value) = value else {
            if logged {
                info!(resource, group, "group resumed; applying the newest render");
            }
            return Ok(());
        };
        if !logged {
            warn!(
                resource,
                group,
                halt = %Halt::parse(&value),
                "group halted; not applying changes until `terad rollout resume {group}`"
            );
            logged = true;
        }
        coordinator.wait_change(&key, position, WAIT_SLICE).await?;
    }
}

/// A held slot of a group's semaphore. Give it back with [`Slot::release`]; dropping it frees
/// it too, a moment later.
pub struct Slot {
    lease: Lease,
    pub group: String,
}

impl Slot {
    /// Cancelled when the slot's lease is lost.
    pub fn lost(&self) -> &tokio_util::sync::CancellationToken {
        self.lease.lost()
    }

    pub fn is_lost(&self) -> bool {
        self.lease.is_lost()
    }

    pub async fn release(self) {
        let group = self.group.clone();
        if let Err(error) = self.lease.revoke().await {
            warn!(group = %group, error = %error, "could not release the slot; it frees itself when its lease expires");
        }
    }
}

/// Takes a slot of `coordination.group`, waiting (and saying who holds the slots) while all
/// `max_concurrent` are taken. Slots go in the order they were asked for.
pub async fn acquire(
    coordinator: &Coordinator,
    coordination: &Coordination,
    holder: &str,
) -> Result<Slot, BackendError> {
    let group = &coordination.group;
    let prefix = slots_prefix(group);
    let lease = coordinator.grant(coordination.ttl).await?;
    let key = format!("{prefix}{}", lease.id.0);
    coordinator.put(&key, holder, Some(&lease)).await?;
    let mut last_holders: Option<Vec<String>> = None;
    loop {
        let (entries, position) = coordinator.list(&prefix).await?;
        let live: Vec<&Entry> = entries.iter().filter(|entry| entry.held).collect();
        match live.iter().position(|entry| entry.key == key) {
            Some(place) if place < coordination.max_concurrent => {
                return Ok(Slot {
                    lease,
                    group: group.clone(),
                });
            }
            Some(_) => {}
            None => {
                // Our key went with an expired lease (a long pause): ask again, at the back.
                if lease.is_lost() {
                    return Err(BackendError::Other {
                        backend: "fleet",
                        message: format!(
                            "the lease for a slot of group {group:?} expired while waiting"
                        ),
                    });
                }
                coordinator.put(&key, holder, Some(&lease)).await?;
                continue;
            }
        }
        let holders: Vec<String> = live
            .iter()
            .take(coordination.max_concurrent)
            .map(|entry| entry.value.clone())
            .collect();
        if last_holders.as_ref() != Some(&holders) {
            info!(group = %group, holders = crate::logging::json(&holders), "waiting for a coordination slot");
            last_holders = Some(holders);
        }
        coordinator
            .wait_change(&prefix, position, WAIT_SLICE)
            .await?;
    }
}

/// A random delay in `[0, jitter)`, so a fleet that saw one change does not contend at once.
pub fn jitter(jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..nanos))
}

/// The fleet state a runner shares with its workers.
pub struct Fleet {
    pub coordinator: Option<Coordinator>,
    pub instance: String,
}
