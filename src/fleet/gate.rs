//! The gated way a change goes live, for resources with `[template.coordination]` or a health
//! check: take a slot of the group (waiting while the group is halted), check and swap, reload,
//! check health; on failure restore the previous file, reload again, halt the group. The slot
//! is given back at the end in every case.

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, info, warn};

use super::consul::ConsulFleet;
use super::{Coordinator, Fleet, Halt, Slot};
use crate::config::Resource;
use crate::config::coordination::ServiceCoordination;
use crate::reload::Group;
use crate::resource::{self, SyncError, SyncOptions, SyncOutcome};
use crate::retry::Backoff;
use crate::telemetry::{SyncLabel, Telemetry};

/// How a gated change ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Gated {
    /// The destination already had this content.
    Unchanged,
    /// Written, reloaded and healthy.
    Applied,
    /// `check_cmd` refused it; nothing changed.
    Rejected,
    /// Written and reloaded, found unhealthy, and rolled back.
    RolledBack,
    /// Something else failed (logged); the destination holds its previous or the new content.
    Failed,
    /// Shutdown while waiting for a slot or a resume; nothing changed.
    Stopped,
    /// The slot's lease expired before the swap; nothing changed and the change is retried
    /// with a new slot.
    SlotLost,
}

pub struct GateContext<'a> {
    pub resource: &'a Arc<Resource>,
    pub groups: &'a [Arc<Group>],
    pub options: SyncOptions,
    pub telemetry: &'a Telemetry,
    pub fleet: &'a Fleet,
    pub shutdown: &'a tokio_util::sync::CancellationToken,
}

/// Applies `content` through the gate. `newest` hands over a newer render that arrived while
/// this one waited for a slot (it replaces the waiting one). Returns the outcome and the content
/// it concerns.
pub async fn apply(
    cx: &GateContext<'_>,
    mut content: Arc<Vec<u8>>,
    newest: impl Fn() -> Option<Arc<Vec<u8>>>,
) -> (Gated, Arc<Vec<u8>>) {
    let resource = cx.resource;
    let name = resource.name.as_str();
    // The file as it is, for the rollback. Re-read after waiting for a slot: it may have
    // been edited meanwhile.
    let mut previous = match resource::current_content(resource).await {
        Ok(Some(current)) if current == *content => {
            // Nothing to coordinate; a plain sync still fixes a changed mode or owner.
            return (plain_sync(cx, content.clone()).await, content);
        }
        Ok(previous) => previous,
        Err(err) => {
            error!(resource = name, error = %err, "sync failed");
            cx.telemetry.synced(name, SyncLabel::Failed);
            return (Gated::Failed, content);
        }
    };

    let coordination = resource
        .coordination
        .as_ref()
        .zip(cx.fleet.coordinator.as_ref());
    let Some((coordination, coordinator)) = coordination else {
        let outcome = gated_change(cx, &content, previous, None).await;
        return (outcome, content);
    };
    let group = coordination.group.as_str();
    // A group that names a Consul service counts its unhealthy instances and drains this one.
    let service = match (&coordination.service, coordinator) {
        (Some(service), Coordinator::Consul(consul)) => {
            let self_id = tokio::select! {
                id = resolve_self(consul, service, name) => id,
                _ = cx.shutdown.cancelled() => return (Gated::Stopped, content),
            };
            Some(ServiceTurn {
                consul,
                service,
                self_id,
            })
        }
        _ => None,
    };
    loop {
        let pause = super::jitter(coordination.jitter);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cx.shutdown.cancelled() => return (Gated::Stopped, content),
        }
        if let Some(turn) = &service {
            tokio::select! {
                () = turn.wait_for_peers(name) => {}
                _ = cx.shutdown.cancelled() => return (Gated::Stopped, content),
            }
        }
        let holder = match &service {
            // The service id lets `terad rollout` tell a live change from a killed one.
            Some(turn) => super::service::holder(&cx.fleet.instance, name, &turn.self_id),
            None => format!("{} ({name})", cx.fleet.instance),
        };
        let started = Instant::now();
        let slot = tokio::select! {
            taken = take_slot(coordinator, coordination, &holder, name, cx.telemetry) => taken,
            _ = cx.shutdown.cancelled() => return (Gated::Stopped, content),
        };
        if let Some(turn) = &service {
            match turn.enter(coordinator, coordination, name).await {
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
                        _ = cx.shutdown.cancelled() => return (Gated::Stopped, content),
                    }
                    continue;
                }
            }
        }
        cx.telemetry.slot_waited(group, started.elapsed());
        info!(
            resource = name,
            group,
            waited_ms = started.elapsed().as_millis() as u64,
            "coordination slot taken"
        );
        if let Some(newer) = newest() {
            content = newer;
        }
        previous = match resource::current_content(resource).await {
            Ok(previous) => previous,
            Err(err) => {
                error!(resource = name, error = %err, "sync failed");
                cx.telemetry.synced(name, SyncLabel::Failed);
                if let Some(turn) = &service {
                    turn.leave(cx, &Gated::Failed).await;
                }
                slot.release().await;
                return (Gated::Failed, content);
            }
        };
        let held = Held {
            group,
            coordinator,
            slot: &slot,
        };
        let outcome = gated_change(cx, &content, previous.take(), Some(held)).await;
        if let Some(turn) = &service {
            turn.leave(cx, &outcome).await;
        }
        slot.release().await;
        if outcome != Gated::SlotLost {
            return (outcome, content);
        }
        // Nothing went live: ask for a slot again, at the back of the queue.
    }
}

