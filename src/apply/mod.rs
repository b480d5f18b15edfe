//! The apply path: how one render of one resource becomes a live, reloaded file. Every mode
//! (one-shot, polling, watching) and every policy (direct, coordinated, health-gated) goes
//! through [`Pipeline::apply`]; nothing else writes a destination or runs a reload.
//!
//! ```text
//!  render ──► compare ──► stage ──► check ──► [runtime] ──► commit ──► reload ──► health
//!  render.rs  stage.rs    stage.rs  stage.rs   runtime.rs    stage.rs   reload.rs  fleet/health.rs
//!                  ▲                                                        │           │
//!                  └── policy: a coordinated change takes a turn of its group first
//!                      (fleet/turn.rs) and gives it back after; a health-gated one
//!                      reloads at once, checks health and rolls back (here).
//! ```
//!
//! `[runtime]`: a resource with `[template.haproxy]` whose change is only `server` lines has
//! HAProxy change them through its runtime API, and then needs no reload ([`Reload::Runtime`]);
//! every other change, or a failure of the API, reloads as without it.
//!
//! - [`render`]: the template against one state of the store, bounded in time.
//! - [`stage`]: compare with the destination, stage next to it, `check_cmd`, rename into place.
//! - [`runtime`]: HAProxy's runtime API between the check and the commit, or why it reloads.
//! - [`reload`]: reload groups: resources sharing a reload are reloaded once, after all of them
//!   are written; a gated change runs its group's reload at once instead.
//! - [`report`]: an [`Outcome`] into logs and metrics, in one place.

pub mod reload;
pub mod render;
pub mod report;
pub mod runtime;
pub mod stage;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use self::reload::{Member, ReloadError};
pub use self::runtime::ReloadReason;
use self::runtime::Runtime;
use self::stage::{AbortIf, Direct, StageError, Staging, SyncOptions};
use crate::config::Resource;
use crate::fleet::Fleet;
use crate::fleet::turn::{Queue, Turn};
use crate::retry::Backoff;
use crate::telemetry::Telemetry;

/// How applying one render ended.
#[derive(Debug)]
pub enum Outcome {
    /// The destination already had this content, mode and owner.
    Unchanged,
    /// `--noop`: a change is pending; its diff was printed.
    Pending,
    /// The destination was replaced.
    Updated {
        /// How long `check_cmd` took, when it ran.
        checked_in: Option<Duration>,
        reload: Reload,
        /// A resource with `[template.haproxy]` that reloads after all: why the runtime API did
        /// not make the change.
        reload_reason: Option<ReloadReason>,
    },
    /// The same render as the one `check_cmd` (or the health check) refused last: the data
    /// must change first.
    Skipped,
    /// `check_cmd` refused the render; the destination is unchanged.
    Rejected(StageError),
    /// Written and reloaded, found unhealthy, and rolled back.
    RolledBack { checked_in: Option<Duration> },
    /// Something else failed; the destination holds its previous content. Retried after
    /// `retry_in` with the same render unless a newer one comes first.
    Failed {
        error: ApplyError,
        retry_in: Option<Duration>,
        /// HAProxy's servers were changed through its runtime API before the commit failed:
        /// HAProxy is ahead of the file, and a reload brings it back to the file.
        haproxy_ahead: bool,
    },
    /// The coordination slot's lease expired before the swap; nothing changed, and the change
    /// takes a new turn.
    SlotLost { group: String, error: StageError },
    /// Shutdown came first; nothing changed.
    Stopped,
}

/// What happened to the reload of an updated file.
#[derive(Debug)]
pub enum Reload {
    /// Left to the resource's reload groups, which run it once every member is written.
    Coalesced,
    /// Run at once (a gated change), and healthy after it when there is a health check.
    Done,
    /// Run at once and failed (a gated change without a health check): the groups retry it.
    Failed(ReloadError),
    /// None: HAProxy's servers were changed through its runtime API, and verified.
    Runtime { applied: crate::haproxy::Applied },
    /// None: the file changed in nothing HAProxy runs (comments, blank lines, the order of
    /// `server` lines), for a resource with `[template.haproxy]`.
    Unneeded,
}

impl Outcome {
    /// Whether the resource's reload groups must reload: the file changed and nobody reloaded
    /// it yet (or the reload failed and must be retried), or HAProxy took a change at runtime
    /// that the file did not (a reload makes it run the file again).
    pub fn wants_reload(&self) -> bool {
        matches!(
            self,
            Outcome::Updated {
                reload: Reload::Coalesced | Reload::Failed(_),
                ..
            } | Outcome::Failed {
                haproxy_ahead: true,
                ..
            }
        )
    }

