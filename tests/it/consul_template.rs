//! The consul-template conformance corpus (`tests/consul-template/`): Go templates in
//! consul-template's dialect, and what consul-template v0.20.1 rendered for each against a
//! Consul dev agent holding `fixture.json` (see that directory's README). Every case runs
//! terad the way a resource naming the dialect does (`engine = "consul-template"`,
//! `terad --onetime --backend consul`) against a real Consul loaded with the same fixture:
//! the output must be the same bytes, or the render must fail where consul-template failed,
//! with the same message on the same line, writing nothing.
//!
//! The resources list no `keys`: what a consul-template template reads is found in it.
//!
//! The places where terad deliberately differs are listed in [`DIFFERENCES`] with the reason;
//! a case there is still run, and must behave as the table says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::consul::{self, Consul};
use crate::support::{Daemon, Fixture, free_port, http_get, run, stderr, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

/// What terad does instead of what consul-template did, and why.
struct Difference {
    case: &'static str,
    /// terad's outcome: `Ok(bytes)` rendered, `Err(text)` failed with `text` in its error.
    terad: Result<&'static str, &'static str>,
    why: &'static str,
}

const DIFFERENCES: &[Difference] = &[
    Difference {
        case: "service_tagged_addresses_field",
        terad: Ok("map[lan:{10.1.0.2 9090} wan:{198.51.100.2 19090}]map[]\n"),
        why: "terad has `.ServiceTaggedAddresses`, which consul-template added after v0.20.1",
    },
    Difference {
        case: "service_near_refused",
        terad: Err("terad does not sort instances by distance"),
        why: "consul-template's `~near` sorts instances by round-trip time from a node; terad refuses it rather than list them in another order",
    },
    Difference {
        case: "ls_index_field",
        terad: Ok("10.0.0.2:80\n"),
        why: "consul-template's -once executes the template a first time before any data arrived, and an error there (index out of range of the still empty list) is final; terad renders once, with the data",
    },
    Difference {
        case: "executeTemplate_unknown",
        terad: Err(
            "error calling executeTemplate: template: no template \"nosuch\" associated with template \"template.tmpl\"",
        ),
        why: "the template set is named after the template's file in terad, \"\" in consul-template",
    },
    Difference {
        case: "regexMatch_invalid",
        terad: Err("error calling regexMatch: error parsing regexp: unclosed group"),
        why: "regular expressions are compiled by Rust's regex crate, whose syntax is RE2's like Go's, but whose error messages are its own",
    },
    Difference {
        case: "service_meta_index",
        terad: Ok("2.1 <no value> \n"),
        why: "terad's maps hold any value (Go's map[string]interface {}): a missing key of .ServiceMeta, .NodeMeta or .NodeTaggedAddresses reads as <no value>, not as the empty string of Go's map[string]string",
    },
];

/// The corpus's directory.
fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consul-template")
}

/// consul-template's error line as (message, line): `… executing "" at <NODE>: MESSAGE` or
/// `… parse: template: :LINE: MESSAGE`.
fn ct_message(error: &str) -> (String, Option<usize>) {
    let line = error.lines().next().unwrap_or_default();
    let position = |rest: &str| {
        rest.strip_prefix(':')
            .and_then(|rest| rest.split(':').next())
            .and_then(|line| line.parse().ok())
    };
    if let Some((before, after)) = line.split_once(": executing \"\" at <")
        && let Some(at) = after.find(">: ")
    {
        let place = before.rsplit("template: ").next().unwrap_or_default();
        return (after[at + 3..].to_owned(), position(place));
    }
    if let Some((_, rest)) = line.split_once("parse: template: ")
        && let Some((place, message)) = rest.split_once(": ")
    {
        return (message.to_owned(), position(place));
    }
    (line.to_owned(), None)
}

/// Loads `fixture.json` into `consul`, as `load-fixture.py` does for the recording.
fn load_fixture(consul: &Consul, fixture: &serde_json::Value) {
    for (key, value) in fixture["kv"].as_object().expect("kv") {
        let path = format!("/v1/kv/{}", key.replace(' ', "%20"));
        let (status, body) = consul.api("PUT", &path, value.as_str().unwrap_or_default());
        assert_eq!(status, 200, "PUT {key}: {body}");
    }
    for registration in fixture["catalog"].as_array().expect("catalog") {
        let (status, body) = consul.api("PUT", "/v1/catalog/register", &registration.to_string());
        assert_eq!(status, 200, "register: {body}");
    }
}

