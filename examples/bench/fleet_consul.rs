//! `fleet-consul`: the fleet on 3 Consul servers and a client agent, its cost counted from the
//! agents' statsd lines.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consul_cluster;
use crate::example::{haproxy_entries, wait_initial_render};
use crate::fleet::{FleetWriter, burst, cpu_of, fan_out, fan_out_rounds, spawn_fleet, watch_dests};
use crate::harness::{consul_put_many, memory_kb, ms, percentile, pss_kb, terad_binary};

/// A KV write through the agent at `url`; panics unless it is taken.
pub async fn consul_put(http: &reqwest::Client, url: &str, key: &str, value: &str) {
    let response = http
        .put(format!("{url}/v1/kv/{}", key.trim_start_matches('/')))
        .body(value.to_owned())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "put {key}: {}",
        response.status()
    );
}

/// Counters the Consul agents send as statsd lines (`telemetry { statsd_address }`), each
/// timestamped as it arrives. Consul 1.8's own metrics endpoint only serves 10 s intervals;
/// its statsd sink flushes every 100 ms, fine enough for a busiest second.
pub struct StatsdCounts {
    pub address: std::net::SocketAddr,
    pub seen: Arc<std::sync::Mutex<Vec<(Instant, &'static str)>>>,
}

/// The counters [`StatsdCounts`] keeps (a trailing `.` takes every name under it): the client
/// agent's RPCs to the servers, and the GET requests the agents answer, each a
/// `consul.http.GET.<path>` timer sample. The fleet only reads; the benchmark only writes.
pub const STATSD_COUNTERS: [&str; 2] = ["consul.client.rpc", "consul.http.GET."];

impl StatsdCounts {
    pub fn listen() -> StatsdCounts {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buffer) {
                let at = Instant::now();
                let text = String::from_utf8_lossy(&buffer[..n]);
                let mut sink = sink.lock().unwrap();
                for line in text.lines() {
                    // `name:value|type`: a counter's value is its increment; a timer's line is
                    // one sample, one request.
                    let Some((name, rest)) = line.split_once(':') else {
                        continue;
                    };
                    let Some(counter) = STATSD_COUNTERS
                        .iter()
                        .find(|c| name == **c || (c.ends_with('.') && name.starts_with(*c)))
                    else {
                        continue;
                    };
                    let increment = match rest.split_once('|') {
                        Some((value, "c")) => value.parse::<f64>().unwrap_or(0.0) as usize,
                        _ => 1,
                    };
                    sink.extend(std::iter::repeat_n((at, *counter), increment));
                }
            }
        });
        StatsdCounts { address, seen }
    }

    /// How many `counter` events arrived between `from` and `to`, and the most in any 1 s.
    pub fn between(&self, counter: &str, from: Instant, to: Instant) -> (usize, usize) {
        let times: Vec<Instant> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, name)| *name == counter && *at >= from && *at <= to)
            .map(|(at, _)| *at)
            .collect();
        let mut busiest = 0;
        let mut first = 0;
        for (last, at) in times.iter().enumerate() {
            while at.duration_since(times[first]) >= Duration::from_secs(1) {
                first += 1;
            }
            busiest = busiest.max(last + 1 - first);
        }
        (times.len(), busiest)
    }
}

