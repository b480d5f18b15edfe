//! Consul's service catalog in Go templates, in consul-template's spellings so that templates
//! written for it keep working: `{{range service "web"}}{{.Address}}:{{.Port}}{{end}}`,
//! `service "v2.web"`, `service "web" "any"`, `service "web@dc2"`, `services`, `nodes`.
//!
//! A thin adapter: the queries, their answers and what a render records are the engine-neutral
//! ones of [`crate::template::services`], which the Tera functions use too. What is Go's here is
//! the argument spelling and the values: each instance is an object with consul-template's
//! field names (`.ID .Name .Node .Address .Port .Tags .ServiceMeta .Status`; a catalog service
//! `.Name .Tags`; a node `.Node .Address`).
//!
//! [`literal_calls`] finds the calls whose arguments are all string literals when the template
//! is loaded, so their queries are watched before the first render, as for Tera.

use std::sync::Arc;

use super::context::GoContext;
use super::{FuncError, Functions, ListType, Object, Param, Signature, Template, Value};
use crate::catalog::{self, CatalogNode, CatalogService, ServiceInstance, ServiceQuery};
use crate::template::services::{self as functions, BadCall, FoundCall};

/// The catalog functions, by the names templates call them.
pub const FUNCTIONS: [&str; 3] = ["service", "services", "nodes"];

/// Adds `service`, `services` and `nodes` to a function map. Each takes strings, as
/// consul-template's do (`func(...string)`).
pub fn register(functions: &mut Functions<GoContext>) {
    let strings = Signature::new(&[], Some(Param::String));
    functions
        .register("service", strings, service)
        .register("services", strings, services)
        .register("nodes", strings, nodes);
}

fn strs(args: &[Value]) -> Vec<&str> {
    args.iter()
        .map(|a| a.as_str().unwrap_or_default())
        .collect()
}

/// `service "[tag.]name[@dc]" ["status,…"]`: the instances, sorted by node, then id.
fn service(context: &GoContext, args: &[Value]) -> Result<Value, FuncError> {
    let Some(query) = functions::consul_template_service(&strs(args))? else {
        return Ok(Value::list(ListType::Any, Vec::new()));
    };
    let instances = functions::service(&context.input.services, &query)?;
    Ok(Value::list(
        ListType::Any,
        instances
            .iter()
            .map(|instance| Value::Object(Arc::new(HealthService(instance.clone()))))
            .collect(),
    ))
}

/// `services ["@dc"]`: the catalog's services, sorted by name.
fn services(context: &GoContext, args: &[Value]) -> Result<Value, FuncError> {
    let datacenter = functions::consul_template_datacenter("services", &strs(args))?;
    let services = functions::services(&context.input.services, datacenter.as_deref())?;
    Ok(Value::list(
        ListType::Any,
        services
            .iter()
            .map(|service| Value::Object(Arc::new(CatalogSnippet(service.clone()))))
            .collect(),
    ))
}

/// `nodes ["@dc"]`: the catalog's nodes, sorted by name.
fn nodes(context: &GoContext, args: &[Value]) -> Result<Value, FuncError> {
    let datacenter = functions::consul_template_datacenter("nodes", &strs(args))?;
    let nodes = functions::nodes(&context.input.services, datacenter.as_deref())?;
    Ok(Value::list(
        ListType::Any,
        nodes
            .iter()
            .map(|node| Value::Object(Arc::new(Node(node.clone()))))
            .collect(),
    ))
}

/// Go's `%v` of a pointer to a struct: `&{a b c}` (`%+v`: `&{A:a B:b C:c}`).
pub(super) fn fmt_struct(out: &mut String, plus: bool, fields: &[(&str, Value)]) {
    out.push_str("&{");
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if plus {
            out.push_str(name);
            out.push(':');
        }
        match value {
            Value::Str(text) => out.push_str(text),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::List(list) => {
                let items: Vec<&str> = list.items.iter().filter_map(Value::as_str).collect();
                out.push('[');
                out.push_str(&items.join(" "));
                out.push(']');
            }
            Value::Map(map) => {
                let items: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or_default()))
                    .collect();
                out.push_str("map[");
                out.push_str(&items.join(" "));
                out.push(']');
            }
            _ => {}
        }
    }
    out.push('}');
}

