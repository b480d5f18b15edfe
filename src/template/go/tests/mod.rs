//! Behaviour tests: every construct, builtin, verb and error, with outputs checked against
//! Go 1.19's `text/template`.

mod fmt_cases;
mod go_cases;

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

fn add(_: &Store, a: &[Value]) -> Result<Value, String> {
    Ok(Value::Int(
        a[0].as_int().unwrap_or(0) + a[1].as_int().unwrap_or(0),
    ))
}

fn split(_: &Store, a: &[Value]) -> Result<Value, String> {
    Ok(Value::strings(s(&a[0]).split(s(&a[1]))))
}

fn to_upper(_: &Store, a: &[Value]) -> Result<Value, String> {
    Ok(Value::from(s(&a[0]).to_uppercase()))
}

fn base(_: &Store, a: &[Value]) -> Result<Value, String> {
    let path = s(&a[0]);
    Ok(Value::str(path.rsplit('/').next().unwrap_or(path)))
}

fn join(_: &Store, a: &[Value]) -> Result<Value, String> {
    let Value::List(list) = &a[0] else {
        return Ok(Value::str(""));
    };
    let parts: Vec<&str> = list.items.iter().map(s).collect();
    Ok(Value::from(parts.join(s(&a[1]))))
}

/// confd's `gets`: the pairs whose key matches a `prefix*` pattern.
fn gets(store: &Store, a: &[Value]) -> Result<Value, String> {
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
fn get(store: &Store, a: &[Value]) -> Result<Value, String> {
    let key = s(&a[0]);
    store
        .pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(k, v)| Value::pair(k, v))
        .ok_or_else(|| format!("key does not exist: {key}"))
}

/// confd's `getv(key string, v ...string) (string, error)`.
fn getv(store: &Store, a: &[Value]) -> Result<Value, String> {
    let key = s(&a[0]);
    match store.pairs.iter().find(|(k, _)| k == key) {
        Some((_, v)) => Ok(Value::str(v)),
        None => match a.get(1) {
            Some(default) => Ok(default.clone()),
            None => Err(format!("key does not exist: {key}")),
        },
    }
}

fn json(_: &Store, a: &[Value]) -> Result<Value, String> {
    let parsed: serde_json::Value = serde_json::from_str(s(&a[0])).map_err(|e| e.to_string())?;
    Ok(Value::from_json(&parsed))
}

fn seq(_: &Store, a: &[Value]) -> Result<Value, String> {
    let (from, to) = (a[0].as_int().unwrap_or(0), a[1].as_int().unwrap_or(0));
    Ok(Value::list(
        ListType::Ints,
        (from..=to).map(Value::Int).collect(),
    ))
}

fn half(_: &Store, a: &[Value]) -> Result<Value, String> {
    match a[0] {
        Value::Float(f) => Ok(Value::Float(f / 2.0)),
        _ => Err("not a float".into()),
    }
}

fn fail(_: &Store, _: &[Value]) -> Result<Value, String> {
    Err("it broke".into())
}

fn nil(_: &Store, _: &[Value]) -> Result<Value, String> {
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
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        match name {
            "Unix" => Ok(Value::Int(self.unix)),
            "Format" if args[0].as_str() == Some("2006-01-02") => Ok(Value::str("2021-03-04")),
            _ => Err("unsupported layout".into()),
        }
    }
    fn fmt_v(&self, out: &mut String, _plus: bool) {
        out.push_str("2021-03-04 05:06:07 +0000 UTC");
    }
    fn is_stringer(&self) -> bool {
        true
    }
}

