//! A gated change's turn in its group: wait while the group is halted, take one of its
//! `max_concurrent` slots, and, for a group that names a Consul service, wait until few enough
//! peers are unavailable and put this instance in maintenance. The apply path
//! ([`crate::apply`]) takes a turn before it stages a coordinated change and gives it back
//! afterwards, in every case; a turn never writes or reloads anything itself.

use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::consul::{ConsulFleet, MAINTENANCE_REASON};
use super::service::Admission;
use super::{Coordinator, Fleet, Halt, Slot};
use crate::backend::BackendError;
use crate::config::Resource;
use crate::config::coordination::{Coordination, ServiceCoordination};
use crate::retry::Backoff;
use crate::telemetry::Telemetry;

/// How long a change waits before trying again after Consul refused the service
/// coordination (the agent down, a token without `service:write`).
const WAIT_AFTER_ERROR: std::time::Duration = std::time::Duration::from_secs(2);

/// Where one resource queues for turns: its group, and for a service group which instance this
/// is (looked up once per change).
pub struct Queue<'a> {
    coordinator: &'a Coordinator,
    coordination: &'a Coordination,
    fleet: &'a Fleet,
    resource: &'a str,
    service: Option<ServiceTurn<'a>>,
}

/// A slot held, and the service instance in maintenance when the group names a service.
pub struct Turn<'a> {
    queue: &'a Queue<'a>,
    slot: Slot,
}

impl<'a> Queue<'a> {
    /// The queue of `resource`'s group; `None` when the resource is not coordinated (or the
    /// backend is not shared), or on shutdown while this instance's service id is looked up.
    pub async fn join(
        fleet: &'a Fleet,
        resource: &'a Resource,
        shutdown: &CancellationToken,
    ) -> Option<Queue<'a>> {
        let (coordination, coordinator) = resource
            .coordination
            .as_ref()
            .zip(fleet.coordinator.as_ref())?;
        let name = resource.name.as_str();
        // A group that names a Consul service counts its unhealthy instances and drains this one.
        let service = match (&coordination.service, coordinator) {
            (Some(service), Coordinator::Consul(consul)) => {
                let self_id = tokio::select! {
                    id = resolve_self(consul, service, name) => id,
                    _ = shutdown.cancelled() => return None,
                };
                Some(ServiceTurn {
                    consul,
                    service,
                    self_id,
                })
            }
            _ => None,
        };
        Some(Queue {
            coordinator,
            coordination,
            fleet,
            resource: name,
            service,
        })
    }

    pub fn group(&self) -> &str {
        &self.coordination.group
    }

    /// Waits for a turn: a pause of up to the group's jitter, enough healthy peers, a slot, and
    /// the service instance in maintenance. `None` on shutdown.
    pub async fn take(
        &'a self,
        telemetry: &Telemetry,
        shutdown: &CancellationToken,
    ) -> Option<Turn<'a>> {
        let name = self.resource;
        let group = self.group();
        loop {
            let pause = super::jitter(self.coordination.jitter);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return None,
            }
            if let Some(turn) = &self.service {
                tokio::select! {
                    () = turn.wait_for_peers(name) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
            let holder = match &self.service {
                // The service id lets `terad rollout` tell a live change from a killed one.
                Some(turn) => super::service::holder(&self.fleet.instance, name, &turn.self_id),
                None => format!("{} ({name})", self.fleet.instance),
            };
            let started = Instant::now();
            let slot = tokio::select! {
                taken = take_slot(self.coordinator, self.coordination, &holder, name, telemetry) => taken,
                _ = shutdown.cancelled() => return None,
            };
            if let Some(turn) = &self.service {
                match turn.enter(self.coordinator, self.coordination, name).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Someone became unavailable between the wait and the slot: give the
                        // slot back and wait again.
                        slot.release().await;
                        continue;
                    }
                    Err(err) => {
                        error!(resource = name, service = %turn.service.name, error = %err, "cannot put the service instance in maintenance; the change waits");
                        slot.release().await;
                        tokio::select! {
                            _ = tokio::time::sleep(WAIT_AFTER_ERROR) => {}
                            _ = shutdown.cancelled() => return None,
                        }
                        continue;
                    }
                }
            }
            telemetry.slot_waited(group, started.elapsed());
            info!(
                resource = name,
                group,
                waited_ms = started.elapsed().as_millis() as u64,
                "coordination slot taken"
            );
            return Some(Turn { queue: self, slot });
        }
    }
}

impl Turn<'_> {
    pub fn group(&self) -> &str {
        self.queue.group()
    }

    /// Cancelled when the slot's lease expires: another instance may take the slot, so past that
    /// point the change must not go live.
    pub fn lost(&self) -> &CancellationToken {
        self.slot.lost()
    }

    /// After the swap a lost slot cannot be undone: say so, so that an operator can see that two
    /// instances may have been mid-change at once.
    pub fn warn_if_lost(&self, telemetry: &Telemetry) {
        if self.slot.is_lost() {
            error!(
                resource = self.queue.resource,
                group = self.group(),
                "the coordination slot's lease expired during the reload or health check; another instance may have started its change meanwhile"
            );
            telemetry.slot_lost(self.group(), false);
        }
    }

    /// Stops every instance of the group until an operator resumes it: this change was rolled
    /// back.
    pub async fn halt(&self, hash: String, reason: String) {
        let group = self.group();
        let resource = self.queue.resource;
        let marker = Halt::new(&self.queue.fleet.instance, resource, hash, reason);
        match super::halt(self.queue.coordinator, group, &marker).await {
            Ok(()) => warn!(
                resource,
                group, "group halted; clear with `terad rollout resume {group}`"
            ),
            Err(err) => error!(resource, group, error = %err, "cannot set the halt marker"),
        }
    }

    /// Gives the turn back: the service instance leaves maintenance (unless `stay_drained`: a
    /// rolled-back change whose restored version is unhealthy too), then the slot is released.
    pub async fn leave(self, stay_drained: Option<String>) {
        if let Some(turn) = &self.queue.service {
            turn.leave(self.queue.resource, stay_drained).await;
        }
        self.slot.release().await;
    }
}

