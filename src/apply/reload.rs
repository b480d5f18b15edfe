//! Reloads, coalesced across the resources that share them.
//!
//! Resources that share a reload (the same `reload_cmd` after placeholder substitution, or the
//! `--exec` service) form a [`Group`]. Each resource is a [`Member`] of its groups: a member is
//! busy from the moment a render of it starts until its worker has applied the newest render. A
//! reload runs once no member is busy, so resources changed together cause one reload; a member
//! that changes while the reload runs causes exactly one more afterwards; two runs of one reload
//! never overlap. HAProxy and friends keep old processes draining on every reload, so a burst of
//! changes must not become a burst of reloads.
//!
//! A burst of changes that keeps coming (containers registering one by one) would still make a
//! reload per change once each write finds the others done: runs of one group are spaced by the
//! largest `reload_interval` of its members ([`pacing`]). The first run after a quiet spell
//! starts at once, so a lone change is as fast as ever; later ones wait for the interval, and
//! the changes that came meanwhile are reloaded together when it ends (the last change always
//! is).
//!
//! The whole protocol is here: the runner says when a render starts and ends
//! ([`Member::render_started`], [`Member::render_finished`]), the worker takes the newest render
//! ([`Member::next`]) and says whether its file changed ([`Member::applied`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info};

use crate::config::{Resource, Settings};
use crate::exec::ExecHandle;
use crate::process;
use crate::retry::Backoff;
use crate::telemetry::Telemetry;

/// Why a reload failed; the command's own error (with its exit status and stderr) is kept.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Command(#[from] process::CommandError),
    /// The `--exec` service could not be signalled or restarted.
    #[error(transparent)]
    Service(#[from] crate::exec::ExecError),
}

/// What a group's reload does.
#[derive(Clone)]
pub enum Action {
    /// A shell command (`reload_cmd` with its placeholders filled in).
    Command { command: String, timeout: Duration },
    /// Tell the `--exec` service (signal it, or restart it).
    Exec(ExecHandle),
}

impl Action {
    /// The reloads a resource needs: its own `reload_cmd`, and the `--exec` service. None with
    /// `--sync-only`.
    pub fn for_resource(
        resource: &Resource,
        sync_only: bool,
        exec: Option<&ExecHandle>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if sync_only {
            return actions;
        }
        if let Some(reload) = &resource.reload_cmd {
            // A link's target is what got replaced; {{.src}} in a reload means that file.
            let target = crate::fs::resolve_destination(&resource.dest)
                .unwrap_or_else(|_| resource.dest.clone());
            actions.push(Action::Command {
                command: reload.render(&target, &resource.dest),
                timeout: resource.reload_timeout,
            });
        }
        if let Some(exec) = exec {
            actions.push(Action::Exec(exec.clone()));
        }
        actions
    }

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

/// The least time between two runs of a reload when nothing else limits them: 200 updates in
/// one second made 197 HAProxy reloads without it (each one a new worker process).
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The least time between two runs of `resource`'s reloads: its own `reload_interval`, else
/// `--reload-interval`, else none when a `wait` already spaces its renders, else
/// [`DEFAULT_RELOAD_INTERVAL`].
pub fn pacing(resource: &Resource, settings: &Settings) -> Duration {
    resource
        .reload_interval
        .or(settings.reload_interval)
        .unwrap_or(match resource.wait.or(settings.wait) {
            Some(_) => Duration::ZERO,
            None => DEFAULT_RELOAD_INTERVAL,
        })
}

/// When a group's reload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Watch and poll modes: as soon as a member changed its file and none is busy; a failed
    /// run is retried with backoff (the new files are in place, the service has not loaded
    /// them).
    WhenIdle,
    /// One-shot: only when asked ([`Group::run_if_requested`]), after every resource is
    /// written; a failure is the run's result, not retried.
    OnDemand,
}

#[derive(Default)]
struct State {
    /// Members with a render running, waiting or being applied.
    busy: BTreeSet<usize>,
    /// A member changed its file since the last reload started.
    requested: bool,
    running: bool,
    /// Bumped at the end of every run, for waiters.
    runs: u64,
    /// The last run failed: a retry is scheduled.
    failed: bool,
    /// When the last run started, for the spacing between runs.
    last_start: Option<tokio::time::Instant>,
    /// A start is scheduled for when the spacing allows it.
    start_scheduled: bool,
    /// Spaces the retries of a failing reload.
    backoff: Option<Backoff>,
}

