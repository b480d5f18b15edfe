//! `terad register` and `terad rollout`: the command-line side of the fleet features. Their
//! answers are printed here, on standard output; their failures go back to `main` as a
//! [`CommandError`], which prints them with their causes and exits with their status.

use tokio_util::sync::CancellationToken;

use crate::backend::BackendError;
use crate::cli::{Cli, Command, RolloutAction};
use crate::config::Settings;
use crate::fleet::register::{PlanError, RegisterPlan};
use crate::fleet::{self, Coordinator, RESERVED_PREFIX, halt_key, slots_prefix};

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("--backend must be etcd or consul: the key has to live in a shared store")]
    NotShared,
    /// The backend settings cannot make a client.
    #[error(transparent)]
    Backend(#[from] crate::backend::SetupError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("--service reads Consul's health: it needs --backend consul")]
    ServiceNeedsConsul,
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot clear {key:?}")]
    Resume {
        key: String,
        #[source]
        source: BackendError,
    },
    #[error("cannot take this node's service instances out of maintenance")]
    Maintenance(#[source] BackendError),
    #[error(transparent)]
    Store(#[from] BackendError),
}

impl CommandError {
    /// Whether the command line or the settings are at fault (such mistakes exit like
    /// configuration errors), rather than a store that failed.
    pub fn is_configuration(&self) -> bool {
        match self {
            CommandError::NotShared
            | CommandError::Backend(_)
            | CommandError::Plan(_)
            | CommandError::ServiceNeedsConsul => true,
            CommandError::Signals(_)
            | CommandError::Resume { .. }
            | CommandError::Maintenance(_)
            | CommandError::Store(_) => false,
        }
    }
}

/// `rollout status GROUP` without `--service`: the service the group coordinates, as this
/// host's configuration names it (a resource whose `[template.coordination]` has that group and
/// a `service`). None when the configuration does not load or names none; the status then shows
/// the slots only.
pub fn configured_service(cli: &Cli, group: &str) -> Option<String> {
    let config = crate::setup::load(cli).ok()?;
    config
        .resources
        .iter()
        .filter_map(|resource| resource.coordination.as_ref())
        .filter(|coordination| coordination.group == group)
        .find_map(|coordination| coordination.service.as_ref())
        .map(|service| service.name.clone())
}

/// Runs a subcommand to its end.
pub async fn run(settings: &Settings, command: &Command) -> Result<(), CommandError> {
    let coordinator = Coordinator::new(settings)?.ok_or(CommandError::NotShared)?;
    match command {
        Command::Register(args) => {
            let plan = RegisterPlan::new(args)?;
            let shutdown = CancellationToken::new();
            crate::signal::spawn_shutdown_handlers(shutdown.clone())
                .map_err(CommandError::Signals)?;
            fleet::register::register(&coordinator, &plan, &shutdown).await;
            Ok(())
        }
        Command::Rollout { action } => rollout(&coordinator, action).await,
    }
}

async fn rollout(coordinator: &Coordinator, action: &RolloutAction) -> Result<(), CommandError> {
    match action {
        RolloutAction::Resume { group } => {
            let resumed =
                fleet::resume(coordinator, group)
                    .await
                    .map_err(|source| CommandError::Resume {
                        key: halt_key(group),
                        source,
                    })?;
            if resumed {
                println!("group {group:?} resumed");
            } else {
                println!("group {group:?} was not halted");
            }
            if let Coordinator::Consul(consul) = coordinator {
                let cleared = fleet::service::clear_left_maintenance(coordinator, consul, group)
                    .await
                    .map_err(CommandError::Maintenance)?;
                for id in cleared {
                    println!("service instance {id:?} out of maintenance");
                }
            }
            Ok(())
        }
        RolloutAction::Status { group, service } => {
            if let Some(service) = service {
                let Coordinator::Consul(consul) = coordinator else {
                    return Err(CommandError::ServiceNeedsConsul);
                };
                let lines =
                    fleet::service::instance_lines(coordinator, consul, group, service).await?;
                println!("service {service:?}:");
                for line in lines {
                    println!("  {line}");
                }
            }
            let (entries, _) = coordinator.list(&slots_prefix(group)).await?;
            let halt = fleet::halted(coordinator, group).await?;
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
            Ok(())
        }
    }
}
