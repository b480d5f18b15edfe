//! Template functions with confd's semantics, called with keyword arguments (Tera's convention):
//! `getv(key="/a")`, `gets(pattern="/upstream/*")`, `getenv(name="HOME", default="/")`, …
//!
//! Every function rejects arguments it does not know, so `getv(k="/a")` is an error naming the
//! expected argument instead of a silent miss.

use tera::{Kwargs, Map, State, Tera, TeraResult, Value};

use super::{RENDER_SCOPE, with_view};
use crate::catalog::ServiceInput;
use crate::template::confd::{self, IpFamily, Kv};
use crate::template::services::{self as catalog, StatusArg};

pub(super) fn register(tera: &mut Tera) {
    tera.register_function("getv", getv);
    tera.register_function("get", get);
    tera.register_function("gets", gets);
    tera.register_function("getvs", getvs);
    tera.register_function("ls", ls);
    tera.register_function("lsdir", lsdir);
    tera.register_function("exists", exists);
    tera.register_function("getenv", getenv);
    tera.register_function("file_exists", file_exists);
    tera.register_function("lookup_ip", lookup_ip);
    tera.register_function("lookup_srv", lookup_srv);
    tera.register_function("service", service);
    tera.register_function("services", services);
    tera.register_function("nodes", nodes);
}

