//! terad run as `consul-template` (a symlink named so), with consul-template's command line and
//! its HCL and JSON configuration, against a real Consul holding KV pairs and service instances
//! in several health states. The cases in `tests/consul-template-cli/cases/` are real-world
//! templates (HAProxy, nginx, Prometheus file_sd, an application's configuration); what each
//! writes, its modes, its standard output and its exit status were recorded from
//! consul-template v0.20.1 run the same way (`record.sh`, see that directory's README), and
//! terad must produce the same bytes. The messages for what terad refuses are terad's own, and
//! checked whole here.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::consul::Consul;
use crate::support::{run, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(30);

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consul-template-cli")
}

/// A directory holding a link named `consul-template` to the terad binary.
struct Link {
    dir: tempfile::TempDir,
}

impl Link {
    fn new() -> Link {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_terad"),
            dir.path().join("consul-template"),
        )
        .unwrap();
        Link { dir }
    }

    /// `consul-template` with no variable of terad's, Consul's or consul-template's set.
    fn command(&self) -> Command {
        let mut command = Command::new(self.dir.path().join("consul-template"));
        for (name, _) in std::env::vars() {
            if name.starts_with("TERAD_")
                || name.starts_with("CONSUL_")
                || name == "CT_LOG"
                || name == "RUST_LOG"
            {
                command.env_remove(name);
            }
        }
        command
    }
}

/// A Consul dev agent holding `fixture.json`, loaded as `record.sh` loads it.
fn consul() -> Consul {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(suite().join("fixture.json")).unwrap())
            .unwrap();
    let agent = &fixture["agent"];
    let consul = Consul::start_dev_as(
        agent["node"].as_str().unwrap(),
        agent["node_id"].as_str().unwrap(),
    );
    let mut kv: Vec<_> = fixture["kv"].as_object().unwrap().iter().collect();
    kv.sort_by_key(|(key, _)| key.as_str());
    for (key, value) in kv {
        let (status, body) = consul.api("PUT", &format!("/v1/kv/{key}"), value.as_str().unwrap());
        assert_eq!(status, 200, "PUT {key}: {body}");
    }
    for registration in fixture["catalog"].as_array().unwrap() {
        let (status, body) = consul.api("PUT", "/v1/catalog/register", &registration.to_string());
        assert_eq!(status, 200, "register: {body}");
    }
    consul
}

/// Every file below `dir`, by its path below it.
fn files_below(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
                found.insert(name, (std::fs::read(&path).unwrap(), mode));
            }
        }
    }
    found
}

/// Runs one recorded case with terad as consul-template; a description of each difference.
fn run_case(link: &Link, consul: &Consul, case: &Path) -> Vec<String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_owned();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let fill = |text: &str| {
        text.replace("ADDR", &consul.address())
            .replace("DIR", &dir.display().to_string())
    };
    for entry in std::fs::read_dir(case).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file == "args" || file.starts_with("expected") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        std::fs::write(dir.join(&file), fill(&text)).unwrap();
    }
    let args: Vec<String> = std::fs::read_to_string(case.join("args"))
        .unwrap()
        .lines()
        .map(fill)
        .collect();
    let output = run(link.command().args(&args).current_dir(&dir), LIMIT);

    let mut differences = Vec::new();
    let expected_status: i32 = std::fs::read_to_string(case.join("expected.status"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if output.status.code() != Some(expected_status) {
        differences.push(format!(
            "{name}: exit status {:?}, consul-template's {expected_status}:\n{}",
            output.status.code(),
            stderr(&output)
        ));
    }
    let expected_stdout = std::fs::read_to_string(case.join("expected.stdout")).unwrap();
    let shown = stdout(&output).replace(&dir.display().to_string(), "DIR");
    if shown != expected_stdout {
        differences.push(format!(
            "{name}: standard output differs\n  consul-template: {expected_stdout:?}\n  terad:           {shown:?}"
        ));
    }
    let written = files_below(&dir.join("out"));
    let expected = files_below(&case.join("expected"));
    let modes: BTreeMap<String, u32> = std::fs::read_to_string(case.join("expected.modes"))
        .unwrap()
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(path, mode)| (path.to_owned(), u32::from_str_radix(mode, 8).unwrap()))
        .collect();
    if written.keys().collect::<Vec<_>>() != expected.keys().collect::<Vec<_>>() {
        differences.push(format!(
            "{name}: wrote {:?}, consul-template {:?}",
            written.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        ));
    }
    for (path, (bytes, _)) in &expected {
        let Some((ours, mode)) = written.get(path) else {
            continue;
        };
        if ours != bytes {
            differences.push(format!(
                "{name}: {path} differs\n  consul-template: {:?}\n  terad:           {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(ours)
            ));
        }
        if modes.get(path) != Some(mode) {
            differences.push(format!(
                "{name}: {path} has mode {mode:o}, consul-template's {:o}",
                modes.get(path).copied().unwrap_or_default()
            ));
        }
    }
    differences
}