/// Writes through the agents `via` in turn, every 20 ms until one takes it; returns when the
/// write is committed.
pub fn put_through(
    cluster: &consul_cluster::ConsulCluster,
    via: &[usize],
    key: &str,
    value: &str,
) -> Instant {
    let started = Instant::now();
    loop {
        if via.iter().any(|&i| cluster.put_via(i, key, value)) {
            return Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no server took a write of {key}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Established TCP connections to `port` on loopback (the fleet's connections to an agent).
pub fn connections_to(port: u16) -> usize {
    let output = Command::new("ss")
        .args(["-Htn", "state", "established"])
        .arg(format!("( dport = :{port} )"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).lines().count()
}

/// Issue 15's fleet on Consul: INSTANCES terad processes, each given the client agent first and
/// then the three servers, watching one prefix of SERVERS servers.
pub fn fleet_consul(instances: usize, servers: usize, rounds: usize) {
    use consul_cluster::{CLIENT, ConsulCluster};
    let terad = terad_binary();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let statsd = StatsdCounts::listen();
    let mut cluster = ConsulCluster::start_with(&format!(
        "telemetry {{\n  statsd_address = \"{}\"\n}}\n",
        statsd.address
    ));
    let http = reqwest::Client::new();
    let agent = cluster.url(CLIENT);
    runtime.block_on(consul_put_many(
        &agent,
        &http,
        haproxy_entries("80", servers),
    ));
    let consul_pids = cluster.pids();

    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (children, dest_list) = spawn_fleet(
        &terad,
        root.path(),
        instances,
        "consul",
        &cluster.terad_nodes(),
        |_| String::new(),
    );
    for dest in &dest_list {
        wait_initial_render(dest, servers, Duration::from_secs(300));
    }
    let all_rendered = started.elapsed();
    let dests: std::collections::HashSet<PathBuf> = dest_list.iter().cloned().collect();
    std::thread::sleep(Duration::from_secs(2));
    let (_watcher, events) = watch_dests(&dests);

    let agent_port: u16 = agent.rsplit(':').next().unwrap().parse().unwrap();
    let connections = connections_to(agent_port);
    let cpu_before = cpu_of(&consul_pids);
    let terad_pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    let terad_cpu_before = cpu_of(&terad_pids);
    let idle_from = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let idle_store_cpu = cpu_of(&consul_pids).saturating_sub(cpu_before);
    let idle_fleet_cpu = cpu_of(&terad_pids).saturating_sub(terad_cpu_before);
    let idle_window = idle_from.elapsed();
    let idle_rate = |counter: &str| {
        statsd
            .between(counter, idle_from, idle_from + idle_window)
            .0 as f64
            / idle_window.as_secs_f64()
    };
    let (idle_rpcs, idle_reads) = (
        idle_rate("consul.client.rpc"),
        idle_rate("consul.http.GET."),
    );

    let writer = FleetWriter::Consul {
        http: http.clone(),
        url: agent.clone(),
    };
    let (all, _) = fan_out_rounds(&runtime, &writer, &events, &dests, servers, rounds);
    let cpu_before = cpu_of(&consul_pids);
    let (_, sent, burst) = burst(&runtime, &writer, &events, &dests, servers);
    let burst_store_cpu = cpu_of(&consul_pids).saturating_sub(cpu_before);

    // A blip: the leader server is killed and restarted 3 s later.
    std::thread::sleep(Duration::from_secs(2));
    let leader = cluster.leader().expect("a leader");
    while events.try_recv().is_ok() {}
    let blip = Instant::now();
    cluster.kill(leader);
    let value = "10.99.99.99:9999".to_owned();
    // Written through the surviving servers, so the client agent's RPCs are the fleet's.
    let survivors: Vec<usize> = (0..3).filter(|&s| s != leader).collect();
    let committed = put_through(&cluster, &survivors, "/proxy/frontend/web-000000", &value) - blip;
    let mut after_blip = fan_out(&events, &dests, &[value], blip, Duration::from_secs(120));
    after_blip.sort();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(blip.elapsed()));
    cluster.restart(leader);
    // The restarted server's catch-up, and a last statsd flush.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(blip.elapsed()));
    let blip_window = blip.elapsed();
    let blip_counts = |counter: &str| statsd.between(counter, blip, blip + blip_window);
    let (rpcs, rpc_peak) = blip_counts("consul.client.rpc");
    let (reads, read_peak) = blip_counts("consul.http.GET.");

    let rss: Vec<u64> = terad_pids.iter().map(|&pid| memory_kb(pid).0).collect();
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1024.0;
    let rss_max = *rss.iter().max().unwrap() as f64 / 1024.0;
    let pss: Vec<(u64, u64)> = terad_pids.iter().map(|&pid| pss_kb(pid)).collect();
    let pss_mean = pss.iter().map(|p| p.0).sum::<u64>() as f64 / pss.len() as f64 / 1024.0;
    let anon_mean = pss.iter().map(|p| p.1).sum::<u64>() as f64 / pss.len() as f64 / 1024.0;
    drop(children);

    println!(
        "fleet: {instances} terad processes, {servers} servers, 3 Consul servers and a client agent (every instance on the client agent first)"
    );
    println!(
        "every instance rendered {:.1} s after the first was started",
        all_rendered.as_secs_f64()
    );
    println!(
        "fan-out, one put to every file, {rounds} puts x {instances} files: p50 {}, p99 {}, max {}",
        ms(percentile(&all, 50)),
        ms(percentile(&all, 99)),
        ms(*all.last().unwrap()),
    );
    println!(
        "store: {connections} connections to the client agent ({:.2} per instance); while the fleet idles, per second: {idle_reads:.1} GET requests to the agents, {idle_rpcs:.1} RPCs from the client agent to the servers",
        connections as f64 / instances as f64,
    );
    println!(
        "store CPU while the fleet idles: {:.1} % of one core, 4 agents (the fleet itself: {:.1} %)",
        idle_store_cpu.as_secs_f64() * 100.0 / idle_window.as_secs_f64(),
        idle_fleet_cpu.as_secs_f64() * 100.0 / idle_window.as_secs_f64()
    );
    println!(
        "burst of 200 updates sent in {:.2} s: every file holding all 200 {} after the first put (p50 {}); store CPU {:.2} s",
        sent.as_secs_f64(),
        ms(*burst.last().unwrap()),
        ms(percentile(&burst, 50)),
        burst_store_cpu.as_secs_f64()
    );
    println!(
        "leader server killed (restarted after 3 s): a put committed {:.2} s after the kill; every file current {} after the kill, {} after the commit (p50 {})",
        committed.as_secs_f64(),
        ms(*after_blip.last().unwrap()),
        ms(after_blip.last().unwrap().saturating_sub(committed)),
        ms(percentile(&after_blip, 50)),
    );
    let per_second = |n: usize| n as f64 / blip_window.as_secs_f64();
    println!(
        "over the {:.0} s from the kill: the fleet's GET requests to the agents {reads} ({:.0}/s on average, {read_peak} in the busiest second, {:.1} per instance); \
         the client agent's RPCs to the servers {rpcs} ({:.0}/s, busiest second {rpc_peak})",
        blip_window.as_secs_f64(),
        per_second(reads),
        read_peak as f64 / instances as f64,
        per_second(rpcs),
    );
    println!(
        "RSS per instance: mean {rss_mean:.1} MiB, max {rss_max:.1} MiB; PSS mean {pss_mean:.1} MiB, of it anonymous {anon_mean:.1} MiB"
    );
}