/// consul-template's `*dependency.HealthService`, with the fields terad has.
struct HealthService(ServiceInstance);

impl HealthService {
    const FIELDS: [&'static str; 8] = [
        "Node",
        "Address",
        "ID",
        "Name",
        "Tags",
        "ServiceMeta",
        "Status",
        "Port",
    ];
}

impl Object for HealthService {
    fn type_name(&self) -> &str {
        "*dependency.HealthService"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let instance = &self.0;
        Some(match name {
            "ID" => Value::str(&instance.id),
            "Name" => Value::str(&instance.name),
            "Node" => Value::str(&instance.node),
            "Address" => Value::str(&instance.address),
            "Port" => Value::Int(i64::from(instance.port)),
            "Tags" => Value::strings(&instance.tags),
            "ServiceMeta" => Value::map(
                instance
                    .meta
                    .iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Value::str(v))),
            ),
            "Status" => Value::str(instance.status.name()),
            _ => return None,
        })
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        let fields: Vec<(&str, Value)> = Self::FIELDS
            .iter()
            .map(|name| (*name, self.field(name).unwrap_or_default()))
            .collect();
        fmt_struct(out, plus, &fields);
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
            "Tags" => Some(Value::strings(&self.0.tags)),
            _ => None,
        }
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        let fields = [
            ("Name", Value::str(&self.0.name)),
            ("Tags", Value::strings(&self.0.tags)),
        ];
        fmt_struct(out, plus, &fields);
    }
}

/// consul-template's `*dependency.Node`, with the fields terad has.
struct Node(CatalogNode);

impl Object for Node {
    fn type_name(&self) -> &str {
        "*dependency.Node"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Node" => Some(Value::str(&self.0.node)),
            "Address" => Some(Value::str(&self.0.address)),
            _ => None,
        }
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        let fields = [
            ("Node", Value::str(&self.0.node)),
            ("Address", Value::str(&self.0.address)),
        ];
        fmt_struct(out, plus, &fields);
    }
}

/// The calls of catalog functions in a parsed template (`file` below `templates/`), with their
/// queries when every argument is a string literal.
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
                        problem: error.into(),
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

