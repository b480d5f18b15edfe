//! Consul's service catalog as terad's domain knows it, whoever asks: the queries (a service's
//! instances filtered by health, the catalog's services, its nodes), their answers as plain Rust
//! values, and the snapshot a render reads. The Consul backend fills it in, the runner watches it,
//! the fleet counts healthy peers with it, and each template engine exposes it in its own
//! spelling ([`crate::template::services`]).
//!
//! A template never talks to Consul. The runner watches each distinct [`ServiceQuery`] with one
//! blocking query and hands every render the results as one [`ServiceSnapshot`] (one state of
//! the catalog, as the key store is one state of the keys). A render also gets a
//! [`ServiceRecord`] in which the functions note every query they were asked: a query the runner
//! does not watch yet (a service name computed from keys, say) fails the render with "waiting
//! for service data" instead of rendering an empty list, and the runner starts watching it and
//! renders again once its data is there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

/// The health of one instance: the worst of its checks, as Consul's own tools aggregate them
/// (maintenance over critical over warning over passing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Passing,
    Warning,
    Critical,
    Maintenance,
}

/// Consul's check ids for node and service maintenance mode.
const NODE_MAINTENANCE: &str = "_node_maintenance";
const SERVICE_MAINTENANCE: &str = "_service_maintenance:";

impl Health {
    pub const ALL: [Health; 4] = [
        Health::Passing,
        Health::Warning,
        Health::Critical,
        Health::Maintenance,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Health::Passing => "passing",
            Health::Warning => "warning",
            Health::Critical => "critical",
            Health::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Result<Health, ServiceError> {
        Health::ALL
            .into_iter()
            .find(|health| health.name() == text)
            .ok_or_else(|| {
                ServiceError::Invalid(format!(
                    "unknown status {text:?}; a status is \"any\" or one of passing, warning, critical, maintenance"
                ))
            })
    }

    /// The health of an instance with these checks, given as (check id, status). No checks is
    /// passing, as in Consul; a status Consul may add later counts as critical.
    pub fn aggregate<'a>(checks: impl IntoIterator<Item = (&'a str, &'a str)>) -> Health {
        let mut worst = Health::Passing;
        for (id, status) in checks {
            let health = if id == NODE_MAINTENANCE || id.starts_with(SERVICE_MAINTENANCE) {
                Health::Maintenance
            } else {
                match status {
                    "passing" => Health::Passing,
                    "warning" => Health::Warning,
                    _ => Health::Critical,
                }
            };
            worst = worst.max(health);
        }
        worst
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which instances a [`HealthQuery`] keeps, by health. The default keeps passing instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusFilter {
    /// Healthy instances only: Consul filters them itself (`?passing`).
    #[default]
    Passing,
    /// Every instance, whatever its health.
    Any,
    /// The instances whose health is one of these (never just `passing`, which is [`Passing`]).
    ///
    /// [`Passing`]: StatusFilter::Passing
    OneOf(BTreeSet<Health>),
}

impl StatusFilter {
    /// consul-template's spelling: `"any"`, one status, or statuses joined by commas
    /// (`"passing,warning"`).
    pub fn parse(text: &str) -> Result<StatusFilter, ServiceError> {
        StatusFilter::from_list(text.split(',').map(str::trim))
    }

    /// A list of statuses (`["passing", "warning"]`); `"any"` alone keeps every instance.
    pub fn from_list<'a>(
        items: impl IntoIterator<Item = &'a str>,
    ) -> Result<StatusFilter, ServiceError> {
        let mut set = BTreeSet::new();
        let mut any = false;
        for item in items {
            if item == "any" {
                any = true;
            } else {
                set.insert(Health::parse(item)?);
            }
        }
        if any {
            return if set.is_empty() {
                Ok(StatusFilter::Any)
            } else {
                Err(ServiceError::Invalid(
                    "status \"any\" cannot be combined with other statuses".to_owned(),
                ))
            };
        }
        if set.is_empty() {
            return Err(ServiceError::Invalid(
                "an empty status list keeps nothing".to_owned(),
            ));
        }
        if set.len() == Health::ALL.len() {
            return Ok(StatusFilter::Any);
        }
        if set.len() == 1 && set.contains(&Health::Passing) {
            return Ok(StatusFilter::Passing);
        }
        Ok(StatusFilter::OneOf(set))
    }

    pub fn admits(&self, health: Health) -> bool {
        match self {
            StatusFilter::Passing => health == Health::Passing,
            StatusFilter::Any => true,
            StatusFilter::OneOf(set) => set.contains(&health),
        }
    }
}

impl fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusFilter::Passing => f.write_str("passing"),
            StatusFilter::Any => f.write_str("any"),
            StatusFilter::OneOf(set) => {
                let names: Vec<&str> = set.iter().map(|h| h.name()).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

/// `service(...)`: the instances of one service, by tag, health and datacenter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HealthQuery {
    pub name: String,
    /// Only instances with this tag (Consul filters: `?tag=`).
    pub tag: Option<String>,
    pub status: StatusFilter,
    /// Another datacenter than the agent's (or `--consul-datacenter`).
    pub datacenter: Option<String>,
}

impl HealthQuery {
    /// The passing instances of `name`, in the default datacenter.
    pub fn new(name: &str) -> Result<HealthQuery, ServiceError> {
        check_name("service name", name)?;
        Ok(HealthQuery {
            name: name.to_owned(),
            tag: None,
            status: StatusFilter::Passing,
            datacenter: None,
        })
    }

