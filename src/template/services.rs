//! Consul's service catalog in templates, engine-neutral: the instances of a service filtered by
//! health, the catalog's services and its nodes, as plain Rust values. Each engine exposes them
//! in its own spelling (Tera: `service(name="web")`, `services()`, `nodes()`); the semantics
//! live here.
//!
//! A template never talks to Consul. The runner watches each distinct [`ServiceQuery`] with one
//! blocking query and hands every render the results as one [`ServiceSnapshot`] (one state of
//! the catalog, as the key store is one state of the keys). A render also gets a
//! [`ServiceRecord`] in which the functions note every query they were asked: a query the runner
//! does not watch yet (a service name computed from keys, say) fails the render with "waiting
//! for service data" instead of rendering an empty list, and the runner starts watching it and
//! renders again once its data is there.
//!
//! Queries whose arguments are literals are found in the template at load
//! ([`FoundCall`]), so they are watched before the first render.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

/// The health of one instance: the worst of its checks, as Consul's own tools aggregate them
/// (maintenance over critical over warning over passing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
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
fn check_name(what: &str, value: &str) -> Result<(), ServiceError> {
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
            crate::template::confd::preview(value)
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
}

impl ServiceQuery {
    pub fn datacenter(&self) -> Option<&str> {
        match self {
            ServiceQuery::Health(query) => query.datacenter.as_deref(),
            ServiceQuery::Services { datacenter } | ServiceQuery::Nodes { datacenter } => {
                datacenter.as_deref()
            }
        }
    }
}

impl fmt::Display for ServiceQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, dc) = match self {
            ServiceQuery::Health(query) => return query.fmt(f),
            ServiceQuery::Services { datacenter } => ("the catalog's services", datacenter),
            ServiceQuery::Nodes { datacenter } => ("the catalog's nodes", datacenter),
        };
        f.write_str(what)?;
        if let Some(dc) = dc {
            write!(f, " (datacenter {dc:?})")?;
        }
        Ok(())
    }
}

/// One instance of a service, as `service()` returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
}

/// One service of the catalog, as `services()` returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogService {
    pub name: String,
    /// Every tag of any of its instances, sorted, once each.
    pub tags: Vec<String>,
}

/// One node of the catalog, as `nodes()` returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogNode {
    pub node: String,
    pub address: String,
}

/// What one query returned, sorted so that a render is stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceData {
    Instances(Vec<ServiceInstance>),
    Services(Vec<CatalogService>),
    Nodes(Vec<CatalogNode>),
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

    fn lookup(&self, query: &ServiceQuery) -> Result<&ServiceData, ServiceError> {
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
    fn in_spec(self, spec: &str) -> ServiceError {
        match self {
            ServiceError::Invalid(message) => ServiceError::Invalid(format!(
                "{message} (in {}, which is [tag.]name[@datacenter])",
                crate::template::confd::preview(spec)
            )),
            other => other,
        }
    }
}

/// `service`: the instances of a service that pass the query's filters, sorted by node, then
/// id. An unknown service is an empty list.
pub fn service<'a>(
    input: &'a ServiceInput,
    query: &HealthQuery,
) -> Result<&'a [ServiceInstance], ServiceError> {
    match input.lookup(&ServiceQuery::Health(query.clone()))? {
        ServiceData::Instances(instances) => Ok(instances),
        _ => Ok(&[]),
    }
}

/// `services`: the catalog's services with their tags, sorted by name.
pub fn services<'a>(
    input: &'a ServiceInput,
    datacenter: Option<&str>,
) -> Result<&'a [CatalogService], ServiceError> {
    let query = ServiceQuery::Services {
        datacenter: datacenter_arg(datacenter)?,
    };
    match input.lookup(&query)? {
        ServiceData::Services(services) => Ok(services),
        _ => Ok(&[]),
    }
}

