//! Parse and execution errors: Go's messages, with the place (line, column, the template and
//! the part of the action that failed) they name.

use super::*;

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
        let got = render_data(src, d).unwrap_err().to_string();
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
    let ExecError {
        name,
        template,
        line,
        column,
        context,
        kind,
    } = error;
    assert_eq!(
        (name, template, line, column, context, kind.to_string()),
        (
            "page".into(),
            "x".into(),
            3,
            11,
            "\"a\"".into(),
            "expected integer; found \"a\"".into(),
        )
    );
    // Output up to the failure stays.
    assert_eq!(out, b"line\n\n  ");
}