    pub fn with_tag(mut self, tag: &str) -> Result<HealthQuery, ServiceError> {
        check_name("tag", tag)?;
        self.tag = Some(tag.to_owned());
        Ok(self)
    }

    pub fn with_status(mut self, status: StatusFilter) -> HealthQuery {
        self.status = status;
        self
    }

    pub fn with_datacenter(mut self, datacenter: &str) -> Result<HealthQuery, ServiceError> {
        check_name("datacenter", datacenter)?;
        self.datacenter = Some(datacenter.to_owned());
        Ok(self)
    }

    /// consul-template's one-string spelling, `[tag.]name[@datacenter]`: `"web"`, `"v2.web"`,
    /// `"web@dc2"`. The name is the part after the last dot (a tag may hold dots, a service
    /// name used this way may not).
    pub fn parse_spec(spec: &str) -> Result<HealthQuery, ServiceError> {
        let (rest, datacenter) = match spec.split_once('@') {
            Some((rest, dc)) => (rest, Some(dc)),
            None => (spec, None),
        };
        let (tag, name) = match rest.rsplit_once('.') {
            Some((tag, name)) => (Some(tag), name),
            None => (None, rest),
        };
        let mut query = HealthQuery::new(name).map_err(|e| e.in_spec(spec))?;
        if let Some(tag) = tag {
            query = query.with_tag(tag).map_err(|e| e.in_spec(spec))?;
        }
        if let Some(dc) = datacenter {
            query = query.with_datacenter(dc).map_err(|e| e.in_spec(spec))?;
        }
        Ok(query)
    }
}

impl fmt::Display for HealthQuery {
    /// `service "web"`, `service "web" (tag "v2", status any, datacenter "dc2")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service {:?}", self.name)?;
        let mut details = Vec::new();
        if let Some(tag) = &self.tag {
            details.push(format!("tag {tag:?}"));
        }
        if self.status != StatusFilter::Passing {
            details.push(format!("status {}", self.status));
        }
        if let Some(dc) = &self.datacenter {
            details.push(format!("datacenter {dc:?}"));
        }
        if !details.is_empty() {
            write!(f, " ({})", details.join(", "))?;
        }
        Ok(())
    }
}

/// Names go into a URL path and query: printable, no `/`, `?`, `#` or spaces.
pub(crate) fn check_name(what: &str, value: &str) -> Result<(), ServiceError> {
    if value.is_empty() {
        return Err(ServiceError::Invalid(format!("the {what} is empty")));
    }
    if value.len() > 256
        || value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '?' | '#' | '&'))
    {
        return Err(ServiceError::Invalid(format!(
            "the {what} {} is not a Consul name",
            crate::redact::preview(value)
        )));
    }
    Ok(())
}

/// One thing read from Consul's catalog: one blocking query, shared by every resource that
/// asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceQuery {
    /// `service(...)`: `/v1/health/service/<name>`.
    Health(HealthQuery),
    /// `services()`: `/v1/catalog/services`.
    Services { datacenter: Option<String> },
    /// `nodes()`: `/v1/catalog/nodes`.
    Nodes { datacenter: Option<String> },
    /// consul-template's `node`: one node and its services, `/v1/catalog/node/<name>`; with
    /// no name, the node of the agent terad talks to.
    Node {
        name: Option<String>,
        datacenter: Option<String>,
    },
    /// consul-template's `datacenters`: `/v1/catalog/datacenters`.
    Datacenters,
}