/// The resources sharing one reload.
pub struct Group {
    action: Action,
    trigger: Trigger,
    /// Resource names and the spacing each asks for, by member id.
    members: Mutex<BTreeMap<usize, (String, Duration)>>,
    state: Mutex<State>,
    finished: tokio::sync::Notify,
    telemetry: Arc<Telemetry>,
}

impl Group {
    pub fn new(action: Action, trigger: Trigger, telemetry: Arc<Telemetry>) -> Arc<Group> {
        Arc::new(Group {
            action,
            trigger,
            members: Mutex::new(BTreeMap::new()),
            state: Mutex::new(State::default()),
            finished: tokio::sync::Notify::new(),
            telemetry,
        })
    }

    fn add_member(&self, id: usize, name: &str, spacing: Duration) {
        self.members
            .lock()
            .expect("members lock")
            .insert(id, (name.to_owned(), spacing));
    }

    /// The least time between two runs: the largest any member asks for.
    fn spacing(&self) -> Duration {
        self.members
            .lock()
            .expect("members lock")
            .values()
            .map(|(_, spacing)| *spacing)
            .max()
            .unwrap_or_default()
    }

    /// Member `id` is gone (its resource was removed or restarted by a configuration reload):
    /// it no longer holds a reload back, nor is it counted in one. Returns whether the group
    /// has members left.
    fn remove_member(self: &Arc<Self>, id: usize) -> bool {
        let mut members = self.members.lock().expect("members lock");
        members.remove(&id);
        let left = !members.is_empty();
        drop(members);
        let mut state = self.state.lock().expect("reload state");
        state.busy.remove(&id);
        self.maybe_start(&mut state);
        left
    }

    /// Member `id` has a render on its way: hold the reload until it is applied.
    fn busy(&self, id: usize) {
        self.state.lock().expect("reload state").busy.insert(id);
    }

    /// Member `id` applied a render. `changed`: its file changed and needs the reload;
    /// `still_busy`: a newer render of it is on its way, so it keeps the reload waiting.
    fn member_done(self: &Arc<Self>, id: usize, changed: bool, still_busy: bool) {
        let mut state = self.state.lock().expect("reload state");
        if changed {
            state.requested = true;
        }
        if !still_busy {
            state.busy.remove(&id);
        }
        self.maybe_start(&mut state);
    }

