//! consul-template's catalog functions: `service`, `services`, `nodes`, over the catalog
//! snapshot a render reads ([`crate::template::services`], the queries shared with every
//! dialect), with consul-template v0.20.1's arguments, messages and values:
//!
//! - `service "[tag.]name[@dc][|filter,…]" ["filter,…"]`: `*dependency.HealthService`s sorted
//!   by node then ID, tags sorted, an empty service address replaced by its node's.
//! - `services ["@dc"]`: `*dependency.CatalogSnippet`s (`.Name .Tags`) sorted by name.
//! - `nodes ["@dc"]`: `*dependency.Node`s (`.ID .Node .Address .Datacenter .TaggedAddresses
//!   .Meta`) sorted by name.
//! - `node ["name"] ["@dc"]`: a `*dependency.CatalogNode` (`.Node`, `.Services` sorted by
//!   service then ID), the agent's own node without a name.
//! - `datacenters [ignoreInaccessible]`: the datacenters' names, sorted.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{CtError, Result};
use crate::catalog::ServiceError;
use crate::catalog::{
    CatalogNode, CatalogService, HealthCheck, HealthQuery, NodeService, NodeServices,
    ServiceInstance, ServiceQuery, StatusFilter,
};
use crate::template::go::context::GoContext;
use crate::template::go::services::fmt_struct;
use crate::template::go::{Functions, ListType, Object, Param, Signature, Template, Value};
use crate::template::services::{self as shared, BadCall, CallProblem, FoundCall};

/// The Go type of `service`'s answer.
pub const HEALTH_SERVICES: &str = "[]*dependency.HealthService";
const SNIPPETS: &str = "[]*dependency.CatalogSnippet";
const NODES: &str = "[]*dependency.Node";

pub(super) fn register(f: &mut Functions<GoContext>) {
    let strings = Signature::new(&[], Some(Param::String));
    f.register("service", strings, service)
        .register("services", strings, services)
        .register("nodes", strings, nodes)
        .register("node", strings, node)
        .register(
            "datacenters",
            Signature::new(&[], Some(Param::Bool)),
            datacenters,
        );
}

/// `node`'s arguments joined: `[name][@dc]`, consul-template's `catalog.node`.
pub fn node_query(args: &[&str]) -> std::result::Result<ServiceQuery, CtError> {
    let joined = args.concat();
    let (name, datacenter) = match joined.split_once('@') {
        Some((name, dc)) => (name, Some(dc)),
        None => (joined.as_str(), None),
    };
    let dotted = |text: &str| text.chars().all(|c| word(c) || "-.".contains(c));
    if !dotted(name) || datacenter.is_some_and(|dc| dc.is_empty() || !dotted(dc)) {
        return Err(CtError::InvalidFormat {
            what: "catalog.node",
            input: joined.clone(),
        });
    }
    Ok(ServiceQuery::Node {
        name: (!name.is_empty()).then(|| name.to_owned()),
        datacenter: datacenter.map(str::to_owned),
    })
}

fn node(context: &GoContext, args: &[Value]) -> Result<Value> {
    let ServiceQuery::Node { name, datacenter } = node_query(&strs(args))? else {
        unreachable!("node_query makes node queries")
    };
    let found = shared::node(
        &context.input.services,
        name.as_deref(),
        datacenter.as_deref(),
    )?;
    // consul-template hands out an empty `CatalogNode` for a node the catalog lacks.
    Ok(Value::Object(Arc::new(NodeDetail(
        found.cloned().unwrap_or_default(),
        found.is_some(),
    ))))
}

fn datacenters(context: &GoContext, args: &[Value]) -> Result<Value> {
    if args.len() > 1 {
        return Err(CtError::ArgumentCount {
            function: "datacenters",
            expected: "0 or 1",
            got: args.len(),
        }
        .into());
    }
    // Whether to leave out datacenters that cannot be read: terad's agent answers for every
    // one it lists, so the flag changes nothing here.
    Ok(Value::strings(shared::datacenters(
        &context.input.services,
    )?))
}

/// The catalog functions, by the names templates call them.
pub const FUNCTIONS: [&str; 5] = ["service", "services", "nodes", "node", "datacenters"];

/// The catalog calls of a parsed template (`file` below `templates/`), with their queries when
/// every argument is a string literal: watched before the first render.
pub fn literal_calls(file: &str, template: &Template) -> Vec<FoundCall> {
    template
        .find_calls(&FUNCTIONS)
        .into_iter()
        .map(|call| {
            let function = FUNCTIONS
                .into_iter()
                .find(|f| *f == &*call.function)
                .unwrap_or("service");
            let query = match &call.literal_args {
                None => Ok(None),
                Some(args) => {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    query_of(function, &args).map_err(|error| BadCall {
                        call: function.to_owned(),
                        problem: CallProblem::Query(ServiceError::Invalid(error.to_string())),
                    })
                }
            };
            FoundCall {
                template: file.to_owned(),
                line: call.line,
                column: call.column,
                function,
                query,
            }
        })
        .collect()
}

