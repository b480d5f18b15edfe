//! What a new user reads: JSON log fields as JSON values.

use std::time::Duration;

use crate::support::{Fixture, run, stderr};

const LIMIT: Duration = Duration::from_secs(20);

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
