//! The fleet primitives on Consul: sessions with a TTL (renewed by a task, `Behavior=delete` so
//! the keys they hold vanish with them), keys acquired by a session, listings ordered by
//! `CreateIndex`, and blocking queries to wait for a change.
//!
//! Consul's shortest session TTL is 10 s, and it invalidates a session only after twice its
//! TTL. A requested lifetime `ttl` therefore becomes a session TTL of `max(ttl / 2, 10 s)`:
//! a dead holder's keys go after about `ttl` (at least 20 s).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tracing::{info, warn};

use super::{Entry, LeaseId};
use crate::backend::BackendError;
use crate::backend::consul::{
    ConsulSource, MAX_BODY, blocking_query, consul_index, consul_key, error_text, read_body,
};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_SESSION_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ConsulFleet {
    source: ConsulSource,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Pair {
    key: String,
    value: Option<String>,
    create_index: u64,
    session: Option<String>,
}

/// What maintenance mode terad set, as its reason says: `terad: <resource>`.
pub const MAINTENANCE_REASON: &str = "terad: ";

/// The session TTL that makes Consul drop a dead holder after about `ttl`.
pub fn session_ttl(ttl: Duration) -> Duration {
    (ttl / 2).max(MIN_SESSION_TTL)
}

impl ConsulFleet {
    pub fn new(source: ConsulSource) -> ConsulFleet {
        ConsulFleet { source }
    }

    async fn expect_ok(
        &self,
        what: &str,
        key: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, BackendError> {
        match response.status() {
            status if status.is_success() => Ok(response),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                Err(self.source.denied(key, response).await)
            }
            status => Err(BackendError::Other {
                backend: "consul",
                message: format!(
                    "{what} {key:?} answered {status}: {}",
                    error_text(response).await
                ),
            }),
        }
    }

    pub async fn grant(
        &self,
        ttl: Duration,
    ) -> Result<(LeaseId, impl Future<Output = ()> + Send + 'static), BackendError> {
        let session_ttl = session_ttl(ttl);
        let body = serde_json::json!({
            "Name": "terad",
            "TTL": format!("{}s", session_ttl.as_secs()),
            "Behavior": "delete",
            "LockDelay": "0s",
        })
        .to_string();
        let response = self
            .source
            .call(
                Method::PUT,
                "session/create",
                "",
                &[],
                Some(body),
                REQUEST_TIMEOUT,
            )
            .await?;
        let response = self.expect_ok("creating a session", "", response).await?;
        let body = read_body(response, MAX_BODY, "session/create").await?;
        let created: Created = serde_json::from_slice(&body).map_err(|e| BackendError::Other {
            backend: "consul",
            message: format!("unreadable session answer: {e}"),
        })?;
        let id = created.id;
        let source = self.source.clone();
        let renewed = id.clone();
        let keeper = async move {
            // Consul invalidates a session twice its TTL after the last renewal: until then it
            // still holds its keys, and renewals that fail (an agent restarting, a leader
            // election) are retried; after that it is gone whatever the next answer says.
            let lifetime = session_ttl * 2;
            let mut renewed_at = tokio::time::Instant::now();
            let mut failing = false;
            let mut ticker = tokio::time::interval(session_ttl / 3);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if renewed_at.elapsed() >= lifetime {
                    warn!(session = %renewed, "no renewal reached Consul within the session's lifetime; the session is lost");
                    return;
                }
                match source
                    .call(
                        Method::PUT,
                        "session/renew",
                        &renewed,
                        &[],
                        None,
                        REQUEST_TIMEOUT.min(lifetime.saturating_sub(renewed_at.elapsed())),
                    )
                    .await
                {
                    Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                        warn!(session = %renewed, "session expired");
                        return;
                    }
                    Ok(response) if response.status().is_success() => {
                        renewed_at = tokio::time::Instant::now();
                        if failing {
                            info!(session = %renewed, "session renewal works again");
                            failing = false;
                        }
                    }
                    Ok(response) => {
                        if !failing {
                            warn!(session = %renewed, status = response.status().as_u16(), "session renewal refused; retrying within the session's lifetime");
                            failing = true;
                        }
                    }
                    Err(error) => {
                        if !failing {
                            warn!(session = %renewed, error = %error, "session renewal failed; retrying within the session's lifetime");
                            failing = true;
                        }
                    }
                }
            }
        };
        Ok((LeaseId(id), keeper))
    }

    pub async fn revoke(&self, lease: &LeaseId) -> Result<(), BackendError> {
        let response = self
            .source
            .call(
                Method::PUT,
                "session/destroy",
                &lease.0,
                &[],
                None,
                REQUEST_TIMEOUT,
            )
            .await?;
        self.expect_ok("destroying session", &lease.0, response)
            .await
            .map(|_| ())
    }

    pub async fn put(
        &self,
        key: &str,
        value: &str,
        lease: Option<&LeaseId>,
    ) -> Result<(), BackendError> {
        let key = consul_key(key);
        let query: Vec<(&str, String)> = lease
            .map(|lease| vec![("acquire", lease.0.clone())])
            .unwrap_or_default();
        let response = self
            .source
            .call(
                Method::PUT,
                "kv",
                key,
                &query,
                Some(value.to_owned()),
                REQUEST_TIMEOUT,
            )
            .await?;
        let response = self.expect_ok("writing", key, response).await?;
        // `?acquire` answers false when another session holds the key.
        let text = error_text(response).await;
        if text == "false" {
            return Err(BackendError::Other {
                backend: "consul",
                message: format!("{key:?} is held by another session"),
            });
        }
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let key = consul_key(key);
        let existed = self
            .list(key)
            .await?
            .0
            .iter()
            .any(|e| consul_key(&e.key) == key);
        let response = self
            .source
            .call(Method::DELETE, "kv", key, &[], None, REQUEST_TIMEOUT)
            .await?;
        self.expect_ok("deleting", key, response).await?;
        Ok(existed)
    }

    async fn read(
        &self,
        prefix: &str,
        index: Option<(u64, Duration)>,
    ) -> Result<(Vec<Entry>, u64), BackendError> {
        let key = consul_key(prefix);
        let mut query = vec![("recurse", "true".to_owned())];
        let timeout = blocking_query(&mut query, index);
        let response = self
            .source
            .call(Method::GET, "kv", key, &query, None, timeout)
            .await?;
        let index = consul_index(&response);
        if response.status() == StatusCode::NOT_FOUND {
            return Ok((Vec::new(), index));
        }
        let response = self.expect_ok("reading", key, response).await?;
        let body = read_body(response, MAX_BODY, key).await?;
        let mut pairs: Vec<Pair> =
            serde_json::from_slice(&body).map_err(|e| BackendError::Other {
                backend: "consul",
                message: format!("unreadable answer for {key:?}: {e}"),
            })?;
        pairs.sort_by_key(|pair| pair.create_index);
        let base64 = |value: Option<String>| {
            use base64::Engine as _;
            value
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default()
        };
        let entries = pairs
            .into_iter()
            .map(|pair| Entry {
                key: format!("/{}", pair.key),
                value: base64(pair.value),
                held: pair.session.is_some(),
            })
            .collect();
        Ok((entries, index))
    }

    /// Every key under `prefix` (or the key itself), oldest first, and the KV index.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), BackendError> {
        self.read(prefix, None).await
    }

    /// Returns once anything under `prefix` changed after `index`, or after about `limit`.
    pub async fn wait_change(
        &self,
        prefix: &str,
        index: u64,
        limit: Duration,
    ) -> Result<(), BackendError> {
        self.read(prefix, Some((index, limit))).await.map(|_| ())
    }
}