/// Runs one case; returns a description of the mismatch, if any.
fn run_case(dir: &Path, consul: &Consul, env: &[(String, String)]) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let fx = Fixture::new();
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
    fx.template("template.tmpl", &read("template.tmpl").unwrap());
    let dest = fx.path("out/dest");
    fx.resource(
        "case.toml",
        &format!(
            // No `keys`: what the template reads is found in it.
            "[template]\nsrc = \"template.tmpl\"\ndest = \"{}\"\nengine = \"consul-template\"\n",
            dest.display()
        ),
    );
    let mut command = consul::terad(&fx, consul, &["--onetime", "--log-level", "error"]);
    for (key, value) in env {
        command.env(key, value);
    }
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
        None => (read("expected"), read("error").map(|e| ct_message(&e))),
    };
    match (expected, error) {
        (Some(expected), _) => {
            if !output.status.success() {
                return Err(format!(
                    "{name}: consul-template rendered, terad failed:\n{log}"
                ));
            }
            let rendered = rendered.unwrap_or_default();
            if rendered != expected.as_bytes() {
                return Err(format!(
                    "{name}: output differs\n  consul-template: {expected:?}\n  terad:           {:?}",
                    String::from_utf8_lossy(&rendered)
                ));
            }
            Ok(())
        }
        (None, Some((message, line))) => {
            if output.status.success() {
                return Err(format!(
                    "{name}: consul-template failed with {message:?}, terad rendered {:?}",
                    String::from_utf8_lossy(&rendered.unwrap_or_default())
                ));
            }
            if rendered.is_some() {
                return Err(format!("{name}: terad failed but wrote the destination"));
            }
            // A call whose literal arguments can never work is refused at load, naming the
            // function and giving consul-template's words: `nodes: catalog.nodes: …` where
            // consul-template said `error calling nodes: catalog.nodes: …` when rendering.
            let at_load = message
                .strip_prefix("error calling ")
                .is_some_and(|words| log.contains("configuration error") && log.contains(words));
            if !log.contains(&message) && !at_load {
                return Err(format!(
                    "{name}: consul-template said {message:?}; terad said:\n{log}"
                ));
            }
            if let Some(line) = line
                && !log.contains(&format!("template.tmpl:{line}:"))
            {
                return Err(format!(
                    "{name}: terad's error does not name line {line}:\n{log}"
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
fn every_consul_template_case_renders_what_consul_template_rendered_or_fails_where_it_failed() {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(corpus().join("fixture.json")).expect("fixture.json"),
    )
    .expect("fixture.json is JSON");
    let agent = &fixture["agent"];
    let consul = Consul::start_dev_as(
        agent["node"].as_str().unwrap(),
        agent["node_id"].as_str().unwrap(),
    );
    load_fixture(&consul, &fixture);
    let env: Vec<(String, String)> = fixture["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();

    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus().join("cases"))
        .expect("tests/consul-template/cases")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 150, "the corpus has {} cases", dirs.len());
    for difference in DIFFERENCES {
        assert!(
            dirs.iter().any(|d| d.ends_with(difference.case)),
            "{} is not a case ({})",
            difference.case,
            difference.why
        );
    }
    // Four at a time: each case is one short terad process against the one agent.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = dirs
            .chunks(dirs.len().div_ceil(4))
            .map(|chunk| {
                let (consul, env) = (&consul, &env);
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|dir| run_case(dir, consul, env).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from consul-template:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

/// A consul-template resource with a template `body` and no `keys`.
fn ct_fixture(body: &str) -> Fixture {
    let fx = Fixture::new();
    fx.template("app.tmpl", body);
    let dest = fx.path("out/app.conf");
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nengine = \"consul-template\"\n",
            dest.display()
        ),
    );
    fx
}

/// A one-shot run that may wait 20 s for what its template reads, with `key` written 1.5 s
/// after it started: its output.
fn onetime_while_written(
    fx: &Fixture,
    consul: &Consul,
    key: &str,
    value: &str,
) -> std::process::Output {
    let mut command = consul::terad(fx, consul, &["--onetime", "--backend-timeout", "20s"]);
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    consul.put(key, value);
    crate::support::wait_output(child, LIMIT)
}

/// consul-template's most reported trap is a `key` that does not exist: it waits without a
/// word. A one-shot terad waits for it too, then fails naming it.
#[test]
fn a_missing_key_fails_a_one_shot_run_naming_the_key_after_its_timeout() {
    let consul = Consul::start_dev(false);
    consul.put("app/name", "shop");
    let fx = ct_fixture("{{ key \"app/name\" }} {{ key \"app/missing\" }}\n");
    let started = std::time::Instant::now();
    let output = run(
        &mut consul::terad(&fx, &consul, &["--onetime", "--backend-timeout", "2s"]),
        LIMIT,
    );
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited for the key first"
    );
    assert!(log.contains("app/missing"), "names the key: {log}");
    assert!(!fx.path("out/app.conf").exists());

    // Written while a run waits: the run renders it.
    let output = onetime_while_written(&fx, &consul, "app/missing", "here");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "shop here\n");
}

/// Watching, a missing key holds the resource back with its name in `/ready`, and the file is
/// rendered when the key appears; the KV paths were found in the template (no `keys`).
#[test]
fn a_watching_run_names_the_missing_key_in_ready_and_renders_when_it_appears() {
    let consul = Consul::start_dev(false);
    consul.put("app/servers/a", "10.0.0.1:80");
    let fx = ct_fixture(
        "{{ range ls \"app/servers\" }}server {{ .Key }} {{ .Value }}\n{{ end }}port {{ key \"app/port\" }}\n",
    );
    let port = free_port();
    let daemon = Daemon::start(
        &mut consul::terad(
            &fx,
            &consul,
            &["--watch", "--listen", &format!("127.0.0.1:{port}")],
        ),
        fx.path("terad.log"),
    );
    wait_for("/ready to name the key", LIMIT, || {
        http_get(port, "/ready")
            .is_some_and(|(status, body)| status == 503 && body.contains("\"app/port\""))
    });
    assert!(!fx.path("out/app.conf").exists());
    consul.put("app/port", "8080");
    wait_for("the render once the key exists", LIMIT, || {
        fx.read("out/app.conf") == "server a 10.0.0.1:80\nport 8080\n"
    });
    consul.put("app/servers/b", "10.0.0.2:80");
    wait_for("ls to follow its prefix", LIMIT, || {
        fx.read("out/app.conf") == "server a 10.0.0.1:80\nserver b 10.0.0.2:80\nport 8080\n"
    });
    wait_for("ready", LIMIT, || {
        http_get(port, "/ready").is_some_and(|(status, _)| status == 200)
    });
    let log = daemon.log();
    assert!(
        log.contains("waiting for a key the template reads") && log.contains("app/port"),
        "{log}"
    );
    assert!(
        !log.contains("ERROR"),
        "a missing key is a wait, not an error: {log}"
    );
}

/// `safeLs` and `safeTree` (later consul-template's, so no recorded case) list what `ls` and
/// `tree` list, and where those give nothing they wait, as a missing `key` does: a one-shot run
/// gives up after its timeout naming the prefix, and renders once something is written there.
#[test]
fn safe_listings_list_as_ls_and_tree_and_wait_for_an_empty_prefix() {
    let consul = Consul::start_dev(false);
    consul.put("app/servers/a", "10.0.0.1:80");
    consul.put("app/servers/deep/b", "10.0.0.2:80");
    let fx = ct_fixture(
        "{{ range ls \"app/servers\" }}{{ .Key }} {{ end }}| {{ range safeLs \"app/servers\" }}{{ .Key }} {{ end }}\n\
         {{ range tree \"app/servers\" }}{{ .Key }} {{ end }}| {{ range safeTree \"app/servers\" }}{{ .Key }} {{ end }}\n",
    );
    let output = run(&mut consul::terad(&fx, &consul, &["--onetime"]), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "a | a \na deep/b | a deep/b \n");

    let fx = ct_fixture("{{ range safeTree \"app/empty\" }}{{ .Key }}{{ end }}\n");
    let output = run(
        &mut consul::terad(&fx, &consul, &["--onetime", "--backend-timeout", "2s"]),
        LIMIT,
    );
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("app/empty"), "names the prefix: {log}");
    assert!(!fx.path("out/app.conf").exists());

    let fx = ct_fixture("{{ range safeLs \"app/later\" }}{{ .Key }}={{ .Value }}{{ end }}\n");
    let output = onetime_while_written(&fx, &consul, "app/later/x", "1");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "x=1\n");
}

