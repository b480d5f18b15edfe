//! Fleet settings of a resource: `[template.coordination]` (a distributed semaphore around
//! check, swap, reload and health check) and the post-reload health check that gates it.
//! `terad.toml` may give a `[coordination]` table that every resource without its own uses.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::resource::{DurationValue, duration_key};

pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
pub const DEFAULT_JITTER: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

/// A `[coordination]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCoordination {
    group: Option<Spanned<String>>,
    max_concurrent: Option<Spanned<i64>>,
    ttl: Option<Spanned<DurationValue>>,
    jitter: Option<Spanned<DurationValue>>,
}

/// Validated coordination: at most `max_concurrent` members of `group` apply a change at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordination {
    pub group: String,
    pub max_concurrent: usize,
    /// Lifetime of a slot whose holder stops renewing it (crashed, partitioned).
    pub ttl: Duration,
    /// Up to this random delay before contending, so a fleet does not stampede.
    pub jitter: Duration,
}

/// What proves the service healthy after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthProbe {
    /// Run by `/bin/sh -c`; exit status 0 is healthy.
    Command(String),
    /// `GET`; a 2xx answer is healthy.
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub probe: HealthProbe,
    /// Limit for one attempt.
    pub timeout: Duration,
    /// Attempts after the first failed one before the reload counts as unhealthy.
    pub retries: u32,
    /// Pause before each retry.
    pub interval: Duration,
}

/// Where a problem is: the key and, when known, its span in the file.
pub type Report<'a> = dyn FnMut(&str, Option<std::ops::Range<usize>>, String) + 'a;

impl RawCoordination {
    /// Validates the table; `prefix` is how keys are named in messages (`coordination.`).
    pub(super) fn validate(&self, prefix: &str, error: &mut Report<'_>) -> Option<Coordination> {
        let group = match &self.group {
            None => {
                error(
                    &format!("{prefix}group"),
                    None,
                    "missing: the name shared by the instances that take turns".into(),
                );
                None
            }
            Some(group) => {
                let name = group.get_ref();
                let valid = !name.is_empty()
                    && name.len() <= 128
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    && name != "."
                    && name != "..";
                if valid {
                    Some(name.clone())
                } else {
                    error(
                        &format!("{prefix}group"),
                        Some(group.span()),
                        format!(
                            "{name:?} is not a group name (letters, digits, '-', '_' and '.', at most 128)"
                        ),
                    );
                    None
                }
            }
        };
        let max_concurrent = match &self.max_concurrent {
            None => 1,
            Some(max) => match usize::try_from(*max.get_ref()) {
                Ok(max) if max >= 1 => max,
                _ => {
                    error(
                        &format!("{prefix}max_concurrent"),
                        Some(max.span()),
                        format!("{:?} is not at least 1", max.get_ref()),
                    );
                    1
                }
            },
        };
        let ttl = duration_key(
            &format!("{prefix}ttl"),
            &self.ttl,
            DEFAULT_TTL,
            Some(Duration::from_secs(2)),
            error,
        );
        let jitter = duration_key(
            &format!("{prefix}jitter"),
            &self.jitter,
            DEFAULT_JITTER,
            Some(Duration::ZERO),
            error,
        );
        Some(Coordination {
            group: group?,
            max_concurrent,
            ttl,
            jitter,
        })
    }
}

/// The health keys of a `[template]` table as written.
pub(super) struct RawHealth<'a> {
    pub cmd: &'a Option<Spanned<String>>,
    pub url: &'a Option<Spanned<String>>,
    pub(super) timeout: &'a Option<Spanned<DurationValue>>,
    pub retries: &'a Option<Spanned<i64>>,
    pub(super) interval: &'a Option<Spanned<DurationValue>>,
}

impl RawHealth<'_> {
    pub(super) fn validate(&self, error: &mut Report<'_>) -> Option<HealthCheck> {
        let probe = match (self.cmd, self.url) {
            (Some(cmd), Some(_)) => {
                error(
                    "health_cmd",
                    Some(cmd.span()),
                    "set either health_cmd or health_url, not both".into(),
                );
                None
            }
            (Some(cmd), None) if cmd.get_ref().trim().is_empty() => None,
            (Some(cmd), None) => Some(HealthProbe::Command(cmd.get_ref().clone())),
            (None, Some(url)) => match reqwest::Url::parse(url.get_ref()) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                    Some(HealthProbe::Url(url.get_ref().clone()))
                }
                _ => {
                    error(
                        "health_url",
                        Some(url.span()),
                        format!(
                            "{:?} is not an http:// or https:// URL",
                            crate::redact::url(url.get_ref())
                        ),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        let timeout = duration_key(
            "health_timeout",
            self.timeout,
            DEFAULT_HEALTH_TIMEOUT,
            None,
            error,
        );
        let interval = duration_key(
            "health_interval",
            self.interval,
            DEFAULT_HEALTH_INTERVAL,
            None,
            error,
        );
        let retries = match self.retries {
            None => DEFAULT_HEALTH_RETRIES,
            Some(retries) => match u32::try_from(*retries.get_ref()) {
                Ok(retries) => retries,
                Err(_) => {
                    error(
                        "health_retries",
                        Some(retries.span()),
                        format!("{:?} is not a number of retries", retries.get_ref()),
                    );
                    DEFAULT_HEALTH_RETRIES
                }
            },
        };
        Some(HealthCheck {
            probe: probe?,
            timeout,
            retries,
            interval,
        })
    }
}
