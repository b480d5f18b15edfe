//! Log output: human-readable text or one JSON object per line, fields first.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber. `--log-level` applies to terad; libraries log at most at
/// info, because their debug and trace output is noise to an operator and can include request
/// headers (credentials). `RUST_LOG` overrides both for debugging, with a default level and
/// per-target levels (`RUST_LOG=terad=trace,h2=warn`). (`Targets`, not `EnvFilter`: no
/// regular-expression engine needed.)
pub fn init(settings: &Settings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            Targets::new()
                .with_target("terad", settings.log_level)
                .with_default(settings.log_level.min(tracing::Level::INFO))
        });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests that run terad in-process) keeps the first subscriber.
    let _ = match settings.log_format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
}
