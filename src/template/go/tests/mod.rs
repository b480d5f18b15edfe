//! Behaviour tests: every construct, builtin, verb and error, with outputs checked against
//! Go 1.19's `text/template`.
//!
//! This file holds the harness (a stand-in store and function map, render helpers, the
//! differential run against Go) and the tests of the language's constructs; `go_cases` and
//! `fmt_cases` hold cases with Go's recorded outputs, `errors` the parse and execution errors,
//! `robustness` the limits and the inputs that must never panic.

mod errors;
mod fmt_cases;
mod go_cases;
mod robustness;

use std::sync::Arc;

use super::*;

/// A stand-in for terad's store view: the pairs `gets` and `get` see.
pub(crate) struct Store {
    pairs: Vec<(String, String)>,
}

impl Store {
    pub fn new(pairs: &[(&str, &str)]) -> Store {
        Store {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn add(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Int(
        a[0].as_int().unwrap_or(0) + a[1].as_int().unwrap_or(0),
    ))
}

fn split(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::strings(s(&a[0]).split(s(&a[1]))))
}

fn to_upper(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::from(s(&a[0]).to_uppercase()))
}

fn base(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
    let path = s(&a[0]);
    Ok(Value::str(path.rsplit('/').next().unwrap_or(path)))
}

fn join(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
    let Value::List(list) = &a[0] else {
        return Ok(Value::str(""));
    };
    let parts: Vec<&str> = list.items.iter().map(s).collect();
    Ok(Value::from(parts.join(s(&a[1]))))
}

/// confd's `gets`: the pairs whose key matches a `prefix*` pattern.
fn gets(store: &Store, a: &[Value]) -> Result<Value, FuncError> {
    let pattern = s(&a[0]);
    let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
    Ok(Value::pairs(
        store
            .pairs
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    ))
}

/// confd's `get`: `(memkv.KVPair, error)`.
fn get(store: &Store, a: &[Value]) -> Result<Value, FuncError> {
    let key = s(&a[0]);
    store
        .pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(k, v)| Value::pair(k, v))
        .ok_or_else(|| FuncError::failed(format!("key does not exist: {key}")))
}

/// confd's `getv(key string, v ...string) (string, error)`.
fn getv(store: &Store, a: &[Value]) -> Result<Value, FuncError> {
    let key = s(&a[0]);
    match store.pairs.iter().find(|(k, _)| k == key) {
        Some((_, v)) => Ok(Value::str(v)),
        None => match a.get(1) {
            Some(default) => Ok(default.clone()),
            None => Err(FuncError::failed(format!("key does not exist: {key}"))),
        },
    }
}

fn json(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
    let parsed: serde_json::Value = serde_json::from_str(s(&a[0])).map_err(FuncError::failed)?;
    Ok(Value::from_json(&parsed))
}

fn seq(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
    let (from, to) = (a[0].as_int().unwrap_or(0), a[1].as_int().unwrap_or(0));
    Ok(Value::list(
        ListType::Ints,
        (from..=to).map(Value::Int).collect(),
    ))
}

fn half(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
    match a[0] {
        Value::Float(f) => Ok(Value::Float(f / 2.0)),
        _ => Err(FuncError::failed("not a float")),
    }
}

fn fail(_: &Store, _: &[Value]) -> Result<Value, FuncError> {
    Err(FuncError::failed("it broke"))
}

fn nil(_: &Store, _: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Nil)
}

/// A `time.Time` stand-in with `Unix` and a `Format` that knows one layout.
pub(crate) struct Time {
    unix: i64,
}

impl Object for Time {
    fn type_name(&self) -> &str {
        "time.Time"
    }
    fn method(&self, name: &str) -> Option<Signature> {
        match name {
            "Unix" => Some(Signature::new(&[], None)),
            "Format" => Some(Signature::new(&[Param::String], None)),
            _ => None,
        }
    }
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, FuncError> {
        match name {
            "Unix" => Ok(Value::Int(self.unix)),
            "Format" if args[0].as_str() == Some("2006-01-02") => Ok(Value::str("2021-03-04")),
            _ => Err(FuncError::failed("unsupported layout")),
        }
    }
    fn fmt_v(&self, out: &mut String, _plus: bool) {
        out.push_str("2021-03-04 05:06:07 +0000 UTC");
    }
    fn is_stringer(&self) -> bool {
        true
    }
}

fn datetime(_: &Store, _: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Object(Arc::new(Time { unix: 1614834367 })))
}