fn query_of(function: &str, args: &[&str]) -> Result<Option<ServiceQuery>, catalog::ServiceError> {
    Ok(match function {
        "service" => functions::consul_template_service(args)?.map(ServiceQuery::Health),
        "services" => Some(ServiceQuery::Services {
            datacenter: functions::consul_template_datacenter(function, args)?,
        }),
        _ => Some(ServiceQuery::Nodes {
            datacenter: functions::consul_template_datacenter(function, args)?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ServiceError;
    use crate::catalog::{
        Health, HealthQuery, ServiceData, ServiceInput, ServiceSnapshot, StatusFilter,
    };
    use crate::store::KeyStore;
    use crate::template::services::CallProblem;
    use crate::template::{
        EngineChoice, KeyScope, RenderError, RenderInput, TemplateRef, Templates,
    };

    fn instance(node: &str, id: &str, address: &str, port: u16, status: Health) -> ServiceInstance {
        ServiceInstance {
            id: id.to_owned(),
            name: "web".to_owned(),
            node: node.to_owned(),
            address: address.to_owned(),
            port,
            tags: vec!["a".to_owned(), "v2".to_owned()],
            meta: [("zone".to_owned(), "z1".to_owned())].into_iter().collect(),
            status,
            ..Default::default()
        }
    }

    /// Consul's catalog as the runner would hand it: `web` passing, `web` any, `v2.web@dc2`,
    /// the services and the nodes.
    fn snapshot() -> ServiceSnapshot {
        let mut snapshot = ServiceSnapshot::default();
        let web = HealthQuery::new("web").unwrap();
        let passing = vec![
            instance("n1", "web-1", "10.0.0.1", 8080, Health::Passing),
            instance("n2", "web-2", "10.0.0.2", 8081, Health::Passing),
        ];
        let mut any = passing.clone();
        any.push(instance("n3", "web-3", "10.0.0.3", 8082, Health::Critical));
        snapshot.results.insert(
            ServiceQuery::Health(web.clone()),
            Ok(Arc::new(ServiceData::Instances(passing))),
        );
        snapshot.results.insert(
            ServiceQuery::Health(web.clone().with_status(StatusFilter::Any)),
            Ok(Arc::new(ServiceData::Instances(any))),
        );
        snapshot.results.insert(
            ServiceQuery::Health(web.with_tag("v2").unwrap().with_datacenter("dc2").unwrap()),
            Ok(Arc::new(ServiceData::Instances(vec![instance(
                "m1",
                "web-9",
                "10.1.0.9",
                80,
                Health::Passing,
            )]))),
        );
        snapshot.results.insert(
            ServiceQuery::Services { datacenter: None },
            Ok(Arc::new(ServiceData::services([
                ("web".to_owned(), vec!["v2".to_owned(), "a".to_owned()]),
                ("consul".to_owned(), vec![]),
            ]))),
        );
        snapshot.results.insert(
            ServiceQuery::Nodes {
                datacenter: Some("dc2".to_owned()),
            },
            Ok(Arc::new(ServiceData::nodes(vec![CatalogNode {
                node: "m1".into(),
                address: "10.1.0.1".into(),
                ..Default::default()
            }]))),
        );
        snapshot
    }

    fn render_files(
        files: &[(&str, &str, EngineChoice)],
        name: &str,
        snapshot: ServiceSnapshot,
    ) -> (Result<String, RenderError>, ServiceInput) {
        let dir = tempfile::tempdir().unwrap();
        let refs: Vec<TemplateRef> = files
            .iter()
            .map(|(file, body, engine)| {
                std::fs::write(dir.path().join(file), body).unwrap();
                TemplateRef {
                    name: (*file).to_owned(),
                    engine: *engine,
                }
            })
            .collect();
        let templates = Templates::load(dir.path(), &refs).unwrap();
        let mut store = KeyStore::new();
        store.insert("/proxy/port", "8000");
        let services = ServiceInput::new(Arc::new(snapshot));
        let input = RenderInput {
            store: Arc::new(store),
            scope: Arc::new(KeyScope {
                resource: "test".into(),
                prefix: "/".into(),
                keys: vec!["/proxy".into()],
                values: Default::default(),
            }),
            services: services.clone(),
        };
        let template = refs.iter().find(|r| r.name == name).unwrap();
        let mut out = Vec::new();
        let result = templates
            .render(template, &input, &mut out)
            .map(|()| String::from_utf8(out).unwrap());
        (result, services)
    }

    fn render(template: &str) -> Result<String, RenderError> {
        render_files(&[("t", template, EngineChoice::Go)], "t", snapshot()).0
    }

    #[test]
    fn consul_template_spellings_and_field_names() {
        assert_eq!(
            render(r#"{{range service "web"}}{{.ID}} {{.Name}} {{.Node}} {{.Address}}:{{.Port}} {{.Tags}} {{.ServiceMeta.zone}} {{.Status}}
{{end}}"#)
            .unwrap(),
            "web-1 web n1 10.0.0.1:8080 [a v2] z1 passing\nweb-2 web n2 10.0.0.2:8081 [a v2] z1 passing\n"
        );
        assert_eq!(
            render(r#"{{range service "web" "any"}}{{.ID}}={{.Status}} {{end}}|{{range service "web|any"}}{{.ID}} {{end}}"#)
                .unwrap(),
            "web-1=passing web-2=passing web-3=critical |web-1 web-2 web-3 "
        );
        assert_eq!(
            render(r#"{{range service "v2.web@dc2"}}{{.ID}}@{{.Address}}{{end}}"#).unwrap(),
            "web-9@10.1.0.9"
        );
        assert_eq!(
            render(r#"{{range services}}{{.Name}}:{{join .Tags ","}} {{end}}{{range nodes "@dc2"}}{{.Node}}={{.Address}}{{end}}"#)
                .unwrap(),
            "consul: web:a,v2 m1=10.1.0.1"
        );
        assert_eq!(
            render(r#"{{len (service "web")}} {{with index (service "web") 0}}{{printf "%T %v" . .Port}}{{end}} {{len (service "")}}"#)
                .unwrap(),
            "2 *dependency.HealthService 8080 0"
        );
        let err = render(r#"{{range service "web"}}{{.NodeMeta}}{{end}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("can't evaluate field NodeMeta"), "{err}");
        let err = render(r#"{{service "web" "pasing"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown status \"pasing\""), "{err}");
    }

    #[test]
    fn a_query_not_watched_yet_fails_the_render_and_is_recorded() {
        let (result, services) = render_files(
            &[(
                "t",
                r#"{{range service (getv "/proxy/port")}}x{{end}}"#,
                EngineChoice::Go,
            )],
            "t",
            ServiceSnapshot::default(),
        );
        let err = result.unwrap_err().to_string();
        assert!(err.contains("waiting for service data"), "{err}");
        let missing: Vec<String> = services
            .record
            .missing()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(missing, ["service \"8000\""]);
    }

    #[test]
    fn literal_calls_are_found_at_load_with_their_queries() {
        let template = "{{range service \"web\"}}{{end}}\n{{if nodes}}{{end}}{{len services}}\n  {{range service \"v2.web@dc2\" \"any\"}}{{end}}{{service (getv \"/k\")}}{{\"web\" | service}}{{service \"web\" \"pasing\"}}";
        let funcs = super::super::engine::GoEngine::default();
        let parsed = funcs.parse("t", template).unwrap();
        let found = literal_calls("t", &parsed);
        type Summary<'a> = (usize, usize, &'a str, Result<Option<String>, BadCall>);
        let summary: Vec<Summary> = found
            .iter()
            .map(|call| {
                (
                    call.line,
                    call.column,
                    call.function,
                    call.query.clone().map(|q| q.map(|q| q.to_string())),
                )
            })
            .collect();
        let some = |s: &str| Ok(Some(s.to_owned()));
        let pasing = BadCall {
            call: "service".to_owned(),
            problem: CallProblem::Query(ServiceError::Invalid(
                "unknown status \"pasing\"; a status is \"any\" or one of passing, warning, critical, maintenance".to_owned(),
            )),
        };
        assert_eq!(
            pasing.to_string(),
            "service: unknown status \"pasing\"; a status is \"any\" or one of passing, warning, critical, maintenance"
        );
        assert_eq!(
            summary,
            [
                (1, 9, "service", some("service \"web\"")),
                (2, 6, "nodes", some("the catalog's nodes")),
                (2, 26, "services", some("the catalog's services")),
                (
                    3,
                    11,
                    "service",
                    some("service \"web\" (tag \"v2\", status any, datacenter \"dc2\")")
                ),
                (3, 48, "service", Ok(None)),
                (3, 79, "service", Ok(None)),
                (3, 90, "service", Err(pasing)),
            ]
        );
    }

    #[test]
    fn the_go_haproxy_example_renders_what_the_tera_one_does() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/consul-services/templates");
        let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
        let tera = read("haproxy-services.cfg.tmpl");
        let go = read("haproxy-services-go.cfg.tmpl");
        let files = [
            ("tera.tmpl", tera.as_str(), EngineChoice::Auto),
            ("go.tmpl", go.as_str(), EngineChoice::Auto),
        ];
        let (from_tera, _) = render_files(&files, "tera.tmpl", snapshot());
        let (from_go, _) = render_files(&files, "go.tmpl", snapshot());
        let from_go = from_go.unwrap();
        assert_eq!(from_go, from_tera.unwrap());
        assert!(from_go.starts_with("global\n"), "{from_go}");
        assert!(from_go.contains("bind *:8000\n"), "{from_go}");
        assert!(
            from_go.ends_with(
                "    server web-1 10.0.0.1:8080 check\n    server web-2 10.0.0.2:8081 check\n"
            ),
            "{from_go}"
        );
    }
}