/// How long a change waits before trying again after Consul refused the service
/// coordination (the agent down, a token without `service:write`).
const WAIT_AFTER_ERROR: std::time::Duration = std::time::Duration::from_secs(2);

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
        coordination: &crate::config::coordination::Coordination,
        resource: &str,
    ) -> Result<bool, crate::backend::BackendError> {
        if let Err(who) = super::service::may_start(
            coordinator,
            self.consul,
            coordination,
            self.service,
            &self.self_id,
        )
        .await?
        {
            info!(resource, service = %self.service.name, unavailable = %who, "another instance became unavailable; waiting again");
            return Ok(false);
        }
        self.consul
            .maintenance(
                &self.self_id,
                true,
                &format!("{}{resource}", super::consul::MAINTENANCE_REASON),
            )
            .await?;
        info!(resource, service = %self.service.name, service_id = %self.self_id, "service instance in maintenance for the change");
        Ok(true)
    }

    /// Leaves maintenance after the change: at once unless it was rolled back, in which case
    /// only once the restored version is healthy (an unhealthy instance stays drained, which is
    /// the safe state, and says so).
    async fn leave(&self, cx: &GateContext<'_>, outcome: &Gated) {
        let resource = cx.resource.name.as_str();
        if *outcome == Gated::RolledBack
            && let Some(health) = &cx.resource.health
            && let Err(reason) = super::health::probe(health, resource).await
        {
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

/// The slot a coordinated change holds.
#[derive(Clone, Copy)]
struct Held<'a> {
    group: &'a str,
    coordinator: &'a Coordinator,
    slot: &'a Slot,
}

/// Waits out a halt, then takes a slot; a halt set meanwhile gives the slot back and waits again.
/// Store errors are retried with backoff: the change waits, it is not dropped.
async fn take_slot(
    coordinator: &Coordinator,
    coordination: &crate::config::coordination::Coordination,
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
            Ok::<_, crate::backend::BackendError>(Some(slot))
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

async fn plain_sync(cx: &GateContext<'_>, content: Arc<Vec<u8>>) -> Gated {
    let name = cx.resource.name.as_str();
    match resource::sync(cx.resource, content, cx.options).await {
        Ok(SyncOutcome::Updated { .. }) => {
            cx.telemetry.synced(name, SyncLabel::Updated);
            Gated::Applied
        }
        Ok(_) => {
            cx.telemetry.synced(name, SyncLabel::Unchanged);
            Gated::Unchanged
        }
        Err(err) => {
            error!(resource = name, error = %err, "sync failed");
            cx.telemetry.synced(name, SyncLabel::Failed);
            Gated::Failed
        }
    }
}

/// Check and swap, reload, health check; roll back on an unhealthy result.
async fn gated_change(
    cx: &GateContext<'_>,
    content: &Arc<Vec<u8>>,
    previous: Option<Vec<u8>>,
    held: Option<Held<'_>>,
) -> Gated {
    let resource = cx.resource;
    let name = resource.name.as_str();
    // The previous file is kept in memory for the rollback and next to the destination for
    // people.
    if resource.health.is_some()
        && let Some(previous) = &previous
    {
        let dest = resource.dest.clone();
        let backup = previous.clone();
        match tokio::task::spawn_blocking(move || crate::fs::write_backup(&dest, &backup)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                warn!(resource = name, error = %err, "cannot keep a backup of the previous file; rolling back from memory")
            }
            Err(_) => {}
        }
    }

    // Another instance may take a slot whose lease expired: past that point this change must
    // not go live.
    let abort = held.map(|held| resource::AbortIf {
        token: held.slot.lost().clone(),
        reason: "the coordination slot's lease expired before the swap; taking a new slot",
    });
    match resource::sync_unless(resource, Arc::clone(content), cx.options, abort).await {
        Ok(SyncOutcome::Updated { checked_in }) => {
            cx.telemetry.synced(name, SyncLabel::Updated);
            if let Some(took) = checked_in {
                cx.telemetry.checked(name, true, took);
            }
        }
        Ok(_) => {
            cx.telemetry.synced(name, SyncLabel::Unchanged);
            return Gated::Unchanged;
        }
        Err(err @ SyncError::Aborted { .. }) => {
            let group = held.map(|held| held.group).unwrap_or_default();
            error!(resource = name, group, error = %err, "change aborted");
            cx.telemetry.slot_lost(group, true);
            return Gated::SlotLost;
        }
        Err(err) => {
            cx.telemetry.synced(name, SyncLabel::Failed);
            let rejected = matches!(err, SyncError::Check { .. });
            if let SyncError::Check { took, .. } = &err {
                cx.telemetry.checked(name, false, *took);
            }
            error!(resource = name, dest = %resource.dest.display(), error = %err, "sync failed");
            return if rejected {
                Gated::Rejected
            } else {
                Gated::Failed
            };
        }
    }

    let reloaded = reload(cx.groups).await;
    let verdict = match (&resource.health, reloaded) {
        (None, reloaded) => {
            slot_still_held(cx, held);
            return if reloaded.is_ok() {
                Gated::Applied
            } else {
                Gated::Failed
            };
        }
        (Some(health), Ok(())) => super::health::probe(health, name).await,
        (Some(_), Err(message)) => Err(format!("the reload failed: {message}")),
    };
    slot_still_held(cx, held);
    cx.telemetry.health_checked(name, verdict.is_ok());
    let reason = match verdict {
        Ok(()) => {
            info!(resource = name, "healthy after the reload");
            return Gated::Applied;
        }
        Err(reason) => reason,
    };

    let hash = crate::redact::content_hash(content);
    error!(resource = name, dest = %resource.dest.display(), hash = %hash, error = %reason, "unhealthy after the change; rolling back");
    let restored = match previous {
        Some(previous) => {
            let options = SyncOptions {
                sync_only: true,
                ..cx.options
            };
            resource::sync(resource, Arc::new(previous), options)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        None => resource::remove_destination(resource)
            .await
            .map_err(|e| e.to_string()),
    };
    match restored {
        Ok(()) => {
            if let Err(message) = reload(cx.groups).await {
                error!(resource = name, error = %message, "reload after the rollback failed");
            }
            info!(resource = name, dest = %resource.dest.display(), "previous file restored");
        }
        Err(message) => {
            error!(resource = name, error = %message, "cannot restore the previous file")
        }
    }
    cx.telemetry.rolled_back(name);
    if let Some(Held {
        group, coordinator, ..
    }) = held
    {
        let marker = Halt::new(&cx.fleet.instance, name, hash, reason);
        match super::halt(coordinator, group, &marker).await {
            Ok(()) => warn!(
                resource = name,
                group, "group halted; clear with `terad rollout resume {group}`"
            ),
            Err(err) => error!(resource = name, group, error = %err, "cannot set the halt marker"),
        }
    }
    Gated::RolledBack
}

/// After the swap a lost slot cannot be undone: say so, so that an operator can see that two
/// instances may have been mid-change at once.
fn slot_still_held(cx: &GateContext<'_>, held: Option<Held<'_>>) {
    if let Some(held) = held
        && held.slot.is_lost()
    {
        error!(
            resource = %cx.resource.name,
            group = held.group,
            "the coordination slot's lease expired during the reload or health check; another instance may have started its change meanwhile"
        );
        cx.telemetry.slot_lost(held.group, false);
    }
}

/// Runs the resource's reloads now (each after any run of it in progress).
async fn reload(groups: &[Arc<Group>]) -> Result<(), crate::reload::ReloadError> {
    for group in groups {
        group.reload_now().await?;
    }
    Ok(())
}
