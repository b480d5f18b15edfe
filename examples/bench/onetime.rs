//! The one-shot modes: `onetime-file`, `onetime-haproxy` (the container entrypoint, with
//! `haproxy -c`) and `onetime-etcd` (the Tera and Go templates turn by turn).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::example::{Engine, confdir, confdir_with, haproxy_entries};
use crate::harness::{ms, peak_rss_kb, percentile, server_address, terad_binary, time_onetime};
use crate::stores::Store;

pub fn onetime_file(sizes: &[usize]) {
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
        let make = || {
            let mut command = Command::new(&terad);
            command
                .args([
                    "--onetime",
                    "--sync-only",
                    "--log-level",
                    "error",
                    "--backend",
                    "file",
                    "--file",
                ])
                .arg(&keys)
                .arg("--confdir")
                .arg(dir.path());
            command
        };
        let runs = if servers >= 100_000 { 10 } else { 30 };
        let times = time_onetime(make, &dest, runs);
        let peak_kb = peak_rss_kb(&mut make());
        println!(
            "| {servers} | {} KiB | {} | {} | {} | {:.1} MiB |",
            yaml.len() / 1024,
            ms(times[0]),
            ms(percentile(&times, 50)),
            ms(percentile(&times, 90)),
            peak_kb as f64 / 1024.0
        );
    }
}

pub fn onetime_haproxy(sizes: &[usize]) {
    let terad = terad_binary();
    println!(
        "| servers | terad --onetime (render + haproxy -c + swap) median | p90 | haproxy -c alone median |"
    );
    println!("|---|---|---|---|");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for &servers in sizes {
        let mut store = Store::start("etcd", &runtime);
        store.load(&runtime, haproxy_entries("8080", servers));
        let dir = tempfile::tempdir().unwrap();
        let dest = confdir(dir.path());
        // The shipped resource's check; no HAProxy is running, so no reload.
        std::fs::write(
            dir.path().join("conf.d/haproxy.toml"),
            format!(
                "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\ncheck_cmd = \"haproxy -c -f {{{{.src}}}}\"\n",
                dest.display()
            ),
        )
        .unwrap();
        let runs = 30;
        let onetime = time_onetime(
            || {
                let mut command = Command::new(&terad);
                command
                    .args([
                        "--onetime",
                        "--log-level",
                        "error",
                        "--backend",
                        "etcd",
                        "--node",
                    ])
                    .arg(store.url())
                    .arg("--confdir")
                    .arg(dir.path());
                command
            },
            &dest,
            runs,
        );
        let mut check: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let status = Command::new("haproxy")
                    .args(["-c", "-q", "-f"])
                    .arg(&dest)
                    .status()
                    .expect("haproxy");
                assert!(status.success());
                started.elapsed()
            })
            .collect();
        check.sort();
        println!(
            "| {servers} | {} | {} | {} |",
            ms(percentile(&onetime, 50)),
            ms(percentile(&onetime, 90)),
            ms(percentile(&check, 50))
        );
    }
}

/// One-shot from etcd, Tera and Go templates side by side against the same etcd, alternating
/// run by run so that both see the same machine.
pub fn onetime_etcd(sizes: &[usize]) {
    let terad = terad_binary();
    println!("| servers | template | one-shot min | median | p90 |");
    println!("|---|---|---|---|---|");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for &servers in sizes {
        let mut store = Store::start("etcd", &runtime);
        store.load(&runtime, haproxy_entries("80", servers));
        let engines = [Engine::Tera, Engine::Go];
        let dirs: Vec<tempfile::TempDir> = engines
            .iter()
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let dests: Vec<PathBuf> = engines
            .iter()
            .zip(&dirs)
            .map(|(&engine, dir)| confdir_with(dir.path(), engine))
            .collect();
        let runs = if servers >= 100_000 { 10 } else { 30 };
        let mut times = vec![Vec::with_capacity(runs); engines.len()];
        for _ in 0..runs {
            for (i, dir) in dirs.iter().enumerate() {
                let make = || {
                    let mut command = Command::new(&terad);
                    command
                        .args([
                            "--onetime",
                            "--sync-only",
                            "--log-level",
                            "error",
                            "--backend",
                            "etcd",
                            "--node",
                        ])
                        .arg(store.url())
                        .arg("--confdir")
                        .arg(dir.path());
                    command
                };
                times[i].extend(time_onetime(make, &dests[i], 1));
            }
        }
        let rendered: Vec<Vec<u8>> = dests.iter().map(|d| std::fs::read(d).unwrap()).collect();
        assert!(
            rendered.windows(2).all(|w| w[0] == w[1]),
            "the Tera and Go templates wrote different files"
        );
        for (engine, times) in engines.iter().zip(&mut times) {
            times.sort();
            println!(
                "| {servers} | {} | {} | {} | {} |",
                engine.name(),
                ms(times[0]),
                ms(percentile(times, 50)),
                ms(percentile(times, 90)),
            );
        }
    }
}