pub(crate) fn funcs() -> Functions<Store> {
    use Param::*;
    let mut f = Functions::new();
    f.register("add", Signature::new(&[Int, Int], None), add)
        .register("split", Signature::new(&[String, String], None), split)
        .register("toUpper", Signature::new(&[String], None), to_upper)
        .register("base", Signature::new(&[String], None), base)
        .register("join", Signature::new(&[StringList, String], None), join)
        .register("gets", Signature::new(&[String], None), gets)
        .register("get", Signature::new(&[String], None), get)
        .register("getv", Signature::new(&[String], Some(String)), getv)
        .register("json", Signature::new(&[String], None), json)
        .register("seq", Signature::new(&[Int, Int], None), seq)
        .register("half", Signature::new(&[Float], None), half)
        .register("fail", Signature::new(&[], None), fail)
        .register("nil_value", Signature::new(&[], None), nil)
        .register("datetime", Signature::new(&[], None), datetime);
    f
}

fn store() -> Store {
    Store::new(&[
        ("/app/port", "8080"),
        ("/proxy/frontend/web-2", "10.0.0.2:80"),
        ("/proxy/frontend/web-1", "10.0.0.1:80"),
    ])
}

/// Why a template gave no output.
#[derive(Debug, thiserror::Error)]
enum Rejected {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// Renders `src` with JSON `data` as dot.
fn render_data(src: &str, data: &str) -> Result<std::string::String, Rejected> {
    let funcs = funcs();
    let template = Template::parse("t", src, &funcs)?;
    let data = if data.is_empty() {
        Value::Nil
    } else {
        Value::from_json(&serde_json::from_str(data).unwrap())
    };
    let mut out = Vec::new();
    template.execute(&store(), &funcs, &data, &mut out)?;
    Ok(std::string::String::from_utf8(out).unwrap())
}

fn render(src: &str) -> std::string::String {
    render_data(src, "").unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[allow(dead_code)]
fn render_err(src: &str) -> std::string::String {
    match render_data(src, "") {
        Ok(out) => panic!("{src}: rendered {out:?}"),
        Err(e) => e.to_string(),
    }
}

/// `(template, data as JSON or empty for nil, expected output)`.
#[track_caller]
fn check_cases(cases: &[(&str, &str, &str)]) {
    for (src, data, want) in cases {
        let got = render_data(src, data).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(got, *want, "template {src:?}");
    }
}

/// `(template, data)` pairs that must fail to parse or to execute.
#[track_caller]
fn check_rejected(cases: &[(&str, &str)]) {
    for (src, data) in cases {
        if let Ok(out) = render_data(src, data) {
            panic!("template {src:?} rendered {out:?} where Go fails");
        }
    }
}

#[track_caller]
fn check(cases: &[(&str, &str)]) {
    for (src, want) in cases {
        assert_eq!(render(src), *want, "template {src:?}");
    }
}

#[track_caller]
fn check_data(data: &str, cases: &[(&str, &str)]) {
    for (src, want) in cases {
        let got = render_data(src, data).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(got, *want, "template {src:?}");
    }
}

/// Every `(template, expected error)` fails with a message containing the expected text.
#[track_caller]
#[allow(dead_code)]
fn check_errors(cases: &[(&str, &str)]) {
    for (src, want) in cases {
        let got = render_err(src);
        assert!(
            got.contains(want),
            "template {src:?}\n  got: {got}\n want: {want}"
        );
    }
}

#[test]
fn haproxy_example() {
    let out = render(
        "{{range gets \"/proxy/frontend/*\"}}    server {{base .Key}} {{.Value}} check\n{{end}}",
    );
    assert_eq!(
        out,
        "    server web-2 10.0.0.2:80 check\n    server web-1 10.0.0.1:80 check\n"
    );
}

/// Differential testing against Go: renders the cases in the JSON file `$GO_TEMPLATE_CASES`
/// (`[{"src": …, "data": …}]`, data as JSON text or empty) and writes `[{"out", "err"}]` to
/// the same path with `.rust.json` appended, for comparison with a Go program doing the same
/// with `text/template` and the helper functions above.
#[test]
#[ignore]
fn differential() {
    let Ok(path) = std::env::var("GO_TEMPLATE_CASES") else {
        return;
    };
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let results: Vec<serde_json::Value> = cases
        .iter()
        .map(|case| {
            let src = case["src"].as_str().unwrap();
            let data = case["data"].as_str().unwrap_or_default();
            let funcs = funcs();
            let result = Template::parse("t", src, &funcs)
                .map_err(|e| (std::string::String::new(), e.to_string()))
                .and_then(|template| {
                    let data = if data.is_empty() {
                        Value::Nil
                    } else {
                        Value::from_json(&serde_json::from_str(data).unwrap())
                    };
                    let mut out = Vec::new();
                    let result = template.execute(&store(), &funcs, &data, &mut out);
                    let out = std::string::String::from_utf8_lossy(&out).into_owned();
                    match result {
                        Ok(()) => Ok(out),
                        Err(e) => Err((out, e.to_string())),
                    }
                });
            match result {
                Ok(out) => serde_json::json!({"out": out, "err": ""}),
                Err((out, err)) => serde_json::json!({"out": out, "err": err}),
            }
        })
        .collect();
    std::fs::write(
        format!("{path}.rust.json"),
        serde_json::to_string(&results).unwrap(),
    )
    .unwrap();
}

#[test]
fn renders_confd_style_templates() {
    check(&[
        ("{{getv \"/app/port\"}}", "8080"),
        ("{{getv \"/nope\" \"80\"}}", "80"),
        (
            "{{range $kv := gets \"/proxy/*\"}}{{$kv.Key}}={{$kv.Value}};{{end}}",
            "/proxy/frontend/web-2=10.0.0.2:80;/proxy/frontend/web-1=10.0.0.1:80;",
        ),
        ("{{with get \"/app/port\"}}{{.Value}}{{end}}", "8080"),
        (
            "{{range split \"a:b\" \":\"}}[{{toUpper .}}]{{end}}",
            "[A][B]",
        ),
        (
            "{{$d := json `{\"n\":{\"x\":[1,2]}}`}}{{range $d.n.x}}{{.}} {{end}}{{index $d.n.x 1}}",
            "1 2 2",
        ),
        ("{{(json `{\"a\":{\"b\":\"c\"}}`).a.b}}", "c"),
        (
            "{{datetime.Format \"2006-01-02\"}} {{datetime.Unix}}",
            "2021-03-04 1614834367",
        ),
    ]);
}

#[test]
fn missing_values_print_as_go_does() {
    check_data(
        r#"{"m": {"k": null}}"#,
        &[
            ("{{.nope}}", "<no value>"),
            ("{{.m.k}}", "<no value>"),
            ("{{.nope.deeper}}", "<no value>"),
            ("{{index .m \"x\"}}", "<no value>"),
            ("{{print .nope}}", "<nil>"),
            (
                "{{printf \"%v|%d|%s\" .nope .nope .nope}}",
                "<nil>|%!d(<nil>)|%!s(<nil>)",
            ),
            ("{{html .nope}}", "&lt;no value&gt;"),
            ("{{$x := .nope}}{{$x}}", "<no value>"),
            ("{{nil_value}}", "<no value>"),
            ("{{if .nope}}y{{else}}n{{end}}", "n"),
        ],
    );
}

/// A present JSON null is a nil in an interface: Go refuses its fields, where a field of a
/// missing key is simply nothing.
#[test]
fn fields_of_nil_interfaces_fail_as_in_go() {
    let d = r#"{"m": {"n": null}, "l": [null, {"x": 1}]}"#;
    check_data(
        d,
        &[
            ("{{.m.missing.x}}", "<no value>"),
            ("{{$v := .m.n}}{{$v.x}}", "<no value>"),
            ("{{(index .m \"n\").x}}", "<no value>"),
        ],
    );
    for (src, want) in [
        (
            "{{.m.n.x}}",
            "at <.m.n.x>: nil pointer evaluating interface {}.x",
        ),
        (
            "{{range .l}}{{.x}}{{end}}",
            "at <.x>: nil pointer evaluating interface {}.x",
        ),
        (
            "{{range $e := .l}}{{$e.x}}{{end}}",
            "at <$e.x>: nil pointer evaluating interface {}.x",
        ),
        (
            "{{with .m}}{{.n.x}}{{end}}",
            "nil pointer evaluating interface {}.x",
        ),
    ] {
        let got = render_data(src, d).unwrap_err().to_string();
        assert!(got.contains(want), "{src}\n  got: {got}\n want: {want}");
    }
}

#[test]
fn variable_scopes_follow_go() {
    check_data(
        r#"{"l": ["a", "b"]}"#,
        &[
            // A declaration inside a block ends with the block.
            ("{{$x := 1}}{{with .l}}{{$x := 2}}{{$x}}{{end}}{{$x}}", "21"),
            // Assignment reaches the variable outside.
            ("{{$x := 1}}{{range .l}}{{$x = .}}{{end}}{{$x}}", "b"),
            // Each iteration starts afresh.
            ("{{range .l}}{{$y := .}}{{$y}}{{end}}", "ab"),
            // `$` is the data in every block and in templates called with data.
            (
                "{{define \"d\"}}{{$}}{{end}}{{range .l}}{{$.l}}{{template \"d\" .}}{{end}}",
                "[a b]a[a b]b",
            ),
            // A template sees only its own `$`.
            (
                "{{$x := 1}}{{define \"v\"}}{{.}}{{end}}{{template \"v\" $x}}",
                "1",
            ),
        ],
    );
}

#[test]
fn break_and_continue() {
    check(&[
        (
            "{{range seq 1 5}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}",
            "12",
        ),
        (
            "{{range seq 1 5}}{{if eq . 3}}{{continue}}{{end}}{{.}}{{end}}",
            "1245",
        ),
        (
            "{{range seq 1 2}}{{range seq 1 3}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}};{{end}}",
            "1;1;",
        ),
        (
            "{{range $i, $e := seq 5 7}}{{with $i}}{{continue}}{{end}}{{$e}}{{end}}",
            "5",
        ),
    ]);
}

#[test]
fn else_with_chains() {
    check_data(
        r#"{"a": 0, "b": "", "c": "x"}"#,
        &[
            (
                "{{with .a}}a{{else with .b}}b{{else with .c}}{{.}}{{end}}",
                "x",
            ),
            ("{{with .a}}a{{else with .b}}b{{else}}none{{end}}", "none"),
            ("{{if .a}}a{{else if .c}}{{.c}}{{end}}", "x"),
        ],
    );
}

#[test]
fn defines_and_blocks() {
    let funcs = funcs();
    let template = Template::parse(
        "main",
        "{{define \"a\"}}A{{.}}{{end}}\n{{block \"b\" 1}}B{{.}}{{end}}|{{template \"a\" 2}}",
        &funcs,
    )
    .unwrap();
    let mut names: Vec<&str> = template.templates().collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "main"]);
    let mut out = Vec::new();
    template
        .execute(&store(), &funcs, &Value::Nil, &mut out)
        .unwrap();
    assert_eq!(out, b"\nB1|A2");
    out.clear();
    template
        .execute_template("a", &store(), &funcs, &Value::str("z"), &mut out)
        .unwrap();
    assert_eq!(out, b"Az");
    let error = template
        .execute_template("nope", &store(), &funcs, &Value::Nil, &mut out)
        .unwrap_err();
    assert!(
        error.kind.to_string().contains("no template \"nope\""),
        "{error}"
    );
    // A template that is only a definition of its own name is that definition.
    let only = Template::parse("t", "{{define \"t\"}}T{{end}}", &funcs).unwrap();
    out.clear();
    only.execute(&store(), &funcs, &Value::Nil, &mut out)
        .unwrap();
    assert_eq!(out, b"T");
}

