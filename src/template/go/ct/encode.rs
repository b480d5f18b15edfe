//! consul-template's encoders and `parseYAML`: `toJSON` and `toJSONPretty` as Go's
//! `encoding/json` writes (sorted keys, `<>&` escaped, Go's float format), `toYAML` as
//! `gopkg.in/yaml.v2` and `toTOML` as BurntSushi's `toml` write the shapes templates build
//! (maps of strings, numbers, bools, lists and maps), each trimmed of surrounding space.

use std::fmt::Write as _;

use super::{CtError, Result, text};
use crate::template::go::context::GoContext;
use crate::template::go::{Functions, ListType, Param, Signature, Value};

pub(super) fn register(f: &mut Functions<GoContext>) {
    let s = Signature::new;
    f.register("toJSON", s(&[Param::Any], None), |_, a| {
        let mut out = String::new();
        json(&mut out, &a[0], None, 0).map_err(|e| wrapped("toJSON", e))?;
        Ok(Value::from(out))
    })
    .register("toJSONPretty", s(&[Param::Map], None), |_, a| {
        let mut out = String::new();
        json(&mut out, &a[0], Some("  "), 0).map_err(|e| wrapped("toJSONPretty", e))?;
        Ok(Value::from(out))
    })
    .register("toYAML", s(&[Param::Map], None), |_, a| {
        let mut out = String::new();
        yaml_value(&mut out, &a[0], 0);
        Ok(Value::from(out.trim().to_owned()))
    })
    .register("toTOML", s(&[Param::Map], None), |_, a| {
        let mut out = String::new();
        if let Value::Map(map) = &a[0] {
            toml_table(&mut out, map, &mut Vec::new()).map_err(|e| wrapped("toTOML", e))?;
        }
        Ok(Value::from(out.trim().to_owned()))
    })
    .register("parseYAML", s(&[Param::String], None), parse_yaml);
}

/// A value an encoder cannot write, as Go's encoders say it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// `encoding/json` of a NaN or an infinity.
    #[error("json: unsupported value: {0}")]
    Json(String),
    /// BurntSushi's `toml` of a value TOML has no place for.
    #[error("toml: unsupported type: {0}")]
    Toml(String),
}

fn wrapped(function: &'static str, error: EncodeError) -> crate::template::go::FuncError {
    CtError::Wrapped {
        function,
        message: error.to_string(),
    }
    .into()
}

/// The reason of an I/O error as Go words it (`no such file or directory`).
pub(super) fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_lowercase(),
        None => text,
    }
}

/// Go's `encoding/json` string: `"`, `\`, control characters, `<>&` and U+2028/9 escaped.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `encoding/json` float: `%f`-like unless very small or large, then an exponent
/// without a leading zero (`1e-07` becomes `1e-7`).
fn json_float(out: &mut String, f: f64) -> std::result::Result<(), EncodeError> {
    if !f.is_finite() {
        let mut shown = Vec::new();
        crate::template::go::strconv::format_float(&mut shown, f, b'g', -1);
        return Err(EncodeError::Json(
            String::from_utf8_lossy(&shown).into_owned(),
        ));
    }
    let abs = f.abs();
    let mut bytes = Vec::new();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        crate::template::go::strconv::format_float(&mut bytes, f, b'e', -1);
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(at) = text.find("e-0") {
            text.replace_range(at..at + 3, "e-");
        }
        out.push_str(&text);
    } else {
        crate::template::go::strconv::format_float(&mut bytes, f, b'f', -1);
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    Ok(())
}

fn newline(out: &mut String, indent: Option<&str>, depth: usize) {
    if let Some(indent) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

fn json(
    out: &mut String,
    value: &Value,
    indent: Option<&str>,
    depth: usize,
) -> std::result::Result<(), EncodeError> {
    let entries: Vec<(String, Value)> = match value {
        Value::Nil => {
            out.push_str("null");
            return Ok(());
        }
        Value::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            return Ok(());
        }
        Value::Int(i) => {
            let _ = write!(out, "{i}");
            return Ok(());
        }
        Value::Float(f) => return json_float(out, *f),
        Value::Str(s) => {
            json_string(out, s);
            return Ok(());
        }
        Value::List(list) => {
            if list.items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in list.items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                json(out, item, indent, depth + 1)?;
            }
            newline(out, indent, depth);
            out.push(']');
            return Ok(());
        }
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        Value::Pair(pair) => vec![
            ("Key".to_owned(), Value::Str(pair.key.clone())),
            ("Value".to_owned(), Value::Str(pair.value.clone())),
        ],
        Value::Object(object) => object
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    };
    if entries.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    out.push('{');
    for (i, (key, item)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(out, indent, depth + 1);
        json_string(out, key);
        out.push(':');
        if indent.is_some() {
            out.push(' ');
        }
        json(out, item, indent, depth + 1)?;
    }
    newline(out, indent, depth);
    out.push('}');
    Ok(())
}

/// Whether yaml.v2 writes a string in double quotes: when plain it would read back as
/// something else (a bool, a number, null), or it holds what plain scalars cannot.
fn yaml_needs_quotes(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN", "<<", "=",
    ];
    if RESERVED.contains(&s)
        || s.parse::<f64>().is_ok()
        || s.starts_with(|c: char| c.is_whitespace() || "-?:,[]{}#&*!|>'\"%@`".contains(c))
        || s.ends_with(char::is_whitespace)
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
    {
        return true;
    }
    s.chars().any(|c| c.is_control() && c != '\n')
}

