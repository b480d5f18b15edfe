//! Fleet settings of a resource: `[template.coordination]` (a distributed semaphore around
//! check, swap, reload and health check) and the post-reload health check that gates it.
//! `terad.toml` may give a `[coordination]` table that every resource without its own uses.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration::{DurationValue, Report, duration_key};

pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
pub const DEFAULT_JITTER: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;

/// A `[coordination]` table as written.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCoordination {
    group: Option<Spanned<String>>,
    max_concurrent: Option<Spanned<i64>>,
    ttl: Option<Spanned<DurationValue>>,
    jitter: Option<Spanned<DurationValue>>,
    service: Option<Spanned<String>>,
    max_unavailable: Option<Spanned<i64>>,
    service_id: Option<Spanned<String>>,
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
    /// The Consul service whose instances take turns, counting the unhealthy ones.
    pub service: Option<ServiceCoordination>,
}

/// `service = "api"`: an instance proceeds only while fewer than `max_unavailable` other
/// instances of the service are unavailable (critical, in maintenance, or holding a slot), and
/// puts its own instance in maintenance mode for the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCoordination {
    pub name: String,
    /// How many instances may be unavailable at once, this one included.
    pub max_unavailable: usize,
    /// This instance's service id; `None` is the one instance of `name` on the local agent.
    pub service_id: Option<String>,
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
        let service = self.validate_service(prefix, error);
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
        // With a service, `max_unavailable` bounds the slots too: a slot holder counts as
        // unavailable.
        let max_concurrent = match &service {
            Some(Some(service)) => service.max_unavailable,
            _ => max_concurrent,
        };
        Some(Coordination {
            group: group?,
            max_concurrent,
            ttl,
            jitter,
            service: service?,
        })
    }

    /// `service`, `max_unavailable`, `service_id`: `Some(None)` when the group names no
    /// service, `None` when they are wrong (reported).
    fn validate_service(
        &self,
        prefix: &str,
        error: &mut Report<'_>,
    ) -> Option<Option<ServiceCoordination>> {
        let Some(service) = &self.service else {
            for (key, span) in [
                (
                    "max_unavailable",
                    self.max_unavailable.as_ref().map(Spanned::span),
                ),
                ("service_id", self.service_id.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    error(
                        &format!("{prefix}{key}"),
                        Some(span),
                        "needs `service`, the Consul service whose instances take turns".into(),
                    );
                    return None;
                }
            }
            return Some(None);
        };
        if let Some(max) = &self.max_concurrent {
            error(
                &format!("{prefix}max_concurrent"),
                Some(max.span()),
                "a group that names a service is bounded by max_unavailable instead".into(),
            );
            return None;
        }
        let consul_name = |key: &str, value: &Spanned<String>, error: &mut Report<'_>| {
            let text = value.get_ref();
            let valid = !text.is_empty()
                && text.len() <= 256
                && !text.chars().any(|c| {
                    c.is_control() || c.is_whitespace() || matches!(c, '/' | '?' | '#' | '&')
                });
            if !valid {
                error(
                    &format!("{prefix}{key}"),
                    Some(value.span()),
                    format!("{text:?} is not a Consul service name or id"),
                );
            }
            valid.then(|| text.clone())
        };
        let name = consul_name("service", service, error);
        let service_id = match &self.service_id {
            None => Some(None),
            Some(id) => consul_name("service_id", id, error).map(Some),
        };
        let max_unavailable = match &self.max_unavailable {
            None => Some(1),
            Some(max) => match usize::try_from(*max.get_ref()) {
                Ok(max) if max >= 1 => Some(max),
                _ => {
                    error(
                        &format!("{prefix}max_unavailable"),
                        Some(max.span()),
                        format!("{:?} is not at least 1", max.get_ref()),
                    );
                    None
                }
            },
        };
        Some(Some(ServiceCoordination {
            name: name?,
            max_unavailable: max_unavailable?,
            service_id: service_id?,
        }))
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
