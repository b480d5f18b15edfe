//! The bad-input corpus: each case is a resource, a template and keys; each asserts the exit
//! status, the whole of what the user reads on stderr (a snapshot in `snapshots/`: the file,
//! position and key of the error, and every other line), that the destination was not touched
//! and that no stage file was left.
//!
//! A deliberate change of wording: `INSTA_UPDATE=always cargo nextest run -E 'test(bad_input)'`
//! rewrites the snapshots; review them with `git diff` before committing.

use std::time::Duration;

use crate::support::etcd::Etcd;
use crate::support::{Fixture, run, stderr};

const LIMIT: Duration = Duration::from_secs(30);
const PREVIOUS: &str = "previous content\n";

struct Case {
    name: &'static str,
    /// The `[template]` table's body; `DEST` is replaced by the destination path.
    resource: &'static str,
    template: &'static str,
    /// The keys file (YAML) for the file backend.
    keys: &'static str,
    status: i32,
}

const GOOD_RESOURCE: &str = "src = \"t.tmpl\"\ndest = \"DEST\"\nkeys = [\"/app\"]\n";

const CASES: &[Case] = &[
    Case {
        name: "malformed TOML",
        resource: "src = \"t.tmpl\n",
        template: "x",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "unknown key",
        resource: "src = \"t.tmpl\"\ndest = \"DEST\"\nsorce = \"x\"\n",
        template: "x",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "wrong type",
        resource: "src = \"t.tmpl\"\ndest = \"DEST\"\nkeys = \"/app\"\n",
        template: "x",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "bad mode",
        resource: "src = \"t.tmpl\"\ndest = \"DEST\"\nmode = \"0888\"\n",
        template: "x",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "missing src",
        resource: "dest = \"DEST\"\n",
        template: "x",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "src escaping templates/",
        resource: "src = \"../conf.d/r.toml\"\ndest = \"DEST\"\n",
        template: "x",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "template syntax error",
        resource: GOOD_RESOURCE,
        template: "ok\n{% for kv in %}\n",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "go template syntax error",
        resource: GOOD_RESOURCE,
        template: "{{range gets \"/app/*\"}}\n{{.Key}}\n",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "go template missing key",
        resource: GOOD_RESOURCE,
        template: "line 1\n{{getv \"/app/port\"}}\n",
        keys: "app: {host: x}",
        status: 1,
    },
    Case {
        name: "unknown function",
        resource: GOOD_RESOURCE,
        template: "{{ getvv(key=\"/app/x\") }}",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "unknown filter",
        resource: GOOD_RESOURCE,
        template: "{{ \"x\" | basename }}",
        keys: "app: {}",
        status: 2,
    },
    Case {
        name: "missing key",
        resource: GOOD_RESOURCE,
        template: "line 1\n{{ getv(key=\"/app/port\") }}\n",
        keys: "app: {host: x}",
        status: 1,
    },
    Case {
        name: "key outside the resource's keys (not listed at all)",
        resource: GOOD_RESOURCE,
        template: "{{ getv(key=\"/other/x\") }}",
        keys: "app: {host: x}\nother: {x: 1}",
        status: 2,
    },
    Case {
        name: "bad glob pattern",
        resource: GOOD_RESOURCE,
        template: "{{ gets(pattern=\"/app/[\") | length }}",
        keys: "app: {host: x}",
        status: 2,
    },
    Case {
        name: "unparsable keys file",
        resource: GOOD_RESOURCE,
        template: "x",
        keys: "app: [unclosed",
        status: 1,
    },
    Case {
        name: "destination directory missing",
        resource: "src = \"t.tmpl\"\ndest = \"DEST.missing/sub/file\"\nkeys = [\"/app\"]\n",
        template: "x",
        keys: "app: {}",
        status: 1,
    },
];