    /// Whether the run counts this as a failure (one-shot's exit status).
    pub fn failed(&self) -> bool {
        matches!(
            self,
            Outcome::Rejected(_)
                | Outcome::RolledBack { .. }
                | Outcome::Failed { .. }
                | Outcome::SlotLost { .. }
                | Outcome::Stopped
        )
    }
}

/// Why applying a render failed, when it was not the check.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Fs(#[from] crate::fs::FsError),
}

/// Whether coordination and health checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Watch and poll modes: a resource with `[template.coordination]` takes turns with its
    /// group, one with a health check is rolled back when unhealthy.
    Gated,
    /// One-shot: the service is not running yet (the entrypoint starts it after terad exits),
    /// so there is nothing to take turns for and no health to check.
    Direct,
}

/// How failures are handled: retried with backoff in watch and poll modes, reported in one-shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    WithBackoff,
    Never,
}

/// One resource's way from a render to a live, reloaded file, with what it remembers between
/// renders: the last render the check refused, and the backoff of a failing write.
pub struct Pipeline {
    resource: Arc<Resource>,
    member: Arc<Member>,
    options: SyncOptions,
    telemetry: Arc<Telemetry>,
    fleet: Arc<Fleet>,
    policy: Policy,
    retry: Retry,
    /// A render check_cmd rejected (or that failed its health check), by content hash: not
    /// tried again until the data changes.
    rejected: Option<u64>,
    backoff: Backoff,
}

/// Everything a [`Pipeline`] needs besides its resource.
pub struct PipelineSetup {
    pub member: Arc<Member>,
    pub options: SyncOptions,
    pub telemetry: Arc<Telemetry>,
    pub fleet: Arc<Fleet>,
    pub policy: Policy,
    pub retry: Retry,
}

impl Pipeline {
    pub fn new(resource: Arc<Resource>, setup: PipelineSetup) -> Pipeline {
        Pipeline {
            resource,
            member: setup.member,
            options: setup.options,
            telemetry: setup.telemetry,
            fleet: setup.fleet,
            policy: setup.policy,
            retry: setup.retry,
            rejected: None,
            backoff: Backoff::new(Backoff::BACKEND),
        }
    }