/// `nodes`: the catalog's nodes with their addresses, sorted by name.
pub fn nodes<'a>(
    input: &'a ServiceInput,
    datacenter: Option<&str>,
) -> Result<&'a [CatalogNode], ServiceError> {
    let query = ServiceQuery::Nodes {
        datacenter: datacenter_arg(datacenter)?,
    };
    match input.lookup(&query)? {
        ServiceData::Nodes(nodes) => Ok(nodes),
        _ => Ok(&[]),
    }
}

fn datacenter_arg(datacenter: Option<&str>) -> Result<Option<String>, ServiceError> {
    match datacenter {
        Some(dc) => {
            check_name("datacenter", dc)?;
            Ok(Some(dc.to_owned()))
        }
        None => Ok(None),
    }
}

/// A status argument: one string (`"any"`, `"passing,warning"`) or a list of statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusArg<'a> {
    One(&'a str),
    List(Vec<&'a str>),
}

/// The query of `service(name=…, tag=…, status=…, datacenter=…)`, from its arguments.
pub fn health_query(
    name: &str,
    tag: Option<&str>,
    status: Option<StatusArg<'_>>,
    datacenter: Option<&str>,
) -> Result<HealthQuery, ServiceError> {
    let mut query = HealthQuery::new(name)?;
    if let Some(tag) = tag {
        query = query.with_tag(tag)?;
    }
    if let Some(status) = status {
        query = query.with_status(match status {
            StatusArg::One(text) => StatusFilter::parse(text)?,
            StatusArg::List(items) => StatusFilter::from_list(items)?,
        });
    }
    if let Some(dc) = datacenter {
        query = query.with_datacenter(dc)?;
    }
    Ok(query)
}

/// The query of consul-template's `service` arguments: `"[tag.]name[@datacenter]"`, then a
/// status filter either as a second argument (`service "web" "any"`) or after a `|` in the
/// first (`service "web|passing,warning"`), as consul-template joins its arguments with `|`.
/// No argument, or an empty first one, is no query: consul-template renders an empty list.
pub fn consul_template_service(args: &[&str]) -> Result<Option<HealthQuery>, ServiceError> {
    if args.first().is_none_or(|first| first.is_empty()) {
        return Ok(None);
    }
    let joined = args.join("|");
    let (spec, filter) = match joined.split_once('|') {
        Some((spec, filter)) => (spec, Some(filter)),
        None => (joined.as_str(), None),
    };
    // consul-template's `~near` and `?ns=` parts sort or scope the answer in ways terad does
    // not: refusing them beats silently rendering another list.
    if let Some(unsupported) = spec.chars().find(|c| matches!(c, '~' | '?')) {
        return Err(ServiceError::Invalid(format!(
            "service {}: the {:?} part of consul-template's query is not supported",
            crate::template::confd::preview(spec),
            unsupported
        )));
    }
    let mut query = HealthQuery::parse_spec(spec)?;
    if let Some(filter) = filter {
        if filter.contains('|') {
            return Err(ServiceError::Invalid(format!(
                "service {}: takes a query and at most one status filter, got {}",
                crate::template::confd::preview(spec),
                crate::template::confd::preview(filter)
            )));
        }
        query = query.with_status(StatusFilter::parse(filter)?);
    }
    Ok(Some(query))
}

/// The datacenter of consul-template's `services` and `nodes` arguments: none, or
/// `"@datacenter"` (its arguments are joined with nothing between them).
pub fn consul_template_datacenter(
    function: &str,
    args: &[&str],
) -> Result<Option<String>, ServiceError> {
    let joined = args.concat();
    if joined.is_empty() {
        return Ok(None);
    }
    match joined.strip_prefix('@') {
        Some(dc) => datacenter_arg(Some(dc)),
        None => Err(ServiceError::Invalid(format!(
            "{function} {}: takes only \"@datacenter\"",
            crate::template::confd::preview(&joined)
        ))),
    }
}

/// A call of a catalog function found in a template at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCall {
    /// The template file (below `templates/`), and the line and column of the call (1-based).
    pub template: String,
    pub line: usize,
    pub column: usize,
    /// `service`, `services` or `nodes`.
    pub function: &'static str,
    /// The query, when every argument is a literal; `None` when one is computed (the query is
    /// then found at render); an error for literal arguments that can never work.
    pub query: Result<Option<ServiceQuery>, String>,
}