fn datetime(_: &Store, _: &[Value]) -> Result<Value, String> {
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

/// Renders `src` with JSON `data` as dot.
fn render_data(src: &str, data: &str) -> Result<std::string::String, std::string::String> {
    let funcs = funcs();
    let template = Template::parse("t", src, &funcs).map_err(|e| e.to_string())?;
    let data = if data.is_empty() {
        Value::Nil
    } else {
        Value::from_json(&serde_json::from_str(data).unwrap())
    };
    let mut out = Vec::new();
    template
        .execute(&store(), &funcs, &data, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(std::string::String::from_utf8(out).unwrap())
}

fn render(src: &str) -> std::string::String {
    render_data(src, "").unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[allow(dead_code)]
fn render_err(src: &str) -> std::string::String {
    match render_data(src, "") {
        Ok(out) => panic!("{src}: rendered {out:?}"),
        Err(e) => e,
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
        let got = render_data(src, d).unwrap_err();
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
fn parse_errors_name_the_place_and_the_problem() {
    let funcs = funcs();
    for (src, line, column, message) in [
        ("{{foo}}", 1, 3, "function \"foo\" not defined"),
        (
            "a\n  {{.x }}\n{{ bar 1 }}",
            3,
            4,
            "function \"bar\" not defined",
        ),
        ("{{.a}", 1, 3, "bad character U+007D '}'"),
        ("{{if}}{{end}}", 1, 5, "missing value for if"),
        ("{{if .a}}", 1, 10, "unexpected EOF"),
        ("x{{end}}", 1, 4, "unexpected {{end}}"),
        ("{{else}}", 1, 3, "unexpected {{else}}"),
        (
            "{{if 1}}{{else}}{{else}}{{end}}",
            1,
            19,
            "expected end; found {{else}}",
        ),
        ("{{$x}}", 1, 3, "undefined variable \"$x\""),
        (
            "{{if 1}}{{$x := 1}}{{end}}{{$x}}",
            1,
            29,
            "undefined variable \"$x\"",
        ),
        ("{{break}}", 1, 3, "{{break}} outside {{range}}"),
        ("{{continue}}", 1, 3, "{{continue}} outside {{range}}"),
        (
            "{{range .}}{{break 1}}{{end}}",
            1,
            20,
            "unexpected \"1\" in {{break}}",
        ),
        (
            "{{1 | 2}}",
            1,
            7,
            "non executable command in pipeline stage 2",
        ),
        ("{{(1}}", 1, 5, "unclosed left paren"),
        ("{{1)}}", 1, 4, "unexpected \")\" in command"),
        ("{{\"a\".x}}", 1, 3, "unexpected . after term \"\\\"a\\\"\""),
        (
            "{{define \"a\"}}a{{end}}{{define \"a\"}}b{{end}}",
            1,
            32,
            "template: multiple definition of template \"a\"",
        ),
        (
            "{{template x}}",
            1,
            12,
            "unexpected \"x\" in template clause",
        ),
        (
            "{{with $x, $y := 1}}{{end}}",
            1,
            10,
            "too many declarations in with",
        ),
        (
            "{{range $a, 1}}{{end}}",
            1,
            13,
            "range can only initialize variables",
        ),
        ("{{'ab'}}", 1, 3, "malformed character constant: 'ab'"),
        ("{{\"\\q\"}}", 1, 3, "invalid syntax in \"\\q\""),
        (
            "{{99999999999999999999}}",
            1,
            3,
            "integer overflow: \"99999999999999999999\"",
        ),
        ("{{0x}}", 1, 3, "illegal number syntax: \"0x\""),
        ("{{1__0}}", 1, 3, "illegal number syntax: \"1__0\""),
        ("{{1i}}", 1, 3, "complex constants are not supported: 1i"),
        ("{{()}}", 1, 4, "missing value for parenthesized pipeline"),
        ("{{\"abc}}", 1, 3, "unterminated quoted string"),
        ("é{{/* x }}", 1, 2, "unclosed comment"),
        (
            "{{define \"x\"}}{{else}}{{end}}",
            1,
            17,
            "unexpected {{else}} in define clause",
        ),
        (
            "{{block \"x\"}}{{end}}",
            1,
            12,
            "missing value for block clause",
        ),
        (
            "{{with 1}}{{else if 2}}{{end}}",
            1,
            18,
            "unexpected <if> in input",
        ),
    ] {
        let error = Template::parse("t", src, &funcs).unwrap_err();
        assert_eq!(
            (error.line, error.column, error.message.as_str()),
            (line, column, message),
            "{src}"
        );
        assert_eq!(error.name, "t");
        assert_eq!(
            error.to_string(),
            format!("template: t:{line}:{column}: {message}")
        );
    }
}

#[test]
fn execution_errors_name_the_place_the_value_and_the_problem() {
    let d = r#"{"a": 1, "b": "x", "s": ["p", "q"], "m": {"k": "v"}}"#;
    for (src, want) in [
        (
            "{{index .s 5}}",
            "t:1:3: executing \"t\" at <index .s 5>: error calling index: index out of range: 5",
        ),
        (
            "{{index .s 2}}",
            "error calling index: reflect: slice index out of range",
        ),
        (
            "{{index .s -1}}",
            "error calling index: index out of range: -1",
        ),
        (
            "{{index .s \"a\"}}",
            "error calling index: cannot index slice/array with type string",
        ),
        (
            "{{index .m 1}}",
            "error calling index: value has type int; should be string",
        ),
        (
            "{{index .a 1}}",
            "error calling index: can't index item of type float64",
        ),
        (
            "{{index nil 1}}",
            "error calling index: index of untyped nil",
        ),
        (
            "{{slice .s 3}}",
            "error calling slice: index out of range: 3",
        ),
        (
            "{{slice .s 2 1}}",
            "error calling slice: invalid slice index: 2 > 1",
        ),
        (
            "{{slice .b 1 2 3}}",
            "error calling slice: cannot 3-index slice a string",
        ),
        ("{{len .a}}", "error calling len: len of type float64"),
        (
            "{{add 1}}",
            "at <add>: wrong number of args for add: want 2 got 1",
        ),
        (
            "{{add 1 2 3}}",
            "wrong number of args for add: want 2 got 3",
        ),
        (
            "{{getv}}",
            "wrong number of args for getv: want at least 1 got 0",
        ),
        (
            "{{add \"a\" 1}}",
            "at <\"a\">: expected integer; found \"a\"",
        ),
        ("{{add 1.5 1}}", "expected integer; found 1.5"),
        (
            "{{add .b 1}}",
            "at <.b>: wrong type for value; expected int; got string",
        ),
        (
            "{{add .a 1}}",
            "wrong type for value; expected int; got float64",
        ),
        (
            "{{toUpper .a}}",
            "wrong type for value; expected string; got float64",
        ),
        ("{{toUpper nil}}", "cannot assign nil to string"),
        ("{{toUpper .missing}}", "invalid value; expected string"),
        ("{{half \"x\"}}", "expected float; found \"x\""),
        (
            "{{join .s \",\"}}",
            "wrong type for value; expected []string; got []interface {}",
        ),
        (
            "{{.s | join \",\"}}",
            "can't handle \",\" for arg of type []string",
        ),
        (
            "{{1 | toUpper}}",
            "at <toUpper>: wrong type for value; expected string; got int",
        ),
        (
            "{{getv \"/nope\"}}",
            "at <getv \"/nope\">: error calling getv: key does not exist: /nope",
        ),
        ("{{fail}}", "error calling fail: it broke"),
        (
            "{{.b.x}}",
            "at <.b.x>: can't evaluate field x in type interface {}",
        ),
        (
            "{{(get \"/app/port\").Nope}}",
            "can't evaluate field Nope in type memkv.KVPair",
        ),
        (
            "{{(get \"/app/port\").Key 1}}",
            "Key has arguments but cannot be invoked as function",
        ),
        ("{{.m.k 1}}", "k is not a method but has arguments"),
        (
            "{{datetime.Nope}}",
            "can't evaluate field Nope in type time.Time",
        ),
        ("{{datetime.Format 1}}", "expected string; found 1"),
        (
            "{{$x := 1}}{{$x 2}}",
            "can't give argument to non-function $x",
        ),
        ("{{1 2}}", "can't give argument to non-function 1"),
        ("{{nil}}", "nil is not a command"),
        ("{{(nil).x}}", "nil is not a command"),
        (
            "{{range .a}}{{end}}",
            "at <range .a>: range can't iterate over 1",
        ),
        ("{{range .b}}{{end}}", "range can't iterate over x"),
        ("{{range 3}}{{end}}", "range can't iterate over 3"),
        (
            "{{template \"nope\"}}",
            "at <{{template \"nope\"}}>: template \"nope\" not defined",
        ),
        (
            "{{lt 1 1.5}}",
            "error calling lt: incompatible types for comparison",
        ),
        (
            "{{lt nil 1}}",
            "error calling lt: invalid type for comparison",
        ),
        (
            "{{eq 1 \"a\"}}",
            "error calling eq: incompatible types for comparison",
        ),
        (
            "{{eq .s .s}}",
            "error calling eq: non-comparable type [p q]: []interface {}",
        ),
        (
            "{{eq 1}}",
            "error calling eq: missing argument for comparison",
        ),
        (
            "{{and}}",
            "wrong number of args for and: want at least 1 got 0",
        ),
        (
            "{{printf .a}}",
            "wrong type for value; expected string; got float64",
        ),
        (
            "{{18446744073709551615}}",
            "18446744073709551615 overflows int",
        ),
        ("{{and false ($x := 1)}}{{$x}}", "undefined variable: $x"),
        ("{{$u = 1}}", "undefined variable: $u"),
        (
            "{{define \"r\"}}{{template \"r\" .}}{{end}}{{template \"r\"}}",
            "executing \"r\" at <{{template \"r\" .}}>: exceeded maximum template depth (1000)",
        ),
    ] {
        let got = render_data(src, d).unwrap_err();
        assert!(got.contains(want), "{src}\n  got: {got}\n want: {want}");
    }
}

#[test]
fn exec_error_fields() {
    let funcs = funcs();
    let template = Template::parse(
        "page",
        "line\n{{define \"x\"}}\n  {{add 1 \"a\"}}{{end}}{{template \"x\"}}",
        &funcs,
    )
    .unwrap();
    let mut out = Vec::new();
    let error = template
        .execute(&store(), &funcs, &Value::Nil, &mut out)
        .unwrap_err();
    assert_eq!(
        error,
        ExecError {
            name: "page".into(),
            template: "x".into(),
            line: 3,
            column: 11,
            context: "\"a\"".into(),
            message: "expected integer; found \"a\"".into(),
        }
    );
    // Output up to the failure stays.
    assert_eq!(out, b"line\n\n  ");
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
    assert!(error.message.contains("no template \"nope\""), "{error}");
    // A template that is only a definition of its own name is that definition.
    let only = Template::parse("t", "{{define \"t\"}}T{{end}}", &funcs).unwrap();
    out.clear();
    only.execute(&store(), &funcs, &Value::Nil, &mut out)
        .unwrap();
    assert_eq!(out, b"T");
}

#[test]
fn functions_shadow_builtins_and_are_checked_at_execution() {
    fn shout(_: &Store, a: &[Value]) -> Result<Value, String> {
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
        error.message.contains("function \"len\" not defined"),
        "{error}"
    );

    // With functions named break and continue, those are function calls.
    fn word(_: &Store, _: &[Value]) -> Result<Value, String> {
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

#[test]
fn parsed_templates_are_shared_between_threads() {
    let funcs = Arc::new(funcs());
    let template = Arc::new(
        Template::parse(
            "t",
            "{{range gets \"/proxy/*\"}}{{base .Key}} {{end}}",
            &funcs,
        )
        .unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (funcs, template) = (funcs.clone(), template.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                template
                    .execute(&store(), &funcs, &Value::Nil, &mut out)
                    .unwrap();
                out
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), b"web-2 web-1 ");
    }
}

/// Deep nesting is refused at parse time; deep recursion at execution; neither overflows a
/// 2 MiB stack (a tokio worker's) in a debug build.
#[test]
fn nesting_and_recursion_limits_keep_the_stack_safe() {
    let run = || {
        let funcs = funcs();
        let deep_parens = format!("{{{{{}1{}}}}}", "(".repeat(500), ")".repeat(500));
        let error = Template::parse("t", &deep_parens, &funcs).unwrap_err();
        assert!(error.message.contains("nested too deeply"), "{error}");
        let deep_ifs = format!("{}x{}", "{{if 1}}".repeat(500), "{{end}}".repeat(500));
        let error = Template::parse("t", &deep_ifs, &funcs).unwrap_err();
        assert!(error.message.contains("nested too deeply"), "{error}");

        // The deepest nesting allowed still runs.
        let ok = format!(
            "{}{{{{{}1{}}}}}{}",
            "{{with 1}}".repeat(50),
            "(".repeat(49),
            ")".repeat(49),
            "{{end}}".repeat(50)
        );
        let template = Template::parse("t", &ok, &funcs).unwrap();
        let mut out = Vec::new();
        template
            .execute(&store(), &funcs, &Value::Nil, &mut out)
            .unwrap();
        assert_eq!(out, b"1");

        // Recursion through templates and blocks stops at the limit with an error.
        let recursive = "{{define \"r\"}}{{if .}}{{range seq 1 1}}{{with 1}}{{template \"r\" 1}}{{end}}{{end}}{{end}}{{end}}{{template \"r\" 1}}";
        let template = Template::parse("t", recursive, &funcs).unwrap();
        let error = template
            .execute(&store(), &funcs, &Value::Nil, &mut out)
            .unwrap_err();
        assert!(
            error.message.contains("exceeded maximum template depth"),
            "{error}"
        );
    };
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

/// Random `printf` formats over every kind of value never panic (huge widths and precisions
/// included).
#[test]
fn no_printf_format_panics() {
    let data = Value::from_json(
        &serde_json::json!({"l": [1, "a", null, 1e21, {"k": [true]}], "m": {"n": null}}),
    );
    let operands = [
        "0",
        "-42",
        "65",
        "9223372036854775807",
        "-0.0",
        "0.1",
        "1e21",
        "5e-324",
        "\"é\"",
        "true",
        "nil",
        ".missing",
        ".l",
        ".m",
        "(gets \"/proxy/*\")",
        "(seq 1 3)",
        "datetime",
        "1000000",
        "-1000000",
    ];
    let pieces = [
        "%", "-", "+", "#", " ", "0", "*", ".", "[1]", "[9]", "1000000", "70000", "3", "v", "d",
        "s", "q", "x", "X", "o", "O", "b", "c", "U", "e", "E", "f", "F", "g", "G", "t", "T", "p",
        "z", "%%",
    ];
    let funcs = funcs();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..2000 {
        let format: std::string::String = (0..1 + random(8))
            .map(|_| pieces[random(pieces.len())])
            .collect();
        let args: Vec<&str> = (0..random(4))
            .map(|_| operands[random(operands.len())])
            .collect();
        let src = format!("{{{{printf {format:?} {}}}}}", args.join(" "));
        let template = Template::parse("t", &src, &funcs).unwrap();
        let mut out = Vec::new();
        let _ = template.execute(&store(), &funcs, &data, &mut out);
    }
}

/// Arbitrary input never panics: every prefix and many mutations of a rich template either
/// parse and execute or fail with an error.
#[test]
fn no_input_panics() {
    let funcs = funcs();
    let seed = "{{- /* c */ -}}{{define \"d\"}}{{.}}{{end}}{{range $i, $e := gets \"/p*\"}}{{if and $e (eq $i 0)}}{{printf \"%-5.2q|%x\" $e.Key 3.5}}{{else if 1}}{{break}}{{end}}{{continue}}{{end}}{{with $x := index (json `{\"a\":[1]}`) \"a\"}}{{slice $x 0 1 | len}}{{template \"d\" 'a'}}{{end}}{{block \"b\" .}}{{html . | js}}{{end}}{{ 0x_1F }}{{1e3}}{{\"\\u00e9\\x41\"}}";
    let chars: Vec<char> = seed.chars().collect();
    let try_one = |src: &str| {
        if let Ok(template) = Template::parse("t", src, &funcs) {
            let mut out = Vec::new();
            let _ = template.execute(
                &store(),
                &funcs,
                &Value::from_json(&serde_json::json!({"a": [1, "x"], "b": null})),
                &mut out,
            );
        }
    };
    for end in 0..=chars.len() {
        let prefix: String = chars[..end].iter().collect();
        try_one(&prefix);
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let alphabet: Vec<char> = "{}()|$.:=, -\"'`/*\\0123456789abcdefxXeEpP_éif else end range with"
        .chars()
        .collect();
    for _ in 0..3000 {
        let mut mutated = chars.clone();
        for _ in 0..1 + random(4) {
            let at = random(mutated.len());
            match random(3) {
                0 => {
                    mutated.remove(at);
                }
                1 => mutated.insert(at, alphabet[random(alphabet.len())]),
                _ => mutated[at] = alphabet[random(alphabet.len())],
            }
        }
        try_one(&mutated.iter().collect::<String>());
    }
}