/// One instance of a coordinated service as its peers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    pub node: String,
    pub status: crate::catalog::Health,
}

impl ConsulFleet {
    /// Every instance of `service` with its health (maintenance counted as such), and the
    /// index to block on; with `index`, returns once the answer changed after it, or after
    /// about `wait`.
    pub async fn peers(
        &self,
        service: &str,
        index: Option<(u64, Duration)>,
    ) -> Result<(Vec<Peer>, u64), BackendError> {
        use crate::catalog::{HealthQuery, ServiceData, ServiceQuery, StatusFilter};
        let health = HealthQuery::new(service)
            .map_err(|e| BackendError::Other {
                backend: "consul",
                message: e.to_string(),
            })?
            .with_status(StatusFilter::Any);
        let mut query = Vec::new();
        let timeout = blocking_query(&mut query, index);
        let response = self
            .source
            .call(
                Method::GET,
                "health/service",
                service,
                &query,
                None,
                timeout,
            )
            .await?;
        let index = consul_index(&response);
        let response = self
            .expect_ok("reading the health of service", service, response)
            .await?;
        let body = read_body(response, MAX_BODY, service).await?;
        let data =
            crate::backend::consul::parse_service_answer(&ServiceQuery::Health(health), &body)
                .map_err(|e| BackendError::Other {
                    backend: "consul",
                    message: format!("unreadable health answer for service {service:?}: {e}"),
                })?;
        let peers = match data {
            ServiceData::Instances(instances) => instances
                .into_iter()
                .map(|i| Peer {
                    id: i.id,
                    node: i.node,
                    status: i.status,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok((peers, index))
    }

    /// The ids of the instances of `service` registered on the agent terad talks to.
    pub async fn local_instances(&self, service: &str) -> Result<Vec<String>, BackendError> {
        #[derive(Deserialize)]
        struct AgentService {
            #[serde(rename = "ID")]
            id: String,
            #[serde(rename = "Service")]
            service: String,
        }
        let response = self
            .source
            .call(
                Method::GET,
                "agent/services",
                "",
                &[],
                None,
                REQUEST_TIMEOUT,
            )
            .await?;
        let response = self
            .expect_ok("listing the agent's services", "", response)
            .await?;
        let body = read_body(response, MAX_BODY, "agent/services").await?;
        let services: std::collections::BTreeMap<String, AgentService> =
            serde_json::from_slice(&body).map_err(|e| BackendError::Other {
                backend: "consul",
                message: format!("unreadable answer listing the agent's services: {e}"),
            })?;
        Ok(services
            .into_values()
            .filter(|s| s.service == service)
            .map(|s| s.id)
            .collect())
    }

    /// Puts the local service instance `id` in maintenance mode (`enable`) or takes it out;
    /// `reason` shows in Consul beside the maintenance check.
    pub async fn maintenance(
        &self,
        id: &str,
        enable: bool,
        reason: &str,
    ) -> Result<(), BackendError> {
        let mut query = vec![("enable", enable.to_string())];
        if enable {
            query.push(("reason", reason.to_owned()));
        }
        let response = self
            .source
            .call(
                Method::PUT,
                "agent/service/maintenance",
                id,
                &query,
                None,
                REQUEST_TIMEOUT,
            )
            .await?;
        self.expect_ok("setting maintenance mode of service instance", id, response)
            .await?;
        Ok(())
    }

    /// The local service instances in maintenance mode that terad put there (the reason of
    /// their maintenance check starts with `terad: `), with that reason.
    pub async fn terad_maintenance(&self) -> Result<Vec<(String, String)>, BackendError> {
        #[derive(Deserialize)]
        struct Check {
            #[serde(rename = "CheckID")]
            id: String,
            #[serde(rename = "Notes", default)]
            notes: String,
        }
        let response = self
            .source
            .call(Method::GET, "agent/checks", "", &[], None, REQUEST_TIMEOUT)
            .await?;
        let response = self
            .expect_ok("listing the agent's checks", "", response)
            .await?;
        let body = read_body(response, MAX_BODY, "agent/checks").await?;
        let checks: std::collections::BTreeMap<String, Check> = serde_json::from_slice(&body)
            .map_err(|e| BackendError::Other {
                backend: "consul",
                message: format!("unreadable answer listing the agent's checks: {e}"),
            })?;
        Ok(checks
            .into_values()
            .filter(|check| check.notes.starts_with(MAINTENANCE_REASON))
            .filter_map(|check| {
                let id = check.id.strip_prefix("_service_maintenance:")?.to_owned();
                Some((id, check.notes))
            })
            .collect())
    }
}
