//! What a new user reads: JSON log fields as JSON values, and the README's promises about the
//! commands it shows.

use std::path::Path;
use std::time::Duration;

use crate::support::{Fixture, run, stderr};

const LIMIT: Duration = Duration::from_secs(20);
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `--log-format json` gave `"resources": "[\"r0\"]"`, a string holding JSON.
#[test]
fn json_logs_carry_lists_as_arrays_and_numbers_as_numbers() {
    let fx = Fixture::new();
    fx.write("keys.yaml", "app:\n  name: demo\n");
    fx.template("app.tmpl", "name={{ getv(key=\"/app/name\") }}\n");
    for name in ["r0", "r1"] {
        fx.resource(
            &format!("{name}.toml"),
            &format!(
                "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nreload_cmd = \"true\"\n",
                fx.path(&format!("out/{name}.conf")).display()
            ),
        );
    }
    let output = run(fx.onetime().args(["--log-format", "json"]), LIMIT);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|line| line["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in\n{log}"))
    };
    assert_eq!(
        find("reloaded")["resources"],
        serde_json::json!(["r0", "r1"])
    );
    assert_eq!(
        find("no configuration file; using the command line, the environment and the defaults")["looked_for"],
        serde_json::json!([
            fx.path("terad.toml").display().to_string(),
            fx.path("confd.toml").display().to_string()
        ])
    );
    let updated = find("config updated");
    assert!(updated["resource"].is_string(), "{updated}");
    for line in &lines {
        for (name, value) in line.as_object().unwrap() {
            if let Some(text) = value.as_str() {
                assert!(
                    !(text.starts_with('[') && text.ends_with(']')),
                    "{name} is a string holding a list: {line}"
                );
            }
        }
    }
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap()
}

/// Issue 27: the README's test command took 29–39 minutes cold, with the release builds and
/// fuzzing inside it. It is the suite alone now, and says its time; what takes longer runs
/// after it in .ci/run, and the README says so.
#[test]
fn the_readme_says_what_the_test_command_does_and_what_ci_runs_after_it() {
    let read = |path: &str| std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap();
    let ci = read(".ci/run");
    let test = ci
        .find("./scripts/test.sh")
        .expect(".ci/run runs the test command");
    let after = ci
        .find("./scripts/release-checks.sh")
        .expect(".ci/run runs the release checks");
    assert!(test < after, "the test command first:\n{ci}");
    let suite = read("scripts/test.sh");
    let checks = read("scripts/release-checks.sh");
    for slow in ["build-static.sh", "build-deb.sh", "fuzz.sh"] {
        assert!(!suite.contains(slow), "{slow} is not in the test command");
        assert!(checks.contains(slow), "{slow} runs after it");
    }
    let readme = readme();
    let start = readme.find("\n## Quick start").unwrap();
    let end = readme[start + 1..].find("\n## ").unwrap() + start + 1;
    let section = &readme[start..end];
    assert!(section.contains("\n./scripts/test.sh\n"), "{section}");
    for promise in [
        "minutes cold",
        "release-checks",
        ".deb",
        "fuzz",
        "\ncargo nextest run",
    ] {
        assert!(section.contains(promise), "{promise:?} in\n{section}");
    }
}

/// "Coming from confd" starts with the symlink, right after the quick start and how to install:
/// made where confd is installed, to wherever terad is (a bare `ln -s terad /usr/bin/confd`
/// assumed both were in /usr/bin and made a link relative to it).
#[test]
fn the_readme_tells_confd_users_that_a_symlink_is_the_migration() {
    let readme = readme();
    let sections: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .collect();
    assert_eq!(
        sections[..3],
        ["Quick start", "Install", "Coming from confd"],
        "the first sections"
    );
    let confd = readme.find("\n## Coming from confd").expect("the section");
    let body = &readme[confd..];
    let first_block = body.find("```sh").unwrap();
    let block: Vec<&str> = body[first_block..]
        .lines()
        .skip(1)
        .take_while(|line| !line.starts_with("```"))
        .collect();
    assert!(
        block
            .iter()
            .any(|line| line.starts_with("confd=$(command -v confd)"))
            && block
                .iter()
                .any(|line| line.starts_with("sudo ln -s \"$(command -v terad)\" \"$confd\"")),
        "the symlink first, where confd is: {block:?}"
    );
}