impl super::Templates {
    /// The calls of catalog functions in `template` and everything it includes or extends.
    pub fn service_calls(&self, template: &super::TemplateRef) -> Vec<FoundCall> {
        match self.engine_of(template) {
            super::EngineKind::Tera => self.tera.service_calls(&template.name),
            super::EngineKind::Go => self.go.service_calls(&template.name),
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
    fn consul_template_arguments_parse_as_it_joins_them() {
        let q = consul_template_service(&["v2.web@dc2"]).unwrap().unwrap();
        assert_eq!(
            (q.name.as_str(), q.tag.as_deref(), q.datacenter.as_deref()),
            ("web", Some("v2"), Some("dc2"))
        );
        assert_eq!(q.status, StatusFilter::Passing);
        let any = consul_template_service(&["web", "any"]).unwrap().unwrap();
        assert_eq!(any.status, StatusFilter::Any);
        assert_eq!(
            consul_template_service(&["web|any"]).unwrap(),
            Some(any),
            "a second argument and `|` are the same query"
        );
        let two = consul_template_service(&["web", "passing,warning"])
            .unwrap()
            .unwrap();
        assert!(two.status.admits(Health::Warning) && !two.status.admits(Health::Critical));
        assert_eq!(consul_template_service(&[]).unwrap(), None);
        assert_eq!(consul_template_service(&[""]).unwrap(), None);
        for bad in [
            &["web", "pasing"][..],
            &["web", "any", "passing"],
            &["web~node1"],
        ] {
            assert!(consul_template_service(bad).is_err(), "{bad:?}");
        }
        assert_eq!(consul_template_datacenter("nodes", &[]).unwrap(), None);
        assert_eq!(
            consul_template_datacenter("nodes", &["@dc2"])
                .unwrap()
                .as_deref(),
            Some("dc2")
        );
        let err = consul_template_datacenter("services", &["dc2"])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "services \"dc2\": takes only \"@datacenter\"");
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

    #[test]
    fn functions_answer_from_the_snapshot_and_record_what_they_asked() {
        let web = HealthQuery::new("web").unwrap();
        let api = HealthQuery::new("api").unwrap();
        let mut snapshot = ServiceSnapshot::default();
        snapshot.results.insert(
            ServiceQuery::Health(web.clone()),
            Ok(Arc::new(ServiceData::Instances(vec![instance(
                "n1",
                "web1",
                Health::Passing,
            )]))),
        );
        snapshot.results.insert(
            ServiceQuery::Nodes { datacenter: None },
            Err(Arc::from("consul refused access: node:read")),
        );
        let input = ServiceInput::new(Arc::new(snapshot));
        assert_eq!(service(&input, &web).unwrap().len(), 1);
        let err = service(&input, &api).unwrap_err();
        assert_eq!(
            err.to_string(),
            "waiting for service data: service \"api\" is not watched yet"
        );
        let err = nodes(&input, None).unwrap_err().to_string();
        assert!(err.contains("node:read"), "{err}");
        assert_eq!(input.record.used().len(), 3);
        assert_eq!(
            input.record.missing().into_iter().collect::<Vec<_>>(),
            [ServiceQuery::Health(api)]
        );

        let input = ServiceInput::new(Arc::new(ServiceSnapshot::unavailable("etcd")));
        let err = service(&input, &web).unwrap_err().to_string();
        assert!(
            err.contains("the etcd backend has no service catalog"),
            "{err}"
        );
    }
}
