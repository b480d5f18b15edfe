//! Consul's service catalog, for the templates' `service()`, `services()` and `nodes()`:
//! `/v1/health/service/<name>` (one-shot runs and the fleet's peer counts; watch mode follows
//! instances by health through [`super::health`] instead), `/v1/catalog/services` and
//! `/v1/catalog/nodes`, read once or followed with blocking queries under the KV watch's index
//! rules (a 404 is an empty answer, an index that goes backwards resets to 0, an unchanged index
//! or answer reports nothing).
//!
//! Healthy-only queries let Consul filter (`?passing`); other status filters are applied here,
//! on the health aggregated from each instance's checks. An instance without an address of its
//! own takes its node's, as Consul's own tools do.
//!
//! With ACLs, Consul answers a query the token may not read with an empty list rather than a
//! 403. An empty answer is therefore checked: `/v1/discovery-chain/<name>` answers 403 when the
//! token lacks `service:read` on the service, and the catalog, which always holds at least the
//! agent's own node and the `consul` service, looks empty only to a token without `node:read`
//! or `service:read`. Either is an error naming what is missing, never an empty list.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;

use super::{
    BACKEND, ConsulSource, LIST_TIMEOUT, MAX_BODY, MIN_QUERY_INTERVAL, blocking_query,
    consul_index, error_text, read_body,
};
use crate::backend::BackendError;
use crate::catalog::{
    CatalogNode, Health, HealthCheck, HealthQuery, NodeDetail, NodeService, NodeServices,
    ServiceData, ServiceInstance, ServiceQuery, StatusFilter,
};

/// How often the datacenters' list, which has no blocking query, is read again.
const DATACENTERS_INTERVAL: Duration = Duration::from_secs(15);

/// Where a followed query stands: the index to block on and the last answer reported.
#[derive(Debug, Default)]
pub struct QueryState {
    index: u64,
    last: Option<ServiceData>,
}

