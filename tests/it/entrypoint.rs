//! The container entrypoint (packaging/docker/entrypoint.sh) with the real terad binary and the
//! file backend: a good render becomes the service, a failed one never starts it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Fixture, stderr, stdout, wait_output};

const LIMIT: Duration = Duration::from_secs(20);
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/docker/entrypoint.sh"
);

/// A confdir rendering `/app/name` into `out/app.conf`, keys in `keys.yaml`.
fn fixture(template: &str) -> Fixture {
    let fx = Fixture::new();
    fx.write("keys.yaml", "app:\n  name: demo\n  port: \"8080\"\n");
    fx.template("app.tmpl", template);
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\n",
            fx.path("out/app.conf").display()
        ),
    );
    fx
}

/// The entrypoint with a clean environment: no TERAD_* settings from the developer's shell.
fn entrypoint(fx: &Fixture) -> Command {
    let mut command = Command::new(SCRIPT);
    for (name, _) in std::env::vars() {
        if name.starts_with("TERAD_") || name.starts_with("CONSUL_HTTP") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env("TERAD_BIN", env!("CARGO_BIN_EXE_terad"))
        .env(
            "TERAD_ONETIME_ARGS",
            format!(
                "--backend file --file {} --confdir {}",
                fx.path("keys.yaml").display(),
                fx.root().display()
            ),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A service that proves it ran: it leaves a marker, prints its PID and the rendered file.
fn service(command: &mut Command, fx: &Fixture) {
    command.args([
        "sh",
        "-c",
        "touch \"$1\"; echo service-started; echo \"pid $$\"; cat \"$2\"",
        "service",
    ]);
    command
        .arg(fx.path("service-ran"))
        .arg(fx.path("out/app.conf"));
}

#[test]
fn a_good_render_execs_the_service_in_place_of_the_script() {
    let fx = fixture("name={{ getv(key=\"/app/name\") }} port={{ getv(key=\"/app/port\") }}\n");
    let mut command = entrypoint(&fx);
    // terad found on PATH (no TERAD_BIN), its settings split between TERAD_ONETIME_ARGS and
    // TERAD_* variables it reads itself.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_terad")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    command
        .env_remove("TERAD_BIN")
        .env("PATH", path)
        .env(
            "TERAD_ONETIME_ARGS",
            format!("--backend file  --confdir {}", fx.root().display()),
        )
        .env("TERAD_FILE", fx.path("keys.yaml"))
        .env("TERAD_LOG_LEVEL", "warn");
    service(&mut command, &fx);
    let child = command.spawn().unwrap();
    let pid = child.id();
    let output = wait_output(child, LIMIT);
    let out = stdout(&output);
    assert!(
        output.status.success(),
        "{:?}\n{out}\n{}",
        output.status,
        stderr(&output)
    );
    assert_eq!(
        out,
        format!("service-started\npid {pid}\nname=demo port=8080\n"),
        "the service ran with the script's PID (exec), after the render"
    );
    assert!(fx.path("service-ran").exists());
    // TERAD_LOG_LEVEL=warn reached terad: its info lines ("… written") are gone.
    assert!(
        !stderr(&output).contains("INFO"),
        "terad logged at info despite TERAD_LOG_LEVEL=warn:\n{}",
        stderr(&output)
    );
}

#[test]
fn the_service_exit_status_is_the_containers() {
    let fx = fixture("name={{ getv(key=\"/app/name\") }}\n");
    let mut command = entrypoint(&fx);
    command.args(["sh", "-c", "exit 7"]);
    let output = wait_output(command.spawn().unwrap(), LIMIT);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "name=demo\n");
}

#[test]
fn a_failed_render_exits_with_terads_status_and_never_starts_the_service() {
    let fx = fixture("name={{ getv(key=\"/app/missing\") }}\n");
    let mut command = entrypoint(&fx);
    service(&mut command, &fx);
    let output = wait_output(command.spawn().unwrap(), LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/app/missing"),
        "terad's own error names the key:\n{err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last, "entrypoint: terad --onetime exited with status 1; not starting sh",
        "{err}"
    );
    assert_eq!(
        err.matches("entrypoint:").count(),
        1,
        "one line of its own:\n{err}"
    );
    assert!(!stdout(&output).contains("service-started"));
    assert!(!fx.path("service-ran").exists(), "the service never ran");
    assert!(!fx.path("out/app.conf").exists());
}

#[test]
fn a_configuration_error_exits_2_and_never_starts_the_service() {
    let fx = fixture("name={{ getv(key=\"/app/name\") }}\n");
    // A resource without `dest`, and an unknown key.
    fx.resource("broken.toml", "[template]\nsrc = \"app.tmpl\"\nport = 1\n");
    let mut command = entrypoint(&fx);
    service(&mut command, &fx);
    let output = wait_output(command.spawn().unwrap(), LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.toml"), "terad names the file:\n{err}");
    assert!(
        err.ends_with("entrypoint: terad --onetime exited with status 2; not starting sh\n"),
        "{err}"
    );
    assert!(!fx.path("service-ran").exists(), "the service never ran");
    assert!(!fx.path("out/app.conf").exists(), "nothing was written");
}

#[test]
fn no_service_command_is_an_error_before_terad_runs() {
    let fx = fixture("name={{ getv(key=\"/app/name\") }}\n");
    let output = wait_output(entrypoint(&fx).spawn().unwrap(), LIMIT);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("no service command"), "{err}");
    assert!(!fx.path("out/app.conf").exists(), "terad did not run");
}
