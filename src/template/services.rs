//! Consul's service catalog in templates, engine-neutral: the functions `service`, `services`
//! and `nodes` over the [`crate::catalog`] a render reads, with their arguments parsed once for
//! every engine (Tera: `service(name="web")`, `services()`, `nodes()`; Go in consul-template's
//! spelling: `service "tag.web@dc1|passing"`).
//!
//! Queries whose arguments are literals are found in the template at load
//! ([`FoundCall`]), so they are watched before the first render.

use crate::catalog::{
    CatalogNode, CatalogService, HealthQuery, NodeServices, ServiceData, ServiceError,
    ServiceInput, ServiceInstance, ServiceQuery, StatusFilter, check_name,
};

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

/// consul-template's `node`: a node and its services (`None` for a node the catalog lacks).
pub fn node<'a>(
    input: &'a ServiceInput,
    name: Option<&str>,
    datacenter: Option<&str>,
) -> Result<Option<&'a NodeServices>, ServiceError> {
    if let Some(name) = name {
        check_name("node name", name)?;
    }
    let query = ServiceQuery::Node {
        name: name.map(str::to_owned),
        datacenter: datacenter_arg(datacenter)?,
    };
    match input.lookup(&query)? {
        ServiceData::Node(node) => Ok(node.as_deref()),
        _ => Ok(None),
    }
}

/// consul-template's `datacenters`: the datacenters' names, sorted.
pub fn datacenters(input: &ServiceInput) -> Result<&[String], ServiceError> {
    match input.lookup(&ServiceQuery::Datacenters)? {
        ServiceData::Datacenters(names) => Ok(names),
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
            crate::redact::preview(spec),
            unsupported
        )));
    }
    let mut query = HealthQuery::parse_spec(spec)?;
    if let Some(filter) = filter {
        if filter.contains('|') {
            return Err(ServiceError::Invalid(format!(
                "service {}: takes a query and at most one status filter, got {}",
                crate::redact::preview(spec),
                crate::redact::preview(filter)
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
            crate::redact::preview(&joined)
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
    pub query: Result<Option<ServiceQuery>, BadCall>,
}

/// A catalog call whose literal arguments can never work, found at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {problem}")]
pub struct BadCall {
    /// The call as its engine spells it: `service` in Go, `service()` in Tera.
    pub call: String,
    #[source]
    pub problem: CallProblem,
}

/// What is wrong with a catalog call's literal arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallProblem {
    /// The catalog refuses the query (a bad name, an unknown status).
    #[error(transparent)]
    Query(#[from] ServiceError),
    /// A keyword argument the function does not take (Tera).
    #[error("unexpected argument `{0}`")]
    UnexpectedArgument(String),
    /// A list given to an argument that takes a string (Tera).
    #[error("`{0}` takes a string, not a list")]
    NotAList(String),
    /// A keyword argument the function needs (Tera).
    #[error("missing keyword argument `{0}`")]
    MissingArgument(&'static str),
}

impl super::Templates {
    /// The calls of catalog functions in `template` and everything it includes or extends.
    pub fn service_calls(&self, template: &super::TemplateRef) -> Vec<FoundCall> {
        match self.engine_of(template) {
            super::EngineKind::Tera => self.tera.service_calls(&template.name),
            super::EngineKind::Go => self.go.service_calls(&template.name),
            super::EngineKind::ConsulTemplate => self.consul_template.service_calls(&template.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::catalog::{Health, ServiceSnapshot};

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