#[test]
fn real_world_templates_render_as_consul_template_rendered_them() {
    let consul = consul();
    let link = Link::new();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(suite().join("cases"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "{cases:?}");
    let differences: Vec<String> = cases
        .iter()
        .flat_map(|case| run_case(&link, &consul, case))
        .collect();
    assert!(differences.is_empty(), "{}", differences.join("\n\n"));
}

/// Runs `consul-template ARGS` in `dir`; (exit status, standard error).
fn refused(link: &Link, dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = run(link.command().args(args).current_dir(dir), LIMIT);
    (output.status.code(), stderr(&output))
}

#[test]
fn what_terad_refuses_is_named_with_the_flag_or_the_key() {
    let link = Link::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("in.tmpl"), "{{ key \"a\" }}").unwrap();
    std::fs::write(
        dir.join("bad.hcl"),
        "consul {\n  address = \"127.0.0.1:8500\"\n  adress = \"typo\"\n}\n",
    )
    .unwrap();
    let hcl = dir.join("bad.hcl").display().to_string();

    // An unknown key: consul-template v0.20.1 says `* 'consul' has invalid keys: adress`.
    assert_eq!(
        refused(&link, dir, &["-once", "-config", &hcl]),
        (
            Some(15),
            format!(
                "terad: 1 configuration error:\n  - {hcl}:3:3: \"consul.adress\": unknown field \
                 `adress`, expected one of `address`, `auth`, `retry`, `ssl`, `token`, \
                 `transport`\n"
            )
        )
    );
    // Vault: consul-template would read it; terad refuses rather than render without it.
    assert_eq!(
        refused(
            &link,
            dir,
            &[
                "-once",
                "-vault-addr",
                "https://vault:8200",
                "-template",
                "in.tmpl:out"
            ]
        ),
        (
            Some(15),
            "terad: 1 configuration error:\n  - \"-vault-addr\": terad does not read Vault: \
             remove the Vault settings, and render secrets with a tool that reads Vault\n"
                .to_owned()
        )
    );
    // A -template without a destination, and an empty one (consul-template: `invalid value ""
    // for flag -template: template: cannot be empty`).
    assert_eq!(
        refused(
            &link,
            dir,
            &["-once", "-template", "in.tmpl", "-template", ""]
        ),
        (
            Some(15),
            "terad: 2 configuration errors:\n  - \"-template\": \"in.tmpl\" names the template \
             \"in.tmpl\" but no file to write; write -template \"IN:OUT[:COMMAND]\"\n  - \
             \"-template\": the value is empty; write -template \"IN:OUT[:COMMAND]\"\n"
                .to_owned()
        )
    );
    // A flag consul-template does not have: its exit status for a command line, 13.
    assert_eq!(
        refused(&link, dir, &["-onse"]),
        (
            Some(13),
            "terad: unknown flag \"-onse\"; did you mean -once? (terad takes consul-template's \
             flags under the name consul-template; see -h)\n"
                .to_owned()
        )
    );
    // An HCL key terad accepts but has nothing to do with is a warning naming it.
    std::fs::write(
        dir.join("dedup.hcl"),
        "deduplicate {\n  enabled = true\n}\ntemplate {\n  source = \"in.tmpl\"\n  \
         destination = \"out\"\n}\n",
    )
    .unwrap();
    let output = run(
        link.command()
            .args(["-parse-only", "-config", "dedup.hcl", "-log-level", "warn"])
            .current_dir(dir),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "WARN dedup.hcl:1:1: \"deduplicate\": not needed: terad makes each Consul query \
             once for all its templates, however many share it; ignored"
        ),
        "{}",
        stderr(&output)
    );
    assert!(!dir.join("out").exists(), "-parse-only writes nothing");
}

