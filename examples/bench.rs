//! End-to-end benchmark of the terad binary with the HAProxy example. Not a test: it measures.
//!
//! ```sh
//! cargo build --release && cargo run --release --example bench -- onetime-file 1000 100000
//! ```
//!
//! `onetime-file N…`: one-shot wall time (min / median / p90 over repeated runs) and peak RSS
//! for N servers registered in a YAML keys file. Results print as Markdown table rows for
//! BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, sizes)) = args.split_first() else {
        eprintln!("usage: bench onetime-file N…");
        std::process::exit(2);
    };
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|s| s.parse().expect("a number of servers"))
        .collect();
    match mode.as_str() {
        "onetime-file" => onetime_file(&sizes),
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}

fn terad_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/release/terad");
    assert!(binary.exists(), "build it first: cargo build --release");
    binary
}

/// A confdir with the repository's HAProxy template and a resource writing into `out/`.
fn confdir(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::copy(
        root.join("templates/haproxy.cfg.tmpl"),
        dir.join("templates/haproxy.cfg.tmpl"),
    )
    .unwrap();
    let dest = dir.join("out/haproxy.cfg");
    std::fs::write(
        dir.join("conf.d/haproxy.toml"),
        format!(
            "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\n",
            dest.display()
        ),
    )
    .unwrap();
    dest
}

fn server_address(i: usize) -> String {
    format!(
        "10.{}.{}.{}:8080",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn onetime_file(sizes: &[usize]) {
    let terad = terad_binary();
    println!("| servers | keys file | one-shot min | median | p90 | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for &servers in sizes {
        let dir = tempfile::tempdir().unwrap();
        let dest = confdir(dir.path());
        let keys = dir.path().join("keys.yaml");
        let mut yaml = String::from("proxy:\n  port: \"80\"\n  frontend:\n");
        for i in 0..servers {
            yaml.push_str(&format!("    web-{i:06}: {}\n", server_address(i)));
        }
        std::fs::write(&keys, &yaml).unwrap();
        let runs = if servers >= 100_000 { 10 } else { 30 };
        let run = |wrapper: Option<&str>| {
            // Every run renders and writes: a one-shot in a fresh container has no file yet.
            let _ = std::fs::remove_file(&dest);
            let mut command = match wrapper {
                Some(wrapper) => {
                    let mut command = Command::new(wrapper);
                    command.args(["-f", "%M"]).arg(&terad);
                    command
                }
                None => Command::new(&terad),
            };
            command
                .args([
                    "--onetime",
                    "--log-level",
                    "error",
                    "--backend",
                    "file",
                    "--file",
                ])
                .arg(&keys)
                .arg("--confdir")
                .arg(dir.path());
            let started = Instant::now();
            let output = command.output().expect("run terad");
            let elapsed = started.elapsed();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            (
                elapsed,
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        };
        let mut times: Vec<Duration> = (0..runs).map(|_| run(None).0).collect();
        // Peak RSS from GNU time in one extra run (timing it would include time's own start).
        let (_, report) = run(Some("/usr/bin/time"));
        let peak_kb: u64 = report
            .trim()
            .lines()
            .last()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0);
        times.sort();
        println!(
            "| {servers} | {} KiB | {} | {} | {} | {:.1} MiB |",
            yaml.len() / 1024,
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() * 9 / 10]),
            peak_kb as f64 / 1024.0
        );
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
