//! Finding the catalog functions a Tera template calls (`service(...)`, `services()`,
//! `nodes()`) without rendering it, so that their queries are watched before the first render
//! and a backend without a catalog is refused at start.
//!
//! Tera keeps its syntax tree private, so this reads the template's tags: strings, comments and
//! `{% raw %}` blocks are skipped; a name followed by `(` is a call unless it is a field
//! (`x.nodes()`), a filter, a macro's namespace (`m::service()`) or a macro definition. A call
//! whose arguments are all literals gives its query; one with a computed argument is found by
//! the render instead.

use std::collections::BTreeMap;

use crate::catalog::ServiceQuery;
use crate::template::services::{self, BadCall, CallProblem, FoundCall, StatusArg};

/// The catalog functions.
const FUNCTIONS: [&str; 3] = ["service", "services", "nodes"];

/// The calls of catalog functions in one template's source.
pub(super) fn scan(template: &str, source: &str) -> Vec<FoundCall> {
    let bytes = source.as_bytes();
    let mut calls = Vec::new();
    let mut pos = 0;
    while let Some(open) = find(bytes, pos, b"{") {
        let Some(&kind) = bytes.get(open + 1) else {
            break;
        };
        match kind {
            b'#' => {
                pos = find(bytes, open + 2, b"#}").map_or(bytes.len(), |end| end + 2);
            }
            b'{' | b'%' => {
                let close: &[u8] = if kind == b'{' { b"}}" } else { b"%}" };
                let body = open + 2;
                let end = tag_end(bytes, body, close);
                let tag = &source[body..end];
                let words = tag.trim_start_matches('-').trim_start();
                if kind == b'%' && words.starts_with("raw") && !is_word(words.as_bytes().get(3)) {
                    pos = end_of_raw(bytes, end);
                    continue;
                }
                for (offset, function, query) in scan_tag(tag) {
                    let before = &source[..body + offset];
                    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                    calls.push(FoundCall {
                        template: template.to_owned(),
                        line: before.matches('\n').count() + 1,
                        column: before[line_start..].chars().count() + 1,
                        function,
                        query,
                    });
                }
                pos = (end + 2).min(bytes.len());
            }
            _ => pos = open + 1,
        }
    }
    calls
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= bytes.len() {
        return None;
    }
    bytes[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn is_word(byte: Option<&u8>) -> bool {
    byte.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Where the tag that starts at `from` closes (strings may hold the closing sequence).
fn tag_end(bytes: &[u8], from: usize, close: &[u8]) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' | b'`' => i = skip_string(bytes, i),
            _ if bytes[i..].starts_with(close) => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// After `{% raw %}`: past the matching `{% endraw %}`.
fn end_of_raw(bytes: &[u8], from: usize) -> usize {
    let mut pos = from;
    while let Some(open) = find(bytes, pos, b"{%") {
        let end = tag_end(bytes, open + 2, b"%}");
        let words = String::from_utf8_lossy(&bytes[open + 2..end]);
        if words.trim_matches(|c: char| c == '-' || c.is_whitespace()) == "endraw" {
            return (end + 2).min(bytes.len());
        }
        pos = open + 2;
    }
    bytes.len()
}

/// Past the string that opens at `start` (Tera strings take `"`, `'` or a backtick).
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The last significant token before a name: what decides whether `name(` is a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before<'a> {
    Nothing,
    Word(&'a str),
    Punct(u8),
    Literal,
}

type TagCall = (usize, &'static str, Result<Option<ServiceQuery>, BadCall>);

/// The calls in one tag's text: (offset in the tag, function, query).
fn scan_tag(tag: &str) -> Vec<TagCall> {
    let bytes = tag.as_bytes();
    let mut found = Vec::new();
    let mut before = Before::Nothing;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if matches!(b, b'"' | b'\'' | b'`') {
            i = skip_string(bytes, i);
            before = Before::Literal;
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while is_word(bytes.get(i)) {
                i += 1;
            }
            let word = &tag[start..i];
            let mut next = i;
            while bytes.get(next).is_some_and(u8::is_ascii_whitespace) {
                next += 1;
            }
            let function = FUNCTIONS.iter().find(|f| **f == word);
            let callable = !matches!(
                before,
                Before::Punct(b'.' | b':' | b'|') | Before::Word("macro")
            );
            match function {
                Some(function) if callable && bytes.get(next) == Some(&b'(') => {
                    let (args, end) = arguments(tag, next + 1);
                    let query = args.map(|args| query_of(function, &args)).transpose();
                    let query = query.map_err(|problem| BadCall {
                        call: format!("{function}()"),
                        problem,
                    });
                    found.push((start, *function, query));
                    i = end;
                    before = Before::Punct(b')');
                }
                _ => before = Before::Word(word),
            }
        } else {
            before = Before::Punct(b);
            i += 1;
        }
    }
    found
}

/// A literal argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal<'a> {
    Text(&'a str),
    List(Vec<&'a str>),
}

/// The keyword arguments of a call from just after its `(`: `Some` when every one is a literal
/// string or list of strings; and where the call ends.
#[allow(clippy::type_complexity)]
fn arguments(tag: &str, from: usize) -> (Option<Vec<(&str, Literal<'_>)>>, usize) {
    let bytes = tag.as_bytes();
    let mut args = Vec::new();
    let mut i = from;
    let skip_ws = |i: &mut usize| {
        while bytes.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if bytes.get(i) == Some(&b')') {
            return (Some(args), i + 1);
        }
        let start = i;
        while is_word(bytes.get(i)) {
            i += 1;
        }
        let name = &tag[start..i];
        skip_ws(&mut i);
        if name.is_empty() || bytes.get(i) != Some(&b'=') || bytes.get(i + 1) == Some(&b'=') {
            return (None, close_paren(bytes, i));
        }
        i += 1;
        skip_ws(&mut i);
        let value = match string_at(tag, i) {
            Some((text, end)) => {
                i = end;
                Literal::Text(text)
            }
            None if bytes.get(i) == Some(&b'[') => {
                i += 1;
                let mut items = Vec::new();
                loop {
                    skip_ws(&mut i);
                    if bytes.get(i) == Some(&b']') {
                        i += 1;
                        break;
                    }
                    let Some((text, end)) = string_at(tag, i) else {
                        return (None, close_paren(bytes, i));
                    };
                    items.push(text);
                    i = end;
                    skip_ws(&mut i);
                    if bytes.get(i) == Some(&b',') {
                        i += 1;
                    }
                }
                Literal::List(items)
            }
            None => return (None, close_paren(bytes, i)),
        };
        args.push((name, value));
        skip_ws(&mut i);
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b')') => {}
            // An operator or filter on the value: computed.
            _ => return (None, close_paren(bytes, i)),
        }
    }
}

/// The string literal at `at` without its quotes, and where it ends; `None` when there is no
/// string there or it holds an escape (Tera's strings take them literally, this does not guess).
fn string_at(tag: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = tag.as_bytes();
    let quote = *bytes.get(at)?;
    if !matches!(quote, b'"' | b'\'' | b'`') {
        return None;
    }
    let end = skip_string(bytes, at);
    let text = tag.get(at + 1..end.checked_sub(1)?)?;
    (end <= bytes.len() && bytes[end - 1] == quote && !text.contains('\\')).then_some((text, end))
}

/// Past the `)` that closes the call (strings and nested parentheses skipped).
fn close_paren(bytes: &[u8], from: usize) -> usize {
    let mut depth = 1usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// The query of a call with literal arguments, checked as the function will check it.
fn query_of(function: &str, args: &[(&str, Literal<'_>)]) -> Result<ServiceQuery, CallProblem> {
    let allowed: &[&str] = match function {
        "service" => &["name", "tag", "status", "datacenter"],
        _ => &["datacenter"],
    };
    let mut text = BTreeMap::new();
    let mut status = None;
    for (name, value) in args {
        if !allowed.contains(name) {
            return Err(CallProblem::UnexpectedArgument((*name).to_owned()));
        }
        match (name, value) {
            (&"status", Literal::Text(t)) => status = Some(StatusArg::One(t)),
            (&"status", Literal::List(items)) => status = Some(StatusArg::List(items.clone())),
            (_, Literal::Text(t)) => {
                text.insert(*name, *t);
            }
            (_, Literal::List(_)) => return Err(CallProblem::NotAList((*name).to_owned())),
        }
    }
    let datacenter = text.get("datacenter").copied();
    match function {
        "service" => {
            let name = text
                .get("name")
                .ok_or(CallProblem::MissingArgument("name"))?;
            Ok(ServiceQuery::Health(services::health_query(
                name,
                text.get("tag").copied(),
                status,
                datacenter,
            )?))
        }
        "services" => Ok(ServiceQuery::Services {
            datacenter: datacenter.map(str::to_owned),
        }),
        _ => Ok(ServiceQuery::Nodes {
            datacenter: datacenter.map(str::to_owned),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{HealthQuery, StatusFilter};

    fn queries(source: &str) -> Vec<TagCall> {
        scan("t", source)
            .into_iter()
            .map(|call| (call.line, call.function, call.query))
            .collect()
    }

    fn web() -> HealthQuery {
        HealthQuery::new("web").unwrap()
    }

    #[test]
    fn literal_calls_give_their_queries_and_lines() {
        let found = queries(
            "a\n{% for s in service(name=\"web\") %}{{ s.address }}{% endfor %}\n\
             {{ service(name='web', tag=\"v2\", status=[\"passing\", \"warning\"], datacenter=\"dc2\") | length }}\n\
             {%- set all = services() -%}{{ nodes( datacenter = `dc3` ) }}",
        );
        let v2 = web()
            .with_tag("v2")
            .unwrap()
            .with_status(StatusFilter::parse("passing,warning").unwrap())
            .with_datacenter("dc2")
            .unwrap();
        assert_eq!(
            found,
            [
                (2, "service", Ok(Some(ServiceQuery::Health(web())))),
                (3, "service", Ok(Some(ServiceQuery::Health(v2)))),
                (
                    4,
                    "services",
                    Ok(Some(ServiceQuery::Services { datacenter: None }))
                ),
                (
                    4,
                    "nodes",
                    Ok(Some(ServiceQuery::Nodes {
                        datacenter: Some("dc3".into())
                    }))
                ),
            ]
        );
    }

    #[test]
    fn computed_arguments_are_left_to_the_render() {
        for source in [
            "{{ service(name=getv(key=\"/svc\")) }}",
            "{{ service(name=\"we\" ~ \"b\") }}",
            "{{ service(name=x) }}",
            "{% set s = service(name=names[0], status=\"any\") %}",
        ] {
            let found = queries(source);
            assert_eq!(found.len(), 1, "{source}");
            assert_eq!(found[0].2, Ok(None), "{source}");
        }
    }

    #[test]
    fn literal_mistakes_are_reported() {
        let found = queries(
            "{{ service(name=\"web\", status=\"pasing\") }}{{ service(nam=\"web\") }}{{ service() }}",
        );
        let errors: Vec<String> = found
            .into_iter()
            .map(|f| f.2.unwrap_err().to_string())
            .collect();
        assert!(
            errors[0].contains("unknown status \"pasing\""),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("unexpected argument `nam`"),
            "{errors:?}"
        );
        assert!(
            errors[2].contains("missing keyword argument `name`"),
            "{errors:?}"
        );
    }

    #[test]
    fn strings_comments_raw_blocks_fields_and_macros_are_not_calls() {
        let found = queries(
            "service(name=\"x\") outside tags\n\
             {# {{ service(name=\"c\") }} #}\n\
             {{ \"service(name='s')\" }}\n\
             {% raw %}{{ service(name=\"raw\") }}{% endraw %}\n\
             {{ x.nodes() }}{{ m::service(name=\"m\") }}{% macro service(name) %}{% endmacro %}\n\
             {{ my_service(name=\"y\") }}{{ nodes_list }}\n\
             {{ \"}}\" }}{{ nodes() }}",
        );
        assert_eq!(
            found,
            [(
                7,
                "nodes",
                Ok(Some(ServiceQuery::Nodes { datacenter: None }))
            )]
        );
    }
}