#[test]
fn the_version_has_consul_templates_shape() {
    let link = Link::new();
    for flag in ["-v", "-version", "--version"] {
        let output = run(link.command().arg(flag), LIMIT);
        assert!(output.status.success());
        assert_eq!(
            stderr(&output),
            format!(
                "consul-template v0.20.1-terad (terad {})\n",
                env!("CARGO_PKG_VERSION")
            ),
            "{flag}"
        );
    }
    // The flag that selects consul-template's command line under terad's own name.
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_terad")).args(["--consul-template", "-v"]),
        LIMIT,
    );
    assert!(stderr(&output).starts_with("consul-template v0.20.1-terad"));
}

/// Watching under the name consul-template, as a sidecar runs it: a change to a literal path,
/// to a path the template computes at render and to a service's health each reach the file and
/// run the command; a change to nothing it reads rewrites nothing and runs nothing; the last
/// instance failing keeps the last good file (terad's empty-store guard).
#[test]
fn a_watching_run_follows_literal_and_computed_paths_and_services() {
    let consul = Consul::start_dev(false);
    consul.put("app/env", "blue");
    consul.put("app/blue/port", "8080");
    consul.put("app/green/port", "9090");
    for (id, address) in [("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")] {
        consul.register(
            id,
            "web",
            address,
            80,
            r#""Check":{"TTL":"60s","Status":"passing"}"#,
        );
    }
    let link = Link::new();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("app.ctmpl"),
        "{{ $env := key \"app/env\" }}env {{ $env }} port {{ key (printf \"app/%s/port\" $env) }}\n\
         {{ range service \"web\" }}server {{ .ID }} {{ .Address }}:{{ .Port }}\n{{ end }}",
    )
    .unwrap();
    let out = dir.join("app.conf");
    let count = dir.join("commands");
    let template = format!(
        "{}:{}:sh -c 'echo x >> {}'",
        dir.join("app.ctmpl").display(),
        out.display(),
        count.display()
    );
    let mut command = link.command();
    command.args([
        "-consul-addr",
        &consul.address(),
        "-template",
        &template,
        "-log-level",
        "info",
    ]);
    let daemon = crate::support::Daemon::start(&mut command, dir.join("terad.log"));
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    let commands = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let servers = "server web-1 10.0.0.1:80\nserver web-2 10.0.0.2:80\n";
    wait_until(&daemon, &out, "the first render", || {
        read() == format!("env blue port 8080\n{servers}")
    });
    wait_until(&daemon, &out, "the first command", || commands() == 1);

    consul.put("app/blue/port", "8081");
    wait_until(&daemon, &out, "the computed path to be followed", || {
        read() == format!("env blue port 8081\n{servers}")
    });
    consul.put("app/env", "green");
    wait_until(&daemon, &out, "the literal path to be followed", || {
        read() == format!("env green port 9090\n{servers}")
    });
    consul.set_ttl("service:web-2", false);
    let changed = "env green port 9090\nserver web-1 10.0.0.1:80\n";
    wait_until(&daemon, &out, "a failing instance to leave", || {
        read() == changed
    });
    // Runs of one command are spaced by a second: three changes, one to three runs.
    wait_until(&daemon, &out, "the command after the changes", || {
        commands() >= 2
    });
    std::thread::sleep(Duration::from_millis(1500));
    let ran = commands();

    // A key the template does not read, or a value written again unchanged: rendered again
    // (the prefix is watched for the computed path), the file and the command left alone.
    let before = crate::support::modified(&out);
    consul.put("app/blue/unrelated", "x");
    consul.put("app/green/port", "9090");
    // The last instance failing: the guard keeps the last good file.
    consul.set_ttl("service:web-1", false);
    wait_until(&daemon, &out, "the guard to hold the file", || {
        daemon.log().contains("the last good file stays")
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(read(), changed);
    assert_eq!(
        crate::support::modified(&out),
        before,
        "the file was not rewritten"
    );
    assert_eq!(commands(), ran, "{}", daemon.log());
}

/// Polls `condition` until it holds, failing after [`LIMIT`] with the file and the log.
fn wait_until(
    daemon: &crate::support::Daemon,
    out: &Path,
    what: &str,
    mut condition: impl FnMut() -> bool,
) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < LIMIT,
            "timed out waiting for {what}: have {:?}\nterad log:\n{}",
            std::fs::read_to_string(out).unwrap_or_default(),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
