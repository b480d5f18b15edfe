//! Any text as a confd (Go `text/template`) template: parsing with confd's function map may
//! reject it, never panic; a template that parses is executed against a small fixed store and
//! may fail, never panic. Errors point into the source (a line and column that exist), output
//! is UTF-8, and rendering the same template twice gives the same result.
//!
//! The engine has no execution fuel (neither has Go's): a template may legitimately loop over
//! ten million numbers, or double a string in a loop until memory runs out. Such templates are
//! only parsed, not executed; see [`bounded`].
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use terad::store::KeyStore;
use terad::template::go::confd::{GoContext, functions};
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
        }
    })
}

/// Whether executing `source` is bounded in time and memory, judged from its words (a word in
/// text outside actions counts too: the judgement errs towards not executing).
///
/// What can make a render long or large: loops and template calls (`range`, `template`,
/// `block`) repeat work; some functions make values bigger than their arguments: strings
/// (`print*` with widths up to a million, `html`/`js`/`urlquery` escaping, `replace`, `join`,
/// `base64Encode`), lists (`seq` up to ten million numbers, `split`, `json`, `jsonArray`,
/// `map`) and the numbers that size them (`mul`, `add`, `len`, `atoi`, `datetime`, large
/// literals). A string grown inside a loop or a recursion and assigned back (`$x = print $x
/// $x`) doubles per pass. So: at most two of those words; a loop and a big number literal never
/// together; and no string growth together with a loop and an assignment, or with a template
/// call. The DNS lookups are not run (they would reach the network).
fn bounded(source: &str, template: &Template) -> bool {
    if template.calls().any(|name| name.starts_with("lookup")) {
        return false;
    }
    let count = |words: &[&str]| -> usize { words.iter().map(|w| source.matches(w).count()).sum() };
    let loops = count(&["range"]);
    let calls = count(&["template", "block"]);
    let strings = count(&[
        "print", "html", "js", "urlquery", "replace", "join", "base64",
    ]);
    let sizes = count(&[
        "seq", "split", "json", "map", "mul", "add", "len", "atoi", "datetime",
    ]);
    let bytes = source.as_bytes();
    let big_number = bytes.windows(3).any(|w| w.iter().all(u8::is_ascii_digit))
        || bytes
            .windows(2)
            .any(|w| w[0].is_ascii_digit() && b"xXoObBeEpP_".contains(&w[1]))
        || source.contains('\'');
    let assigns = bytes.windows(2).any(|w| w[1] == b'=' && w[0] != b':');
    loops + calls + strings + sizes <= 2
        && !(big_number && loops + calls > 0)
        && !(strings > 0 && (calls > 0 || (loops > 0 && assigns)))
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
    let context = GoContext {
        input: input().clone(),
    };
    let mut out = Vec::new();
    let result = template
        .execute(&context, funcs(), &Value::Nil, &mut out)
        .map_err(|error| {
            assert_eq!(error.name, NAME);
            assert_points_into(source, error.line, error.column, &error.message);
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