impl ServiceQuery {
    pub fn datacenter(&self) -> Option<&str> {
        match self {
            ServiceQuery::Health(query) => query.datacenter.as_deref(),
            ServiceQuery::Services { datacenter }
            | ServiceQuery::Nodes { datacenter }
            | ServiceQuery::Node { datacenter, .. } => datacenter.as_deref(),
            ServiceQuery::Datacenters => None,
        }
    }
}

impl fmt::Display for ServiceQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, dc) = match self {
            ServiceQuery::Health(query) => return query.fmt(f),
            ServiceQuery::Services { datacenter } => ("the catalog's services", datacenter),
            ServiceQuery::Nodes { datacenter } => ("the catalog's nodes", datacenter),
            ServiceQuery::Node { name, datacenter } => {
                match name {
                    Some(name) => write!(f, "node {name:?}")?,
                    None => f.write_str("the agent's node")?,
                }
                if let Some(dc) = datacenter {
                    write!(f, " (datacenter {dc:?})")?;
                }
                return Ok(());
            }
            ServiceQuery::Datacenters => return f.write_str("the catalog's datacenters"),
        };
        f.write_str(what)?;
        if let Some(dc) = dc {
            write!(f, " (datacenter {dc:?})")?;
        }
        Ok(())
    }
}

/// One instance of a service, as `service()` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServiceInstance {
    pub id: String,
    pub name: String,
    pub node: String,
    /// The service's address, or its node's when the service has none.
    pub address: String,
    pub port: u16,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub status: Health,
    /// What consul-template's `service` shows besides (`.NodeID .NodeAddress .NodeMeta
    /// .NodeTaggedAddresses .ServiceTaggedAddresses .Checks`). Not serialized: Tera's
    /// `service()` keeps the fields it always had.
    #[serde(skip)]
    /// Shared by the instances of one node: at 1 000 instances on few nodes, a copy each made
    /// every health change's view 8 MiB larger and twice as slow to build.
    pub node_detail: std::sync::Arc<NodeDetail>,
    /// The service's tagged addresses (`lan`, `wan`, …), with their ports.
    #[serde(skip)]
    pub tagged_addresses: BTreeMap<String, (String, u16)>,
    /// The instance's checks and its node's, as Consul lists them. Only a one-shot run reads
    /// them all; watch mode follows failing checks alone, so it lists those.
    #[serde(skip)]
    pub checks: Vec<HealthCheck>,
}

/// A node as the health endpoint describes it with each instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeDetail {
    pub id: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
}

/// One health check of an instance or of its node (consul-template's `api.HealthCheck`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthCheck {
    pub node: String,
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
}

/// One service of the catalog, as `services()` returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogService {
    pub name: String,
    /// Every tag of any of its instances, sorted, once each.
    pub tags: Vec<String>,
}

/// One node of the catalog, as `nodes()` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CatalogNode {
    pub node: String,
    pub address: String,
    /// What consul-template's `nodes` shows besides (`.ID .Datacenter .TaggedAddresses
    /// .Meta`); not serialized, as for instances.
    #[serde(skip)]
    pub detail: NodeDetail,
}

/// One node with the services registered on it, as consul-template's `node` returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeServices {
    pub node: CatalogNode,
    /// Sorted by service name, then id.
    pub services: Vec<NodeService>,
}

/// A service registered on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeService {
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub address: String,
    pub enable_tag_override: bool,
}

/// What one query returned, sorted so that a render is stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceData {
    Instances(Vec<ServiceInstance>),
    Services(Vec<CatalogService>),
    Nodes(Vec<CatalogNode>),
    /// A node and its services; `None` when the catalog has no such node.
    Node(Option<Box<NodeServices>>),
    /// The datacenters' names, sorted.
    Datacenters(Vec<String>),
}

impl ServiceData {
    /// The instances a health query keeps, sorted by node, then id.
    pub fn instances(query: &HealthQuery, all: Vec<ServiceInstance>) -> ServiceData {
        let mut kept: Vec<ServiceInstance> = all
            .into_iter()
            .filter(|instance| query.status.admits(instance.status))
            .collect();
        kept.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        ServiceData::Instances(kept)
    }

