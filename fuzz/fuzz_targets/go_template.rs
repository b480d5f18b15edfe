//! Any text as a confd (Go `text/template`) template: parsing with confd's function map may
//! reject it, never panic; a template that parses is executed against a small fixed store and
//! may fail, never panic. Errors point into the source (a line and column that exist), output
//! is UTF-8, and rendering the same template twice gives the same result.
//!
//! The engine has no execution fuel (neither has Go's): a template may legitimately loop over
//! ten million numbers, or double a string in a loop until memory runs out. Templates that
//! might are only parsed, not executed; see [`bounded`].
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use terad::store::KeyStore;
use terad::template::go::confd::functions;
use terad::template::go::context::GoContext;
use terad::template::go::{Functions, Template, Value};
use terad::template::{KeyScope, RenderInput};

/// The template's name. Not one a fuzzer can guess: `{{define}}` of the main template's own
/// name would let it call itself (see [`bounded`]).
const NAME: &str = "fuzz-7c1e9a.tmpl";

fn funcs() -> &'static Functions<GoContext> {
    static FUNCS: OnceLock<Functions<GoContext>> = OnceLock::new();
    FUNCS.get_or_init(functions)
}

/// A few keys of each kind the conformance cases read: plain values, JSON objects and arrays,
/// a directory tree for `ls`/`lsdir`, an empty and a multi-line value, and a key whose name
/// holds a control character (refused when read). `/outside` is in the store but not in the
/// resource's keys.
fn input() -> &'static RenderInput {
    static INPUT: OnceLock<RenderInput> = OnceLock::new();
    INPUT.get_or_init(|| {
        let mut store = KeyStore::new();
        for (key, value) in [
            ("/app/name", "demo"),
            ("/app/port", "8080"),
            ("/app/debug", "true"),
            ("/app/empty", ""),
            ("/app/multi", "line 1\nline 2\n"),
            (
                "/cfg",
                r#"{"db": {"host": "db1", "port": 5432, "tags": ["a", "b"]}, "on": true, "off": null, "ratio": 0.5}"#,
            ),
            (
                "/list",
                r#"[{"name": "a", "port": 1}, {"name": "b", "port": 2}, "x", 3, [4, 5], null]"#,
            ),
            ("/bad-json", "{\"a\": "),
            ("/proxy/port", "80"),
            ("/proxy/frontend/web1", "10.0.0.1:8080"),
            ("/proxy/frontend/web2", "10.0.0.2:8080"),
            ("/proxy/frontend/web10", "10.0.0.10:8080"),
            ("/services/api/hosts/a", "10.0.1.1:9000"),
            ("/services/api/hosts/b", "10.0.1.2:9000"),
            ("/services/web/hosts/a", "10.0.2.1:80"),
            ("/srv/a", "zulu"),
            ("/srv/b", "Mike"),
            ("/srv/c", "10"),
            ("/srv/é", "ünïcödé"),
            ("/weird/tab\there", "x"),
            ("/outside/secret", "s"),
        ] {
            store.insert(key, value);
        }
        RenderInput {
            store: Arc::new(store),
            scope: Arc::new(KeyScope {
                resource: "fuzz".to_owned(),
                prefix: "/".to_owned(),
                keys: [
                    "/app", "/cfg", "/list", "/bad-json", "/proxy", "/services", "/srv", "/weird",
                ]
                .map(str::to_owned)
                .to_vec(),
                values: Default::default(),
            }),
            // No service data: a `service` call fails its render, as one not answered yet.
            services: Default::default(),
        }
    })
}

/// The words that repeat work: loops and template calls.
const REPEAT: &[&str] = &["range", "template", "block"];
/// The functions that can make a string much longer than their arguments.
const STRINGS: &[&str] = &[
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "replace",
    "join",
    "base64Encode",
];
/// Besides [`STRINGS`], the functions whose result can be much bigger than their arguments:
/// lists (`seq` up to ten million numbers, `split`, JSON, `map`) and the numbers that size them.
const SIZES: &[&str] = &[
    "seq",
    "split",
    "json",
    "jsonArray",
    "map",
    "mul",
    "add",
    "len",
    "atoi",
    "datetime",
];