#[test]
fn functions_shadow_builtins_and_are_checked_at_execution() {
    fn shout(_: &Store, a: &[Value]) -> Result<Value, FuncError> {
        Ok(Value::from(format!("{}!", s(&a[0]))))
    }
    let mut funcs = funcs();
    funcs.register("len", Signature::new(&[Param::String], None), shout);
    let template = Template::parse("t", "{{len \"a\"}}", &funcs).unwrap();
    let mut out = Vec::new();
    template
        .execute(&store(), &funcs, &Value::Nil, &mut out)
        .unwrap();
    assert_eq!(out, b"a!");

    // A different table than the one the template was parsed with is refused, not misused.
    let other: Functions<Store> = Functions::new();
    let error = template
        .execute(&store(), &other, &Value::Nil, &mut out)
        .unwrap_err();
    assert!(
        error
            .kind
            .to_string()
            .contains("function \"len\" not defined"),
        "{error}"
    );

    // With functions named break and continue, those are function calls.
    fn word(_: &Store, _: &[Value]) -> Result<Value, FuncError> {
        Ok(Value::str("w"))
    }
    let mut funcs = Functions::<Store>::new();
    funcs.register("break", Signature::new(&[], None), word);
    let template = Template::parse("t", "{{break}}", &funcs).unwrap();
    out.clear();
    template
        .execute(&store(), &funcs, &Value::Nil, &mut out)
        .unwrap();
    assert_eq!(out, b"w");
}
