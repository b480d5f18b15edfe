//! Robustness: parsed templates shared between threads, the nesting and recursion limits that
//! keep the stack safe, and arbitrary `printf` formats and template texts that must never panic.

use std::sync::Arc;

use super::*;

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
            error
                .kind
                .to_string()
                .contains("exceeded maximum template depth"),
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