/// Whether executing `source` is bounded in time and memory, judged from its words (a word in
/// a string literal counts too: the judgement errs towards not executing).
///
/// Loops and template calls repeat work, and a value grown inside one and assigned back
/// (`$x = print $x $x`) doubles per pass; growing functions compound when one feeds another.
/// The store's lists are short (fewer than 25 keys). So a template executes when either
/// - it is straight-line (no `range`, `template`, `block`, `with` or `$`: no value passes from
///   one action to another) and each action has at most two growing calls, at most one of
///   them `replace`; with a number of 100 or more in an action (up to ten million numbers from
///   `seq`, a string of a million from a `printf` width), at most two `seq` or `split`; or
/// - it has at most two repeating and growing words in all, no big number (a variable or `with`
///   holding ten million numbers could be printed a thousand times), and no string growth
///   with a template call or with a loop and an assignment; or
/// - it has at most two loops over the store's lists, no template call, no assignment, and at
///   most one string-growing call.
///
/// The DNS lookups are never run (they would reach the network).
fn bounded(source: &str, template: &Template) -> bool {
    if template.calls().any(|name| name.starts_with("lookup")) {
        return false;
    }
    let count = |text: &str, names: &[&str]| words(text).filter(|w| names.contains(w)).count();
    let grows = |text: &str| count(text, STRINGS) + count(text, SIZES);
    let repeat = count(source, REPEAT);
    let big_number = actions(source).any(big_number);
    if repeat == 0 && count(source, &["with"]) == 0 && !source.contains('$') {
        return actions(source)
            .all(|action| grows(action) <= 2 && count(action, &["replace"]) <= 1)
            && (!big_number || count(source, &["seq", "split"]) <= 2);
    }
    let grow = grows(source);
    let strings = count(source, STRINGS);
    let calls = count(source, &["template", "block"]);
    let assigns = source
        .as_bytes()
        .windows(2)
        .any(|w| w[1] == b'=' && w[0] != b':');
    let few = repeat + grow <= 2
        && !big_number
        && !(strings > 0 && (calls > 0 || (repeat > 0 && assigns)));
    let store_loops =
        repeat <= 2 && calls == 0 && !assigns && grow == strings && strings <= 1 && !big_number;
    few || store_loops
}

/// Whether an action may hold an integer of 100 or more: three digits in a row (also in a
/// string, for `atoi` or a `printf` width), another base, an exponent, `_` between digits, or a
/// character literal (up to 0x10FFFF).
fn big_number(action: &str) -> bool {
    let b = action.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    action.contains('\'')
        || (0..b.len()).any(|i| {
            (digit(i) && digit(i + 1) && digit(i + 2))
                || (b[i] == b'0'
                    && !b
                        .get(i.wrapping_sub(1))
                        .is_some_and(u8::is_ascii_alphanumeric)
                    && b.get(i + 1).is_some_and(|c| b"xXoObB".contains(c))
                    && b.get(i + 2)
                        .is_some_and(|c| c.is_ascii_hexdigit() || *c == b'_'))
                || (digit(i)
                    && b.get(i + 1).is_some_and(|c| b"eEpP_".contains(c))
                    && (digit(i + 2)
                        || (b.get(i + 2).is_some_and(|c| b"+-".contains(c)) && digit(i + 3))))
        })
}

/// The identifiers, keywords and numbers of a text (runs of letters, digits and `_`).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The insides of the text's actions, `{{` to `}}`, skipping quoted strings and comments.
fn actions(source: &str) -> impl Iterator<Item = &str> {
    let bytes = source.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        let open = at + source.get(at..)?.find("{{")?;
        let start = open + 2;
        let mut i = start;
        let mut quote = None;
        while i < bytes.len() {
            match quote {
                Some(q) if bytes[i] == b'\\' && q != b'`' => i += 1,
                Some(q) if bytes[i] == q => quote = None,
                Some(_) => {}
                None if bytes[i..].starts_with(b"}}") => break,
                None if bytes[i..].starts_with(b"/*") => {
                    i = source[i..]
                        .find("*/")
                        .map_or(bytes.len(), |end| i + end + 1);
                }
                None if matches!(bytes[i], b'"' | b'`' | b'\'') => quote = Some(bytes[i]),
                None => {}
            }
            i += 1;
        }
        let end = i.min(bytes.len());
        at = end;
        // `end` is at `}}` or the end: both are character boundaries.
        Some(&source[start..end])
    })
}

/// An error's position exists in the source: 1-based line and column within it.
fn assert_points_into(source: &str, line: usize, column: usize, message: &str) {
    let Some(text) = source.split('\n').nth(line.wrapping_sub(1)) else {
        panic!("line {line} is not in the source ({message})");
    };
    assert!(
        (1..=text.chars().count() + 1).contains(&column),
        "column {column} is not on line {line} ({message})"
    );
}

fn render(source: &str, template: &Template) -> (Vec<u8>, Result<(), String>) {
    let context = GoContext::new(input().clone());
    let mut out = Vec::new();
    let result = template
        .execute(&context, funcs(), &Value::Nil, &mut out)
        .map_err(|error| {
            assert_eq!(error.name, NAME);
            assert_points_into(source, error.line, error.column, &error.kind.to_string());
            error.to_string()
        });
    (out, result)
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let template = match Template::parse(NAME, source, funcs()) {
        Ok(template) => template,
        Err(error) => {
            assert_eq!(error.name, NAME);
            assert_points_into(source, error.line, error.column, &error.message);
            let _ = error.to_string();
            return;
        }
    };
    assert!(template.templates().any(|name| name == NAME));
    if !bounded(source, &template) {
        return;
    }
    let (out, result) = render(source, &template);
    assert!(
        std::str::from_utf8(&out).is_ok(),
        "the output is not UTF-8: {result:?}"
    );
    // Same template, same store: same bytes, same error (a clock or the environment aside).
    if !template
        .calls()
        .any(|name| matches!(name, "datetime" | "getenv" | "fileExists"))
    {
        let (again, result_again) = render(source, &template);
        assert_eq!(out, again, "a second render differs");
        assert_eq!(result, result_again, "a second render fails differently");
    }
});
