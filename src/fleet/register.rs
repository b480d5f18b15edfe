//! Self-registration: `register` keeps `KEY = VALUE` in the store bound to an etcd lease or a Consul session: it
//! is written once the health command passes, withdrawn while it fails, deleted on SIGTERM or
//! SIGINT, and gone by itself when the process dies and the lease or session expires.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{Coordinator, Lease};
use crate::cli::RegisterArgs;
use crate::retry::Backoff;

/// Validated `register` arguments.
#[derive(Debug, Clone)]
pub struct RegisterPlan {
    pub key: String,
    pub value: String,
    pub ttl: Duration,
    pub health_cmd: Option<String>,
    pub health_interval: Duration,
    pub health_timeout: Duration,
}

/// Why `register`'s arguments cannot work.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--{option}: invalid duration {text:?}")]
    Duration {
        option: &'static str,
        text: String,
        #[source]
        source: humantime::DurationError,
    },
    #[error("--ttl: {0:?} is shorter than 2s")]
    ShortTtl(String),
    #[error("--key: {0:?} must be an absolute key such as /proxy/frontend/web1")]
    RelativeKey(String),
    #[error("--key: {0:?} holds a control character")]
    ControlInKey(String),
    #[error(
        "--value: holds a control character (a newline?); a registration is one line, such as host:port ({0} bytes given)"
    )]
    ControlInValue(usize),
}

impl RegisterPlan {
    pub fn new(args: &RegisterArgs) -> Result<RegisterPlan, PlanError> {
        let duration = |option: &'static str, text: &str| {
            humantime::parse_duration(text.trim()).map_err(|source| PlanError::Duration {
                option,
                text: text.to_owned(),
                source,
            })
        };
        let ttl = duration("ttl", &args.ttl)?;
        if ttl < Duration::from_secs(2) {
            return Err(PlanError::ShortTtl(args.ttl.clone()));
        }
        if !args.key.starts_with('/') || args.key.ends_with('/') {
            return Err(PlanError::RelativeKey(args.key.clone()));
        }
        // What a container registers is printed into other hosts' config files: a line break
        // or any other control character there could add directives of its own.
        if args.key.chars().any(char::is_control) {
            return Err(PlanError::ControlInKey(args.key.clone()));
        }
        if args.value.chars().any(char::is_control) {
            return Err(PlanError::ControlInValue(args.value.len()));
        }
        Ok(RegisterPlan {
            key: args.key.clone(),
            value: args.value.clone(),
            ttl,
            health_cmd: args.health_cmd.clone().filter(|c| !c.trim().is_empty()),
            health_interval: duration("health-interval", &args.health_interval)?,
            health_timeout: duration("health-timeout", &args.health_timeout)?,
        })
    }
}

async fn healthy(plan: &RegisterPlan) -> bool {
    match &plan.health_cmd {
        None => true,
        Some(command) => match crate::process::run_shell(command, plan.health_timeout).await {
            Ok(_) => true,
            Err(err) => {
                warn!(key = %plan.key, error = %err, "health command failed");
                false
            }
        },
    }
}

/// Keeps the key registered until `shutdown`; then deletes it. Store errors are retried: a
/// registration outlives a store restart.
pub async fn register(
    coordinator: &Coordinator,
    plan: &RegisterPlan,
    shutdown: &CancellationToken,
) {
    let mut lease: Option<Lease> = None;
    let mut registered = false;
    let mut backoff = Backoff::new(Backoff::FLEET);
    loop {
        let step = async {
            if lease.as_ref().is_none_or(Lease::is_lost) {
                registered = false;
                lease = Some(coordinator.grant(plan.ttl).await?);
            }
            let lease = lease.as_ref().expect("granted above");
            if healthy(plan).await {
                // Re-written when missing: the store may have restarted empty.
                let present = registered && coordinator.get(&plan.key).await?.0.is_some();
                if !present {
                    coordinator.put(&plan.key, &plan.value, Some(lease)).await?;
                    info!(key = %plan.key, value = %plan.value, ttl_s = plan.ttl.as_secs(), "registered");
                    registered = true;
                }
            } else if registered {
                coordinator.delete(&plan.key).await?;
                warn!(key = %plan.key, "withdrawn while the health command fails");
                registered = false;
            }
            Ok::<(), crate::backend::BackendError>(())
        };
        let pause = tokio::select! {
            result = step => match result {
                Ok(()) => {
                    backoff.reset();
                    plan.health_interval
                }
                Err(err) => {
                    let pause = backoff.next_delay();
                    error!(key = %plan.key, error = %err, retry_in_ms = pause.as_millis() as u64, "cannot keep the registration");
                    pause
                }
            },
            _ = shutdown.cancelled() => Duration::ZERO,
        };
        if shutdown.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    // Withdraw at once: the service is going away.
    if registered {
        if let Err(err) = coordinator.delete(&plan.key).await {
            warn!(key = %plan.key, error = %err, "cannot delete the key; it goes when the lease expires");
        } else {
            info!(key = %plan.key, "deregistered");
        }
    }
    if let Some(lease) = lease {
        let _ = lease.revoke().await;
    }
}