fn run_case(case: &Case) {
    let fx = Fixture::new();
    let dest = fx.path("out/dest.conf");
    std::fs::write(&dest, PREVIOUS).unwrap();
    fx.template("t.tmpl", case.template);
    fx.resource(
        "r.toml",
        &format!(
            "[template]\n{}",
            case.resource.replace("DEST", &dest.display().to_string())
        ),
    );
    fx.write("keys.yaml", case.keys);
    let output = run(&mut fx.onetime(), LIMIT);
    let root = fx.root().display().to_string();
    let err = stderr(&output)
        .replace(&format!("{root}/"), "")
        .replace(&root, "<root>");
    assert_eq!(
        output.status.code(),
        Some(case.status),
        "{}: {err}",
        case.name
    );
    let slug: String = case
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    insta::assert_snapshot!(slug, without_timestamps(&err));
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        PREVIOUS,
        "{}: destination touched",
        case.name
    );
    let leftovers: Vec<_> = std::fs::read_dir(fx.path("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["dest.conf"], "{}: stage file left", case.name);
}

/// stderr without the log lines' leading timestamps, which differ on every run.
fn without_timestamps(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once(' ') {
            Some((stamp, rest))
                if stamp.len() > 20 && stamp.ends_with('Z') && stamp.as_bytes()[4] == b'-' =>
            {
                rest.trim_start()
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_bad_input_case_fails_with_its_exact_error_and_writes_nothing() {
    for case in CASES {
        run_case(case);
    }
}

#[test]
fn a_key_another_resource_watches_is_named_as_outside_this_resources_keys() {
    let fx = Fixture::new();
    fx.template(
        "t.tmpl",
        "ok\n{{ getv(key=\"/other/x\", default=\"80\") }}\n{{ gets(pattern=\"/other/*\") | length }}",
    );
    fx.template("other.tmpl", "{{ getv(key=\"/other/x\") }}");
    fx.resource(
        "a.toml",
        &format!(
            "[template]\nsrc = \"t.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\n",
            fx.path("out/a").display()
        ),
    );
    fx.resource(
        "b.toml",
        &format!(
            "[template]\nsrc = \"other.tmpl\"\ndest = \"{}\"\nkeys = [\"/other\"]\n",
            fx.path("out/b").display()
        ),
    );
    fx.write("keys.yaml", "app: {host: x}\nother: {x: 1}");
    let output = run(&mut fx.onetime(), LIMIT);
    // Literal lookups are checked at start, every one of them, default or not: exit 2, nothing
    // written, not even for the resource that is fine.
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    for want in [
        "t.tmpl:2:14: getv: key \"/other/x\" is outside this resource's keys [\"/app\"]; add it to `keys`",
        "t.tmpl:3:18: gets: pattern \"/other/*\" is outside this resource's keys [\"/app\"]",
        "(resource \"a\", ",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!fx.path("out/b").exists());
    assert!(!fx.path("out/a").exists());
}

/// A computed key cannot be checked at start: its render fails naming the key and the keys.
#[test]
fn a_computed_key_outside_the_resources_keys_fails_its_render() {
    let fx = Fixture::new();
    fx.template(
        "t.tmpl",
        "{% set name = \"x\" %}{{ getv(key=\"/other/\" ~ name, default=\"80\") }}",
    );
    fx.resource(
        "a.toml",
        &format!(
            "[template]\nsrc = \"t.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\n",
            fx.path("out/a").display()
        ),
    );
    fx.write("keys.yaml", "app: {host: x}\nother: {x: 1}");
    let output = run(&mut fx.onetime(), LIMIT);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "key \"/other/x\" is outside this resource's keys [\"/app\"]; add it to `keys`"
        ),
        "{}",
        stderr(&output)
    );
    assert!(!fx.path("out/a").exists());
}

#[test]
fn keys_with_spaces_unicode_and_dot_dot_are_plain_keys() {
    let fx = Fixture::new();
    fx.template("t.tmpl", "{% for kv in gets(pattern=\"/app/*\") %}[{{ kv.key }}]={{ kv.value }}\n{% endfor %}{{ getv(key=\"/app/with space\") }}\n");
    fx.resource(
        "r.toml",
        &format!(
            "[template]\nsrc = \"t.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\n",
            fx.path("out/dest.conf").display()
        ),
    );
    fx.write(
        "keys.yaml",
        "app:\n  \"with space\": s\n  ünïcödé: u\n  \"..\": dots\n",
    );
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        fx.read("out/dest.conf"),
        "[/app/..]=dots\n[/app/with space]=s\n[/app/ünïcödé]=u\ns\n"
    );
}

#[test]
fn create_dirs_creates_the_missing_directory() {
    let fx = Fixture::new();
    fx.template("t.tmpl", "ok\n");
    let dest = fx.path("out/new/sub/dest.conf");
    fx.resource(
        "r.toml",
        &format!(
            "[template]\nsrc = \"t.tmpl\"\ndest = \"{}\"\ncreate_dirs = true\n",
            dest.display()
        ),
    );
    fx.write("keys.yaml", "{}");
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(dest).unwrap(), "ok\n");
}