impl QueryState {
    /// Starts over: the next answer is read at once and reported even if it equals the last
    /// (after an error was reported in its place).
    pub fn forget(&mut self) {
        *self = QueryState::default();
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    node: NodeEntry,
    service: ServiceEntry,
    #[serde(default)]
    checks: Vec<CheckEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeEntry {
    node: String,
    #[serde(default)]
    address: String,
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    datacenter: String,
    #[serde(default)]
    tagged_addresses: Option<BTreeMap<String, String>>,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

impl NodeEntry {
    fn detail(&mut self) -> NodeDetail {
        NodeDetail {
            id: std::mem::take(&mut self.id),
            address: self.address.clone(),
            datacenter: std::mem::take(&mut self.datacenter),
            tagged_addresses: self.tagged_addresses.take().unwrap_or_default(),
            meta: self.meta.take().unwrap_or_default(),
        }
    }
}

/// One service of `/v1/catalog/node/<name>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeServiceEntry {
    #[serde(rename = "ID")]
    id: String,
    service: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    address: String,
    #[serde(default)]
    enable_tag_override: bool,
}

/// A service's tagged address: `{"Address": "…", "Port": 80}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TaggedAddress {
    #[serde(default)]
    pub(super) address: String,
    #[serde(default)]
    pub(super) port: u16,
}

/// The tagged addresses of a service, as the catalog keeps them.
pub(super) fn tagged_addresses(
    raw: Option<BTreeMap<String, TaggedAddress>>,
) -> BTreeMap<String, (String, u16)> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|(name, tagged)| (name, (tagged.address, tagged.port)))
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceEntry {
    #[serde(rename = "ID")]
    id: String,
    service: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    tagged_addresses: Option<BTreeMap<String, TaggedAddress>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckEntry {
    #[serde(rename = "CheckID", default)]
    check_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    output: String,
    #[serde(rename = "ServiceID", default)]
    service_id: String,
    #[serde(default)]
    service_name: String,
    #[serde(default)]
    service_tags: Option<Vec<String>>,
}

impl ConsulSource {
    /// Reads one query, blocking until its index passes `index` when `wait` is given. Returns
    /// the new index and the answer, filtered and sorted.
    pub async fn read_service(
        &self,
        query: &ServiceQuery,
        index: u64,
        wait: Option<Duration>,
    ) -> Result<(u64, ServiceData), BackendError> {
        let source = self.in_datacenter(query.datacenter());
        let (endpoint, key, mut params) = match query {
            ServiceQuery::Health(health) => {
                let mut params = Vec::new();
                if health.status == StatusFilter::Passing {
                    params.push(("passing", "true".to_owned()));
                }
                if let Some(tag) = &health.tag {
                    params.push(("tag", tag.clone()));
                }
                ("health/service", health.name.as_str(), params)
            }
            ServiceQuery::Services { .. } => ("catalog/services", "", Vec::new()),
            ServiceQuery::Nodes { .. } => ("catalog/nodes", "", Vec::new()),
            ServiceQuery::Node { name, .. } => {
                let name = match name {
                    Some(name) => Cow::Borrowed(name.as_str()),
                    None => Cow::Owned(source.agent_node_name().await?),
                };
                return source.read_node(query, &name, index, wait).await;
            }
            ServiceQuery::Datacenters => ("catalog/datacenters", "", Vec::new()),
        };
        let timeout = blocking_query(&mut params, wait.map(|wait| (index, wait)));
        let response = source
            .call(reqwest::Method::GET, endpoint, key, &params, None, timeout)
            .await?;
        let status = response.status();
        let new_index = consul_index(&response);
        let data = match status {
            StatusCode::OK => {
                let body = read_body(response, MAX_BODY, &format!("{query}")).await?;
                parse(query, &body).map_err(|e| BackendError::Other {
                    backend: BACKEND,
                    message: format!("unreadable answer for {query}: {e}"),
                })?
            }
            // Nothing there yet; the index is real and can be blocked on.
            StatusCode::NOT_FOUND => parse(query, b"[]").unwrap_or(ServiceData::Nodes(Vec::new())),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                let reason = error_text(response).await;
                return Err(source.refused(query, reason.trim()));
            }
            other => {
                return Err(BackendError::Other {
                    backend: BACKEND,
                    message: format!(
                        "reading {query} answered {other}: {}",
                        error_text(response).await
                    ),
                });
            }
        };
        if data.is_empty() {
            source.check_empty_answer(query).await?;
        }
        Ok((new_index, data))
    }

    /// This client, asking `datacenter` instead of --consul-datacenter when a query names one.
    pub(super) fn in_datacenter(&self, datacenter: Option<&str>) -> Cow<'_, ConsulSource> {
        match datacenter {
            Some(dc) => {
                let mut other = self.clone();
                other.datacenter = Some(dc.to_owned());
                Cow::Owned(other)
            }
            None => Cow::Borrowed(self),
        }
    }

    /// An error when an empty answer to `query` is only what the ACL token may read.
    pub(super) async fn check_empty_answer(
        &self,
        query: &ServiceQuery,
    ) -> Result<(), BackendError> {
        let missing = self.missing_permissions(query).await;
        if missing.is_empty() {
            return Ok(());
        }
        Err(self.refused(
            query,
            &format!(
                "the ACL token lacks {} (Consul answers an empty list for what a token may not read)",
                missing.join(" and ")
            ),
        ))
    }

    /// Blocks until the query's answer changes, under the KV watch's index rules: `Some` with
    /// the new answer, `None` when Consul returned with nothing new (already paced, so calling
    /// again at once does not spin).
    pub async fn next_answer(
        &self,
        query: &ServiceQuery,
        state: &mut QueryState,
    ) -> Result<Option<ServiceData>, BackendError> {
        let started = Instant::now();
        let (new_index, data) = self
            .read_service(query, state.index, Some(self.wait))
            .await?;
        let unchanged_index = new_index == state.index;
        // Consul's index only grows; a smaller one means a new agent or a restored snapshot.
        state.index = if new_index < state.index {
            0
        } else {
            new_index
        };
        if state.last.as_ref() != Some(&data) {
            state.last = Some(data.clone());
            return Ok(Some(data));
        }
        // The datacenters' list cannot be blocked on: it is read again every 15 s, as
        // consul-template does.
        let pace = match query {
            ServiceQuery::Datacenters => DATACENTERS_INTERVAL,
            _ => MIN_QUERY_INTERVAL,
        };
        if unchanged_index || started.elapsed() < pace {
            tokio::time::sleep(pace.saturating_sub(started.elapsed())).await;
        }
        Ok(None)
    }

    /// The ACL permissions an empty answer to `query` may hide.
    async fn missing_permissions(&self, query: &ServiceQuery) -> Vec<String> {
        let mut missing = Vec::new();
        match query {
            ServiceQuery::Health(HealthQuery { name, .. }) => {
                if self.forbidden("discovery-chain", name).await {
                    missing.push(format!("service:read on {name:?}"));
                }
                if self.catalog_looks_empty("catalog/nodes").await {
                    missing.push("node:read".to_owned());
                }
            }
            ServiceQuery::Services { .. } => missing.push("service:read".to_owned()),
            ServiceQuery::Nodes { .. } | ServiceQuery::Node { .. } => {
                missing.push("node:read".to_owned())
            }
            // Every token may list the datacenters, and there is always one.
            ServiceQuery::Datacenters => {}
        }
        missing
    }

    /// The name of the node of the agent terad talks to (`/v1/agent/self`).
    async fn agent_node_name(&self) -> Result<String, BackendError> {
        #[derive(Deserialize)]
        struct AgentSelf {
            #[serde(rename = "Config")]
            config: AgentConfig,
        }
        #[derive(Deserialize)]
        struct AgentConfig {
            #[serde(rename = "NodeName")]
            node_name: String,
        }
        let response = self
            .call(
                reqwest::Method::GET,
                "agent/self",
                "",
                &[],
                None,
                LIST_TIMEOUT,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(BackendError::Other {
                backend: BACKEND,
                message: format!(
                    "reading the agent's node name answered {status}: {}",
                    error_text(response).await
                ),
            });
        }
        let body = read_body(response, MAX_BODY, "the agent's node name").await?;
        serde_json::from_slice::<AgentSelf>(&body)
            .map(|agent| agent.config.node_name)
            .map_err(|e| BackendError::Other {
                backend: BACKEND,
                message: format!("unreadable answer for the agent's node name: {e}"),
            })
    }

    /// `/v1/catalog/node/<name>`: the node and its services (Consul answers `null` for a node
    /// it does not know).
    async fn read_node(
        &self,
        query: &ServiceQuery,
        name: &str,
        index: u64,
        wait: Option<Duration>,
    ) -> Result<(u64, ServiceData), BackendError> {
        let mut params = Vec::new();
        let timeout = blocking_query(&mut params, wait.map(|wait| (index, wait)));
        let response = self
            .call(
                reqwest::Method::GET,
                "catalog/node",
                name,
                &params,
                None,
                timeout,
            )
            .await?;
        let status = response.status();
        let new_index = consul_index(&response);
        match status {
            StatusCode::OK => {
                let body = read_body(response, MAX_BODY, &format!("{query}")).await?;
                let data = parse(query, &body).map_err(|e| BackendError::Other {
                    backend: BACKEND,
                    message: format!("unreadable answer for {query}: {e}"),
                })?;
                Ok((new_index, data))
            }
            StatusCode::NOT_FOUND => Ok((new_index, ServiceData::Node(None))),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                let reason = error_text(response).await;
                Err(self.refused(query, reason.trim()))
            }
            other => Err(BackendError::Other {
                backend: BACKEND,
                message: format!(
                    "reading {query} answered {other}: {}",
                    error_text(response).await
                ),
            }),
        }
    }

    /// Whether Consul refuses a read of `endpoint/key` with 403.
    async fn forbidden(&self, endpoint: &str, key: &str) -> bool {
        let response = self
            .call(reqwest::Method::GET, endpoint, key, &[], None, LIST_TIMEOUT)
            .await;
        response.is_ok_and(|r| r.status() == StatusCode::FORBIDDEN)
    }

    /// Whether a catalog listing comes back empty (never true of a readable catalog).
    async fn catalog_looks_empty(&self, endpoint: &str) -> bool {
        let Ok(response) = self
            .call(reqwest::Method::GET, endpoint, "", &[], None, LIST_TIMEOUT)
            .await
        else {
            return false;
        };
        if response.status() != StatusCode::OK {
            return false;
        }
        match read_body(response, MAX_BODY, endpoint).await {
            Ok(body) => serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body)
                .is_ok_and(|nodes| nodes.is_empty()),
            Err(_) => false,
        }
    }

    pub(super) fn refused(&self, query: &ServiceQuery, reason: &str) -> BackendError {
        let hint = if self.token.is_some() {
            "check the ACL token's policy: service:read and node:read"
        } else {
            "give an ACL token with service:read and node:read (--auth-token, --auth-token-file or CONSUL_HTTP_TOKEN)"
        };
        BackendError::Denied {
            backend: BACKEND,
            message: format!("reading {query}: {reason} ({hint})"),
        }
    }
}

