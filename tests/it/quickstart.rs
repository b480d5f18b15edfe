//! The README's first commands, run as a visitor runs them from a fresh clone: the repository is
//! the confdir, nothing is installed, nothing is written.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{run, stderr, stdout};

/// Every `cargo run --release -- …` line in the README, with the arguments after `--`.
fn readme_commands() -> Vec<Vec<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| line.trim().strip_prefix("cargo run --release -- "))
        .map(|args| args.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Issue 27: the repository's own confdir held a resource that needs Consul and wrote the same
/// destination as the HAProxy example, so the first command a visitor ran exited 2.
#[test]
fn the_readme_quick_start_commands_succeed_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let commands = readme_commands();
    assert!(
        commands.len() >= 2,
        "the README shows the Tera and the confd quick start: {commands:?}"
    );
    for args in commands {
        assert!(
            args.iter().any(|arg| arg.trim_start_matches('-') == "noop"),
            "a quick start command must not write /etc: {args:?}"
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_terad"));
        command
            .args(&args)
            .current_dir(root)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        for (name, _) in std::env::vars() {
            if name.starts_with("TERAD_") || name.starts_with("CONSUL_HTTP") {
                command.env_remove(name);
            }
        }
        let output = run(&mut command, Duration::from_secs(30));
        assert!(
            output.status.success(),
            "{args:?} exited {:?}: {}",
            output.status.code(),
            stderr(&output)
        );
        assert!(
            stdout(&output).contains("server web1 10.0.0.11:8080 check"),
            "{args:?} printed the rendered HAProxy configuration: {}",
            stdout(&output)
        );
    }
}