fn yaml_scalar(out: &mut String, s: &str, depth: usize) {
    if s.contains('\n') && !s.chars().any(|c| c.is_control() && c != '\n') {
        out.push_str(if s.ends_with('\n') { "|" } else { "|-" });
        for line in s.trim_end_matches('\n').split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&"  ".repeat(depth + 1));
                out.push_str(line);
            }
        }
    } else if yaml_needs_quotes(s) {
        json_string(out, s);
    } else {
        out.push_str(s);
    }
}

fn yaml_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            let mut bytes = Vec::new();
            crate::template::go::strconv::format_float(&mut bytes, *f, b'g', -1);
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
        Value::Str(s) => yaml_scalar(out, s, depth),
        Value::List(list) if list.items.is_empty() => out.push_str("[]"),
        Value::List(list) => {
            for item in &list.items {
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
                out.push_str("- ");
                let mut nested = String::new();
                yaml_value(&mut nested, item, depth + 1);
                out.push_str(nested.trim_start_matches('\n').trim_start());
            }
        }
        Value::Map(map) if map.is_empty() => out.push_str("{}"),
        Value::Map(map) => {
            for (key, item) in map.iter() {
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
                yaml_scalar(out, key, depth);
                out.push(':');
                let nested_block = matches!(item, Value::Map(m) if !m.is_empty());
                let list_block = matches!(item, Value::List(l) if !l.items.is_empty());
                if nested_block {
                    yaml_value(out, item, depth + 1);
                } else if list_block {
                    yaml_value(out, item, depth);
                } else {
                    out.push(' ');
                    yaml_value(out, item, depth);
                }
            }
        }
        Value::Pair(_) | Value::Object(_) => out.push_str("{}"),
    }
}

fn toml_key(out: &mut String, key: &str) {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        out.push_str(key);
    } else {
        toml_string(out, key);
    }
}

fn toml_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn toml_inline(out: &mut String, value: &Value) -> std::result::Result<(), EncodeError> {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            let mut bytes = Vec::new();
            crate::template::go::strconv::format_float(&mut bytes, *f, b'f', -1);
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if !text.contains('.') {
                text.push_str(".0");
            }
            out.push_str(&text);
        }
        Value::Str(s) => toml_string(out, s),
        Value::List(list) => {
            out.push('[');
            for (i, item) in list.items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                toml_inline(out, item)?;
            }
            out.push(']');
        }
        other => return Err(EncodeError::Toml(other.type_name().to_owned())),
    }
    Ok(())
}

fn is_table(value: &Value) -> bool {
    matches!(value, Value::Map(_))
}

fn toml_table(
    out: &mut String,
    map: &std::collections::BTreeMap<std::sync::Arc<str>, Value>,
    path: &mut Vec<String>,
) -> std::result::Result<(), EncodeError> {
    // A table's keys are indented one step more than its header.
    let indent = "  ".repeat(path.len());
    for (key, value) in map.iter() {
        if is_table(value) || matches!(value, Value::Nil) {
            continue;
        }
        out.push_str(&indent);
        toml_key(out, key);
        out.push_str(" = ");
        toml_inline(out, value)?;
        out.push('\n');
    }
    for (key, value) in map.iter() {
        let Value::Map(nested) = value else {
            continue;
        };
        path.push(key.to_string());
        let mut header = String::new();
        for (i, part) in path.iter().enumerate() {
            if i > 0 {
                header.push('.');
            }
            toml_key(&mut header, part);
        }
        let _ = write!(
            out,
            "\n{}[{header}]\n",
            "  ".repeat(path.len().saturating_sub(1))
        );
        toml_table(out, nested, path)?;
        path.pop();
    }
    Ok(())
}

fn parse_yaml(_: &GoContext, args: &[Value]) -> Result<Value> {
    let s = text(args, 0);
    if s.is_empty() {
        return Ok(Value::map([]));
    }
    let documents = yaml_rust2::YamlLoader::load_from_str(s)
        .map_err(|error| CtError::Plain(format!("yaml: {error}")))?;
    Ok(documents.first().map(from_yaml).unwrap_or_default())
}

fn from_yaml(yaml: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Real(text) => text.parse::<f64>().map(Value::Float).unwrap_or_default(),
        Yaml::Integer(i) => Value::Int(*i),
        Yaml::String(s) => Value::str(s),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::list(ListType::Any, items.iter().map(from_yaml).collect()),
        Yaml::Hash(hash) => Value::map(hash.iter().map(|(k, v)| {
            let key = match k {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                Yaml::Boolean(b) => b.to_string(),
                Yaml::Real(r) => r.clone(),
                _ => String::new(),
            };
            (std::sync::Arc::from(key.as_str()), from_yaml(v))
        })),
        _ => Value::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_json(value: &Value, indent: Option<&str>) -> String {
        let mut out = String::new();
        json(&mut out, value, indent, 0).unwrap();
        out
    }

    #[test]
    fn json_is_go_json() {
        let parsed: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, 2.5, "<a&b>"], "a": {"x": null}, "c": 1e21}"#)
                .unwrap();
        let value = Value::from_json(&parsed);
        assert_eq!(
            to_json(&value, None),
            r#"{"a":{"x":null},"b":[1,2.5,"\u003ca\u0026b\u003e"],"c":1e+21}"#
        );
        assert_eq!(
            to_json(&Value::map([]), Some("  ")),
            "{}",
            "an empty object stays on one line"
        );
    }
}