fn query_of(function: &str, args: &[&str]) -> std::result::Result<Option<ServiceQuery>, CtError> {
    Ok(match function {
        "service" => service_query(args)?,
        "services" => Some(ServiceQuery::Services {
            datacenter: datacenter_of("catalog.services", args)?,
        }),
        "nodes" => Some(ServiceQuery::Nodes {
            datacenter: datacenter_of("catalog.nodes", args)?,
        }),
        "node" => Some(node_query(args)?),
        _ => Some(ServiceQuery::Datacenters),
    })
}

fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// consul-template's `health.service` query string: `[tag.]name[@dc][~near][|filters]`.
pub fn health_query(input: &str) -> std::result::Result<HealthQuery, CtError> {
    let invalid = || CtError::InvalidFormat {
        what: "health.service",
        input: input.to_owned(),
    };
    let (rest, filter) = match input.split_once('|') {
        Some((rest, filter)) => (rest, Some(filter)),
        None => (input, None),
    };
    if let Some(filter) = filter
        && (filter.is_empty() || !filter.chars().all(|c| word(c) || c == ','))
    {
        return Err(invalid());
    }
    let (rest, near) = match rest.split_once('~') {
        Some((rest, near)) => (rest, Some(near)),
        None => (rest, None),
    };
    let (spec, datacenter) = match rest.split_once('@') {
        Some((spec, dc)) => (spec, Some(dc)),
        None => (rest, None),
    };
    let dotted = |text: &str| !text.is_empty() && text.chars().all(|c| word(c) || "-.".contains(c));
    let (tag, name) = match spec.rsplit_once('.') {
        Some((tag, name)) => (Some(tag), name),
        None => (None, spec),
    };
    if name.is_empty()
        || !name.chars().all(|c| word(c) || c == '-')
        || tag.is_some_and(|tag| !dotted(tag))
        || datacenter.is_some_and(|dc| !dotted(dc))
        || near.is_some_and(|near| !dotted(near))
    {
        return Err(invalid());
    }
    if near.is_some() {
        return Err(CtError::NotSupported {
            function: "service",
            input: input.to_owned(),
            why: "terad does not sort instances by distance (`~near`)",
        });
    }
    let mut statuses = Vec::new();
    for status in filter.unwrap_or("passing").split(',').map(str::trim) {
        match status {
            "" => {}
            "any" | "passing" | "warning" | "critical" | "maintenance" => statuses.push(status),
            other => {
                return Err(CtError::InvalidFilter {
                    filter: other.to_owned(),
                    input: input.to_owned(),
                });
            }
        }
    }
    let status = if statuses.contains(&"any") {
        StatusFilter::Any
    } else {
        StatusFilter::from_list(statuses).map_err(|_| invalid())?
    };
    let mut query = HealthQuery::new(name).map_err(|_| invalid())?;
    if let Some(tag) = tag {
        query = query.with_tag(tag).map_err(|_| invalid())?;
    }
    if let Some(dc) = datacenter {
        query = query.with_datacenter(dc).map_err(|_| invalid())?;
    }
    Ok(query.with_status(status))
}

/// The query of `service`'s literal arguments (joined with `|`, as consul-template joins
/// them); `None` for no argument or an empty first one, which lists nothing.
pub fn service_query(args: &[&str]) -> std::result::Result<Option<ServiceQuery>, CtError> {
    if args.first().is_none_or(|first| first.is_empty()) {
        return Ok(None);
    }
    health_query(&args.join("|")).map(|query| Some(ServiceQuery::Health(query)))
}

/// The datacenter of `services` and `nodes` (their arguments joined with nothing between).
pub fn datacenter_of(
    what: &'static str,
    args: &[&str],
) -> std::result::Result<Option<String>, CtError> {
    let joined = args.concat();
    if joined.is_empty() {
        return Ok(None);
    }
    let invalid = || CtError::InvalidFormat {
        what,
        input: joined.clone(),
    };
    let Some(dc) = joined.strip_prefix('@') else {
        return Err(invalid());
    };
    if dc.is_empty() || !dc.chars().all(|c| word(c) || "-.".contains(c)) {
        return Err(invalid());
    }
    Ok(Some(dc.to_owned()))
}

fn strs(args: &[Value]) -> Vec<&str> {
    args.iter()
        .map(|a| a.as_str().unwrap_or_default())
        .collect()
}

fn objects(ty: &'static str, items: Vec<Value>) -> Value {
    Value::list(ListType::Objects(ty), items)
}