    pub fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }

    /// Applies `content`, reports the outcome (logs, metrics) and returns it. The caller tells
    /// the resource's reload groups afterwards ([`Member::applied`] with
    /// [`Outcome::wants_reload`]).
    pub async fn apply(&mut self, content: Arc<Vec<u8>>, shutdown: &CancellationToken) -> Outcome {
        // Hashing a large render costs milliseconds on the way to the file, so only when there
        // is a rejected render to compare with; a new rejection hashes its own content.
        let outcome = if self
            .rejected
            .is_some_and(|hash| hash == content_hash(&content))
        {
            Outcome::Skipped
        } else if self.is_gated() {
            self.gated(content, shutdown).await
        } else {
            self.change(&content, None).await
        };
        self.remember(&outcome);
        report::report(&self.resource, &outcome, &self.telemetry);
        outcome
    }

    /// Coordinated or health-checked changes reload at once and may roll back.
    fn is_gated(&self) -> bool {
        self.policy == Policy::Gated
            && (self.resource.coordination.is_some() || self.resource.health.is_some())
            && !self.options.noop
            && !self.options.sync_only
    }

    /// What the pipeline keeps of an outcome for the next render.
    fn remember(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Unchanged | Outcome::Updated { .. } | Outcome::Pending => {
                self.rejected = None;
                self.backoff.reset();
            }
            Outcome::Skipped
            | Outcome::Failed { .. }
            | Outcome::SlotLost { .. }
            | Outcome::Stopped => {}
            Outcome::Rejected(_) | Outcome::RolledBack { .. } => {}
        }
    }

    /// A failure that may pass (an I/O error, a full disk, no descriptors left): when to try the
    /// same render again.
    fn failed(&mut self, error: impl Into<ApplyError>) -> Outcome {
        let retry_in = match self.retry {
            Retry::WithBackoff => Some(self.backoff.next_delay()),
            Retry::Never => None,
        };
        Outcome::Failed {
            error: error.into(),
            retry_in,
            haproxy_ahead: false,
        }
    }

    /// Compare, stage, check and commit `content`; under a turn, only while the turn's slot
    /// holds.
    async fn change(&mut self, content: &Arc<Vec<u8>>, turn: Option<&Turn<'_>>) -> Outcome {
        let resource = Arc::clone(&self.resource);
        let abort = turn.map(|turn| AbortIf {
            token: turn.lost().clone(),
            reason: "the coordination slot's lease expired before the swap; taking a new slot",
        });
        let will_check = !self.options.sync_only && resource.check_cmd.is_some();
        // The runtime API compares the live file with the checked render before the commit.
        let haproxy = resource
            .haproxy
            .as_ref()
            .filter(|_| !self.options.sync_only);
        let direct = if will_check || haproxy.is_some() {
            Direct::Stage
        } else {
            Direct::Commit(abort.clone())
        };
        let lost = |error| Outcome::SlotLost {
            group: turn.map(|turn| turn.group().to_owned()).unwrap_or_default(),
            error,
        };
        let staging = match stage::stage(&resource, Arc::clone(content), self.options, direct).await
        {
            Ok(staging) => staging,
            Err(error @ StageError::Aborted { .. }) => return lost(error),
            Err(error) => return self.failed(error),
        };
        let (committed, checked_in, runtime) = match staging {
            Staging::Unchanged => return Outcome::Unchanged,
            Staging::Pending => return Outcome::Pending,
            Staging::Committed(committed) => (committed, None, None),
            Staging::Staged(staged) => {
                let checked_in = match staged.check(&resource, self.options).await {
                    Ok(took) => took,
                    Err(error) => {
                        // The data must change first: the same render would be refused again.
                        self.rejected = Some(content_hash(content));
                        return Outcome::Rejected(error);
                    }
                };
                // The check may have taken long: the last moment to learn the change must not
                // go live.
                if let Some(abort) = abort.filter(|abort| abort.token.is_cancelled()) {
                    return lost(StageError::Aborted {
                        dest: resource.dest.clone(),
                        reason: abort.reason,
                    });
                }
                let runtime = match haproxy {
                    Some(haproxy) => Some(
                        runtime::apply(
                            haproxy,
                            staged.old_content(),
                            content,
                            self.member.reload_outstanding(),
                        )
                        .await,
                    ),
                    None => None,
                };
                match staged.commit().await {
                    Ok(committed) => (committed, checked_in, runtime),
                    Err(error) => {
                        let mut outcome = self.failed(error);
                        if let Outcome::Failed { haproxy_ahead, .. } = &mut outcome {
                            *haproxy_ahead = matches!(runtime, Some(Runtime::Applied(_)));
                        }
                        return outcome;
                    }
                }
            }
        };
        committed.log(&resource, Arc::clone(content));
        let (reload, reload_reason) = match runtime {
            None => (Reload::Coalesced, None),
            Some(Runtime::Applied(applied)) => (Reload::Runtime { applied }, None),
            Some(Runtime::Unneeded) => (Reload::Unneeded, None),
            Some(Runtime::Reload(reason)) => (Reload::Coalesced, Some(reason)),
        };
        Outcome::Updated {
            checked_in,
            reload,
            reload_reason,
        }
    }

    /// The gated way a change goes live, for resources with `[template.coordination]` or a
    /// health check: take a turn of the group (waiting while it is halted), check and swap,
    /// reload at once, check health; on failure restore the previous file, reload again, halt
    /// the group. The turn is given back at the end in every case.
    async fn gated(&mut self, mut content: Arc<Vec<u8>>, shutdown: &CancellationToken) -> Outcome {
        let resource = Arc::clone(&self.resource);
        // Nothing to coordinate when the file already has this content; the direct path still
        // fixes a changed mode or owner.
        match stage::current_content(&resource).await {
            Ok(Some(current)) if current == *content => {
                return self.change(&content, None).await;
            }
            Ok(_) => {}
            Err(error) => return self.failed(error),
        }
        let fleet = Arc::clone(&self.fleet);
        let queue = Queue::join(&fleet, &resource, shutdown).await;
        if resource.coordination.is_some() && fleet.coordinator.is_some() && queue.is_none() {
            return Outcome::Stopped;
        }
        loop {
            let turn = match &queue {
                Some(queue) => match queue.take(&self.telemetry, shutdown).await {
                    Some(turn) => Some(turn),
                    None => return Outcome::Stopped,
                },
                None => None,
            };
            if turn.is_some()
                && let Some(newer) = self.member.newer()
            {
                content = newer;
            }
            // The file as it is, for the rollback; read under the turn: it may have been edited
            // while this change waited.
            let previous = match stage::current_content(&resource).await {
                Ok(previous) => Previous(previous),
                Err(error) => {
                    if let Some(turn) = turn {
                        turn.leave(None).await;
                    }
                    return self.failed(error);
                }
            };
            let (outcome, stay_drained) =
                self.gated_change(&content, turn.as_ref(), previous).await;
            if let Some(turn) = turn {
                turn.leave(stay_drained).await;
            }
            if !matches!(outcome, Outcome::SlotLost { .. }) {
                return outcome;
            }
            // Nothing went live: report it, and ask for a turn again, at the back of the queue.
            report::report(&resource, &outcome, &self.telemetry);
        }
    }

    /// Check and swap, reload, health check; roll back on an unhealthy result. Also returns why
    /// the service instance must stay drained, when it must.
    async fn gated_change(
        &mut self,
        content: &Arc<Vec<u8>>,
        turn: Option<&Turn<'_>>,
        previous: Previous,
    ) -> (Outcome, Option<String>) {
        let resource = Arc::clone(&self.resource);
        let name = resource.name.as_str();
        if resource.health.is_some() {
            previous.back_up(&resource).await;
        }
        let outcome = self.change(content, turn).await;
        let Outcome::Updated {
            checked_in,
            reload,
            reload_reason,
        } = outcome
        else {
            return (outcome, None);
        };

        // A change HAProxy took at runtime replaces the reload; the health check still follows,
        // and a rollback restores the file and reloads.
        let at_runtime = matches!(reload, Reload::Runtime { .. } | Reload::Unneeded);
        let reloaded = match at_runtime {
            true => Ok(()),
            false => reload_now(&self.member).await,
        };
        let Some(health) = &resource.health else {
            if let Some(turn) = turn {
                turn.warn_if_lost(&self.telemetry);
            }
            let reload = match reloaded {
                Ok(()) if at_runtime => reload,
                Ok(()) => Reload::Done,
                Err(error) => Reload::Failed(error),
            };
            let outcome = Outcome::Updated {
                checked_in,
                reload,
                reload_reason,
            };
            return (outcome, None);
        };
        let verdict = match reloaded {
            Ok(()) => crate::fleet::health::probe(health, name)
                .await
                .map_err(|unhealthy| unhealthy.to_string()),
            Err(error) => Err(format!("the reload failed: {error}")),
        };
        if let Some(turn) = turn {
            turn.warn_if_lost(&self.telemetry);
        }
        self.telemetry.health_checked(name, verdict.is_ok());
        let reason = match verdict {
            Ok(()) => {
                let (reload, after) = match at_runtime {
                    true => (reload, "the runtime change"),
                    false => (Reload::Done, "the reload"),
                };
                info!(resource = name, "healthy after {after}");
                let outcome = Outcome::Updated {
                    checked_in,
                    reload,
                    reload_reason,
                };
                return (outcome, None);
            }
            Err(reason) => reason,
        };

        let hash = crate::redact::content_hash(content);
        error!(resource = name, dest = %resource.dest.display(), hash = %hash, error = %reason, "unhealthy after the change; rolling back");
        self.rejected = Some(content_hash(content));
        self.restore(previous).await;
        if let Some(turn) = turn {
            turn.halt(hash, reason).await;
        }
        // An instance drained for the change stays drained while the restored version is
        // unhealthy too.
        let stay_drained = match turn {
            Some(_) => crate::fleet::health::probe(health, name)
                .await
                .err()
                .map(|unhealthy| unhealthy.to_string()),
            None => None,
        };
        (Outcome::RolledBack { checked_in }, stay_drained)
    }

    /// Puts the previous file back (or removes a file the change created) and reloads.
    async fn restore(&self, previous: Previous) {
        let resource = &self.resource;
        let name = resource.name.as_str();
        let restored = match previous.0 {
            Some(previous) => {
                let options = SyncOptions {
                    sync_only: true,
                    ..self.options
                };
                let content = Arc::new(previous);
                match stage::stage(
                    resource,
                    Arc::clone(&content),
                    options,
                    Direct::Commit(None),
                )
                .await
                {
                    Ok(Staging::Committed(committed)) => {
                        committed.log(resource, content);
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(error) => Err(error.to_string()),
                }
            }
            None => stage::remove_destination(resource)
                .await
                .map_err(|error| error.to_string()),
        };
        match restored {
            Ok(()) => {
                if let Err(error) = reload_now(&self.member).await {
                    error!(resource = name, error = %error, "reload after the rollback failed");
                }
                info!(resource = name, dest = %resource.dest.display(), "previous file restored");
            }
            Err(message) => {
                error!(resource = name, error = %message, "cannot restore the previous file")
            }
        }
        self.telemetry.rolled_back(name);
    }
}

/// The destination's content before a gated change, for the rollback.
struct Previous(Option<Vec<u8>>);

impl Previous {
    /// Keeps the previous file next to the destination for people too (the rollback itself
    /// works from memory).
    async fn back_up(&self, resource: &Resource) {
        let Some(previous) = &self.0 else { return };
        let dest = resource.dest.clone();
        let backup = previous.clone();
        match tokio::task::spawn_blocking(move || crate::fs::write_backup(&dest, &backup)).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(err)) => {
                warn!(resource = %resource.name, error = %err, "cannot keep a backup of the previous file; rolling back from memory")
            }
        }
    }
}

/// Runs the resource's reloads now (each after any run of it in progress).
async fn reload_now(member: &Member) -> Result<(), ReloadError> {
    for group in member.groups() {
        group.reload_now().await?;
    }
    Ok(())
}

fn content_hash(content: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    hasher.finish()
}