    /// Starts a run when one is wanted, none is running, no member is busy, and the last run
    /// started long enough ago; otherwise schedules the start for when it did.
    fn maybe_start(self: &Arc<Self>, state: &mut State) {
        if self.trigger == Trigger::OnDemand
            || !state.requested
            || state.running
            || !state.busy.is_empty()
            || state.start_scheduled
        {
            return;
        }
        if let Some(last) = state.last_start {
            let due = last + self.spacing();
            if due > tokio::time::Instant::now() {
                state.start_scheduled = true;
                let group = Arc::clone(self);
                tokio::spawn(async move {
                    tokio::time::sleep_until(due).await;
                    let mut state = group.state.lock().expect("reload state");
                    state.start_scheduled = false;
                    group.maybe_start(&mut state);
                });
                return;
            }
        }
        state.requested = false;
        state.running = true;
        state.last_start = Some(tokio::time::Instant::now());
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

    /// Whether a reload is wanted, running, or failed and waiting for its retry: until it is
    /// done, the service may not run the files on disk.
    fn outstanding(&self) -> bool {
        let state = self.state.lock().expect("reload state");
        state.requested || state.running || state.failed
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
                    state.last_start = Some(tokio::time::Instant::now());
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

    /// [`Trigger::OnDemand`]: runs the reload if a member changed its file; `None` when none did.
    pub async fn run_if_requested(self: &Arc<Self>) -> Option<Result<(), ReloadError>> {
        let requested = std::mem::take(&mut self.state.lock().expect("reload state").requested);
        if requested {
            Some(self.reload_now().await)
        } else {
            None
        }
    }

    async fn run_once(&self) -> Result<(), ReloadError> {
        let members: Vec<String> = self
            .members
            .lock()
            .expect("members lock")
            .values()
            .map(|(name, _)| name.clone())
            .collect();
        let started = Instant::now();
        let result = match &self.action {
            Action::Command { command, timeout } => process::run_shell(command, *timeout)
                .await
                .map(|_| ())
                .map_err(ReloadError::from),
            Action::Exec(handle) => handle.files_changed().await.map_err(ReloadError::from),
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
            Err(message) if self.trigger == Trigger::WhenIdle => error!(
                resources = crate::logging::json(&members),
                reload = %self.action.describe(),
                error = %message,
                "reload failed; the new files are in place; retrying"
            ),
            Err(message) => error!(
                resources = crate::logging::json(&members),
                reload = %self.action.describe(),
                error = %message,
                "reload failed; the new files are in place"
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

/// Every group of a run, by the key of its action, in the order they were first asked for.
pub struct Groups {
    groups: Vec<(String, Arc<Group>)>,
    trigger: Trigger,
    telemetry: Arc<Telemetry>,
}

impl Groups {
    pub fn new(trigger: Trigger, telemetry: Arc<Telemetry>) -> Groups {
        Groups {
            groups: Vec::new(),
            trigger,
            telemetry,
        }
    }

    /// Makes resource `name` member `id` of the groups of `actions` (created as needed),
    /// asking for `spacing` between their runs.
    pub fn join(
        &mut self,
        id: usize,
        name: &str,
        actions: Vec<Action>,
        spacing: Duration,
    ) -> Arc<Member> {
        let mut groups = Vec::with_capacity(actions.len());
        for action in actions {
            let key = action.key();
            let group = match self.groups.iter().find(|(known, _)| *known == key) {
                Some((_, group)) => Arc::clone(group),
                None => {
                    let group = Group::new(action, self.trigger, Arc::clone(&self.telemetry));
                    self.groups.push((key, Arc::clone(&group)));
                    group
                }
            };
            group.add_member(id, name, spacing);
            groups.push(group);
        }
        Arc::new(Member {
            id,
            groups,
            state: Mutex::new(MemberState::default()),
            notify: tokio::sync::Notify::new(),
        })
    }

    /// The member's resource is gone: its groups stop counting it, and a group left without
    /// members goes. Its worker finishes what it is writing, then ends.
    pub fn leave(&mut self, member: &Member) {
        member.close();
        for group in &member.groups {
            group.remove_member(member.id);
        }
        self.groups
            .retain(|(_, group)| !group.members.lock().expect("members lock").is_empty());
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Group>> {
        self.groups.iter().map(|(_, group)| group)
    }
}

/// One resource in its reload groups, and the newest render waiting for its worker. A render
/// that arrives while the worker is busy replaces the one waiting, so a slow check never builds
/// a queue; the worker takes the content out, so a large file is not kept in memory between
/// changes.
pub struct Member {
    /// Unique within the process: groups know members by it.
    id: usize,
    groups: Vec<Arc<Group>>,
    state: Mutex<MemberState>,
    notify: tokio::sync::Notify,
}

#[derive(Default)]
struct MemberState {
    /// A render of this resource is running.
    rendering: bool,
    /// The newest render, not yet taken by the worker.
    latest: Option<Arc<Vec<u8>>>,
    /// The worker is applying a render.
    applying: bool,
    closed: bool,
}

impl MemberState {
    fn busy(&self) -> bool {
        self.rendering || self.latest.is_some() || self.applying
    }
}

impl Member {
    /// The groups this resource reloads, for a reload that must run now ([`Group::reload_now`]).
    pub fn groups(&self) -> &[Arc<Group>] {
        &self.groups
    }

    /// A render of this resource started: its groups wait for it.
    pub fn render_started(&self) {
        let mut state = self.state.lock().expect("member state");
        if !state.busy() {
            for group in &self.groups {
                group.busy(self.id);
            }
        }
        state.rendering = true;
    }

    /// The render ended: with its content for the worker, or with nothing (it failed; the file
    /// stays as it is).
    pub fn render_finished(&self, content: Option<Vec<u8>>) {
        let mut state = self.state.lock().expect("member state");
        state.rendering = false;
        match content {
            Some(content) => {
                state.latest = Some(Arc::new(content));
                self.notify.notify_one();
            }
            None if !state.busy() => self.done(false, false),
            None => {}
        }
    }

    /// The newest render, once there is one; `None` once the member is closed and nothing is
    /// left to write.
    pub async fn next(&self) -> Option<Arc<Vec<u8>>> {
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.state.lock().expect("member state");
                if let Some(content) = state.latest.take() {
                    state.applying = true;
                    return Some(content);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// A render that arrived while the worker was applying an older one (a gated change that
    /// waited for its turn applies the newest instead).
    pub fn newer(&self) -> Option<Arc<Vec<u8>>> {
        self.state.lock().expect("member state").latest.take()
    }

    /// The worker applies a render again on its own (a retry after a failure that may pass).
    pub fn retrying(&self) {
        let mut state = self.state.lock().expect("member state");
        if !state.busy() {
            for group in &self.groups {
                group.busy(self.id);
            }
        }
        state.applying = true;
    }

    /// Whether a newer render is waiting, so that a retry of an older one is pointless.
    pub fn has_newer(&self) -> bool {
        self.state.lock().expect("member state").latest.is_some()
    }

    /// Whether one of its groups has a reload wanted, running or being retried. HAProxy's
    /// runtime API is not used then: the reload may be reading an older file while the change
    /// goes into the process it replaces, so the change goes with a reload instead.
    pub fn reload_outstanding(&self) -> bool {
        self.groups.iter().any(|group| group.outstanding())
    }

    /// The worker finished applying; `changed`: the file changed and the groups should reload.
    pub fn applied(&self, changed: bool) {
        let mut state = self.state.lock().expect("member state");
        state.applying = false;
        let still_busy = state.busy();
        self.done(changed, still_busy);
    }

    /// Called with the state locked: the groups learn of a change or of the end of one.
    fn done(&self, changed: bool, still_busy: bool) {
        for group in &self.groups {
            group.member_done(self.id, changed, still_busy);
        }
    }

    /// No more renders: the worker ends once it has written what it has.
    pub fn close(&self) {
        self.state.lock().expect("member state").closed = true;
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `reload_interval` of a resource with `resource_extra` in its table, under these flags.
    fn pacing_of(resource_extra: &str, flags: &[&str]) -> Duration {
        use clap::Parser;
        let mut args = vec!["terad", "--confdir", "/nonexistent"];
        args.extend_from_slice(flags);
        let cli = crate::cli::Cli::try_parse_from(args).unwrap();
        let settings = Settings::load(&cli, |_| None).unwrap();
        let templates = tempfile::tempdir().unwrap();
        std::fs::write(templates.path().join("t.tmpl"), "").unwrap();
        let resource = crate::config::resource::parse_resource(
            "r".into(),
            std::path::Path::new("r.toml"),
            &format!(
                "[template]\nsrc = \"t.tmpl\"\ndest = \"/tmp/r\"\nkeys = [\"/a\"]\n{resource_extra}"
            ),
            templates.path(),
            "",
        )
        .unwrap();
        pacing(&resource, &settings)
    }

    /// The resource's own `reload_interval` first, then `--reload-interval`, then none when a
    /// `wait` (the resource's or `--wait`) spaces the renders, then one second.
    #[test]
    fn reload_spacing_is_the_resources_then_the_flags_then_none_with_a_wait_then_a_second() {
        let second = DEFAULT_RELOAD_INTERVAL;
        assert_eq!(pacing_of("", &[]), second);
        assert_eq!(
            pacing_of("", &["--reload-interval", "3s"]),
            Duration::from_secs(3)
        );
        assert_eq!(
            pacing_of("reload_interval = \"5s\"\n", &["--reload-interval", "3s"]),
            Duration::from_secs(5)
        );
        assert_eq!(pacing_of("", &["--wait", "100ms"]), Duration::ZERO);
        assert_eq!(pacing_of("wait = \"100ms\"\n", &[]), Duration::ZERO);
        // An explicit interval wins over a wait's none.
        assert_eq!(
            pacing_of("wait = \"100ms\"\n", &["--reload-interval", "2s"]),
            Duration::from_secs(2)
        );
        assert_eq!(
            pacing_of("reload_interval = \"0s\"\n", &[]),
            Duration::ZERO,
            "0s turns spacing off"
        );
    }

    fn command(command: String) -> Action {
        Action::Command {
            command,
            timeout: Duration::from_secs(10),
        }
    }

    fn telemetry() -> Arc<Telemetry> {
        Arc::new(Telemetry::new(Duration::from_secs(1)))
    }

    /// Two resources, `a` and `b`, sharing a reload that logs its start and end around a sleep.
    fn counting_group(
        dir: &std::path::Path,
        seconds: f64,
    ) -> (Groups, Arc<Member>, Arc<Member>, std::path::PathBuf) {
        let log = dir.join("runs.log");
        let action = command(format!(
            "echo start >> {log}; sleep {seconds}; echo end >> {log}",
            log = log.display()
        ));
        let mut groups = Groups::new(Trigger::WhenIdle, telemetry());
        let a = groups.join(0, "a", vec![action.clone()], Duration::ZERO);
        let b = groups.join(1, "b", vec![action], Duration::ZERO);
        (groups, a, b, log)
    }

    /// A render of `member` went through its worker, which changed the file or not.
    async fn apply(member: &Member, changed: bool) {
        member.render_started();
        member.render_finished(Some(b"x".to_vec()));
        member.next().await.expect("the render");
        member.applied(changed);
    }

    fn group(groups: &Groups) -> Arc<Group> {
        Arc::clone(groups.iter().next().expect("one group"))
    }

    async fn settle(group: &Group) {
        assert!(group.wait_idle(Duration::from_secs(10)).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(group.wait_idle(Duration::from_secs(10)).await);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn members_changed_together_cause_one_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (groups, a, b, log) = counting_group(dir.path(), 0.0);
        a.render_started();
        b.render_started();
        a.render_finished(Some(b"a".to_vec()));
        a.next().await.unwrap();
        a.applied(true);
        // b is still rendering: nothing runs yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!log.exists(), "reload started before every member finished");
        b.render_finished(Some(b"b".to_vec()));
        b.next().await.unwrap();
        b.applied(true);
        settle(&group(&groups)).await;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "start\nend\n");
    }

    /// What keeps HAProxy's runtime API out of the way: a reload wanted (waiting for another
    /// member), running, or failed and waiting for its retry.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_reload_is_outstanding_from_its_request_until_it_succeeded() {
        let dir = tempfile::tempdir().unwrap();
        let (groups, a, b, log) = counting_group(dir.path(), 0.3);
        assert!(!a.reload_outstanding() && !b.reload_outstanding());
        b.render_started();
        apply(&a, true).await;
        assert!(a.reload_outstanding(), "wanted, waiting for b");
        b.render_finished(None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(log.exists() && b.reload_outstanding(), "running");
        settle(&group(&groups)).await;
        assert!(!a.reload_outstanding() && !b.reload_outstanding());

        let mut groups = Groups::new(Trigger::WhenIdle, telemetry());
        let failing = groups.join(0, "c", vec![command("exit 1".into())], Duration::ZERO);
        apply(&failing, true).await;
        settle(&group(&groups)).await;
        assert!(failing.reload_outstanding(), "failed, retried later");
        let alone = groups.join(1, "d", Vec::new(), Duration::ZERO);
        assert!(!alone.reload_outstanding(), "no reload at all");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_render_releases_the_reload_of_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let (groups, a, b, log) = counting_group(dir.path(), 0.0);
        a.render_started();
        b.render_started();
        a.render_finished(Some(b"a".to_vec()));
        a.next().await.unwrap();
        a.applied(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!log.exists(), "reload started before every member finished");
        // b's render fails: its file stays, and it holds nothing back.
        b.render_finished(None);
        settle(&group(&groups)).await;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "start\nend\n");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_render_arriving_while_the_worker_writes_keeps_the_reload_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let (groups, a, _b, log) = counting_group(dir.path(), 0.0);
        a.render_started();
        a.render_finished(Some(b"1".to_vec()));
        a.next().await.unwrap();
        // A newer render comes while the first is being written.
        a.render_started();
        a.applied(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !log.exists(),
            "reload started before the newer render was written"
        );
        a.render_finished(Some(b"2".to_vec()));
        a.next().await.unwrap();
        a.applied(true);
        settle(&group(&groups)).await;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "start\nend\n");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn changes_during_a_reload_cause_exactly_one_more_and_runs_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let (groups, a, _b, log) = counting_group(dir.path(), 0.3);
        let group = group(&groups);
        apply(&a, true).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Three more changes while the first run sleeps.
        for _ in 0..3 {
            apply(&a, true).await;
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
        let (groups, a, _b, log) = counting_group(dir.path(), 0.3);
        let group = group(&groups);
        apply(&a, true).await;
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
            command("echo broken >&2; exit 3".into()),
            Trigger::WhenIdle,
            telemetry(),
        );
        let error = failing.reload_now().await.unwrap_err();
        assert!(matches!(error, ReloadError::Command(_)), "{error}");
        assert!(error.to_string().contains("broken"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unchanged_files_do_not_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (groups, a, _b, log) = counting_group(dir.path(), 0.0);
        let group = group(&groups);
        apply(&a, false).await;
        settle(&group).await;
        assert!(!log.exists());
        assert_eq!(group.runs(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_removed_member_is_neither_counted_nor_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let (mut groups, a, b, log) = counting_group(dir.path(), 0.0);
        let group = group(&groups);
        // The resource is restarted by a configuration reload: member 1 goes, member 2 comes.
        b.render_started();
        groups.leave(&b);
        assert!(b.next().await.is_none(), "a closed member's worker ends");
        let b2 = groups.join(2, "b", vec![group.action.clone()], Duration::ZERO);
        apply(&a, true).await;
        // Member 1 was busy when it went: it must not hold the reload back.
        settle(&group).await;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "start\nend\n");
        let members: Vec<String> = group
            .members
            .lock()
            .unwrap()
            .values()
            .map(|(name, _)| name.clone())
            .collect();
        assert_eq!(members, ["a", "b"], "one name per live member");
        groups.leave(&a);
        assert_eq!(groups.iter().count(), 1, "b is left");
        groups.leave(&b2);
        assert_eq!(
            groups.iter().count(),
            0,
            "the last member leaves the group empty"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_demand_groups_run_only_when_asked_and_only_if_a_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let mut groups = Groups::new(Trigger::OnDemand, telemetry());
        let action = command(format!("echo run >> {}", log.display()));
        let a = groups.join(0, "a", vec![action.clone()], Duration::ZERO);
        let b = groups.join(1, "b", vec![action], Duration::ZERO);
        apply(&a, true).await;
        apply(&b, true).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!log.exists(), "a one-shot reload waits to be asked");
        let group = group(&groups);
        assert!(group.run_if_requested().await.unwrap().is_ok());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "run\n");
        assert!(
            group.run_if_requested().await.is_none(),
            "nothing changed since"
        );
    }

    /// Issue 27: 200 puts in one second gave 197 reloads. With a spacing, the first change
    /// reloads at once, the burst after it reloads at most once per interval, and the last
    /// change is always reloaded.
    #[tokio::test(start_paused = true)]
    async fn a_burst_reloads_at_once_then_at_most_once_per_interval_and_always_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let mut groups = Groups::new(Trigger::WhenIdle, telemetry());
        let a = groups.join(
            0,
            "a",
            vec![command(format!("echo run >> {}", log.display()))],
            Duration::from_secs(1),
        );
        let group = group(&groups);
        // The reload is a real child process. Paused time would jump to its timeout while the
        // runtime waits for it, so the test keeps the runtime busy and lets real time pass.
        let runs = |group: &Arc<Group>, n: u64| {
            let group = Arc::clone(group);
            async move {
                while group.runs() < n {
                    tokio::task::yield_now().await;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        apply(&a, true).await;
        runs(&group, 1).await;
        let first = tokio::time::Instant::now();
        // 20 more changes over the next 0.95 s.
        for _ in 0..19 {
            apply(&a, true).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        apply(&a, true).await;
        assert_eq!(group.runs(), 1, "a change within the interval waits for it");
        tokio::time::sleep_until(first + Duration::from_secs(1)).await;
        runs(&group, 2).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            group.runs(),
            2,
            "the burst is one more reload, with its last change"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "run\nrun\n");
    }

    /// Issue 18: a failed reload waited for the next change; the service stayed on the old
    /// files while the new ones were in place.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_reload_is_retried_until_it_works() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("failed-once");
        let log = dir.path().join("runs.log");
        let mut groups = Groups::new(Trigger::WhenIdle, telemetry());
        let a = groups.join(
            0,
            "a",
            vec![command(format!(
                "echo run >> {log}; test -f {marker} || {{ touch {marker}; exit 1; }}",
                log = log.display(),
                marker = marker.display()
            ))],
            Duration::ZERO,
        );
        let group = group(&groups);
        apply(&a, true).await;
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