/// Turns Consul's answer into the query's data, filtered and sorted (public for the benchmarks).
pub fn parse(query: &ServiceQuery, body: &[u8]) -> Result<ServiceData, serde_json::Error> {
    Ok(match query {
        ServiceQuery::Health(health) => {
            let entries: Vec<HealthEntry> = serde_json::from_slice(body)?;
            let all = entries.into_iter().map(instance).collect();
            ServiceData::instances(health, all)
        }
        ServiceQuery::Services { .. } => {
            // `[]` stands for nothing (a 404).
            if body == b"[]" {
                return Ok(ServiceData::services(Vec::new()));
            }
            let services: BTreeMap<String, Option<Vec<String>>> = serde_json::from_slice(body)?;
            ServiceData::services(
                services
                    .into_iter()
                    .map(|(name, tags)| (name, tags.unwrap_or_default())),
            )
        }
        ServiceQuery::Node { .. } => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct NodeAnswer {
                node: NodeEntry,
                #[serde(default)]
                services: Option<BTreeMap<String, NodeServiceEntry>>,
            }
            let Some(mut answer) = serde_json::from_slice::<Option<NodeAnswer>>(body)? else {
                return Ok(ServiceData::Node(None));
            };
            let mut services: Vec<NodeService> = answer
                .services
                .unwrap_or_default()
                .into_values()
                .map(|service| NodeService {
                    id: service.id,
                    service: service.service,
                    tags: service.tags.unwrap_or_default(),
                    meta: service.meta.unwrap_or_default(),
                    port: service.port,
                    address: service.address,
                    enable_tag_override: service.enable_tag_override,
                })
                .collect();
            services.sort_by(|a, b| (&a.service, &a.id).cmp(&(&b.service, &b.id)));
            ServiceData::Node(Some(Box::new(NodeServices {
                node: CatalogNode {
                    detail: answer.node.detail(),
                    node: answer.node.node,
                    address: answer.node.address,
                },
                services,
            })))
        }
        ServiceQuery::Datacenters => {
            let mut datacenters: Vec<String> = serde_json::from_slice(body)?;
            datacenters.sort();
            ServiceData::Datacenters(datacenters)
        }
        ServiceQuery::Nodes { .. } => {
            let nodes: Vec<NodeEntry> = serde_json::from_slice(body)?;
            ServiceData::nodes(
                nodes
                    .into_iter()
                    .map(|mut n| CatalogNode {
                        detail: n.detail(),
                        node: n.node,
                        address: n.address,
                    })
                    .collect(),
            )
        }
    })
}