    /// The catalog's services sorted by name, each with its tags sorted and distinct.
    pub fn services(all: impl IntoIterator<Item = (String, Vec<String>)>) -> ServiceData {
        let mut services: Vec<CatalogService> = all
            .into_iter()
            .map(|(name, mut tags)| {
                tags.sort();
                tags.dedup();
                CatalogService { name, tags }
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        ServiceData::Services(services)
    }

    /// The catalog's nodes sorted by name, then address.
    pub fn nodes(mut all: Vec<CatalogNode>) -> ServiceData {
        all.sort_by(|a, b| (&a.node, &a.address).cmp(&(&b.node, &b.address)));
        ServiceData::Nodes(all)
    }

    /// How many entries: what the empty-store guard counts.
    pub fn len(&self) -> usize {
        match self {
            ServiceData::Instances(items) => items.len(),
            ServiceData::Services(items) => items.len(),
            ServiceData::Nodes(items) => items.len(),
            ServiceData::Node(node) => node.as_ref().map_or(0, |node| node.services.len()),
            ServiceData::Datacenters(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the runner knows of one query: its data, or why there is none (an ACL refusal, or a
/// Consul that has not answered since terad started).
pub type QueryResult = Result<Arc<ServiceData>, Arc<str>>;

/// The catalog at one state, as a render sees it.
#[derive(Debug, Clone, Default)]
pub struct ServiceSnapshot {
    /// Why no query can ever be answered (the backend is not Consul), for the error.
    pub unavailable: Option<String>,
    pub results: HashMap<ServiceQuery, QueryResult>,
}

impl ServiceSnapshot {
    /// A snapshot for a backend without a service catalog: every function fails, naming it.
    pub fn unavailable(backend: &str) -> ServiceSnapshot {
        ServiceSnapshot {
            unavailable: Some(format!(
                "the {backend} backend has no service catalog; services are read from Consul (--backend consul)"
            )),
            results: HashMap::new(),
        }
    }

    /// How many entries the query has now (0 when it has no data), for the empty-store guard.
    pub fn count(&self, query: &ServiceQuery) -> usize {
        match self.results.get(query) {
            Some(Ok(data)) => data.len(),
            _ => 0,
        }
    }

    /// Whether the runner has an answer (data or an error) for the query.
    pub fn has(&self, query: &ServiceQuery) -> bool {
        self.results.contains_key(query)
    }
}

/// The queries one render asked for, filled in by the template functions.
#[derive(Debug, Default)]
pub struct ServiceRecord {
    asked: Mutex<Asked>,
}

#[derive(Debug, Default)]
struct Asked {
    used: BTreeSet<ServiceQuery>,
    missing: BTreeSet<ServiceQuery>,
}

impl ServiceRecord {
    fn note(&self, query: &ServiceQuery, missing: bool) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        if !asked.used.contains(query) {
            asked.used.insert(query.clone());
        }
        if missing {
            asked.missing.insert(query.clone());
        }
    }

    /// Every query the render asked for.
    pub fn used(&self) -> BTreeSet<ServiceQuery> {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .used
            .clone()
    }

    /// The queries the render asked for that had no data yet: the render failed waiting for
    /// them.
    pub fn missing(&self) -> BTreeSet<ServiceQuery> {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .missing
            .clone()
    }
}

/// What one render reads of the catalog: the snapshot, and where it notes what it asked.
#[derive(Debug, Clone, Default)]
pub struct ServiceInput {
    pub snapshot: Arc<ServiceSnapshot>,
    pub record: Arc<ServiceRecord>,
}

impl ServiceInput {
    pub fn new(snapshot: Arc<ServiceSnapshot>) -> ServiceInput {
        ServiceInput {
            snapshot,
            record: Arc::default(),
        }
    }

    /// The answer to `query`, noting that the render asked for it.
    pub fn lookup(&self, query: &ServiceQuery) -> Result<&ServiceData, ServiceError> {
        if let Some(reason) = &self.snapshot.unavailable {
            return Err(ServiceError::Unavailable(reason.clone()));
        }
        match self.snapshot.results.get(query) {
            Some(Ok(data)) => {
                self.record.note(query, false);
                Ok(data)
            }
            Some(Err(message)) => {
                self.record.note(query, false);
                Err(ServiceError::Failed {
                    query: query.to_string(),
                    message: message.to_string(),
                })
            }
            None => {
                self.record.note(query, true);
                Err(ServiceError::Waiting(query.to_string()))
            }
        }
    }
}

/// Why a catalog function has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The backend has no service catalog.
    #[error("{0}")]
    Unavailable(String),
    /// The query is new to the runner: the render is repeated once its data is there.
    #[error("waiting for service data: {0} is not watched yet")]
    Waiting(String),
    /// Consul refused the query (ACL) or has not answered it.
    #[error("{query}: {message}")]
    Failed { query: String, message: String },
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
}

impl ServiceError {
    pub fn in_spec(self, spec: &str) -> ServiceError {
        match self {
            ServiceError::Invalid(message) => ServiceError::Invalid(format!(
                "{message} (in {}, which is [tag.]name[@datacenter])",
                crate::redact::preview(spec)
            )),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(node: &str, id: &str, status: Health) -> ServiceInstance {
        ServiceInstance {
            id: id.to_owned(),
            name: "web".to_owned(),
            node: node.to_owned(),
            address: "10.0.0.1".to_owned(),
            port: 80,
            tags: Vec::new(),
            meta: BTreeMap::new(),
            status,
            ..Default::default()
        }
    }

    #[test]
    fn health_is_the_worst_check_and_maintenance_wins() {
        assert_eq!(Health::aggregate([]), Health::Passing);
        assert_eq!(
            Health::aggregate([("serfHealth", "passing"), ("http", "warning")]),
            Health::Warning
        );
        assert_eq!(
            Health::aggregate([("http", "critical"), ("b", "warning")]),
            Health::Critical
        );
        assert_eq!(
            Health::aggregate([("_service_maintenance:web1", "critical")]),
            Health::Maintenance
        );
        assert_eq!(
            Health::aggregate([("_node_maintenance", "critical"), ("x", "passing")]),
            Health::Maintenance
        );
    }

    #[test]
    fn status_filters_parse_both_spellings() {
        assert_eq!(StatusFilter::parse("passing"), Ok(StatusFilter::Passing));
        assert_eq!(StatusFilter::parse("any"), Ok(StatusFilter::Any));
        let two = StatusFilter::parse("passing, warning").unwrap();
        assert_eq!(
            two,
            StatusFilter::from_list(["warning", "passing"]).unwrap()
        );
        assert!(two.admits(Health::Warning) && !two.admits(Health::Critical));
        assert_eq!(
            StatusFilter::from_list(["passing", "warning", "critical", "maintenance"]),
            Ok(StatusFilter::Any)
        );
        let err = StatusFilter::parse("pasing").unwrap_err().to_string();
        assert!(err.contains("unknown status \"pasing\""), "{err}");
        assert!(StatusFilter::from_list(["any", "passing"]).is_err());
        assert!(StatusFilter::from_list([]).is_err());
    }

    #[test]
    fn consul_template_specs_parse() {
        let q = HealthQuery::parse_spec("web").unwrap();
        assert_eq!((q.name.as_str(), q.tag, q.datacenter), ("web", None, None));
        let q = HealthQuery::parse_spec("v2.web@dc2").unwrap();
        assert_eq!(q.name, "web");
        assert_eq!(q.tag.as_deref(), Some("v2"));
        assert_eq!(q.datacenter.as_deref(), Some("dc2"));
        let q = HealthQuery::parse_spec("release.v1.2.web").unwrap();
        assert_eq!(q.tag.as_deref(), Some("release.v1.2"));
        for bad in ["", "web@", ".web", "a b", "web/x"] {
            assert!(HealthQuery::parse_spec(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            HealthQuery::parse_spec("v2.web@dc2")
                .unwrap()
                .with_status(StatusFilter::Any)
                .to_string(),
            "service \"web\" (tag \"v2\", status any, datacenter \"dc2\")"
        );
    }

    #[test]
    fn instances_are_filtered_and_sorted_by_node_then_id() {
        let query = HealthQuery::new("web")
            .unwrap()
            .with_status(StatusFilter::parse("passing,warning").unwrap());
        let data = ServiceData::instances(
            &query,
            vec![
                instance("n2", "a", Health::Passing),
                instance("n1", "b", Health::Warning),
                instance("n1", "a", Health::Passing),
                instance("n0", "z", Health::Critical),
            ],
        );
        let ServiceData::Instances(kept) = data else {
            panic!()
        };
        let order: Vec<(&str, &str)> = kept
            .iter()
            .map(|i| (i.node.as_str(), i.id.as_str()))
            .collect();
        assert_eq!(order, [("n1", "a"), ("n1", "b"), ("n2", "a")]);
    }
}