#[test]
fn a_dangling_destination_link_is_refused_not_replaced_by_a_file() {
    let fx = Fixture::new();
    fx.template("t.tmpl", "ok\n");
    let dest = fx.path("out/link.conf");
    std::os::unix::fs::symlink(fx.path("out/nowhere.conf"), &dest).unwrap();
    fx.resource(
        "r.toml",
        &format!(
            "[template]\nsrc = \"t.tmpl\"\ndest = \"{}\"\n",
            dest.display()
        ),
    );
    fx.write("keys.yaml", "{}");
    let output = run(&mut fx.onetime(), LIMIT);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("which does not exist"),
        "{}",
        stderr(&output)
    );
    assert!(
        std::fs::symlink_metadata(&dest)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link stays a link"
    );
}

/// etcd-only inputs: values that are not UTF-8, a 10 MB value, 100k keys under one prefix.
#[test]
fn etcd_non_utf8_values_huge_values_and_100k_keys() {
    let etcd = Etcd::start();
    let fx = Fixture::new();
    let dest = fx.path("out/dest.conf");
    fx.resource(
        "r.toml",
        &format!(
            "[template]\nsrc = \"t.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\n",
            dest.display()
        ),
    );
    let onetime = || {
        let mut command = fx.terad();
        command
            .args(["--onetime", "--backend", "etcd", "--node"])
            .arg(etcd.url());
        run(&mut command, LIMIT)
    };

    // A value that is not UTF-8: the key is skipped with a warning naming it, and a template
    // that needs it fails naming it; nothing is written.
    etcd.put_bytes("/app/binary", &[0xff, 0xfe, 0x00, 0x41]);
    fx.template("t.tmpl", "{{ getv(key=\"/app/binary\") }}\n");
    std::fs::write(&dest, PREVIOUS).unwrap();
    let output = onetime();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("etcd value is not valid UTF-8; key skipped")
            && err.contains("key=/app/binary"),
        "{err}"
    );
    assert!(err.contains("key \"/app/binary\" not found"), "{err}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), PREVIOUS);

    // A 10 MB value and 100 000 keys under one prefix.
    etcd.put_all(vec![("/app/huge".to_owned(), "h".repeat(10 * 1024 * 1024))]);
    etcd.put_all(
        (0..100_000)
            .map(|i| (format!("/app/many/k{i:06}"), i.to_string()))
            .collect(),
    );
    fx.template(
        "t.tmpl",
        "{{ getv(key=\"/app/huge\") | length }} {{ gets(pattern=\"/app/many/*\") | length }} {{ getv(key=\"/app/many/k099999\") }}\n",
    );
    let output = onetime();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "10485760 100000 99999\n"
    );
}
