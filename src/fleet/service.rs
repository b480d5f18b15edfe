//! Coordination that counts unhealthy peers (`[template.coordination] service = "api"`): an
//! instance starts a change only while fewer than `max_unavailable` other instances of the
//! service are unavailable - health critical, in maintenance (node or service), or holding a
//! slot of the group - and puts its own instance in maintenance mode for the change, so that
//! load balancers drain it.
//!
//! The order matters. An instance first waits, without a slot, until few enough peers are
//! unavailable (a blocking query on the service's health, no polling), so that it never holds
//! a slot while waiting for a peer to recover. It then takes a slot and counts again under it:
//! the slot holders are the instances that may be about to enter maintenance and that health
//! does not show yet. A slot holder whose instance health already shows in maintenance is
//! counted once: its slot names its service instance.

use std::time::Duration;

use tracing::info;

use super::consul::{ConsulFleet, Peer};
use super::{Coordinator, slots_prefix};
use crate::backend::BackendError;
use crate::catalog::Health;
use crate::config::coordination::{Coordination, ServiceCoordination};

/// How long one blocking query on the service's health waits before it is asked again.
const WAIT_SLICE: Duration = Duration::from_secs(5);

/// Why the service coordination cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceCoordinationError {
    #[error(
        "no instance of service {service:?} is registered on the local Consul agent: set coordination.service_id"
    )]
    NoLocalInstance { service: String },
    #[error(
        "several instances of service {service:?} are registered on the local Consul agent ({ids}): set coordination.service_id to say which one this terad changes"
    )]
    SeveralLocalInstances { service: String, ids: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// This instance's service id: `service_id`, or the one instance of the service on the agent.
pub async fn self_id(
    consul: &ConsulFleet,
    service: &ServiceCoordination,
) -> Result<String, ServiceCoordinationError> {
    if let Some(id) = &service.service_id {
        return Ok(id.clone());
    }
    let mut ids = consul.local_instances(&service.name).await?;
    match ids.len() {
        0 => Err(ServiceCoordinationError::NoLocalInstance {
            service: service.name.clone(),
        }),
        1 => Ok(ids.remove(0)),
        _ => Err(ServiceCoordinationError::SeveralLocalInstances {
            service: service.name.clone(),
            ids: ids.join(", "),
        }),
    }
}

/// At start, for each resource whose group names a service without `service_id`: which
/// local instance is this terad's. None or several is a configuration error naming the
/// resource; a Consul that does not answer yet is not (the first change resolves it, waiting).
pub async fn check_self_at_start(
    config: &crate::setup::Config,
    backend: &crate::backend::Backend,
) -> Result<(), crate::diagnostic::ConfigError> {
    let Some(Coordinator::Consul(consul)) = Coordinator::for_backend(backend) else {
        return Ok(());
    };
    for resource in &config.resources {
        let Some(service) = resource
            .coordination
            .as_ref()
            .and_then(|c| c.service.as_ref())
        else {
            continue;
        };
        if service.service_id.is_some() {
            continue;
        }
        match self_id(&consul, service).await {
            Ok(id) => {
                info!(resource = %resource.name, service = %service.name, service_id = %id, "this terad's instance of the service")
            }
            Err(ServiceCoordinationError::Backend(error)) => {
                tracing::warn!(resource = %resource.name, service = %service.name, error = %error, "cannot tell yet which instance of the service is this terad's; the first change will")
            }
            Err(error) => {
                return Err(crate::diagnostic::ConfigError::in_file(
                    &resource.file,
                    format!("resource {:?}: {error}", resource.name),
                ));
            }
        }
    }
    Ok(())
}

/// The other instances that are unavailable now: critical or in maintenance.
pub fn unavailable_peers<'a>(peers: &'a [Peer], self_id: &str) -> Vec<&'a Peer> {
    peers
        .iter()
        .filter(|peer| peer.id != self_id)
        .filter(|peer| matches!(peer.status, Health::Critical | Health::Maintenance))
        .collect()
}

