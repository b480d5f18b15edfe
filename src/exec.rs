//! `--exec`: supervising the service terad configures.
//!
//! The service starts once every resource has synced (it never sees a missing or stale file at
//! start), gets the reload signal when its files change (or is restarted when no signal is
//! configured), is restarted with backoff when it dies (or terad exits with it), receives the
//! signals terad forwards, and is stopped with SIGTERM, then SIGKILL after the kill timeout,
//! when terad shuts down.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::ExecSettings;
use crate::retry::Backoff;
use crate::telemetry::Telemetry;

/// A service that ran this long without dying resets the restart backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Why the service could not be told about new files.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the supervisor has stopped")]
    Stopped,
    #[error("cannot signal the service: {0}")]
    Signal(#[source] nix::errno::Errno),
}

enum Request {
    FilesChanged(oneshot::Sender<Result<(), ExecError>>),
    Forward(Signal),
}

/// The way the rest of terad talks to the supervisor.
#[derive(Clone)]
pub struct ExecHandle {
    requests: mpsc::Sender<Request>,
}

impl ExecHandle {
    /// The service's files changed: signal or restart it, and report how that went.
    pub async fn files_changed(&self) -> Result<(), ExecError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::FilesChanged(tx))
            .await
            .map_err(|_| ExecError::Stopped)?;
        rx.await.unwrap_or(Err(ExecError::Stopped))
    }

    /// Passes a signal terad received on to the service.
    pub fn forward(&self, signal: Signal) {
        let _ = self.requests.try_send(Request::Forward(signal));
    }
}

/// Where the process's exit status comes from when the service decides it.
#[derive(Default)]
pub struct ExitStatus(AtomicI32);

impl ExitStatus {
    /// The status to exit with, if the service set one (`--exec-exit-with-child`).
    pub fn get(&self) -> Option<i32> {
        match self.0.load(Ordering::Acquire) {
            i32::MIN => None,
            code => Some(code),
        }
    }

    fn set(&self, code: i32) {
        self.0.store(code, Ordering::Release);
    }

    pub fn new() -> Self {
        ExitStatus(AtomicI32::new(i32::MIN))
    }
}

/// Starts the supervisor task. It stops the service when `stop` is cancelled (after terad has
/// finished its own writes), and cancels `shutdown` itself when the service exits and
/// `--exec-exit-with-child` is set. The join handle finishes once the service is down.
pub fn spawn(
    settings: ExecSettings,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    exit: Arc<ExitStatus>,
) -> (ExecHandle, tokio::task::JoinHandle<()>) {
    let (requests, receiver) = mpsc::channel(16);
    let task = tokio::spawn(supervise(
        settings, telemetry, stop, shutdown, exit, receiver,
    ));
    (ExecHandle { requests }, task)
}

fn start(command: &str) -> std::io::Result<Child> {
    // `exec` makes the service the shell's own process, so signals reach it directly.
    crate::process::spawn_with_inherited_limits(&mut Command::new("/bin/sh"))
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

fn pid_of(child: &Child) -> Option<Pid> {
    child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
}

/// `signal` (SIGTERM; consul-template's SIGINT), then SIGKILL to the whole process group after
/// `timeout`.
async fn stop(child: &mut Child, signal: Signal, timeout: Duration) {
    let Some(pid) = pid_of(child) else { return };
    let _ = kill(pid, signal);
    if tokio::time::timeout(timeout, child.wait()).await.is_err() {
        warn!(
            pid = pid.as_raw(),
            "service did not stop within the kill timeout; SIGKILL"
        );
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Whatever the service left in its process group goes with it.
    let _ = killpg(pid, Signal::SIGKILL);
}

async fn supervise(
    settings: ExecSettings,
    telemetry: Arc<Telemetry>,
    stop_service: CancellationToken,
    shutdown: CancellationToken,
    exit: Arc<ExitStatus>,
    mut requests: mpsc::Receiver<Request>,
) {
    // Never start the service on missing or stale files.
    tokio::select! {
        _ = telemetry.first_full_sync() => {}
        _ = stop_service.cancelled() => return,
    }
    let mut backoff = Backoff::new(RESTART_BACKOFF);
    let mut child: Option<(Child, Instant)> = None;
    loop {
        if child.is_none() {
            match start(&settings.command) {
                Ok(started) => {
                    info!(command = %settings.command, pid = started.id().unwrap_or(0), "service started");
                    child = Some((started, Instant::now()));
                }
                Err(err) => {
                    error!(command = %settings.command, error = %err, "cannot start the service");
                    if settings.exit_with_child {
                        exit.set(127);
                        shutdown.cancel();
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = stop_service.cancelled() => return,
                    }
                    continue;
                }
            }
        }
        let Some((running, since)) = child.as_mut() else {
            continue;
        };
        tokio::select! {
            _ = stop_service.cancelled() => {
                info!("stopping the service");
                stop(running, settings.kill_signal, settings.kill_timeout).await;
                return;
            }
            status = running.wait() => {
                let code = status.ok().and_then(|s| s.code().or_else(|| {
                    use std::os::unix::process::ExitStatusExt;
                    s.signal().map(|signal| 128 + signal)
                })).unwrap_or(1);
                let ran = since.elapsed();
                child = None;
                if settings.exit_with_child {
                    info!(status = code, "service exited; terad exits with it");
                    exit.set(code);
                    shutdown.cancel();
                    return;
                }
                if ran >= STABLE_AFTER {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                warn!(status = code, restart_in_ms = delay.as_millis() as u64, "service exited; restarting");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop_service.cancelled() => return,
                }
            }
            request = requests.recv() => match request {
                Some(Request::FilesChanged(reply)) => {
                    if !settings.splay.is_zero() {
                        // A random share of the splay, so that a fleet does not reload at once.
                        let delay = settings.splay.mul_f64(fastrand::f64());
                        info!(delay_ms = delay.as_millis() as u64, "waiting out the splay before telling the service");
                        tokio::time::sleep(delay).await;
                    }
                    let result = match (settings.reload_signal, pid_of(running)) {
                        (Some(signal), Some(pid)) => kill(pid, signal)
                            .map(|()| info!(signal = %signal, pid = pid.as_raw(), "service signalled to reload"))
                            .map_err(ExecError::Signal),
                        _ => {
                            info!("restarting the service to load its new files");
                            stop(running, settings.kill_signal, settings.kill_timeout).await;
                            child = None;
                            Ok(())
                        }
                    };
                    let _ = reply.send(result);
                }
                Some(Request::Forward(signal)) => {
                    if let Some(pid) = pid_of(running) {
                        let _ = kill(pid, signal);
                    }
                }
                None => {}
            },
        }
    }
}
