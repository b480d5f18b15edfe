//! The packaging files that cannot run here as a whole (no container engine, no cluster, no
//! systemd as PID 1) are checked for consistency and rendered with the real terad and HAProxy:
//! the Kubernetes example, the `haproxy` image's resource, the systemd unit, the man page and the
//! shell completion the Debian package carries.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{Fixture, run, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(20);
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn repo_file(relative: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(relative)).unwrap()
}

/// Renders `resource` (a conf.d TOML) and `template` once with the file backend and `keys`,
/// with `dest` and `pidfile` moved into a fixture, reload-haproxy.sh on PATH and no HAProxy
/// running: what an init container or the entrypoint does. Returns the rendered file.
fn render_once(resource: &str, template: &str, dest: &str, pidfile: &str, keys: &str) -> String {
    let fx = Fixture::new();
    assert!(
        resource.contains(&format!("dest = \"{dest}\"")),
        "{resource}"
    );
    assert!(resource.contains(pidfile), "{resource}");
    fx.template("haproxy.cfg.tmpl", template);
    fx.resource(
        "haproxy.toml",
        &resource
            .replace(dest, &fx.path("out/haproxy.cfg").display().to_string())
            .replace(pidfile, &fx.path("haproxy.pid").display().to_string()),
    );
    fx.write("keys.yaml", keys);
    let path = format!(
        "{ROOT}/packaging/haproxy:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let output = run(
        fx.terad()
            .env("PATH", path)
            .args(["--onetime", "--backend", "file", "--file"])
            .arg(fx.path("keys.yaml")),
        LIMIT,
    );
    assert!(
        output.status.success(),
        "terad --onetime (check_cmd haproxy -c, reload without HAProxy): {}",
        stderr(&output)
    );
    fx.read("out/haproxy.cfg")
}

fn named<'a>(list: &'a Yaml, name: &str) -> &'a Yaml {
    list.as_vec()
        .and_then(|items| {
            items
                .iter()
                .find(|item| item["name"].as_str() == Some(name))
        })
        .unwrap_or_else(|| panic!("no entry named {name:?}"))
}

fn strings(yaml: &Yaml) -> Vec<&str> {
    yaml.as_vec()
        .map(|items| items.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default()
}

fn after<'a>(args: &[&'a str], flag: &str) -> &'a str {
    let at = args
        .iter()
        .position(|arg| *arg == flag)
        .unwrap_or_else(|| panic!("{flag} in {args:?}"));
    args[at + 1]
}

fn mount_path<'a>(container: &'a Yaml, volume: &str) -> &'a str {
    named(&container["volumeMounts"], volume)["mountPath"]
        .as_str()
        .unwrap()
}

