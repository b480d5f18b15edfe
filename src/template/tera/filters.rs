//! Filters for confd's helpers that Tera lacks: `base`, `dir`, `split`, `json`, `to_json`,
//! `base64_encode`, `base64_decode`, `sort_by_length`, `parse_bool`, `atoi`. Tera's own filters
//! (`upper`, `lower`, `replace`, `join`, `reverse`, `int`, …) stay available.

use tera::{Kwargs, State, Tera, TeraResult, Value};

use super::functions::{error, expect_args};
use crate::template::confd;

pub(super) fn register(tera: &mut Tera) {
    tera.register_filter("base", base);
    tera.register_filter("dir", dir);
    tera.register_filter("split", split);
    tera.register_filter("json", json);
    tera.register_filter("to_json", to_json);
    tera.register_filter("base64_encode", base64_encode);
    tera.register_filter("base64_decode", base64_decode);
    tera.register_filter("sort_by_length", sort_by_length);
    tera.register_filter("parse_bool", parse_bool);
    tera.register_filter("atoi", atoi);
    tera.register_filter("host_port", host_port);
    tera.register_filter("safe_name", safe_name);
}

/// What a check filter was given: a string (`kv.value | host_port(key=kv.key)`), or a pair
/// from `gets`/`get` (`kv | host_port`), which names its own key. The pair spelling is also the
/// cheap one: Tera builds a keyword-argument map for every filter call that has one, which at
/// 100k servers cost the example more than the checks themselves.
enum Checked<'v> {
    Text(&'v str),
    Pair { key: &'v str, value: &'v str },
}

impl<'v> Checked<'v> {
    fn of(filter: &str, value: &'v Value) -> TeraResult<Checked<'v>> {
        if let Some(text) = value.as_str() {
            return Ok(Checked::Text(text));
        }
        let pair = value.as_map().and_then(|map| {
            let field = |name: &'static str| map.get(&tera::value::Key::Str(name))?.as_str();
            Some(Checked::Pair {
                key: field("key")?,
                value: field("value")?,
            })
        });
        pair.ok_or_else(|| {
            error(format!(
                "{filter}: expected a string or a key/value pair from gets, got {}",
                value.name()
            ))
        })
    }
}

/// Passes `value` through when `check` accepts it; otherwise fails the render naming the key
/// (the pair's, or `key=kv.key`) and why, never printing the value.
fn vetted(
    filter: &str,
    what: &str,
    value: &str,
    key: Option<&str>,
    check: fn(&str) -> Result<(), &'static str>,
) -> TeraResult<Value> {
    match check(value) {
        Ok(()) => Ok(Value::from(value)),
        Err(why) => {
            let subject = match key {
                Some(key) => format!("the value of key {key:?}"),
                None => crate::redact::describe(value),
            };
            Err(error(format!("{filter}: {subject} is not {what}: {why}")))
        }
    }
}

/// `{{ kv | host_port }}` or `{{ kv.value | host_port(key=kv.key) }}`: the value, when it is
/// `host:port` and nothing else.
fn host_port(value: &Value, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let check = crate::template::vet::host_port;
    match Checked::of("host_port", value)? {
        Checked::Pair { key, value } => {
            expect_args("host_port", &kwargs, &[])?;
            vetted("host_port", "host:port", value, Some(key), check)
        }
        Checked::Text(value) => {
            expect_args("host_port", &kwargs, &["key"])?;
            let key = kwargs.get::<&str>("key")?;
            vetted("host_port", "host:port", value, key, check)
        }
    }
}

/// `{{ kv | safe_name }}` (the pair's name: the last segment of its key, as `base`) or
/// `{{ kv.key | base | safe_name(key=kv.key) }}`: the name, when it is one word of letters,
/// digits, `.`, `_` and `-`.
fn safe_name(value: &Value, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    let check = crate::template::vet::safe_name;
    match Checked::of("safe_name", value)? {
        Checked::Pair { key, .. } => {
            expect_args("safe_name", &kwargs, &[])?;
            vetted(
                "safe_name",
                "a safe name",
                confd::base(key),
                Some(key),
                check,
            )
        }
        Checked::Text(value) => {
            expect_args("safe_name", &kwargs, &["key"])?;
            let key = kwargs.get::<&str>("key")?;
            vetted("safe_name", "a safe name", value, key, check)
        }
    }
}

fn base(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("base", &kwargs, &[])?;
    Ok(Value::from(confd::base(value)))
}

fn dir(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("dir", &kwargs, &[])?;
    Ok(Value::from(confd::dir(value)))
}

/// confd's `split`, spelled `split(sep=":")`; Tera's own spelling `split(pat=":")` still works.
fn split(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("split", &kwargs, &["sep", "pat"])?;
    let separator = match kwargs.get::<&str>("sep")? {
        Some(sep) => sep,
        None => kwargs.must_get::<&str>("pat")?,
    };
    Ok(Value::from(
        value.split(separator).map(Value::from).collect::<Vec<_>>(),
    ))
}

/// Parses a JSON document (object, array or scalar) into a template value; confd's `json` and
/// `jsonArray` in one.
fn json(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("json", &kwargs, &[])?;
    let parsed = confd::parse_json("json", value).map_err(error)?;
    Value::try_from_serializable(&parsed)
}

fn to_json(value: &Value, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("to_json", &kwargs, &["pretty"])?;
    let pretty = kwargs.get::<bool>("pretty")?.unwrap_or(false);
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .map_err(|e| error(format!("to_json: {e}")))?;
    Ok(Value::from(text))
}

fn base64_encode(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("base64_encode", &kwargs, &[])?;
    Ok(Value::from(confd::base64_encode(value)))
}

fn base64_decode(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("base64_decode", &kwargs, &[])?;
    Ok(Value::from(
        confd::base64_decode("base64_decode", value).map_err(error)?,
    ))
}

/// Sorts strings by length (confd's `sortByLength`), or `{key, value}` maps by key length
/// (confd's `sortKVByLength`); equal lengths keep their order.
fn sort_by_length(value: &[Value], kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("sort_by_length", &kwargs, &[])?;
    let length = |item: &Value| -> TeraResult<usize> {
        if let Some(text) = item.as_str() {
            return Ok(text.chars().count());
        }
        if let Some(key) = item.get_from_path("key").and_then(Value::as_str) {
            return Ok(key.chars().count());
        }
        Err(error(format!(
            "sort_by_length: expected strings or maps with a `key`, got {}",
            item.name()
        )))
    };
    let mut keyed = Vec::with_capacity(value.len());
    for item in value {
        keyed.push((length(item)?, item.clone()));
    }
    confd::sort_by_length(&mut keyed, |(len, _)| *len);
    Ok(Value::from(
        keyed.into_iter().map(|(_, item)| item).collect::<Vec<_>>(),
    ))
}

fn parse_bool(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("parse_bool", &kwargs, &[])?;
    Ok(Value::from(
        confd::parse_bool("parse_bool", value).map_err(error)?,
    ))
}

fn atoi(value: &str, kwargs: Kwargs, _: &State) -> TeraResult<Value> {
    expect_args("atoi", &kwargs, &[])?;
    Ok(Value::from(confd::atoi("atoi", value).map_err(error)?))
}

#[cfg(test)]
mod tests {
    use crate::template::tera::tests::{render_with, tera_ref};
    use crate::template::{RenderError, Templates};

