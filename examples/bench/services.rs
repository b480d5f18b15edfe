//! `consul-services`: health change → file with N instances of one service, and memory with
//! 50 services watched.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    ConsulServer, DirEvents, consul_api, memory_kb, ms, percentile, raw_get, register_instances,
    terad_binary, threads_and_fds,
};

/// Health change → file, with N instances of one service; then RSS with 50 services watched.
/// `terad --watch` against the Consul agent at `url`, with the confdir `confdir`, quiet.
pub fn watch_consul(terad: &Path, url: &str, confdir: &Path) -> Child {
    Command::new(terad)
        .args([
            "--watch",
            "--log-level",
            "error",
            "--backend",
            "consul",
            "--node",
            url,
        ])
        .arg("--confdir")
        .arg(confdir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub fn services_bench(sizes: &[usize]) {
    let terad = terad_binary();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    println!(
        "| instances | health change → file p50 | leaves / returns p50 | p99 | (check update alone p50) | Consul's blocking answer alone p50: state/critical (health/service?passing) | RSS while watching | RSS peak (VmHWM) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &instances in sizes {
        let server = ConsulServer::start(&runtime);
        register_instances(&runtime, &client, &server, "web", instances);
        let dir = tempfile::tempdir().unwrap();
        for sub in ["conf.d", "templates", "out"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::copy(
            root.join("examples/consul-services/templates/haproxy-services.cfg.tmpl"),
            dir.path().join("templates/haproxy-services.cfg.tmpl"),
        )
        .unwrap();
        let dest = dir.path().join("out/haproxy.cfg");
        std::fs::write(
            dir.path().join("conf.d/haproxy.toml"),
            format!(
                "[template]\nsrc = \"haproxy-services.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy/port\"]\nreload_cmd = \"echo reload >> {}\"\n",
                dest.display(),
                dir.path().join("reloads.log").display()
            ),
        )
        .unwrap();
        let mut daemon = watch_consul(&terad, &server.url, dir.path());
        let pid = daemon.id();
        let last = format!("server web-{:06} ", instances - 1);
        let started = Instant::now();
        while !std::fs::read_to_string(&dest).is_ok_and(|t| t.contains(&last)) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no initial render"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(500));

        let events = DirEvents::watch(dest.parent().unwrap());

        let samples = 100;
        let mut latencies = Vec::with_capacity(samples);
        // Split by direction: a check failing (the instance leaves) or passing (it returns).
        let (mut leaves, mut returns) = (Vec::new(), Vec::new());
        let mut updates = Vec::with_capacity(samples);
        let mut sampled_rss = 0;
        for i in 0..samples {
            // Each instance fails, then passes again: the line leaves, then comes back.
            let k = (i / 2 * 7919) % instances;
            let failing = i % 2 == 0;
            let line = format!("server web-{k:06} ");
            events.drain();
            let t0 = Instant::now();
            consul_api(
                &runtime,
                &client,
                &server,
                reqwest::Method::PUT,
                &format!(
                    "/v1/agent/check/{}/check-web-{k}",
                    if failing { "fail" } else { "pass" }
                ),
                String::new(),
            );
            updates.push(t0.elapsed());
            events.until(&dest, Duration::from_secs(30), |t| {
                t.contains(&line) != failing
            });
            latencies.push(t0.elapsed());
            if failing {
                leaves.push(t0.elapsed());
            } else {
                returns.push(t0.elapsed());
            }
            sampled_rss = sampled_rss.max(memory_kb(pid).0);
            std::thread::sleep(Duration::from_millis(20));
        }
        latencies.sort();
        leaves.sort();
        returns.sort();
        updates.sort();
        std::thread::sleep(Duration::from_millis(500));
        let (idle_rss, peak) = memory_kb(pid);
        sampled_rss = sampled_rss.max(idle_rss);
        let _ = daemon.kill();
        let _ = daemon.wait();

        // The same changes with terad gone and a bare client blocking on what terad's watch
        // blocks on for a check flip (`/v1/health/state/critical`; the catalog query does not
        // wake): how long Consul itself takes to answer, for reference. And the same for the
        // all-in-one `/v1/health/service/web?passing` that one-shot runs read.
        let addr = server.url.trim_start_matches("http://").to_owned();
        let mut consul_alone = Vec::with_capacity(samples);
        let mut health_service_alone = Vec::with_capacity(samples);
        for i in 0..samples {
            let k = (i / 2 * 7919) % instances;
            let failing = i % 2 == 0;
            let query = if i % 4 < 2 {
                "/v1/health/state/critical?"
            } else {
                "/v1/health/service/web?passing&"
            };
            let (index, _) = raw_get(&addr, query.trim_end_matches(['?', '&']));
            let blocking = {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    raw_get(&addr, &format!("{query}index={index}&wait=30s")).1
                })
            };
            std::thread::sleep(Duration::from_millis(50));
            let t0 = Instant::now();
            consul_api(
                &runtime,
                &client,
                &server,
                reqwest::Method::PUT,
                &format!(
                    "/v1/agent/check/{}/check-web-{k}",
                    if failing { "fail" } else { "pass" }
                ),
                String::new(),
            );
            let answered = blocking.join().unwrap().saturating_duration_since(t0);
            if i % 4 < 2 {
                consul_alone.push(answered);
            } else {
                health_service_alone.push(answered);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        health_service_alone.sort();
        consul_alone.sort();
        println!(
            "| {instances} | {} | {} / {} | {} | ({}) | {} ({}) | {:.1} MiB | {:.1} MiB |",
            ms(percentile(&latencies, 50)),
            ms(percentile(&leaves, 50)),
            ms(percentile(&returns, 50)),
            ms(percentile(&latencies, 99)),
            ms(percentile(&updates, 50)),
            ms(percentile(&consul_alone, 50)),
            ms(percentile(&health_service_alone, 50)),
            sampled_rss as f64 / 1024.0,
            peak as f64 / 1024.0,
        );
    }

    // 50 services of 10 instances each, all in one template: 50 blocking queries.
    let services = 50;
    let server = ConsulServer::start(&runtime);
    for s in 0..services {
        register_instances(&runtime, &client, &server, &format!("svc-{s:02}"), 10);
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["conf.d", "templates", "out"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let mut template = String::new();
    for s in 0..services {
        template.push_str(&format!(
            "backend svc-{s:02}\n{{% for i in service(name=\"svc-{s:02}\") %}}    server {{{{ i.id }}}} {{{{ i.address }}}}:{{{{ i.port }}}}\n{{% endfor %}}"
        ));
    }
    std::fs::write(dir.path().join("templates/many.tmpl"), template).unwrap();
    let dest = dir.path().join("out/many.cfg");
    std::fs::write(
        dir.path().join("conf.d/many.toml"),
        format!(
            "[template]\nsrc = \"many.tmpl\"\ndest = \"{}\"\n",
            dest.display()
        ),
    )
    .unwrap();
    let mut daemon = watch_consul(&terad, &server.url, dir.path());
    let pid = daemon.id();
    let started = Instant::now();
    while !std::fs::read_to_string(&dest).is_ok_and(|t| t.contains("server svc-49-000009 ")) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no initial render"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A few health changes spread over the services, then idle.
    for s in 0..10 {
        let check = format!("/v1/agent/check/fail/check-svc-{:02}-3", s * 5);
        consul_api(
            &runtime,
            &client,
            &server,
            reqwest::Method::PUT,
            &check,
            String::new(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (rss, peak) = memory_kb(pid);
    let (threads, fds) = threads_and_fds(pid);
    let _ = daemon.kill();
    let _ = daemon.wait();
    println!();
    println!(
        "| watched services | instances | RSS while watching | RSS peak (VmHWM) | threads | open fds |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {services} | {} | {:.1} MiB | {:.1} MiB | {threads} | {fds} |",
        services * 10,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
