//! `[template.haproxy]`: the HAProxy runtime API a resource's file is applied through. With it,
//! a change that only adds, removes or re-points `server` lines is made in the running HAProxy
//! instead of reloading it ([`crate::haproxy`], [`crate::apply`]).
//!
//! ```toml
//! [template.haproxy]
//! runtime_api = "/run/haproxy/admin.sock"   # or "ipv4@127.0.0.1:9999"
//! timeout = "2s"                            # per command
//! drain_timeout = "10s"                     # for a removed server's sessions
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration::{DurationValue, Report, duration_key};
use crate::haproxy::{RuntimeAddress, RuntimeApi};

/// How long one command to the runtime API may take unless the resource says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a removed server's sessions may take to end before they are shut down.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A `[template.haproxy]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHaproxy {
    runtime_api: Option<Spanned<String>>,
    timeout: Option<Spanned<DurationValue>>,
    drain_timeout: Option<Spanned<DurationValue>>,
}

/// Validated `[template.haproxy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyRuntime {
    /// HAProxy's stats socket at level admin (a worker's, not the master CLI).
    pub runtime_api: RuntimeAddress,
    /// Bounds each command: connecting, sending, reading the answer.
    pub timeout: Duration,
    /// How long a removed server's sessions may take to end before they are shut down.
    pub drain_timeout: Duration,
}

impl HaproxyRuntime {
    /// The client for this resource's HAProxy.
    pub fn api(&self) -> RuntimeApi {
        RuntimeApi::new(self.runtime_api.clone(), self.timeout, self.drain_timeout)
    }
}

impl RawHaproxy {
    /// Validates the table; `at` is its span, for a missing key. Keys are named `haproxy.…`.
    pub(super) fn validate(
        &self,
        at: std::ops::Range<usize>,
        error: &mut Report<'_>,
    ) -> Option<HaproxyRuntime> {
        let runtime_api = match &self.runtime_api {
            None => {
                error(
                    "haproxy.runtime_api",
                    Some(at),
                    "missing: haproxy's stats socket at level admin, such as \"/run/haproxy/admin.sock\" or \"ipv4@127.0.0.1:9999\"".into(),
                );
                None
            }
            Some(address) => match address.get_ref().parse::<RuntimeAddress>() {
                Ok(address) => Some(address),
                Err(message) => {
                    error(
                        "haproxy.runtime_api",
                        Some(address.span()),
                        message.to_string(),
                    );
                    None
                }
            },
        };
        let timeout = duration_key(
            "haproxy.timeout",
            &self.timeout,
            DEFAULT_TIMEOUT,
            None,
            error,
        );
        // Zero is allowed: removed servers' sessions are shut down at once.
        let drain_timeout = duration_key(
            "haproxy.drain_timeout",
            &self.drain_timeout,
            DEFAULT_DRAIN_TIMEOUT,
            Some(Duration::ZERO),
            error,
        );
        Some(HaproxyRuntime {
            runtime_api: runtime_api?,
            timeout,
            drain_timeout,
        })
    }
}