    fn render(template: &str) -> Result<String, RenderError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), template).unwrap();
        let engine = Templates::load(dir.path(), &[tera_ref("t")]).expect("the template loads");
        render_with(&engine, "t", &[])
    }

    fn render_store(template: &str, pairs: &[(&str, &str)]) -> Result<String, RenderError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), template).unwrap();
        let engine = Templates::load(dir.path(), &[tera_ref("t")]).expect("the template loads");
        render_with(&engine, "t", pairs)
    }

    #[test]
    fn checks_take_a_pair_or_a_string_and_name_the_key() {
        const PAIR: &str = "{% for kv in gets(pattern=\"/proxy/frontend/*\") %}{{ kv | safe_name }} {{ kv | host_port }};{% endfor %}";
        const TEXT: &str = "{% for kv in gets(pattern=\"/proxy/frontend/*\") %}{{ kv.key | base | safe_name(key=kv.key) }} {{ kv.value | host_port(key=kv.key) }};{% endfor %}";
        let good = [
            ("/proxy/frontend/web-1", "10.0.0.1:80"),
            ("/proxy/frontend/web.2", "[::1]:8080"),
        ];
        for template in [PAIR, TEXT] {
            assert_eq!(
                render_store(template, &good).unwrap(),
                "web-1 10.0.0.1:80;web.2 [::1]:8080;"
            );
        }
        // A value that would add a directive, and a name that would: both spellings fail
        // naming the key, never printing the value.
        let bad_value = [("/proxy/frontend/web", "10.0.0.1:80\n  stats enable")];
        let bad_name = [("/proxy/frontend/web ssl", "10.0.0.1:80")];
        for template in [PAIR, TEXT] {
            let err = render_store(template, &bad_value).unwrap_err().to_string();
            assert!(
                err.contains(
                    "host_port: the value of key \"/proxy/frontend/web\" is not host:port"
                ),
                "{err}"
            );
            assert!(!err.contains("stats enable"), "{err}");
            let err = render_store(template, &bad_name).unwrap_err().to_string();
            assert!(
                err.contains(
                    "safe_name: the value of key \"/proxy/frontend/web ssl\" is not a safe name"
                ),
                "{err}"
            );
        }
        // A pair takes no key=; anything but a string or a pair is refused.
        let err = render_store(
            "{% for kv in gets(pattern=\"/a/*\") %}{{ kv | host_port(key=kv.key) }}{% endfor %}",
            &[("/a/b", "h:1")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("host_port"), "{err}");
        let err = render_store("{{ 80 | host_port }}", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("host_port: expected a string or a key/value pair from gets"),
            "{err}"
        );
    }

    #[test]
    fn base_and_dir_follow_go_path() {
        assert_eq!(
            render("{{ \"/proxy/frontend/web1\" | base }}").unwrap(),
            "web1"
        );
        assert_eq!(
            render("{{ \"/proxy/frontend/web1\" | dir }}").unwrap(),
            "/proxy/frontend"
        );
    }

    #[test]
    fn split_takes_sep_or_pat() {
        assert_eq!(
            render("{{ \"10.0.0.1:80\" | split(sep=\":\") | first }}").unwrap(),
            "10.0.0.1"
        );
        assert_eq!(
            render("{{ \"a,b\" | split(pat=\",\") | last }}").unwrap(),
            "b"
        );
        assert!(
            render("{{ \"a\" | split(x=\",\") }}")
                .unwrap_err()
                .to_string()
                .contains("unexpected argument `x`")
        );
    }

    #[test]
    fn json_round_trips() {
        assert_eq!(
            render("{% set v = '{\"port\": 80, \"hosts\": [\"a\", \"b\"]}' | json %}{{ v.port }} {{ v.hosts | join(sep=\"+\") }}")
                .unwrap(),
            "80 a+b"
        );
        assert_eq!(render("{{ '[1, 2]' | json | length }}").unwrap(), "2");
        assert_eq!(
            render("{{ '{\"a\": [1, true]}' | json | to_json }}").unwrap(),
            "{\"a\":[1,true]}"
        );
        let err = render("{{ '{broken' | json }}").unwrap_err().to_string();
        assert!(
            err.contains("json: cannot parse a value of 7 bytes"),
            "{err}"
        );
    }

    #[test]
    fn base64_both_ways() {
        assert_eq!(
            render("{{ \"hello\" | base64_encode }}").unwrap(),
            "aGVsbG8="
        );
        assert_eq!(
            render("{{ \"aGVsbG8=\" | base64_decode }}").unwrap(),
            "hello"
        );
        assert!(
            render("{{ \"***\" | base64_decode }}")
                .unwrap_err()
                .to_string()
                .contains("invalid base64 in a value of 3 bytes")
        );
        assert!(
            render("{{ \"/w==\" | base64_decode }}")
                .unwrap_err()
                .to_string()
                .contains("does not decode to UTF-8")
        );
    }

    #[test]
    fn sort_by_length_is_stable_for_strings_and_key_value_maps() {
        assert_eq!(
            render("{{ [\"ccc\", \"a\", \"bb\", \"d\"] | sort_by_length | join(sep=\",\") }}")
                .unwrap(),
            "a,d,bb,ccc"
        );
        assert_eq!(
            render("{% for kv in [{\"key\": \"/long/key\", \"value\": 1}, {\"key\": \"/k\", \"value\": 2}] | sort_by_length %}{{ kv.value }}{% endfor %}")
                .unwrap(),
            "21"
        );
        assert!(
            render("{{ [1] | sort_by_length }}")
                .unwrap_err()
                .to_string()
                .contains("expected strings or maps")
        );
    }

    #[test]
    fn parse_bool_and_atoi_follow_go_strconv() {
        assert_eq!(
            render("{{ \"T\" | parse_bool }} {{ \"0\" | parse_bool }}").unwrap(),
            "true false"
        );
        assert!(
            render("{{ \"yes\" | parse_bool }}")
                .unwrap_err()
                .to_string()
                .contains("parse_bool: \"yes\" is not a boolean")
        );
        assert_eq!(render("{{ \"-42\" | atoi + 2 }}").unwrap(), "-40");
        assert!(
            render("{{ \"4x\" | atoi }}")
                .unwrap_err()
                .to_string()
                .contains("atoi: \"4x\" is not an integer")
        );
        assert!(
            render("{{ \"99999999999999999999\" | atoi }}")
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
    }

    #[test]
    fn tera_builtins_stay_available() {
        assert_eq!(
            render("{{ \"Ab\" | upper }} {{ \"Ab\" | lower }} {{ \"a-b\" | replace(from=\"-\", to=\"_\") }} {{ \"7\" | int + 1 }} {{ [1, 2] | reverse | join(sep=\"\") }}")
                .unwrap(),
            "AB ab a_b 8 21"
        );
    }
}
