//! Signals, in one place: SIGTERM and SIGINT ask for a graceful shutdown; a second one exits at
//! once (an operator pressing Ctrl-C twice means it).

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Cancels `shutdown` on the first SIGTERM or SIGINT; exits the process on the second.
pub fn spawn_shutdown_handler(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(
            signal = name,
            "shutting down: finishing the current write, check or reload"
        );
        shutdown.cancel();
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        warn!(signal = name, "second signal: exiting now");
        std::process::exit(130);
    });
    Ok(())
}
