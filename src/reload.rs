//! Reload coalescing.
//!
//! Resources that share a reload (the same `reload_cmd` after placeholder substitution, or the
//! `--exec` service) form a group. A reload runs once all members that were handed a render
//! have finished writing it, so resources changed together cause one reload; a member that
//! changes while the reload runs causes exactly one more afterwards; two runs of one reload
//! never overlap. HAProxy and friends keep old processes draining on every reload, so a burst
//! of changes must not become a burst of reloads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info};

use crate::process;
use crate::retry::Backoff;
use crate::telemetry::Telemetry;

/// Why a reload failed; the command's own error (with its exit status and stderr) is kept.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Command(#[from] process::CommandError),
    /// The `--exec` service could not be signalled or restarted.
    #[error("{0}")]
    Service(String),
}

/// What a group's reload does.
#[derive(Clone)]
pub enum Action {
    /// A shell command (`reload_cmd` with its placeholders filled in).
    Command { command: String, timeout: Duration },
    /// Tell the `--exec` service (signal it, or restart it).
    Exec(crate::exec::ExecHandle),
}

impl Action {
    /// The key that decides which resources share a reload.
    pub fn key(&self) -> String {
        match self {
            Action::Command { command, .. } => format!("cmd:{command}"),
            Action::Exec(_) => "exec".to_owned(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Action::Command { command, .. } => command.clone(),
            Action::Exec(_) => "the --exec service".to_owned(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Members that were handed a render they have not finished with.
    pending: BTreeSet<usize>,
    /// A member changed its file since the last reload started.
    requested: bool,
    running: bool,
    /// Bumped at the end of every run, for waiters.
    runs: u64,
    /// The last run failed: a retry is scheduled.
    failed: bool,
    /// Spaces the retries of a failing reload.
    backoff: Option<Backoff>,
}

/// The resources sharing one reload.
pub struct Group {
    action: Action,
    /// Resource names by member id, for logs and metrics.
    members: Mutex<BTreeMap<usize, String>>,
    state: Mutex<State>,
    finished: tokio::sync::Notify,
    telemetry: Arc<Telemetry>,
}

impl Group {
    pub fn new(action: Action, telemetry: Arc<Telemetry>) -> Arc<Group> {
        Arc::new(Group {
            action,
            members: Mutex::new(BTreeMap::new()),
            state: Mutex::new(State::default()),
            finished: tokio::sync::Notify::new(),
            telemetry,
        })
    }

    pub fn add_member(&self, id: usize, name: &str) {
        self.members
            .lock()
            .expect("members lock")
            .insert(id, name.to_owned());
    }

    /// Member `id` is gone (its resource was removed or restarted by a configuration reload):
    /// it no longer holds a reload back, nor is it counted in one. Returns whether the group
    /// has members left.
    pub fn remove_member(self: &Arc<Self>, id: usize) -> bool {
        let mut members = self.members.lock().expect("members lock");
        members.remove(&id);
        let left = !members.is_empty();
        drop(members);
        let mut state = self.state.lock().expect("reload state");
        state.pending.remove(&id);
        self.maybe_start(&mut state);
        left
    }

    pub fn has_members(&self) -> bool {
        !self.members.lock().expect("members lock").is_empty()
    }

    /// The runner handed member `index` a render: hold the reload until it is written.
    pub fn mark_pending(&self, index: usize) {
        self.state
            .lock()
            .expect("reload state")
            .pending
            .insert(index);
    }

    /// Member `index` finished a render. `changed`: its file changed and needs the reload;
    /// `more_waiting`: it already has a newer render to write, so it stays pending.
    pub fn member_done(self: &Arc<Self>, index: usize, changed: bool, more_waiting: bool) {
        let mut state = self.state.lock().expect("reload state");
        if changed {
            state.requested = true;
        }
        if !more_waiting {
            state.pending.remove(&index);
        }
        self.maybe_start(&mut state);
    }

    /// Starts a run when one is wanted, none is running, and no member is mid-write.
    fn maybe_start(self: &Arc<Self>, state: &mut State) {
        if !state.requested || state.running || !state.pending.is_empty() {
            return;
        }
        state.requested = false;
        state.running = true;
        let group = Arc::clone(self);
        tokio::spawn(async move {
            let result = group.run_once().await;
            let retry_in = {
                let mut state = group.state.lock().expect("reload state");
                state.running = false;
                state.runs += 1;
                let retry_in = group.record(&mut state, result.is_ok());
                group.maybe_start(&mut state);
                retry_in
            };
            group.finished.notify_waiters();
            if let Some(delay) = retry_in {
                tokio::time::sleep(delay).await;
                let mut state = group.state.lock().expect("reload state");
                // Unless a run since has already succeeded.
                if state.failed {
                    state.requested = true;
                    group.maybe_start(&mut state);
                }
            }
        });
    }

    /// Records a run's result; after a failure, returns when to try again: the new files are in
    /// place and the service has not loaded them.
    fn record(&self, state: &mut State, ok: bool) -> Option<Duration> {
        state.failed = !ok;
        if ok {
            state.backoff = None;
            return None;
        }
        Some(
            state
                .backoff
                .get_or_insert_with(|| Backoff::new(Backoff::BACKEND))
                .next_delay(),
        )
    }

    /// Runs this group's reload now, after any run in progress, and returns its result: for
    /// health-gated resources, which must know their reload finished before checking health.
    /// Runs never overlap with the coalesced ones.
    pub async fn reload_now(self: &Arc<Self>) -> Result<(), ReloadError> {
        loop {
            let notified = self.finished.notified();
            {
                let mut state = self.state.lock().expect("reload state");
                if !state.running {
                    state.running = true;
                    break;
                }
            }
            notified.await;
        }
        let result = self.run_once().await;
        let mut state = self.state.lock().expect("reload state");
        state.running = false;
        state.runs += 1;
        if result.is_ok() {
            // A retry scheduled by a failed coalesced run is no longer needed.
            self.record(&mut state, true);
        }
        self.maybe_start(&mut state);
        drop(state);
        self.finished.notify_waiters();
        result
    }

    async fn run_once(&self) -> Result<(), ReloadError> {
        let members: Vec<String> = self
            .members
            .lock()
            .expect("members lock")
            .values()
            .cloned()
            .collect();
        let started = Instant::now();
        let result = match &self.action {
            Action::Command { command, timeout } => process::run_shell(command, *timeout)
                .await
                .map(|_| ())
                .map_err(ReloadError::from),
            Action::Exec(handle) => handle.files_changed().await.map_err(ReloadError::Service),
        };
        let took = started.elapsed();
        self.telemetry.reloaded(&members, result.is_ok(), took);
        match &result {
            Ok(()) => info!(
                resources = crate::logging::json(&members),
                reload = %self.action.describe(),
                took_ms = took.as_millis() as u64,
                "reloaded"
            ),
            // Retried with backoff (the resources are behind the store meanwhile).
            Err(message) => error!(
                resources = crate::logging::json(&members),
                reload = %self.action.describe(),
                error = %message,
                "reload failed; the new files are in place; retrying"
            ),
        }
        result
    }

    /// Waits until no reload of this group is running (for shutdown), at most `limit`.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.finished.notified();
            if !self.state.lock().expect("reload state").running {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    #[cfg(test)]
    fn runs(&self) -> u64 {
        self.state.lock().expect("reload state").runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_group(dir: &std::path::Path, seconds: f64) -> (Arc<Group>, std::path::PathBuf) {
        let log = dir.join("runs.log");
        let command = format!(
            "echo start >> {log}; sleep {seconds}; echo end >> {log}",
            log = log.display()
        );
        let group = Group::new(
            Action::Command {
                command,
                timeout: Duration::from_secs(10),
            },
            Arc::new(Telemetry::new(Duration::from_secs(1))),
        );
        group.add_member(0, "a");
        group.add_member(1, "b");
        (group, log)
    }

    async fn settle(group: &Group) {
        assert!(group.wait_idle(Duration::from_secs(10)).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(group.wait_idle(Duration::from_secs(10)).await);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn members_changed_together_cause_one_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (group, log) = counting_group(dir.path(), 0.0);
        group.mark_pending(0);
        group.mark_pending(1);
        group.member_done(0, true, false);
        // Member 1 is still writing: nothing runs yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!log.exists(), "reload started before every member finished");
        group.member_done(1, true, false);
        settle(&group).await;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "start\nend\n");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn changes_during_a_reload_cause_exactly_one_more_and_runs_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let (group, log) = counting_group(dir.path(), 0.3);
        group.mark_pending(0);
        group.member_done(0, true, false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Three more changes while the first run sleeps.
        for _ in 0..3 {
            group.mark_pending(0);
            group.member_done(0, true, false);
        }
        settle(&group).await;
        assert_eq!(group.runs(), 2);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "start\nend\nstart\nend\n",
            "runs overlapped"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_gated_reload_waits_for_the_running_one_and_reports_its_result() {
        let dir = tempfile::tempdir().unwrap();
        let (group, log) = counting_group(dir.path(), 0.3);
        group.mark_pending(0);
        group.member_done(0, true, false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The coalesced run is sleeping; the gated one starts only after it.
        group.reload_now().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "start\nend\nstart\nend\n",
            "runs overlapped"
        );
        settle(&group).await;
        assert_eq!(group.runs(), 2);

        let failing = Group::new(
            Action::Command {
                command: "echo broken >&2; exit 3".into(),
                timeout: Duration::from_secs(10),
            },
            Arc::new(Telemetry::new(Duration::from_secs(1))),
        );
        let error = failing.reload_now().await.unwrap_err();
        assert!(matches!(error, ReloadError::Command(_)), "{error}");
        assert!(error.to_string().contains("broken"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unchanged_files_do_not_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (group, log) = counting_group(dir.path(), 0.0);
        group.mark_pending(0);
        group.member_done(0, false, false);
        settle(&group).await;
        assert!(!log.exists());
        assert_eq!(group.runs(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_removed_member_is_neither_counted_nor_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let (group, log) = counting_group(dir.path(), 0.0);
        // The resource is restarted by a configuration reload: member 1 goes, member 2 comes.
        group.mark_pending(1);
        assert!(group.remove_member(1), "member 0 is left");
        group.add_member(2, "b");
        group.mark_pending(0);
        group.member_done(0, true, false);
        // Member 1 was pending when it went: it must not hold the reload back.
        settle(&group).await;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "start\nend\n");
        let members: Vec<String> = group.members.lock().unwrap().values().cloned().collect();
        assert_eq!(members, ["a", "b"], "one name per live member");
        assert!(group.remove_member(0));
        assert!(
            !group.remove_member(2),
            "the last member leaves the group empty"
        );
    }

    /// Issue 18: a failed reload waited for the next change; the service stayed on the old
    /// files while the new ones were in place.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_reload_is_retried_until_it_works() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("failed-once");
        let log = dir.path().join("runs.log");
        let group = Group::new(
            Action::Command {
                command: format!(
                    "echo run >> {log}; test -f {marker} || {{ touch {marker}; exit 1; }}",
                    log = log.display(),
                    marker = marker.display()
                ),
                timeout: Duration::from_secs(10),
            },
            Arc::new(Telemetry::new(Duration::from_secs(1))),
        );
        group.add_member(0, "a");
        group.mark_pending(0);
        group.member_done(0, true, false);
        let started = std::time::Instant::now();
        while group.runs() < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the failed reload was not retried"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        settle(&group).await;
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "run\nrun\n",
            "retried once, then done"
        );
    }
}