/// `sockaddr` reads this machine's interfaces (no injected table): the loopback interface's
/// IPv4 address is 127.0.0.1/8 on any Linux, and not forwardable, so `GetInterfaceIP` passes it
/// over. consul-template (v0.20.1 with the later `sockaddr`) renders `127.0.0.1||127.0.0.1/8`.
/// A literal go-sockaddr template that calls `math` is refused at start, with its position.
#[test]
fn sockaddr_reads_the_machines_interfaces() {
    let consul = Consul::start_dev(false);
    let fx = ct_fixture(concat!(
        r#"{{ sockaddr "GetAllInterfaces | include \"name\" \"^lo$\" | include \"type\" \"ipv4\" | attr \"address\"" }}|"#,
        r#"{{ sockaddr "GetInterfaceIP \"^lo$\"" }}|"#,
        r#"{{ sockaddr "GetAllInterfaces | include \"flags\" \"loopback\" | include \"type\" \"ipv4\" | attr \"string\"" }}"#,
        "\n"
    ));
    let output = run(&mut consul::terad(&fx, &consul, &["--onetime"]), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "127.0.0.1||127.0.0.1/8\n");

    let fx =
        ct_fixture("ok\n{{ sockaddr \"GetAllInterfaces | math \\\"address\\\" \\\"+1\\\"\" }}\n");
    let output = run(&mut consul::terad(&fx, &consul, &["--onetime"]), LIMIT);
    let log = stderr(&output);
    assert!(!output.status.success());
    assert!(
        log.contains("app.tmpl:2:4") && log.contains("function \"math\" is not supported"),
        "{log}"
    );
}

/// Vault, Nomad, Connect and `plugin` are refused at start, with file, line and column.
#[test]
fn functions_terad_does_not_provide_are_refused_at_start() {
    let consul = Consul::start_dev(false);
    let fx = ct_fixture("ok\n{{ with secret \"secret/db\" }}{{ .Data.password }}{{ end }}\n");
    let output = run(&mut consul::terad(&fx, &consul, &["--onetime"]), LIMIT);
    let log = stderr(&output);
    assert!(!output.status.success());
    assert!(
        log.contains("app.tmpl:2:9") && log.contains("function \"secret\" reads Vault"),
        "{log}"
    );
}
