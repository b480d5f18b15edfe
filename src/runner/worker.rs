//! One task per resource that applies its newest render through the apply path
//! ([`crate::apply`]), and the set of them with their reload groups.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apply::reload::{Action, Groups, Member, Trigger};
use crate::apply::stage::SyncOptions;
use crate::apply::{Outcome, Pipeline, PipelineSetup, Policy, Retry};
use crate::config::Resource;
use crate::exec::ExecHandle;
use crate::fleet::Fleet;
use crate::telemetry::Telemetry;

/// The workers of a watching or polling run and the reload groups they share.
pub(super) struct Workers {
    groups: Groups,
    tasks: JoinSet<()>,
    next_id: usize,
    pub(super) options: SyncOptions,
    /// The coordinator and instance name for gated resources.
    pub(super) fleet: Arc<Fleet>,
    exec: Option<ExecHandle>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
}

impl Workers {
    pub(super) fn new(
        options: SyncOptions,
        fleet: Arc<Fleet>,
        exec: Option<ExecHandle>,
        telemetry: Arc<Telemetry>,
        shutdown: CancellationToken,
    ) -> Workers {
        Workers {
            groups: Groups::new(Trigger::WhenIdle, Arc::clone(&telemetry)),
            tasks: JoinSet::new(),
            next_id: 0,
            options,
            fleet,
            exec,
            telemetry,
            shutdown,
        }
    }

    /// Starts the worker of `resource`, whose reloads ask for `spacing` between runs; returns
    /// its id and its member, where its renders go.
    pub(super) fn start(
        &mut self,
        resource: &Arc<Resource>,
        spacing: Duration,
    ) -> (usize, Arc<Member>) {
        let id = self.next_id;
        self.next_id += 1;
        let actions = Action::for_resource(resource, self.options.sync_only, self.exec.as_ref());
        let member = self.groups.join(id, &resource.name, actions, spacing);
        let pipeline = Pipeline::new(
            Arc::clone(resource),
            PipelineSetup {
                member: Arc::clone(&member),
                options: self.options,
                telemetry: Arc::clone(&self.telemetry),
                fleet: Arc::clone(&self.fleet),
                policy: Policy::Gated,
                retry: Retry::WithBackoff,
            },
        );
        self.tasks
            .spawn(work(pipeline, Arc::clone(&member), self.shutdown.clone()));
        (id, member)
    }

    /// Ends a worker whose resource is gone or restarts: it finishes what it is writing, then
    /// ends; its reload groups stop counting it.
    pub(super) fn stop(&mut self, member: &Member) {
        self.groups.leave(member);
    }

    /// Lets every worker finish what it has (bounded by `limit`), then waits for running reloads.
    pub(super) async fn finish(
        &mut self,
        members: impl Iterator<Item = &Arc<Member>>,
        limit: Duration,
    ) {
        for member in members {
            member.close();
        }
        let deadline = tokio::time::Instant::now() + limit;
        let finish = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout_at(deadline, finish).await.is_err() {
            warn!(
                timeout_secs = limit.as_secs(),
                "shutdown timeout: abandoning unfinished writes"
            );
            self.tasks.abort_all();
        }
        for group in self.groups.iter() {
            let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !group.wait_idle(rest).await {
                warn!("shutdown timeout: a reload is still running");
            }
        }
    }
}

/// Applies each newest render of one resource, then tells its reload groups. A render whose
/// apply failed for a reason that may pass is tried again after the pipeline's backoff, unless
/// a newer render replaces it first.
async fn work(mut pipeline: Pipeline, member: Arc<Member>, shutdown: CancellationToken) {
    let mut retry: Option<(Arc<Vec<u8>>, tokio::time::Instant)> = None;
    loop {
        let content = match retry.take() {
            None => match member.next().await {
                Some(content) => content,
                None => return,
            },
            Some((content, at)) => tokio::select! {
                next = member.next() => match next {
                    Some(newer) => newer,
                    None => return,
                },
                _ = tokio::time::sleep_until(at) => {
                    member.retrying();
                    info!(resource = %pipeline.resource().name, "retrying the failed sync");
                    content
                }
            },
        };
        let outcome = pipeline.apply(Arc::clone(&content), &shutdown).await;
        if let Outcome::Failed {
            retry_in: Some(delay),
            ..
        } = &outcome
        {
            retry = Some((content, tokio::time::Instant::now() + *delay));
        }
        member.applied(outcome.wants_reload());
    }
}