fn service(context: &GoContext, args: &[Value]) -> Result<Value> {
    let Some(ServiceQuery::Health(query)) = service_query(&strs(args))? else {
        return Ok(objects(HEALTH_SERVICES, Vec::new()));
    };
    let instances = shared::service(&context.input.services, &query)?;
    Ok(objects(
        HEALTH_SERVICES,
        instances
            .iter()
            .map(|instance| Value::Object(Arc::new(HealthService(instance.clone()))))
            .collect(),
    ))
}

fn services(context: &GoContext, args: &[Value]) -> Result<Value> {
    let datacenter = datacenter_of("catalog.services", &strs(args))?;
    let services = shared::services(&context.input.services, datacenter.as_deref())?;
    Ok(objects(
        SNIPPETS,
        services
            .iter()
            .map(|service| Value::Object(Arc::new(CatalogSnippet(service.clone()))))
            .collect(),
    ))
}

fn nodes(context: &GoContext, args: &[Value]) -> Result<Value> {
    let datacenter = datacenter_of("catalog.nodes", &strs(args))?;
    let nodes = shared::nodes(&context.input.services, datacenter.as_deref())?;
    Ok(objects(
        NODES,
        nodes
            .iter()
            .map(|node| Value::Object(Arc::new(Node(node.clone()))))
            .collect(),
    ))
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::map(
        map.iter()
            .map(|(k, v)| (Arc::from(k.as_str()), Value::str(v))),
    )
}

fn sorted(tags: &[String]) -> Value {
    let mut tags = tags.to_vec();
    tags.sort();
    Value::strings(tags)
}

/// consul-template's `*dependency.HealthService`.
pub struct HealthService(pub ServiceInstance);

impl HealthService {
    /// v0.20.1's fields in their order, then `ServiceTaggedAddresses`, which came later.
    const FIELDS: [&'static str; 14] = [
        "Node",
        "NodeID",
        "NodeAddress",
        "NodeTaggedAddresses",
        "NodeMeta",
        "ServiceMeta",
        "Address",
        "ID",
        "Name",
        "Tags",
        "Checks",
        "Status",
        "Port",
        "ServiceTaggedAddresses",
    ];
}

impl Object for HealthService {
    fn type_name(&self) -> &str {
        "*dependency.HealthService"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let instance = &self.0;
        let node = &instance.node_detail;
        Some(match name {
            "Node" => Value::str(&instance.node),
            "NodeID" => Value::str(&node.id),
            "NodeAddress" => Value::str(&node.address),
            "NodeTaggedAddresses" => string_map(&node.tagged_addresses),
            "NodeMeta" => string_map(&node.meta),
            "ServiceMeta" => string_map(&instance.meta),
            "Address" => Value::str(&instance.address),
            "ID" => Value::str(&instance.id),
            "Name" => Value::str(&instance.name),
            "Tags" => sorted(&instance.tags),
            "Checks" => Value::list(
                ListType::Objects("api.HealthChecks"),
                instance
                    .checks
                    .iter()
                    .map(|check| Value::Object(Arc::new(Check(check.clone()))))
                    .collect(),
            ),
            "Status" => Value::str(instance.status.name()),
            "Port" => Value::Int(i64::from(instance.port)),
            "ServiceTaggedAddresses" => Value::map(instance.tagged_addresses.iter().map(
                |(name, (address, port))| {
                    (
                        Arc::from(name.as_str()),
                        Value::Object(Arc::new(ServiceAddress {
                            address: address.clone(),
                            port: *port,
                        })),
                    )
                },
            )),
            _ => return None,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        Self::FIELDS
            .iter()
            .map(|name| (*name, self.field(name).unwrap_or_default()))
            .collect()
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        fmt_struct(out, plus, &self.fields());
    }
}

/// `api.ServiceAddress`, a value of `.ServiceTaggedAddresses`.
struct ServiceAddress {
    address: String,
    port: u16,
}

impl Object for ServiceAddress {
    fn type_name(&self) -> &str {
        "api.ServiceAddress"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Address" => Some(Value::str(&self.address)),
            "Port" => Some(Value::Int(i64::from(self.port))),
            _ => None,
        }
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("Address", Value::str(&self.address)),
            ("Port", Value::Int(i64::from(self.port))),
        ]
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        // A struct value, not a pointer: `{10.0.0.1 80}`.
        let mut inner = String::new();
        fmt_struct(&mut inner, plus, &self.fields());
        out.push_str(&inner[1..]);
    }
}

/// `*api.HealthCheck`, an element of `.Checks`.
struct Check(HealthCheck);

impl Check {
    const FIELDS: [&'static str; 9] = [
        "Node",
        "CheckID",
        "Name",
        "Status",
        "Notes",
        "Output",
        "ServiceID",
        "ServiceName",
        "ServiceTags",
    ];
}

