//! An [`Outcome`] into logs and metrics: the one place that says what applying a render did.
//! (The steps of a gated change — a slot taken, a health check, a rollback — log as they
//! happen; their result is reported here like any other.)

use tracing::{debug, error, info, warn};

use super::{Outcome, Reload, ReloadReason};
use crate::apply::stage::StageError;
use crate::config::Resource;
use crate::telemetry::{SyncLabel, Telemetry};

pub fn report(resource: &Resource, outcome: &Outcome, telemetry: &Telemetry) {
    let name = resource.name.as_str();
    let dest = resource.dest.display();
    match outcome {
        Outcome::Unchanged => {
            debug!(resource = %name, dest = %dest, "config unchanged");
            telemetry.synced(name, SyncLabel::Unchanged);
        }
        Outcome::Pending => {
            tracing::info!(resource = %name, dest = %dest, "noop: change not written");
            telemetry.synced(name, SyncLabel::Pending);
        }
        Outcome::Updated {
            checked_in,
            reload,
            reload_reason,
        } => {
            telemetry.synced(name, SyncLabel::Updated);
            if let Some(took) = checked_in {
                telemetry.checked(name, true, *took);
            }
            match reload {
                Reload::Failed(error) => {
                    error!(resource = %name, error = %error, "the reload failed; retrying it")
                }
                Reload::Runtime { applied } => {
                    telemetry.haproxy_runtime_changed(name);
                    info!(
                        resource = %name,
                        commands = applied.commands,
                        backends = applied.backends,
                        sessions_shut_down = applied.sessions_shut_down,
                        took_ms = applied.elapsed.as_millis() as u64,
                        "haproxy's servers changed through its runtime api; no reload"
                    );
                }
                Reload::Unneeded => info!(
                    resource = %name,
                    "nothing haproxy runs changed (comments, blank lines, the order of server lines); no reload"
                ),
                Reload::Coalesced | Reload::Done => {}
            }
            if let Some(reason) = reload_reason {
                report_reload_reason(name, reason, telemetry);
            }
        }
        Outcome::Skipped => {
            debug!(
                resource = %name,
                "same render as the one check_cmd rejected; not checked again"
            );
        }
        Outcome::Rejected(error) => {
            telemetry.synced(name, SyncLabel::Failed);
            if let StageError::Check { took, .. } = error {
                telemetry.checked(name, false, *took);
            }
            error!(resource = %name, dest = %dest, error = %error, "sync failed");
        }
        Outcome::RolledBack { checked_in } => {
            // The change went live before it was rolled back.
            telemetry.synced(name, SyncLabel::Updated);
            if let Some(took) = checked_in {
                telemetry.checked(name, true, *took);
            }
        }
        Outcome::Failed {
            error,
            retry_in,
            haproxy_ahead,
        } => {
            telemetry.synced(name, SyncLabel::Failed);
            match retry_in {
                Some(delay) => {
                    error!(resource = %name, dest = %dest, error = %error, retry_in_ms = delay.as_millis() as u64, "sync failed")
                }
                None => error!(resource = %name, dest = %dest, error = %error, "sync failed"),
            }
            if *haproxy_ahead {
                telemetry.haproxy_runtime_fell_back(name, "uncommitted");
                warn!(
                    resource = %name,
                    reason = "uncommitted",
                    "haproxy took the change through its runtime api, but the file was not written; reloading haproxy so that it runs the file on disk"
                );
            }
        }
        Outcome::SlotLost { group, error } => {
            error!(resource = %name, group = %group, error = %error, "change aborted");
            telemetry.slot_lost(group, true);
        }
        Outcome::Stopped => {}
    }
}

/// Why a resource with `[template.haproxy]` reloads: a failure of the runtime API is a warning
/// and counts as a fallback; a change it does not make is what reloads are for.
fn report_reload_reason(name: &str, reason: &ReloadReason, telemetry: &Telemetry) {
    match reason {
        ReloadReason::Fallback(error) => {
            telemetry.haproxy_runtime_fell_back(name, error.reason());
            warn!(
                resource = %name,
                reason = error.reason(),
                error = %error,
                "haproxy's runtime api failed; falling back to a reload"
            );
        }
        ReloadReason::Structural(structural) => info!(
            resource = %name,
            line = structural.line(),
            change = %structural,
            "haproxy reloads: the change is not one its runtime api makes"
        ),
        ReloadReason::NoLiveFile | ReloadReason::NotText | ReloadReason::ReloadOutstanding => {
            info!(resource = %name, why = %reason, "haproxy reloads")
        }
    }
}
