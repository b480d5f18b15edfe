//! Signals, in one place.
//!
//! - SIGTERM / SIGINT: graceful shutdown (in-flight writes, checks and reloads finish, bounded
//!   by `--shutdown-timeout`); a second one exits at once.
//! - SIGHUP: re-read the configuration; a configuration with errors is logged and the running
//!   one stays. `--watch-config` does the same when the configuration files change.
//! - SIGUSR1 / SIGUSR2: passed on to the `--exec` service.
//! - As PID 1 (a container's init), terad forks itself: the parent reaps every orphaned
//!   process and forwards signals, the child does the work.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Settings;
use crate::exec::ExecHandle;
use crate::runner::Control;

/// Installs the handlers; they run for the life of the process.
pub fn spawn_handlers(
    shutdown: CancellationToken,
    control: mpsc::Sender<Control>,
    exec: Option<ExecHandle>,
) -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut user1 = signal(SignalKind::user_defined1())?;
    let mut user2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
                _ = hangup.recv() => {
                    info!(signal = "SIGHUP", "configuration reload requested");
                    let _ = control.try_send(Control::Reload);
                    continue;
                }
                _ = user1.recv() => {
                    forward(exec.as_ref(), Signal::SIGUSR1);
                    continue;
                }
                _ = user2.recv() => {
                    forward(exec.as_ref(), Signal::SIGUSR2);
                    continue;
                }
            };
            if shutdown.is_cancelled() {
                warn!(signal = name, "second signal: exiting now");
                std::process::exit(130);
            }
            info!(
                signal = name,
                "shutting down: finishing the current write, check or reload"
            );
            shutdown.cancel();
        }
    });
    Ok(())
}

/// For the subcommands (`terad register`): SIGTERM or SIGINT cancels `shutdown`, nothing else
/// is handled.
pub fn spawn_shutdown_handlers(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(signal = name, "shutting down");
        shutdown.cancel();
    });
    Ok(())
}

fn forward(exec: Option<&ExecHandle>, signal: Signal) {
    match exec {
        Some(exec) => exec.forward(signal),
        None => info!(signal = %signal, "ignored: there is no --exec service to pass it to"),
    }
}

/// `--watch-config`: asks for a reload when anything in conf.d/, templates/ or the configuration
/// file's directory changes (a Kubernetes ConfigMap update swaps a hidden `..data` link, which
/// counts). Events are debounced so an editor's save or a ConfigMap swap is one reload.
pub fn watch_configuration(
    settings: &Settings,
    control: mpsc::Sender<Control>,
) -> notify::Result<()> {
    let mut watched: Vec<PathBuf> = vec![settings.conf_d(), settings.templates_dir()];
    if let Some(file) = &settings.config_file {
        watched.push(match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        });
    }
    watch_for_reload(&watched, control, "configuration files changed; reloading")
}

/// Without `--watch-config`, a daemon run still follows its templates: confd reads a template at
/// every render, so an edit goes live without a signal. Here an edit asks for a configuration
/// reload (debounced as above), which validates the template before it is used: a broken edit
/// keeps the last good template and is reported ([`crate::setup::Broken`]).
pub fn watch_templates(settings: &Settings, control: mpsc::Sender<Control>) -> notify::Result<()> {
    watch_for_reload(
        &[settings.templates_dir()],
        control,
        "templates changed; reloading",
    )
}

/// Sends [`Control::Reload`] after changes below `paths` settle for 200 ms.
fn watch_for_reload(
    paths: &[PathBuf],
    control: mpsc::Sender<Control>,
    message: &'static str,
) -> notify::Result<()> {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.as_ref().is_ok_and(|event| !event.kind.is_access()) {
            let _ = tx.send(());
        }
    })?;
    for path in paths {
        watcher.watch(path, RecursiveMode::Recursive)?;
    }
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while events.recv().await.is_some() {
            while let Ok(Some(())) =
                tokio::time::timeout(Duration::from_millis(200), events.recv()).await
            {}
            info!("{message}");
            if control.send(Control::Reload).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// When terad is PID 1 (the first process of a container), nothing else reaps orphaned
/// processes (a daemonizing reload command leaves some) or gives signals their default
/// meaning. terad then forks: the parent stays PID 1, forwards signals to the child and reaps
/// every zombie; the child returns from this function and runs terad. `TERAD_NO_INIT=1` turns
/// this off (when a real init such as tini runs terad).
///
/// Must be called before any thread exists.
pub fn become_init_if_pid1() {
    use nix::sys::signal::{SigSet, SigmaskHow, kill, sigprocmask};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::{ForkResult, Pid, fork, getpid};

    if getpid().as_raw() != 1 || std::env::var_os("TERAD_NO_INIT").is_some() {
        return;
    }
    let forwarded = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGQUIT,
    ];
    let mut waited = SigSet::empty();
    for signal in forwarded {
        waited.add(signal);
    }
    waited.add(Signal::SIGCHLD);
    // Block before forking so no signal is lost in between; the child unblocks.
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None);
    // SAFETY: called first thing in main, while the process has a single thread.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&waited), None);
        }
        Ok(ForkResult::Parent { child }) => loop {
            let Ok(signal) = waited.wait() else { continue };
            if signal != Signal::SIGCHLD {
                let _ = kill(child, signal);
                continue;
            }
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
                    Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                        std::process::exit(128 + signal as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        },
        // Cannot fork: run without the init half rather than not at all.
        Err(_) => {
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&waited), None);
        }
    }
}