impl Object for Check {
    fn type_name(&self) -> &str {
        "*api.HealthCheck"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let check = &self.0;
        Some(match name {
            "Node" => Value::str(&check.node),
            "CheckID" => Value::str(&check.check_id),
            "Name" => Value::str(&check.name),
            "Status" => Value::str(&check.status),
            "Notes" => Value::str(&check.notes),
            "Output" => Value::str(&check.output),
            "ServiceID" => Value::str(&check.service_id),
            "ServiceName" => Value::str(&check.service_name),
            "ServiceTags" => Value::strings(&check.service_tags),
            _ => return None,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        Self::FIELDS
            .iter()
            .map(|name| (*name, self.field(name).unwrap_or_default()))
            .collect()
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        fmt_struct(out, plus, &self.fields());
    }
}

/// consul-template's `*dependency.CatalogSnippet`.
struct CatalogSnippet(CatalogService);

impl Object for CatalogSnippet {
    fn type_name(&self) -> &str {
        "*dependency.CatalogSnippet"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::str(&self.0.name)),
            "Tags" => Some(sorted(&self.0.tags)),
            _ => None,
        }
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("Name", Value::str(&self.0.name)),
            ("Tags", sorted(&self.0.tags)),
        ]
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        fmt_struct(out, plus, &self.fields());
    }
}

/// consul-template's `*dependency.CatalogNode`: `.Node` (a `*dependency.Node`, nil for a node
/// the catalog lacks) and `.Services`.
struct NodeDetail(NodeServices, bool);

impl Object for NodeDetail {
    fn type_name(&self) -> &str {
        "*dependency.CatalogNode"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Node" if self.1 => Some(Value::Object(Arc::new(Node(self.0.node.clone())))),
            "Node" => Some(Value::Nil),
            "Services" => Some(objects(
                "[]*dependency.CatalogNodeService",
                self.0
                    .services
                    .iter()
                    .map(|service| Value::Object(Arc::new(NodeServiceObject(service.clone()))))
                    .collect(),
            )),
            _ => None,
        }
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        ["Node", "Services"]
            .iter()
            .map(|name| (*name, self.field(name).unwrap_or_default()))
            .collect()
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        fmt_struct(out, plus, &self.fields());
    }
}

/// consul-template's `*dependency.CatalogNodeService`.
struct NodeServiceObject(NodeService);

impl Object for NodeServiceObject {
    fn type_name(&self) -> &str {
        "*dependency.CatalogNodeService"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let service = &self.0;
        Some(match name {
            "ID" => Value::str(&service.id),
            "Service" => Value::str(&service.service),
            "Tags" => sorted(&service.tags),
            "Meta" => string_map(&service.meta),
            "Port" => Value::Int(i64::from(service.port)),
            "Address" => Value::str(&service.address),
            "EnableTagOverride" => Value::Bool(service.enable_tag_override),
            _ => return None,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        [
            "ID",
            "Service",
            "Tags",
            "Meta",
            "Port",
            "Address",
            "EnableTagOverride",
        ]
        .iter()
        .map(|name| (*name, self.field(name).unwrap_or_default()))
        .collect()
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        fmt_struct(out, plus, &self.fields());
    }
}

/// consul-template's `*dependency.Node`.
struct Node(CatalogNode);

impl Object for Node {
    fn type_name(&self) -> &str {
        "*dependency.Node"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let node = &self.0;
        Some(match name {
            "ID" => Value::str(&node.detail.id),
            "Node" => Value::str(&node.node),
            "Address" => Value::str(&node.address),
            "Datacenter" => Value::str(&node.detail.datacenter),
            "TaggedAddresses" => string_map(&node.detail.tagged_addresses),
            "Meta" => string_map(&node.detail.meta),
            _ => return None,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        [
            "ID",
            "Node",
            "Address",
            "Datacenter",
            "TaggedAddresses",
            "Meta",
        ]
        .iter()
        .map(|name| (*name, self.field(name).unwrap_or_default()))
        .collect()
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        fmt_struct(out, plus, &self.fields());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_queries_read_as_consul_template_reads_them() {
        let query = health_query("v1.2.web@dc2|passing,warning").unwrap();
        assert_eq!(query.name, "web");
        assert_eq!(query.tag.as_deref(), Some("v1.2"));
        assert_eq!(query.datacenter.as_deref(), Some("dc2"));
        assert_eq!(query.status.to_string(), "passing,warning");
        assert_eq!(
            health_query("web|bogus").unwrap_err().to_string(),
            "health.service: invalid filter: \"bogus\" in \"web|bogus\""
        );
        assert_eq!(
            health_query("a b").unwrap_err().to_string(),
            "health.service: invalid format: \"a b\""
        );
        assert_eq!(
            health_query("web|any,passing").unwrap().status,
            StatusFilter::Any
        );
    }
}