/// Fails on any keyword argument not in `allowed`.
pub(super) fn expect_args(function: &str, kwargs: &Kwargs, allowed: &[&str]) -> TeraResult<()> {
    for (name, _) in kwargs.iter() {
        let name = name.as_str().unwrap_or_default();
        if !allowed.contains(&name) {
            return Err(tera::Error::message(format!(
                "{function}() got unexpected argument `{name}`; it takes {}",
                allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

pub(super) fn error(error: impl std::fmt::Display) -> tera::Error {
    tera::Error::message(error.to_string())
}

/// Pairs are built through serde because Tera then allocates each map once; `Value::from(Map)`
/// would copy it (this is the hot path of `gets`).
fn to_value(value: &impl serde::Serialize) -> TeraResult<Value> {
    Value::try_from_serializable(value)
}

/// A key outside the resource's keys is an error even with a default: the default would hide
/// that a change to the key never re-renders the resource.
fn getv(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("getv", &kwargs, &["key", "default"])?;
    let key = kwargs.must_get::<&str>("key")?;
    with_view(|view| match confd::getv(&view, key) {
        Ok(value) => Ok(Value::from(value)),
        Err(crate::store::LookupError::Missing { .. }) => match kwargs.get::<Value>("default")? {
            Some(default) => Ok(Value::from(default.to_string())),
            None => Err(error(confd::getv(&view, key).unwrap_err())),
        },
        Err(err) => Err(error(err)),
    })
}

fn get(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("get", &kwargs, &["key"])?;
    let key = kwargs.must_get::<&str>("key")?;
    with_view(|view| to_value(&confd::get(&view, key).map_err(error)?))
}

fn pattern(kwargs: &Kwargs) -> TeraResult<crate::store::Glob> {
    confd::pattern(kwargs.must_get::<&str>("pattern")?).map_err(|e| error(e.kind))
}

fn gets(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("gets", &kwargs, &["pattern"])?;
    let pattern = pattern(&kwargs)?;
    with_view(|view| {
        let pairs: Vec<Kv<'_>> = confd::gets(&view, &pattern).map_err(error)?;
        to_value(&pairs)
    })
}

fn getvs(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("getvs", &kwargs, &["pattern"])?;
    let pattern = pattern(&kwargs)?;
    with_view(|view| {
        let values = confd::getvs(&view, &pattern).map_err(error)?;
        Ok(Value::from(
            values.into_iter().map(Value::from).collect::<Vec<_>>(),
        ))
    })
}

fn ls(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("ls", &kwargs, &["path"])?;
    let path = kwargs.must_get::<&str>("path")?;
    with_view(|view| Ok(Value::from(view.list(path, false).map_err(error)?)))
}

fn lsdir(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("lsdir", &kwargs, &["path"])?;
    let path = kwargs.must_get::<&str>("path")?;
    with_view(|view| Ok(Value::from(view.list_dirs(path, false).map_err(error)?)))
}

fn exists(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("exists", &kwargs, &["key"])?;
    let key = kwargs.must_get::<&str>("key")?;
    with_view(|view| Ok(Value::from(confd::exists(&view, key))))
}

fn getenv(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("getenv", &kwargs, &["name", "default"])?;
    let name = kwargs.must_get::<&str>("name")?;
    let default = kwargs.get::<Value>("default")?.map(|d| d.to_string());
    Ok(Value::from(confd::getenv(name, default.as_deref())))
}

fn file_exists(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("file_exists", &kwargs, &["path"])?;
    let path = kwargs.must_get::<&str>("path")?;
    Ok(Value::from(confd::file_exists(path)))
}

fn lookup_ip(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("lookup_ip", &kwargs, &["name"])?;
    let name = kwargs.must_get::<&str>("name")?;
    Ok(Value::from(confd::lookup_ip(name, IpFamily::Any)))
}

/// DNS SRV records as maps with `target`, `port`, `priority` and `weight`.
fn lookup_srv(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("lookup_srv", &kwargs, &["service", "proto", "name"])?;
    let service = kwargs.must_get::<&str>("service")?;
    let proto = kwargs.must_get::<&str>("proto")?;
    let name = kwargs.must_get::<&str>("name")?;
    Ok(Value::from(
        confd::lookup_srv(service, proto, name)
            .into_iter()
            .map(|record| {
                let mut map = Map::with_capacity(4);
                map.insert("target".into(), Value::from(record.target));
                map.insert("port".into(), Value::from(record.port));
                map.insert("priority".into(), Value::from(record.priority));
                map.insert("weight".into(), Value::from(record.weight));
                Value::from(map)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Runs `f` with the current render's view of Consul's catalog.
fn with_services<T>(f: impl FnOnce(&ServiceInput) -> TeraResult<T>) -> TeraResult<T> {
    RENDER_SCOPE.with(|cell| {
        let borrowed = cell.borrow();
        let Some(scope) = borrowed.as_ref() else {
            return Err(tera::Error::message(
                "service functions are only available while rendering a resource",
            ));
        };
        f(&scope.services)
    })
}

/// `service(name="web", tag="v2", status="any" or ["passing", "warning"], datacenter="dc2")`:
/// the instances as maps `{id, name, node, address, port, tags, meta, status}`, sorted by node,
/// then id. Only passing instances unless `status` says otherwise.
fn service(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("service", &kwargs, &["name", "tag", "status", "datacenter"])?;
    let name = kwargs.must_get::<&str>("name")?;
    let tag = kwargs.get::<&str>("tag")?;
    let datacenter = kwargs.get::<&str>("datacenter")?;
    let status_value = kwargs.get::<Value>("status")?;
    let status = match &status_value {
        None => None,
        Some(value) => Some(match (value.as_str(), value.as_array()) {
            (Some(text), _) => StatusArg::One(text),
            (_, Some(items)) => StatusArg::List(
                items
                    .iter()
                    .map(|item| {
                        item.as_str().ok_or_else(|| {
                            error("service(): `status` takes a string or a list of strings")
                        })
                    })
                    .collect::<TeraResult<_>>()?,
            ),
            _ => {
                return Err(error(
                    "service(): `status` takes a string or a list of strings",
                ));
            }
        }),
    };
    let query = catalog::health_query(name, tag, status, datacenter)
        .map_err(|e| error(format!("service(): {e}")))?;
    with_services(|input| to_value(&catalog::service(input, &query).map_err(error)?))
}

/// `services(datacenter="dc2")`: the catalog's services as `{name, tags}`, sorted by name.
fn services(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("services", &kwargs, &["datacenter"])?;
    let datacenter = kwargs.get::<&str>("datacenter")?;
    with_services(|input| to_value(&catalog::services(input, datacenter).map_err(error)?))
}

/// `nodes(datacenter="dc2")`: the catalog's nodes as `{node, address}`, sorted by name.
fn nodes(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("nodes", &kwargs, &["datacenter"])?;
    let datacenter = kwargs.get::<&str>("datacenter")?;
    with_services(|input| to_value(&catalog::nodes(input, datacenter).map_err(error)?))
}

#[cfg(test)]
mod tests {
    use crate::template::tera::tests::{render_with, tera_ref};
    use crate::template::{RenderError, Templates};

    fn render(template: &str, pairs: &[(&str, &str)]) -> Result<String, RenderError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), template).unwrap();
        let engine = Templates::load(dir.path(), &[tera_ref("t")]).expect("the template loads");
        render_with(&engine, "t", pairs)
    }

    /// Renders with only `keys` in the resource's scope.
    fn render_scoped(
        template: &str,
        keys: &[&str],
        pairs: &[(&str, &str)],
    ) -> Result<String, RenderError> {
        use std::sync::Arc;

        use crate::template::{KeyScope, RenderInput};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), template).unwrap();
        let templates = Templates::load(dir.path(), &[tera_ref("t")]).expect("the template loads");
        let input = RenderInput {
            store: Arc::new(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            scope: Arc::new(KeyScope {
                resource: "t".into(),
                prefix: "/".into(),
                keys: keys.iter().map(|k| k.to_string()).collect(),
                values: Default::default(),
            }),
            services: Default::default(),
        };
        let mut out = Vec::new();
        templates.render(&tera_ref("t"), &input, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// Issue 13: a lookup outside the resource's keys rendered a default, a "not found" or an
    /// empty list; a change to that key would never re-render the resource.
    #[test]
    fn lookups_outside_the_resources_keys_are_errors_even_with_a_default() {
        let pairs = &[("/proxy/frontend/a", "1"), ("/other/port", "9999")];
        for template in [
            "{{ getv(key=\"/other/port\") }}",
            "{{ getv(key=\"/other/port\", default=\"80\") }}",
            "{{ get(key=\"/other/port\") }}",
            "{{ getv(key=\"/other/missing\", default=\"80\") }}",
        ] {
            let err = render_scoped(template, &["/proxy"], pairs)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("is outside this resource's keys [\"/proxy\"]; add it to `keys`"),
                "{template}: {err}"
            );
        }
        let err = render_scoped(
            "{{ gets(pattern=\"/other/*\") | length }}",
            &["/proxy"],
            pairs,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("pattern \"/other/*\" is outside this resource's keys"),
            "{err}"
        );
        // Patterns that reach into the keys, from above or below, are fine.
        for (template, want) in [
            ("{{ gets(pattern=\"/proxy/frontend/*\") | length }}", "1"),
            ("{{ gets(pattern=\"/*/frontend/*\") | length }}", "1"),
            ("{{ getvs(pattern=\"/pro*/*/*\") | length }}", "1"),
        ] {
            assert_eq!(
                render_scoped(template, &["/proxy"], pairs).unwrap(),
                want,
                "{template}"
            );
        }
        // A missing key inside the keys still takes its default.
        assert_eq!(
            render_scoped(
                "{{ getv(key=\"/proxy/port\", default=\"80\") }}",
                &["/proxy"],
                pairs
            )
            .unwrap(),
            "80"
        );
    }

    /// Renders with a catalog snapshot holding `web` (passing instances on two nodes) and the
    /// catalog's services and nodes; returns the output and the queries the render made.
    fn render_services(
        template: &str,
    ) -> (
        Result<String, RenderError>,
        Vec<crate::catalog::ServiceQuery>,
    ) {
        use std::sync::Arc;

        use crate::catalog::*;
        use crate::template::{KeyScope, RenderInput};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), template).unwrap();
        let templates = Templates::load(dir.path(), &[tera_ref("t")]).unwrap();
        let instance = |node: &str, id: &str, address: &str, port: u16| ServiceInstance {
            id: id.to_owned(),
            name: "web".to_owned(),
            node: node.to_owned(),
            address: address.to_owned(),
            port,
            tags: vec!["v2".to_owned()],
            meta: [("zone".to_owned(), "a".to_owned())].into_iter().collect(),
            status: Health::Passing,
            ..Default::default()
        };
        let mut snapshot = ServiceSnapshot::default();
        let web = HealthQuery::new("web").unwrap();
        snapshot.results.insert(
            ServiceQuery::Health(web.clone()),
            Ok(Arc::new(ServiceData::Instances(vec![
                instance("n1", "web-1", "10.0.0.1", 8080),
                instance("n2", "web-2", "10.0.0.2", 8081),
            ]))),
        );
        snapshot.results.insert(
            ServiceQuery::Health(web.with_status(StatusFilter::Any)),
            Ok(Arc::new(ServiceData::Instances(Vec::new()))),
        );
        snapshot.results.insert(
            ServiceQuery::Services { datacenter: None },
            Ok(Arc::new(ServiceData::services([
                ("web".to_owned(), vec!["v2".to_owned()]),
                ("consul".to_owned(), vec![]),
            ]))),
        );
        snapshot.results.insert(
            ServiceQuery::Nodes { datacenter: None },
            Ok(Arc::new(ServiceData::nodes(vec![CatalogNode {
                node: "n1".into(),
                address: "10.0.0.1".into(),
                ..Default::default()
            }]))),
        );
        let input = RenderInput {
            store: Arc::new(Default::default()),
            scope: Arc::new(KeyScope {
                resource: "test".into(),
                prefix: "/".into(),
                keys: vec![],
                values: Default::default(),
            }),
            services: ServiceInput::new(Arc::new(snapshot)),
        };
        let mut out = Vec::new();
        let result = templates
            .render(&tera_ref("t"), &input, &mut out)
            .map(|()| String::from_utf8(out).unwrap());
        (result, input.services.record.used().into_iter().collect())
    }

    #[test]
    fn service_lists_instances_with_every_field() {
        let (out, used) = render_services(
            "{% for s in service(name=\"web\") %}{{ s.id }} {{ s.name }} {{ s.node }} {{ s.address }}:{{ s.port }} {{ s.tags | join(sep=\",\") }} {{ s.meta.zone }} {{ s.status }}\n{% endfor %}",
        );
        assert_eq!(
            out.unwrap(),
            "web-1 web n1 10.0.0.1:8080 v2 a passing\nweb-2 web n2 10.0.0.2:8081 v2 a passing\n"
        );
        assert_eq!(used.len(), 1);
        let (out, _) = render_services(
            "{{ service(name=\"web\", status=\"any\") | length }} {{ service(name=\"web\", status=[\"passing\",\"warning\",\"critical\",\"maintenance\"]) | length }}",
        );
        assert_eq!(out.unwrap(), "0 0", "both spellings of `any` are one query");
        let (out, _) = render_services(
            "{% for s in services() %}{{ s.name }}[{{ s.tags | join(sep=\",\") }}] {% endfor %}{% for n in nodes() %}{{ n.node }}={{ n.address }}{% endfor %}",
        );
        assert_eq!(out.unwrap(), "consul[] web[v2] n1=10.0.0.1");
    }

    #[test]
    fn service_arguments_are_checked_and_new_queries_wait() {
        for (template, want) in [
            (
                "{{ service(nam=\"web\") }}",
                "service() got unexpected argument `nam`",
            ),
            (
                "{{ service(name=\"web\", status=\"up\") }}",
                "unknown status \"up\"",
            ),
            (
                "{{ service(name=\"web\", status=3) }}",
                "`status` takes a string or a list of strings",
            ),
            ("{{ service(name=\"a b\") }}", "is not a Consul name"),
            (
                "{{ service(name=\"api\") }}",
                "waiting for service data: service \"api\" is not watched yet",
            ),
        ] {
            let (out, _) = render_services(template);
            let err = out.unwrap_err().to_string();
            assert!(err.contains(want), "{template}: {err}");
        }
        let (_, used) =
            render_services("{{ service(name=\"api\", tag=\"v1\", datacenter=\"dc2\") }}");
        assert_eq!(
            used[0].to_string(),
            "service \"api\" (tag \"v1\", datacenter \"dc2\")"
        );
    }

    const UPSTREAM: &[(&str, &str)] = &[
        ("/app/upstream/web2", "10.0.0.2:80"),
        ("/app/upstream/web1", "10.0.0.9:80"),
        ("/app/upstream/web10", "10.0.0.1:80"),
        ("/app/upstream/pool/x", "nested"),
        ("/app/name", "shop"),
    ];

    #[test]
    fn getv_returns_value_or_default_or_names_the_missing_key() {
        assert_eq!(
            render("{{ getv(key=\"/app/name\") }}", UPSTREAM).unwrap(),
            "shop"
        );
        assert_eq!(
            render("{{ getv(key=\"/nope\", default=\"x\") }}", UPSTREAM).unwrap(),
            "x"
        );
        assert_eq!(
            render("{{ getv(key=\"/nope\", default=8080) }}", UPSTREAM).unwrap(),
            "8080"
        );
        let err = render("a\n  {{ getv(key=\"/app/missing\") }}", UPSTREAM)
            .unwrap_err()
            .to_string();
        assert!(err.contains("key \"/app/missing\" not found"), "{err}");
        assert!(err.contains("t:2:"), "error names the line: {err}");
    }

    #[test]
    fn unknown_arguments_are_errors() {
        let err = render("{{ getv(k=\"/app/name\") }}", UPSTREAM)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("getv() got unexpected argument `k`; it takes `key`, `default`"),
            "{err}"
        );
        let err = render("{{ getv() }}", UPSTREAM).unwrap_err().to_string();
        assert!(err.contains("Missing keyword argument `key`"), "{err}");
    }

    #[test]
    fn get_returns_key_and_value() {
        let out = render(
            "{% set kv = get(key=\"/app/name\") %}{{ kv.key }}={{ kv.value }}",
            UPSTREAM,
        );
        assert_eq!(out.unwrap(), "/app/name=shop");
        assert!(
            render("{{ get(key=\"/x\") }}", UPSTREAM)
                .unwrap_err()
                .to_string()
                .contains("key \"/x\" not found")
        );
    }

    #[test]
    fn gets_is_sorted_by_key_and_getvs_by_value() {
        let out = render(
            "{% for kv in gets(pattern=\"/app/upstream/*\") %}{{ kv.key }}={{ kv.value }};{% endfor %}",
            UPSTREAM,
        );
        assert_eq!(
            out.unwrap(),
            "/app/upstream/web1=10.0.0.9:80;/app/upstream/web10=10.0.0.1:80;/app/upstream/web2=10.0.0.2:80;"
        );
        let out = render(
            "{{ getvs(pattern=\"/app/upstream/*\") | join(sep=\",\") }}",
            UPSTREAM,
        );
        assert_eq!(out.unwrap(), "10.0.0.1:80,10.0.0.2:80,10.0.0.9:80");
        let out = render("{{ gets(pattern=\"/nothing/*\") | length }}", UPSTREAM);
        assert_eq!(out.unwrap(), "0");
        let err = render("{{ gets(pattern=\"/app/[\") }}", UPSTREAM)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid key pattern \"/app/[\""), "{err}");
    }

    #[test]
    fn ls_lsdir_and_exists() {
        assert_eq!(
            render(
                "{{ ls(path=\"/app/upstream\") | join(sep=\",\") }}",
                UPSTREAM
            )
            .unwrap(),
            "pool,web1,web10,web2"
        );
        assert_eq!(
            render(
                "{{ lsdir(path=\"/app/upstream\") | join(sep=\",\") }}",
                UPSTREAM
            )
            .unwrap(),
            "pool"
        );
        assert_eq!(
            render("{{ ls(path=\"/\") | join(sep=\",\") }}", UPSTREAM).unwrap(),
            "app"
        );
        assert_eq!(
            render("{{ lsdir(path=\"/\") | join(sep=\",\") }}", UPSTREAM).unwrap(),
            "app"
        );
        assert_eq!(
            render(
                "{{ exists(key=\"/app/name\") }} {{ exists(key=\"/app\") }}",
                UPSTREAM
            )
            .unwrap(),
            "true false"
        );
    }

    #[test]
    fn getenv_and_file_exists() {
        // SAFETY (set_var): tests in this module do not read TERAD_TEST_GETENV concurrently.
        unsafe { std::env::set_var("TERAD_TEST_GETENV", "on") };
        assert_eq!(
            render("{{ getenv(name=\"TERAD_TEST_GETENV\") }}", &[]).unwrap(),
            "on"
        );
        assert_eq!(
            render("[{{ getenv(name=\"TERAD_TEST_UNSET_VAR\") }}]", &[]).unwrap(),
            "[]"
        );
        assert_eq!(
            render(
                "{{ getenv(name=\"TERAD_TEST_UNSET_VAR\", default=\"d\") }}",
                &[]
            )
            .unwrap(),
            "d"
        );
        assert_eq!(
            render(
                "{{ file_exists(path=\"/\") }} {{ file_exists(path=\"/no/such/file\") }}",
                &[]
            )
            .unwrap(),
            "true false"
        );
    }

    #[test]
    fn lookup_ip_resolves_localhost_and_returns_empty_for_unknown_names() {
        let out = render("{{ lookup_ip(name=\"localhost\") | join(sep=\",\") }}", &[]).unwrap();
        assert!(
            out.split(',').any(|ip| ip == "127.0.0.1" || ip == "::1"),
            "{out}"
        );
        let out = render(
            "{{ lookup_ip(name=\"no-such-host.invalid\") | length }}",
            &[],
        )
        .unwrap();
        assert_eq!(out, "0");
    }

    #[test]
    fn lookup_srv_returns_empty_when_nothing_resolves() {
        let out = render(
            "{{ lookup_srv(service=\"http\", proto=\"tcp\", name=\"no-such-domain.invalid\") | length }}",
            &[],
        );
        assert_eq!(out.unwrap(), "0");
    }
}