/// Waits until fewer than `max_unavailable` other instances are unavailable, logging whom it
/// waits for each time that set changes.
pub async fn wait_for_peers(
    consul: &ConsulFleet,
    service: &ServiceCoordination,
    self_id: &str,
    resource: &str,
) -> Result<(), BackendError> {
    let mut index = None;
    let mut logged: Option<Vec<String>> = None;
    loop {
        let (peers, new_index) = consul
            .peers(&service.name, index.map(|i| (i, WAIT_SLICE)))
            .await?;
        let unavailable = unavailable_peers(&peers, self_id);
        if unavailable.len() < service.max_unavailable {
            if logged.is_some() {
                info!(resource, service = %service.name, "enough instances of the service are available again");
            }
            return Ok(());
        }
        let ids: Vec<String> = unavailable
            .iter()
            .map(|peer| format!("{} on {} ({})", peer.id, peer.node, peer.status))
            .collect();
        if logged.as_ref() != Some(&ids) {
            info!(
                resource,
                service = %service.name,
                max_unavailable = service.max_unavailable,
                unavailable = crate::logging::json(&ids),
                "waiting: other instances of the service are unavailable"
            );
            logged = Some(ids);
        }
        // An index going backwards (a restarted agent) starts over from a fresh answer.
        index = match index {
            Some(old) if new_index < old => None,
            _ => Some(new_index),
        };
    }
}

/// Whether a change may start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Start,
    /// Too many others are unavailable: these, as `id (status)` or a slot holder's name.
    Wait {
        in_the_way: Vec<String>,
    },
}

/// Under a slot: whether the change may start, i.e. the other unavailable instances plus the
/// other slot holders are fewer than `max_unavailable`.
pub async fn may_start(
    coordinator: &Coordinator,
    consul: &ConsulFleet,
    coordination: &Coordination,
    service: &ServiceCoordination,
    self_id: &str,
) -> Result<Admission, BackendError> {
    let (peers, _) = consul.peers(&service.name, None).await?;
    let (slots, _) = coordinator.list(&slots_prefix(&coordination.group)).await?;
    let holders: Vec<&str> = slots
        .iter()
        .filter(|entry| entry.held)
        .take(coordination.max_concurrent)
        .map(|entry| entry.value.as_str())
        .collect();
    let in_the_way = in_the_way(&peers, &holders, self_id);
    if in_the_way.len() < service.max_unavailable {
        Ok(Admission::Start)
    } else {
        Ok(Admission::Wait { in_the_way })
    }
}

/// Who counts against `max_unavailable` for `self_id`: the other slot holders (which may be
/// about to enter maintenance), and the other instances health shows unavailable that hold no
/// slot (a holder in maintenance is one instance, not two). Our own slot does not count.
pub fn in_the_way(peers: &[Peer], holders: &[&str], self_id: &str) -> Vec<String> {
    let other_holders: Vec<&str> = holders
        .iter()
        .copied()
        .filter(|holder| holder_service_id(holder) != Some(self_id))
        .collect();
    let held: std::collections::HashSet<&str> = other_holders
        .iter()
        .filter_map(|holder| holder_service_id(holder))
        .collect();
    let mut who: Vec<String> = unavailable_peers(peers, self_id)
        .into_iter()
        .filter(|peer| !held.contains(peer.id.as_str()))
        .map(|peer| format!("{} ({})", peer.id, peer.status))
        .collect();
    who.extend(other_holders.into_iter().map(str::to_owned));
    who
}

/// What a slot holder of a service group writes in its slot: who it is, and which service
/// instance it may have put in maintenance.
pub fn holder(instance: &str, resource: &str, service_id: &str) -> String {
    format!("{instance} ({resource}) {HOLDER_ID}{service_id}")
}

const HOLDER_ID: &str = "service_id=";

/// The service instance a slot holder named, if it is one of a service group.
pub fn holder_service_id(holder: &str) -> Option<&str> {
    holder.rsplit_once(HOLDER_ID).map(|(_, id)| id)
}