/// The service this instance takes turns in, and which of its instances it is.
struct ServiceTurn<'a> {
    consul: &'a ConsulFleet,
    service: &'a ServiceCoordination,
    self_id: String,
}

/// This instance's service id; retried while Consul cannot say (the agent not up yet, or the
/// service not registered yet), logging why.
async fn resolve_self(
    consul: &ConsulFleet,
    service: &ServiceCoordination,
    resource: &str,
) -> String {
    let mut backoff = Backoff::new(Backoff::FLEET);
    loop {
        match super::service::self_id(consul, service).await {
            Ok(id) => return id,
            Err(err) => {
                let delay = backoff.next_delay();
                warn!(resource, service = %service.name, error = %err, retry_in_ms = delay.as_millis() as u64, "cannot tell which instance of the service this is");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

impl ServiceTurn<'_> {
    /// Until few enough peers are unavailable; store errors are retried with backoff.
    async fn wait_for_peers(&self, resource: &str) {
        let mut backoff = Backoff::new(Backoff::FLEET);
        while let Err(err) =
            super::service::wait_for_peers(self.consul, self.service, &self.self_id, resource).await
        {
            let delay = backoff.next_delay();
            warn!(resource, service = %self.service.name, error = %err, retry_in_ms = delay.as_millis() as u64, "cannot read the service's health");
            tokio::time::sleep(delay).await;
        }
    }

    /// Under a slot: counts again and, when the change may start, puts this instance in
    /// maintenance. `Ok(false)`: someone else is unavailable now.
    async fn enter(
        &self,
        coordinator: &Coordinator,
        coordination: &Coordination,
        resource: &str,
    ) -> Result<bool, BackendError> {
        if let Admission::Wait { in_the_way } = super::service::may_start(
            coordinator,
            self.consul,
            coordination,
            self.service,
            &self.self_id,
        )
        .await?
        {
            let who = in_the_way.join(", ");
            info!(resource, service = %self.service.name, unavailable = %who, "another instance became unavailable; waiting again");
            return Ok(false);
        }
        self.consul
            .maintenance(
                &self.self_id,
                true,
                &format!("{MAINTENANCE_REASON}{resource}"),
            )
            .await?;
        info!(resource, service = %self.service.name, service_id = %self.self_id, "service instance in maintenance for the change");
        Ok(true)
    }

    /// Leaves maintenance after the change, unless `stay_drained` says why not (the restored
    /// version is unhealthy too: an unhealthy instance stays drained, which is the safe state).
    async fn leave(&self, resource: &str, stay_drained: Option<String>) {
        if let Some(reason) = stay_drained {
            error!(resource, service = %self.service.name, service_id = %self.self_id, error = %reason, "the restored version is unhealthy too; the service instance stays in maintenance");
            return;
        }
        let mut backoff = Backoff::new(Backoff::FLEET);
        for _ in 0..5 {
            match self.consul.maintenance(&self.self_id, false, "").await {
                Ok(()) => {
                    info!(resource, service = %self.service.name, service_id = %self.self_id, "service instance out of maintenance");
                    return;
                }
                Err(err) => {
                    let delay = backoff.next_delay();
                    warn!(resource, service_id = %self.self_id, error = %err, retry_in_ms = delay.as_millis() as u64, "cannot take the service instance out of maintenance");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        error!(resource, service_id = %self.self_id, "the service instance stays in maintenance: Consul refused to take it out; clear it with `consul maint -disable -service {}`", self.self_id);
    }
}

/// Waits out a halt, then takes a slot; a halt set meanwhile gives the slot back and waits again.
/// Store errors are retried with backoff: the change waits, it is not dropped.
async fn take_slot(
    coordinator: &Coordinator,
    coordination: &Coordination,
    holder: &str,
    resource: &str,
    telemetry: &Telemetry,
) -> Slot {
    let group = coordination.group.as_str();
    let mut backoff = Backoff::new(Backoff::FLEET);
    loop {
        let attempt = async {
            if super::halted(coordinator, group).await?.is_some() {
                telemetry.group_halted(group, true);
                super::wait_until_resumed(coordinator, group, resource).await?;
                telemetry.group_halted(group, false);
            }
            let slot = super::acquire(coordinator, coordination, holder).await?;
            // A holder before us may have halted the group just before releasing its slot.
            if super::halted(coordinator, group).await?.is_some() {
                slot.release().await;
                return Ok(None);
            }
            Ok::<_, BackendError>(Some(slot))
        };
        match attempt.await {
            Ok(Some(slot)) => return slot,
            Ok(None) => continue,
            Err(err) => {
                let delay = backoff.next_delay();
                warn!(resource, group, error = %err, retry_in_ms = delay.as_millis() as u64, "cannot take a coordination slot");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
