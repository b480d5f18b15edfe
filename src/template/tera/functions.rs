//! Template functions with confd's semantics, called with keyword arguments (Tera's convention):
//! `getv(key="/a")`, `gets(pattern="/upstream/*")`, `getenv(name="HOME", default="/")`, …
//!
//! Every function rejects arguments it does not know, so `getv(k="/a")` is an error naming the
//! expected argument instead of a silent miss.

use tera::{Kwargs, Map, State, Tera, TeraResult, Value};

use super::with_view;
use crate::template::confd::{self, IpFamily, Kv};

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
    confd::pattern(kwargs.must_get::<&str>("pattern")?).map_err(|e| error(e.message))
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

#[cfg(test)]
mod tests {
    use crate::template::Templates;
    use crate::template::tera::tests::{render_with, tera_ref};

    fn render(template: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), template).unwrap();
        let engine = Templates::load(dir.path(), &[tera_ref("t")]).map_err(|e| e.to_string())?;
        render_with(&engine, "t", pairs).map_err(|e| e.to_string())
    }

    /// Renders with only `keys` in the resource's scope.
    fn render_scoped(
        template: &str,
        keys: &[&str],
        pairs: &[(&str, &str)],
    ) -> Result<String, String> {
        use std::sync::Arc;

        use crate::template::{KeyScope, RenderInput};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), template).unwrap();
        let templates = Templates::load(dir.path(), &[tera_ref("t")]).map_err(|e| e.to_string())?;
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
        };
        let mut out = Vec::new();
        templates
            .render(&tera_ref("t"), &input, &mut out)
            .map_err(|e| e.to_string())?;
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
            let err = render_scoped(template, &["/proxy"], pairs).unwrap_err();
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
        .unwrap_err();
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
        let err = render("a\n  {{ getv(key=\"/app/missing\") }}", UPSTREAM).unwrap_err();
        assert!(err.contains("key \"/app/missing\" not found"), "{err}");
        assert!(err.contains("t:2:"), "error names the line: {err}");
    }

    #[test]
    fn unknown_arguments_are_errors() {
        let err = render("{{ getv(k=\"/app/name\") }}", UPSTREAM).unwrap_err();
        assert!(
            err.contains("getv() got unexpected argument `k`; it takes `key`, `default`"),
            "{err}"
        );
        let err = render("{{ getv() }}", UPSTREAM).unwrap_err();
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
        let err = render("{{ gets(pattern=\"/app/[\") }}", UPSTREAM).unwrap_err();
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
