//! Template functions with confd's semantics, called with keyword arguments (Tera's convention):
//! `getv(key="/a")`, `gets(pattern="/upstream/*")`, `getenv(name="HOME", default="/")`, …
//!
//! Every function rejects arguments it does not know, so `getv(k="/a")` is an error naming the
//! expected argument instead of a silent miss.

use std::net::ToSocketAddrs;

use tera::{Kwargs, Map, State, Tera, TeraResult, Value};

use super::with_view;
use crate::store::{Glob, View};

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

/// The error for a key the template asked for but the store does not have (for this resource).
fn missing_key(view: &View<'_>, key: &str) -> tera::Error {
    if view.exists_outside_scope(key) {
        tera::Error::message(format!(
            "key {key:?} is not among this resource's keys; add it to `keys` in the resource file"
        ))
    } else {
        tera::Error::message(format!("key {key:?} not found"))
    }
}

/// A `{key, value}` pair as templates see it. Built through serde because Tera then allocates
/// each map once; `Value::from(Map)` would copy it (this is the hot path of `gets`).
#[derive(serde::Serialize)]
struct Kv<'a> {
    key: &'a str,
    value: &'a str,
}

fn to_value(value: &impl serde::Serialize) -> TeraResult<Value> {
    Value::try_from_serializable(value)
}

fn getv(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("getv", &kwargs, &["key", "default"])?;
    let key = kwargs.must_get::<&str>("key")?;
    with_view(|view| match view.get(key) {
        Some(value) => Ok(Value::from(value)),
        None => match kwargs.get::<Value>("default")? {
            Some(default) => Ok(Value::from(default.to_string())),
            None => Err(missing_key(&view, key)),
        },
    })
}

fn get(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("get", &kwargs, &["key"])?;
    let key = kwargs.must_get::<&str>("key")?;
    with_view(|view| match view.get(key) {
        Some(value) => to_value(&Kv { key, value }),
        None => Err(missing_key(&view, key)),
    })
}

fn pattern(kwargs: &Kwargs) -> TeraResult<Glob> {
    let pattern = kwargs.must_get::<&str>("pattern")?;
    Glob::new(pattern).map_err(|e| tera::Error::message(e.to_string()))
}

fn gets(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("gets", &kwargs, &["pattern"])?;
    let pattern = pattern(&kwargs)?;
    with_view(|view| {
        let pairs: Vec<Kv<'_>> = view
            .glob(&pattern)
            .into_iter()
            .map(|(key, value)| Kv { key, value })
            .collect();
        to_value(&pairs)
    })
}

fn getvs(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("getvs", &kwargs, &["pattern"])?;
    let pattern = pattern(&kwargs)?;
    with_view(|view| {
        let mut values: Vec<&str> = view.glob(&pattern).into_iter().map(|(_, v)| v).collect();
        // confd sorts values, not keys.
        values.sort_unstable();
        Ok(Value::from(
            values.into_iter().map(Value::from).collect::<Vec<_>>(),
        ))
    })
}

fn ls(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("ls", &kwargs, &["path"])?;
    let path = kwargs.must_get::<&str>("path")?;
    with_view(|view| Ok(Value::from(view.list(path))))
}

fn lsdir(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("lsdir", &kwargs, &["path"])?;
    let path = kwargs.must_get::<&str>("path")?;
    with_view(|view| Ok(Value::from(view.list_dirs(path))))
}

fn exists(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("exists", &kwargs, &["key"])?;
    let key = kwargs.must_get::<&str>("key")?;
    with_view(|view| Ok(Value::from(view.get(key).is_some())))
}

fn getenv(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("getenv", &kwargs, &["name", "default"])?;
    let name = kwargs.must_get::<&str>("name")?;
    let value = match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        // confd: an unset or empty variable gives the default, or "".
        _ => kwargs
            .get::<Value>("default")?
            .map(|d| d.to_string())
            .unwrap_or_default(),
    };
    Ok(Value::from(value))
}

fn file_exists(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("file_exists", &kwargs, &["path"])?;
    let path = kwargs.must_get::<&str>("path")?;
    Ok(Value::from(std::path::Path::new(path).exists()))
}

/// The sorted, distinct addresses of a host name; an empty list when it does not resolve
/// (confd's behaviour, so a template can fall back).
fn lookup_ip(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("lookup_ip", &kwargs, &["name"])?;
    let name = kwargs.must_get::<&str>("name")?;
    let mut addresses: Vec<String> = match (name, 0u16).to_socket_addrs() {
        Ok(found) => found.map(|a| a.ip().to_string()).collect(),
        Err(_) => Vec::new(),
    };
    addresses.sort();
    addresses.dedup();
    Ok(Value::from(addresses))
}

/// DNS SRV records for `_service._proto.name` as maps with `target`, `port`, `priority` and
/// `weight`, sorted like confd (by target, then port, priority, weight); an empty list when the
/// lookup fails.
fn lookup_srv(kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("lookup_srv", &kwargs, &["service", "proto", "name"])?;
    let service = kwargs.must_get::<&str>("service")?;
    let proto = kwargs.must_get::<&str>("proto")?;
    let name = kwargs.must_get::<&str>("name")?;
    let mut records = crate::dns::lookup_srv(service, proto, name).unwrap_or_default();
    records.sort_by(|a, b| {
        (&a.target, a.port, a.priority, a.weight).cmp(&(&b.target, b.port, b.priority, b.weight))
    });
    Ok(Value::from(
        records
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
    use crate::template::Engine;
    use crate::template::tests::render_with;

    fn render(template: &str, pairs: &[(&str, &str)]) -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), template).unwrap();
        let engine = Engine::load(dir.path(), ["t"]).map_err(|e| e.to_string())?;
        render_with(&engine, "t", pairs).map_err(|e| e.to_string())
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