fn instance(mut entry: HealthEntry) -> ServiceInstance {
    let status = Health::aggregate(
        entry
            .checks
            .iter()
            .map(|check| (check.check_id.as_str(), check.status.as_str())),
    );
    let node_detail = std::sync::Arc::new(entry.node.detail());
    let address = if entry.service.address.is_empty() {
        entry.node.address
    } else {
        entry.service.address
    };
    let checks = entry
        .checks
        .into_iter()
        .map(|check| HealthCheck {
            node: check.node,
            check_id: check.check_id,
            name: check.name,
            status: check.status,
            notes: check.notes,
            output: check.output,
            service_id: check.service_id,
            service_name: check.service_name,
            service_tags: check.service_tags.unwrap_or_default(),
        })
        .collect();
    ServiceInstance {
        node_detail,
        tagged_addresses: tagged_addresses(entry.service.tagged_addresses),
        checks,
        id: entry.service.id,
        name: entry.service.service,
        node: entry.node.node,
        address,
        port: entry.service.port,
        tags: entry.service.tags.unwrap_or_default(),
        meta: entry.service.meta.unwrap_or_default(),
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTH: &str = r#"[
      {"Node": {"Node": "n2", "Address": "10.0.0.2", "Datacenter": "dc1"},
       "Service": {"ID": "web-b", "Service": "web", "Tags": ["v2"], "Address": "", "Meta": {"zone": "b"}, "Port": 8080},
       "Checks": [{"CheckID": "serfHealth", "Status": "passing"}, {"CheckID": "service:web-b", "Status": "warning"}]},
      {"Node": {"Node": "n1", "Address": "10.0.0.1"},
       "Service": {"ID": "web-a", "Service": "web", "Tags": null, "Address": "192.168.1.1", "Meta": null, "Port": 80},
       "Checks": [{"CheckID": "serfHealth", "Status": "passing"}]},
      {"Node": {"Node": "n0", "Address": "10.0.0.9"},
       "Service": {"ID": "web-c", "Service": "web", "Address": "", "Port": 81},
       "Checks": [{"CheckID": "_service_maintenance:web-c", "Status": "critical"}]}
    ]"#;

    #[test]
    fn instances_take_the_node_address_when_they_have_none_and_aggregate_health() {
        let query = HealthQuery::new("web")
            .unwrap()
            .with_status(StatusFilter::Any);
        let ServiceData::Instances(instances) =
            parse(&ServiceQuery::Health(query), HEALTH.as_bytes()).unwrap()
        else {
            panic!()
        };
        let summary: Vec<(&str, &str, &str, u16, Health)> = instances
            .iter()
            .map(|i| {
                (
                    i.node.as_str(),
                    i.id.as_str(),
                    i.address.as_str(),
                    i.port,
                    i.status,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("n0", "web-c", "10.0.0.9", 81, Health::Maintenance),
                ("n1", "web-a", "192.168.1.1", 80, Health::Passing),
                ("n2", "web-b", "10.0.0.2", 8080, Health::Warning),
            ]
        );
        assert_eq!(instances[2].tags, ["v2"]);
        assert_eq!(instances[2].meta["zone"], "b");

        let passing_or_warning = HealthQuery::new("web")
            .unwrap()
            .with_status(StatusFilter::parse("passing,warning").unwrap());
        let kept = parse(&ServiceQuery::Health(passing_or_warning), HEALTH.as_bytes()).unwrap();
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn catalog_services_and_nodes_are_sorted() {
        let services = parse(
            &ServiceQuery::Services { datacenter: None },
            br#"{"web": ["v2", "v1", "v2"], "consul": [], "api": null}"#,
        )
        .unwrap();
        let ServiceData::Services(services) = services else {
            panic!()
        };
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["api", "consul", "web"]);
        assert_eq!(services[2].tags, ["v1", "v2"]);
        let nodes = parse(
            &ServiceQuery::Nodes { datacenter: None },
            br#"[{"Node": "b", "Address": "10.0.0.2", "ID": "x"}, {"Node": "a", "Address": "10.0.0.1"}]"#,
        )
        .unwrap();
        assert_eq!(
            nodes,
            ServiceData::Nodes(vec![
                CatalogNode {
                    node: "a".into(),
                    address: "10.0.0.1".into(),
                    detail: NodeDetail {
                        address: "10.0.0.1".into(),
                        ..Default::default()
                    },
                },
                CatalogNode {
                    node: "b".into(),
                    address: "10.0.0.2".into(),
                    detail: NodeDetail {
                        id: "x".into(),
                        address: "10.0.0.2".into(),
                        ..Default::default()
                    },
                },
            ])
        );
        assert!(
            parse(&ServiceQuery::Services { datacenter: None }, b"[]")
                .unwrap()
                .is_empty()
        );
    }
}
