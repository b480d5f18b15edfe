//! `terad register` and `terad rollout`: the command-line side of the fleet features.
//!
//! `register` keeps `KEY = VALUE` in the store bound to an etcd lease or a Consul session: it
//! is written once the health command passes, withdrawn while it fails, deleted on SIGTERM or
//! SIGINT, and gone by itself when the process dies and the lease or session expires.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{Coordinator, Lease, RESERVED_PREFIX, halt_key, slots_prefix};
use crate::cli::{Command, RegisterArgs, RolloutAction};
use crate::config::Settings;
use crate::retry::Backoff;
use crate::{EXIT_CONFIG, EXIT_FAILURE, EXIT_OK};

/// `rollout status GROUP` without `--service`: the service the group coordinates, as this
/// host's configuration names it (a resource whose `[template.coordination]` has that group and
/// a `service`). None when the configuration does not load or names none; the status then shows
/// the slots only.
pub fn configured_service(cli: &crate::cli::Cli, group: &str) -> Option<String> {
    let config = crate::setup::load(cli).ok()?;
    config
        .resources
        .iter()
        .filter_map(|resource| resource.coordination.as_ref())
        .filter(|coordination| coordination.group == group)
        .find_map(|coordination| coordination.service.as_ref())
        .map(|service| service.name.clone())
}

/// Runs a subcommand; the exit status of the process.
pub async fn run_command(settings: &Settings, command: &Command) -> ExitCode {
    let coordinator = match Coordinator::new(settings) {
        Ok(Some(coordinator)) => coordinator,
        Ok(None) => {
            eprintln!(
                "terad: --backend must be etcd or consul: the key has to live in a shared store"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(message) => {
            eprintln!("terad: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match command {
        Command::Register(args) => match RegisterPlan::new(args) {
            Ok(plan) => {
                let shutdown = CancellationToken::new();
                if let Err(error) = crate::signal::spawn_shutdown_handlers(shutdown.clone()) {
                    eprintln!("terad: cannot install signal handlers: {error}");
                    return ExitCode::from(EXIT_FAILURE);
                }
                match register(&coordinator, &plan, &shutdown).await {
                    Ok(()) => ExitCode::from(EXIT_OK),
                    Err(message) => {
                        eprintln!("terad: {message}");
                        ExitCode::from(EXIT_FAILURE)
                    }
                }
            }
            Err(message) => {
                eprintln!("terad: {message}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Rollout { action } => rollout(&coordinator, action).await,
    }
}

async fn rollout(coordinator: &Coordinator, action: &RolloutAction) -> ExitCode {
    match action {
        RolloutAction::Resume { group } => {
            match super::resume(coordinator, group).await {
                Ok(true) => println!("group {group:?} resumed"),
                Ok(false) => println!("group {group:?} was not halted"),
                Err(err) => {
                    eprintln!("terad: cannot clear {:?}: {err}", halt_key(group));
                    return ExitCode::from(EXIT_FAILURE);
                }
            }
            if let Coordinator::Consul(consul) = coordinator {
                match super::service::clear_left_maintenance(coordinator, consul, group).await {
                    Ok(cleared) => {
                        for id in cleared {
                            println!("service instance {id:?} out of maintenance");
                        }
                    }
                    Err(err) => {
                        eprintln!(
                            "terad: cannot take this node's service instances out of maintenance: {err}"
                        );
                        return ExitCode::from(EXIT_FAILURE);
                    }
                }
            }
            ExitCode::from(EXIT_OK)
        }
        RolloutAction::Status { group, service } => {
            if let Some(service) = service {
                let Coordinator::Consul(consul) = coordinator else {
                    eprintln!("terad: --service reads Consul's health: it needs --backend consul");
                    return ExitCode::from(EXIT_CONFIG);
                };
                match super::service::instance_lines(coordinator, consul, group, service).await {
                    Ok(lines) => {
                        println!("service {service:?}:");
                        for line in lines {
                            println!("  {line}");
                        }
                    }
                    Err(err) => {
                        eprintln!("terad: {err}");
                        return ExitCode::from(EXIT_FAILURE);
                    }
                }
            }
            let slots = coordinator.list(&slots_prefix(group)).await;
            let halt = super::halted(coordinator, group).await;
            match (slots, halt) {
                (Ok((entries, _)), Ok(halt)) => {
                    println!("group {group:?} under {RESERVED_PREFIX}/{group}");
                    let holders: Vec<&str> = entries
                        .iter()
                        .filter(|e| e.held)
                        .map(|e| e.value.as_str())
                        .collect();
                    println!("slots in use or asked for, oldest first: {holders:?}");
                    match halt {
                        Some(halt) => println!("halted: {halt}"),
                        None => println!("not halted"),
                    }
                    ExitCode::from(EXIT_OK)
                }
                (Err(err), _) | (_, Err(err)) => {
                    eprintln!("terad: {err}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}

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

impl RegisterPlan {
    pub fn new(args: &RegisterArgs) -> Result<RegisterPlan, String> {
        let duration = |option: &str, text: &str| {
            humantime::parse_duration(text.trim())
                .map_err(|e| format!("--{option}: invalid duration {text:?}: {e}"))
        };
        let ttl = duration("ttl", &args.ttl)?;
        if ttl < Duration::from_secs(2) {
            return Err(format!("--ttl: {:?} is shorter than 2s", args.ttl));
        }
        if !args.key.starts_with('/') || args.key.ends_with('/') {
            return Err(format!(
                "--key: {:?} must be an absolute key such as /proxy/frontend/web1",
                args.key
            ));
        }
        // What a container registers is printed into other hosts' config files: a line break
        // or any other control character there could add directives of its own.
        if args.key.chars().any(char::is_control) {
            return Err(format!("--key: {:?} holds a control character", args.key));
        }
        if args.value.chars().any(char::is_control) {
            return Err(format!(
                "--value: holds a control character (a newline?); a registration is one line, such as host:port ({} bytes given)",
                args.value.len()
            ));
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
) -> Result<(), String> {
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
    Ok(())
}
