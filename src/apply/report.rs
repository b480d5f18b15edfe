//! An [`Outcome`] into logs and metrics: the one place that says what applying a render did.
//! (The steps of a gated change — a slot taken, a health check, a rollback — log as they
//! happen; their result is reported here like any other.)

use tracing::{debug, error};

use super::{Outcome, Reload};
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
        Outcome::Updated { checked_in, reload } => {
            telemetry.synced(name, SyncLabel::Updated);
            if let Some(took) = checked_in {
                telemetry.checked(name, true, *took);
            }
            if let Reload::Failed(error) = reload {
                error!(resource = %name, error = %error, "the reload failed; retrying it");
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
        Outcome::Failed { error, retry_in } => {
            telemetry.synced(name, SyncLabel::Failed);
            match retry_in {
                Some(delay) => {
                    error!(resource = %name, dest = %dest, error = %error, retry_in_ms = delay.as_millis() as u64, "sync failed")
                }
                None => error!(resource = %name, dest = %dest, error = %error, "sync failed"),
            }
        }
        Outcome::SlotLost { group, error } => {
            error!(resource = %name, group = %group, error = %error, "change aborted");
            telemetry.slot_lost(group, true);
        }
        Outcome::Stopped => {}
    }
}