#[test]
fn the_kubernetes_example_is_consistent_and_renders_a_file_haproxy_accepts() {
    let docs = YamlLoader::load_from_str(&repo_file("packaging/kubernetes/haproxy-sidecar.yaml"))
        .expect("valid YAML");
    let kind = |k: &str| {
        docs.iter()
            .find(|doc| doc["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("a {k}"))
    };
    let config_map = kind("ConfigMap");
    let pod = &kind("Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["shareProcessNamespace"].as_bool(), Some(true));

    let haproxy = named(&pod["containers"], "haproxy");
    let terad = named(&pod["containers"], "terad");
    let init = named(&pod["initContainers"], "render");
    let haproxy_cmd = strings(&haproxy["command"]);
    assert!(
        haproxy_cmd.contains(&"-W"),
        "master-worker: {haproxy_cmd:?}"
    );
    let cfg = after(&haproxy_cmd, "-f");
    let pidfile = after(&haproxy_cmd, "-p");

    // One emptyDir, where HAProxy reads its file and writes its pidfile, shared by all three.
    let shared = named(&pod["volumes"], "haproxy-config");
    assert!(!shared["emptyDir"].is_badvalue(), "an emptyDir");
    let dir = mount_path(haproxy, "haproxy-config");
    assert_eq!(Path::new(cfg).parent().unwrap(), Path::new(dir));
    assert_eq!(Path::new(pidfile).parent().unwrap(), Path::new(dir));
    assert_eq!(mount_path(terad, "haproxy-config"), dir);
    assert_eq!(mount_path(init, "haproxy-config"), dir);

    // The ConfigMap is the confdir of both terad containers.
    let items = &named(&pod["volumes"], "terad-confdir")["configMap"]["items"];
    let item_path = |key: &str| {
        items
            .as_vec()
            .unwrap()
            .iter()
            .find(|item| item["key"].as_str() == Some(key))
            .and_then(|item| item["path"].as_str())
            .unwrap_or_else(|| panic!("item {key}"))
    };
    assert_eq!(item_path("haproxy.toml"), "conf.d/haproxy.toml");
    assert_eq!(item_path("haproxy.cfg.tmpl"), "templates/haproxy.cfg.tmpl");
    for container in [terad, init] {
        let confdir = mount_path(container, "terad-confdir");
        let env = named(&container["env"], "TERAD_CONFDIR")["value"].as_str();
        assert_eq!(env, Some(confdir));
    }
    assert!(strings(&init["command"]).contains(&"--onetime"));

    // terad watches and serves the probes on the port they name.
    let terad_cmd = strings(&terad["command"]);
    assert!(terad_cmd.contains(&"--watch"), "{terad_cmd:?}");
    let listen = after(&terad_cmd, "--listen");
    let port = named(&terad["ports"], "metrics")["containerPort"]
        .as_i64()
        .unwrap();
    // The pod IP, not every address: the downward API's status.podIP, expanded by Kubernetes.
    assert_eq!(listen, format!("$(POD_IP):{port}"));
    assert_eq!(
        named(&terad["env"], "POD_IP")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("status.podIP")
    );
    for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/health")] {
        assert_eq!(terad[probe]["httpGet"]["path"].as_str(), Some(path));
        assert_eq!(terad[probe]["httpGet"]["port"].as_str(), Some("metrics"));
    }
    // Same user in every container, so terad may signal HAProxy's master.
    assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(10001));

    let resource = config_map["data"]["haproxy.toml"].as_str().unwrap();
    let template = config_map["data"]["haproxy.cfg.tmpl"].as_str().unwrap();
    assert!(resource.contains(&format!(
        "reload_cmd = \"reload-haproxy.sh --if-running {pidfile}\""
    )));
    // The repository's template but for the unprivileged default port.
    assert_eq!(
        template,
        repo_file("templates/haproxy.cfg.tmpl").replace("default=\"80\"", "default=\"8080\"")
    );
    let rendered = render_once(
        resource,
        template,
        cfg,
        pidfile,
        "proxy:\n  frontend:\n    web1: 10.0.0.11:8080\n    web2: 10.0.0.12:8080\n",
    );
    assert!(rendered.contains("bind *:8080\n"), "{rendered}");
    assert!(rendered.contains("server web1 10.0.0.11:8080 check"));
    assert!(rendered.contains("server web2 10.0.0.12:8080 check"));
}

#[test]
fn the_haproxy_image_resource_matches_its_command_and_renders() {
    let dockerfile = repo_file("packaging/docker/Dockerfile");
    let cmd = dockerfile
        .lines()
        .skip_while(|line| !line.starts_with("FROM debian:bookworm-slim AS haproxy"))
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("the haproxy stage has a CMD");
    let args: Vec<&str> = cmd
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|arg| arg.trim_matches('"'))
        .collect();
    assert_eq!(args[..2], ["haproxy", "-W"]);
    let cfg = after(&args, "-f");
    let pidfile = after(&args, "-p");
    assert!(
        dockerfile.contains(&format!(
            "chown 10001:10001 /etc/haproxy {cfg} /run/haproxy"
        )),
        "the image user may replace {cfg}"
    );
    let resource = repo_file("packaging/docker/haproxy.toml");
    let rendered = render_once(
        &resource,
        &repo_file("templates/haproxy.cfg.tmpl"),
        cfg,
        pidfile,
        &repo_file("examples/haproxy-keys.yaml"),
    );
    assert!(rendered.contains("bind *:8080\n"), "{rendered}");
    assert!(rendered.contains("server web3 10.0.0.13:8080 check"));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = repo_file("packaging/systemd/terad.service");
    for directive in [
        "Type=notify",
        "ExecStart=/usr/bin/terad --watch --confdir /etc/terad",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "EnvironmentFile=-/etc/default/terad",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/etc/haproxy",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallArchitectures=native",
    ] {
        assert!(
            unit.lines().any(|line| line == directive),
            "{directive} missing"
        );
    }
    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd-analyze is missing: run ./scripts/install-deps.sh"
    );
    let fx = Fixture::new();
    let copy = fx.write(
        "terad.service",
        &unit.replace("/usr/bin/terad", env!("CARGO_BIN_EXE_terad")),
    );
    let output = run(
        Command::new("systemd-analyze").arg("verify").arg(&copy),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "", "no warnings");
}

/// What `scripts/build-deb.sh` packages as `man terad` and the bash completion comes from the
/// binary (`terad --generate …`): the page renders with `man` and documents the options with
/// their variables, and the completion, sourced as bash-completion sources it, completes
/// `terad --onet` to a flag terad has. (build-deb.sh checks the same on the packaged files.)
#[test]
fn the_man_page_renders_and_the_bash_completion_completes_a_real_flag() {
    let generate = |kind: &str| {
        let output = run(
            Command::new(env!("CARGO_BIN_EXE_terad")).args(["--generate", kind]),
            LIMIT,
        );
        assert!(output.status.success(), "{kind}: {}", stderr(&output));
        stdout(&output)
    };
    let fx = Fixture::new();
    let page = fx.write("terad.1", &generate("man"));
    let output = run(
        Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "100"),
        LIMIT,
    );
    assert!(
        output.status.success(),
        "man -l (man-db: ./scripts/install-deps.sh): {}",
        stderr(&output)
    );
    let text = stdout(&output);
    for expected in ["NAME", "terad", "--onetime", "TERAD_ONETIME", "register"] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }

    let completion = fx.write("terad.bash", &generate("complete-bash"));
    let output = run(
        Command::new("bash")
            .arg("-c")
            .arg(
                r#". "$1" && COMP_WORDS=(terad --onet) && COMP_CWORD=1 && _terad terad --onet terad && printf '%s\n' "${COMPREPLY[@]}""#,
            )
            .arg("bash")
            .arg(&completion),
        LIMIT,
    );
    assert_eq!(stdout(&output), "--onetime\n", "{}", stderr(&output));

    let script = repo_file("scripts/build-deb.sh");
    for packaged in [
        "/usr/share/man/man1/terad.1.gz",
        "/usr/share/bash-completion/completions/terad",
        "/usr/share/zsh/vendor-completions/_terad",
        "/usr/share/fish/vendor_completions.d/terad.fish",
    ] {
        assert!(
            script.contains(packaged),
            "build-deb.sh packages {packaged}"
        );
    }
}
