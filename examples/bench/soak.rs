//! `soak RATE SECONDS`: a steady stream of updates, and what terad holds before and after.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::example::{confdir, haproxy_entries, wait_initial_render};
use crate::harness::{memory_kb, terad_binary, threads_and_fds};
use crate::stores::{EtcdServer, etcd_connect, etcd_put, etcd_txn, put_many};

/// RATE key updates per second for SECONDS; with BATCH > 1 each request is a transaction of BATCH
/// puts (one etcd revision, one watch response carrying BATCH events), which is how writers that
/// update many keys at once reach rates a single etcd on two cores cannot take as separate puts.
pub fn soak(rate: usize, seconds: usize, batch: usize) {
    let terad = terad_binary();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let servers = 1000;
    let etcd = EtcdServer::start(&runtime);
    let mut client = etcd.client(&runtime);
    runtime.block_on(put_many(&mut client, haproxy_entries("80", servers)));

    let dir = tempfile::tempdir().unwrap();
    let dest = confdir(dir.path());
    let mut daemon = Command::new(&terad)
        .args([
            "--watch",
            "--log-level",
            "warn",
            "--backend",
            "etcd",
            "--node",
            &etcd.url,
        ])
        .arg("--confdir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    wait_initial_render(&dest, servers, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let (rss_start, _) = memory_kb(pid);
    let (threads_start, fds_start) = threads_and_fds(pid);

    // RATE updates per second from 32 concurrent writers, each on its own client.
    let writers = 32;
    let per_writer = rate as f64 / writers as f64 / batch as f64;
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let url = etcd.url.clone();
    let mut samples = Vec::new();
    let done = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..writers {
            let url = url.clone();
            tasks.spawn(async move {
                let client = etcd_connect(&url).await.unwrap();
                let interval = Duration::from_secs_f64(1.0 / per_writer);
                let mut next = tokio::time::Instant::now();
                let mut sent = 0usize;
                while Instant::now() < deadline {
                    let mut puts = Vec::with_capacity(batch);
                    for _ in 0..batch {
                        let i = (writer * 7919 + sent * 31) % servers;
                        let value = format!(
                            "172.{}.{}.{}:{}",
                            writer,
                            (sent >> 8) & 255,
                            sent & 255,
                            1000 + i
                        );
                        puts.push((format!("/proxy/frontend/web-{i:06}"), value));
                        sent += 1;
                    }
                    if let [(key, value)] = &puts[..] {
                        client.put(etcd_put(key, value)).await.unwrap();
                    } else {
                        let puts = puts
                            .iter()
                            .map(|(key, value)| (key.as_str(), value.as_str()));
                        client.txn(etcd_txn(puts)).await.unwrap();
                    }
                    next += interval;
                    tokio::time::sleep_until(next).await;
                }
                sent
            });
        }
        let mut total = 0;
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    Some(sent) => total += sent.unwrap(),
                    None => break,
                },
                _ = ticker.tick() => samples.push(memory_kb(pid).0),
            }
        }
        total
    });
    // Let terad settle on the last state.
    std::thread::sleep(Duration::from_secs(3));
    let (rss_end, peak) = memory_kb(pid);
    let (threads_end, fds_end) = threads_and_fds(pid);
    let final_file = std::fs::read_to_string(&dest).unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();

    // The render of the final store, by a fresh one-shot into another directory.
    let check_dir = tempfile::tempdir().unwrap();
    let check_dest = confdir(check_dir.path());
    let output = Command::new(&terad)
        .args([
            "--onetime",
            "--sync-only",
            "--log-level",
            "error",
            "--backend",
            "etcd",
            "--node",
            &etcd.url,
        ])
        .arg("--confdir")
        .arg(check_dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let expected = std::fs::read_to_string(&check_dest).unwrap();

    println!(
        "| updates sent (puts per request: {batch}) | achieved rate | RSS start | RSS end | RSS max sampled | RSS peak | threads start/end | open fds start/end | final file = render of final store |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {done} in {seconds} s | {:.0}/s | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {threads_start}/{threads_end} | {fds_start}/{fds_end} | {} |",
        done as f64 / seconds as f64,
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        samples.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        peak as f64 / 1024.0,
        if final_file == expected { "yes" } else { "NO" }
    );
}