/// `terad rollout resume GROUP` on a node: takes out of maintenance the local service
/// instances that terad put there and that hold no live slot of the group (their terad was
/// killed mid-change: a live one is still changing them). Returns the ids it cleared.
pub async fn clear_left_maintenance(
    coordinator: &Coordinator,
    consul: &ConsulFleet,
    group: &str,
) -> Result<Vec<String>, BackendError> {
    let (slots, _) = coordinator.list(&slots_prefix(group)).await?;
    let live: Vec<&str> = slots
        .iter()
        .filter(|entry| entry.held)
        .filter_map(|entry| holder_service_id(&entry.value))
        .collect();
    let mut cleared = Vec::new();
    for (id, _reason) in consul.terad_maintenance().await? {
        if live.contains(&id.as_str()) {
            continue;
        }
        consul.maintenance(&id, false, "").await?;
        cleared.push(id);
    }
    Ok(cleared)
}

/// `terad rollout status GROUP --service NAME`: one line per instance of the service, with its
/// health, whether it is in maintenance, and whether it holds a slot of the group.
pub async fn instance_lines(
    coordinator: &Coordinator,
    consul: &ConsulFleet,
    group: &str,
    service: &str,
) -> Result<Vec<String>, BackendError> {
    let (peers, _) = consul.peers(service, None).await?;
    let (slots, _) = coordinator.list(&slots_prefix(group)).await?;
    let holders: Vec<&str> = slots
        .iter()
        .filter(|entry| entry.held)
        .filter_map(|entry| holder_service_id(&entry.value))
        .collect();
    Ok(peers
        .iter()
        .map(|peer| {
            format!(
                "{} on {}: {}{}{}",
                peer.id,
                peer.node,
                peer.status,
                if peer.status == Health::Maintenance {
                    " (in maintenance)"
                } else {
                    ""
                },
                if holders.contains(&peer.id.as_str()) {
                    ", holds a slot"
                } else {
                    ""
                }
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, status: Health) -> Peer {
        Peer {
            id: id.to_owned(),
            node: "n".to_owned(),
            status,
        }
    }

    #[test]
    fn a_slot_holder_in_maintenance_counts_once_and_our_own_slot_not_at_all() {
        let peers = [
            peer("api-1", Health::Passing),
            peer("api-2", Health::Maintenance),
            peer("api-3", Health::Critical),
            peer("api-4", Health::Passing),
        ];
        let ours = holder("edge-1", "app", "api-1");
        let draining = holder("edge-2", "app", "api-2");
        let starting = holder("edge-4", "app", "api-4");
        // api-2 holds a slot and health shows it in maintenance: one instance in the way, not
        // two; api-3 is critical without a slot; our own slot is not counted.
        assert_eq!(
            in_the_way(&peers, &[ours.as_str(), draining.as_str()], "api-1"),
            ["api-3 (critical)", draining.as_str()]
        );
        // A holder not yet in maintenance counts by its slot.
        assert_eq!(
            in_the_way(&peers, &[ours.as_str(), starting.as_str()], "api-1"),
            ["api-2 (maintenance)", "api-3 (critical)", starting.as_str()]
        );
        assert!(in_the_way(&peers[..1], &[ours.as_str()], "api-1").is_empty());
    }

    #[test]
    fn a_slot_holder_names_its_service_instance() {
        let holder = holder("edge-1", "app", "api-1");
        assert_eq!(holder, "edge-1 (app) service_id=api-1");
        assert_eq!(holder_service_id(&holder), Some("api-1"));
        assert_eq!(holder_service_id("edge-1 (app)"), None);
    }

    #[test]
    fn critical_and_maintenance_peers_are_unavailable_and_self_is_not_counted() {
        let peers = [
            peer("api-1", Health::Critical),
            peer("api-2", Health::Passing),
            peer("api-3", Health::Maintenance),
            peer("api-4", Health::Warning),
        ];
        let ids = |list: Vec<&Peer>| list.into_iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(unavailable_peers(&peers, "api-2")), ["api-1", "api-3"]);
        assert_eq!(ids(unavailable_peers(&peers, "api-1")), ["api-3"]);
    }
}
