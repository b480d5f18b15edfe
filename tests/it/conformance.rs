//! The confd conformance corpus (`tests/conformance/`): Go templates with keys, and what the real
//! confd wrote for each, produced once by running confd (see that directory's README). Every
//! case runs terad the way a confd user would, with confd's own flags
//! (`terad -onetime -backend file -file keys.yaml -confdir …`) and no engine named: the
//! template must be recognised as Go, render the same bytes, or fail where confd failed, with
//! the same message and line, writing nothing.
//!
//! The few places where terad deliberately differs are listed in [`DIFFERENCES`] with the
//! reason; a case there is still run, and must behave as the table says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Fixture, run, stderr};

const LIMIT: Duration = Duration::from_secs(30);

/// What terad does instead of what confd did, and why.
struct Difference {
    case: &'static str,
    /// terad's outcome: `Ok(bytes)` rendered, `Err(text)` failed with `text` in its error.
    terad: Result<&'static str, &'static str>,
    why: &'static str,
}

const DIFFERENCES: &[Difference] = &[
    Difference {
        case: "file_backend_yaml11_bool_key_panics",
        terad: Ok("x\n"),
        why: "a YAML map key such as `on:` crashed confd; terad reads it as the text it is",
    },
    Difference {
        case: "keys_prefix_is_textual",
        terad: Ok("/app/name /app/port \n"),
        why: "terad matches keys on `/` boundaries: `keys = [\"/app\"]` never covers /application",
    },
    Difference {
        case: "prefix_textual_match_quirk",
        terad: Ok("|/name /port \n"),
        why: "terad strips a prefix on `/` boundaries: /application is not under prefix /app",
    },
    Difference {
        case: "prefix_trailing_slash",
        terad: Ok("/name /port |\n"),
        why: "terad matches a prefix on `/` boundaries: /application is not under prefix /app/",
    },
    Difference {
        case: "reverse_mutates_in_place",
        terad: Ok("[a b c] [c b a]\n"),
        why: "template values are immutable in terad: `reverse` returns a reversed copy and the variable keeps its order",
    },
];

/// The cases' directory.
fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/cases")
}

/// The message of confd's error line, without its prefix: what terad must say too, and the
/// template line it names.
fn confd_message(error: &str) -> (String, Option<String>) {
    let line = error.lines().next().unwrap_or_default();
    let line = line.strip_prefix("ERROR ").unwrap_or(line);
    if let Some((_, message)) = line.split_once("\">: ").or_else(|| {
        // Execution errors: `executing "template.tmpl" at <NODE>: MESSAGE`.
        line.find(">: ").map(|at| (&line[..at], &line[at + 3..]))
    }) {
        let position = line
            .strip_prefix("template: ")
            .and_then(|rest| rest.split(": ").next())
            .and_then(|at| at.rsplit_once(':').map(|(place, _)| place))
            .map(str::to_owned);
        return (message.to_owned(), position);
    }
    // Parse errors: `Unable to process template …, template: template.tmpl:LINE: MESSAGE`.
    if let Some((_, rest)) = line.split_once(", template: ") {
        let (position, message) = rest.split_once(": ").unwrap_or((rest, ""));
        return (message.to_owned(), Some(position.to_owned()));
    }
    (line.to_owned(), None)
}

/// Runs one case; returns a description of the mismatch, if any.
fn run_case(dir: &Path) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let fx = Fixture::new();
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
    fx.template("template.tmpl", &read("template.tmpl").unwrap());
    fx.write("keys.yaml", &read("keys.yaml").unwrap());
    let extra = read("resource.toml").unwrap_or_default();
    let keys = if extra.lines().any(|l| l.trim_start().starts_with("keys")) {
        ""
    } else {
        "keys = [\"/\"]\n"
    };
    let dest = fx.path("out/dest");
    fx.resource(
        "case.toml",
        &format!(
            "[template]\nsrc = \"template.tmpl\"\ndest = \"{}\"\n{extra}\n{keys}",
            dest.display()
        ),
    );
    let mut command = fx.terad();
    command
        .args(["-onetime", "-backend", "file", "-file"])
        .arg(fx.path("keys.yaml"))
        .args(["-log-level", "error"]);
    for line in read("env").unwrap_or_default().lines() {
        if let Some((key, value)) = line.split_once('=') {
            command.env(key, value);
        }
    }
    let output = run(&mut command, LIMIT);
    let rendered = std::fs::read(&dest).ok();
    let log = stderr(&output);
    let difference = DIFFERENCES.iter().find(|d| d.case == name);
    let (expected, error) = match difference {
        Some(Difference {
            terad: Ok(bytes), ..
        }) => (Some(bytes.to_string()), None),
        Some(Difference {
            terad: Err(text), ..
        }) => (None, Some((text.to_string(), None))),
        None => (read("expected"), read("error").map(|e| confd_message(&e))),
    };
    match (expected, error) {
        (Some(expected), _) => {
            if !output.status.success() {
                return Err(format!("{name}: confd rendered, terad failed:\n{log}"));
            }
            let rendered = rendered.unwrap_or_default();
            if rendered != expected.as_bytes() {
                return Err(format!(
                    "{name}: output differs\n  confd: {expected:?}\n  terad: {:?}",
                    String::from_utf8_lossy(&rendered)
                ));
            }
            Ok(())
        }
        (None, Some((message, position))) => {
            if output.status.success() {
                return Err(format!(
                    "{name}: confd failed with {message:?}, terad rendered {:?}",
                    String::from_utf8_lossy(&rendered.unwrap_or_default())
                ));
            }
            if rendered.is_some() {
                return Err(format!("{name}: terad failed but wrote the destination"));
            }
            if !log.contains(&message) {
                return Err(format!(
                    "{name}: confd said {message:?}; terad said:\n{log}"
                ));
            }
            if let Some(position) = position
                && !log.contains(&position)
            {
                return Err(format!(
                    "{name}: terad's error does not name {position}:\n{log}"
                ));
            }
            Ok(())
        }
        (None, None) => Err(format!(
            "{name}: the case has neither `expected` nor `error`"
        )),
    }
}

#[test]
fn every_confd_case_renders_what_confd_rendered_or_fails_where_it_failed() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases())
        .expect("tests/conformance/cases")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 200, "the corpus has {} cases", dirs.len());
    for difference in DIFFERENCES {
        assert!(
            dirs.iter().any(|d| d.ends_with(difference.case)),
            "{} is not a case ({})",
            difference.case,
            difference.why
        );
    }
    let failures: Vec<String> = dirs.iter().filter_map(|dir| run_case(dir).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from confd:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}
