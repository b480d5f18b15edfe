//! `etcd` and `consul`: one-shot, put → file, memory while watching, and the reloads of bursts.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::example::{confdir, haproxy_entries, wait_initial_render};
use crate::harness::{DirEvents, memory_kb, ms, percentile, terad_binary, time_onetime};
use crate::stores::Store;

pub fn watch_bench(kind: &str, sizes: &[usize]) {
    let terad = terad_binary();
    println!(
        "| servers | one-shot median | put → file p50 | p99 | (put RPC alone p50) | RSS while watching (max sampled) | RSS peak (VmHWM) | reloads for 200 updates | reloads for 200 updates over 1 s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // One runtime for every client call: a client's connection lives on the runtime it was
    // made on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for &servers in sizes {
        let mut store = Store::start(kind, &runtime);
        store.load(&runtime, haproxy_entries("80", servers));

        let dir = tempfile::tempdir().unwrap();
        let dest = confdir(dir.path());
        let terad_command = |mode: &str| {
            let mut command = Command::new(&terad);
            command
                .args([
                    mode,
                    "--log-level",
                    "error",
                    "--backend",
                    kind,
                    "--node",
                    &store.url(),
                ])
                .arg("--confdir")
                .arg(dir.path());
            command
        };
        let runs = if servers >= 100_000 { 10 } else { 30 };
        let onetime = time_onetime(
            || {
                let mut command = terad_command("--onetime");
                command.arg("--sync-only");
                command
            },
            &dest,
            runs,
        );

        // Watch mode.
        let _ = std::fs::remove_file(&dest);
        let mut daemon = terad_command("--watch")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = daemon.id();
        wait_initial_render(&dest, servers, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(500));

        let events = DirEvents::watch(dest.parent().unwrap());

        let iterations = match servers {
            s if s >= 100_000 => 30,
            s if s >= 10_000 => 100,
            _ => 200,
        };
        let mut latencies = Vec::with_capacity(iterations);
        let mut put_rpcs = Vec::with_capacity(iterations);
        let mut sampled_rss = 0;
        for i in 0..iterations {
            let key = format!("/proxy/frontend/web-{:06}", (i * 7919) % servers);
            let value = format!("192.168.{}.{}:{}", i / 250, i % 250, 9000 + i);
            events.drain();
            let t0 = Instant::now();
            store.put(&runtime, &key, &value);
            put_rpcs.push(t0.elapsed());
            events.until(&dest, Duration::from_secs(30), |t| t.contains(&value));
            latencies.push(t0.elapsed());
            sampled_rss = sampled_rss.max(memory_kb(pid).0);
            std::thread::sleep(Duration::from_millis(20));
        }
        latencies.sort();
        put_rpcs.sort();
        // Let the renders settle, then read memory as an idle sidecar has it.
        std::thread::sleep(Duration::from_millis(500));
        let (idle_rss, peak) = memory_kb(pid);
        sampled_rss = sampled_rss.max(idle_rss);

        // Burst: 200 updates as fast as one client can send them.
        let reloads = dir.path().join("reloads.log");
        let before = std::fs::read_to_string(&reloads)
            .unwrap_or_default()
            .lines()
            .count();
        let mut last = String::new();
        for i in 0..200 {
            let key = format!("/proxy/frontend/web-{:06}", i % servers);
            last = format!("172.16.{}.{}:7000", i / 250, i % 250);
            store.put(&runtime, &key, &last);
        }
        let started = Instant::now();
        while !std::fs::read_to_string(&dest).is_ok_and(|t| t.contains(&last)) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "burst not applied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_secs(2));
        let count_reloads = || {
            std::fs::read_to_string(&reloads)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let burst_reloads = count_reloads() - before;

        // The same 200 updates spread over 1 s (one every 5 ms): each may find the last one
        // written and its reload done, which is how a stream of registrations becomes a
        // reload storm without spacing (issue 27: 197 reloads).
        let before = count_reloads();
        let started = Instant::now();
        for i in 0..200u32 {
            let key = format!("/proxy/frontend/web-{:06}", i as usize % servers);
            last = format!("172.17.{}.{}:7000", i / 250, i % 250);
            store.put(&runtime, &key, &last);
            let due = started + Duration::from_millis(5 * u64::from(i + 1));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        while !std::fs::read_to_string(&dest).is_ok_and(|t| t.contains(&last)) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "spread burst not applied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_secs(2));
        let spread_reloads = count_reloads() - before;

        let _ = daemon.kill();
        let _ = daemon.wait();
        println!(
            "| {servers} | {} | {} | {} | ({}) | {:.1} MiB | {:.1} MiB | {burst_reloads} | {spread_reloads} |",
            ms(percentile(&onetime, 50)),
            ms(percentile(&latencies, 50)),
            ms(percentile(&latencies, 99)),
            ms(percentile(&put_rpcs, 50)),
            sampled_rss as f64 / 1024.0,
            peak as f64 / 1024.0,
        );
    }
}
