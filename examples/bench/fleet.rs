//! `fleet`: INSTANCES terad processes on a 3-member etcd cluster: fan-out, the store's cost,
//! failover, memory, and a coordinated rollout. Its helpers serve `fleet-consul` too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use terad::backend::etcd::client::Client as EtcdClient;

use crate::example::{haproxy_entries, wait_initial_render};
use crate::fleet_consul::consul_put;
use crate::harness::{memory_kb, ms, percentile, pss_kb, terad_binary};
use crate::ports::free_port;
use crate::stores::{etcd_connect, etcd_put, put_many};

/// A 3-member etcd cluster on free loopback ports, for the fleet benchmark.
pub struct EtcdCluster3 {
    pub children: Vec<Child>,
    pub commands: Vec<Command>,
    pub _dir: tempfile::TempDir,
    pub urls: Vec<String>,
}

impl EtcdCluster3 {
    pub fn start(runtime: &tokio::runtime::Runtime) -> EtcdCluster3 {
        let dir = match std::env::var_os("BENCH_ETCD_DIR") {
            Some(d) => tempfile::tempdir_in(d).unwrap(),
            None => tempfile::tempdir().unwrap(),
        };
        // Below the ephemeral range and claimed (see the harness): a port taken from bind(0)
        // was once handed to an outgoing connection before etcd could listen on it.
        let port = free_port;
        let clients: Vec<u16> = (0..3).map(|_| port()).collect();
        let peers: Vec<u16> = (0..3).map(|_| port()).collect();
        let initial: Vec<String> = (0..3)
            .map(|i| format!("m{i}=http://127.0.0.1:{}", peers[i]))
            .collect();
        let urls: Vec<String> = clients
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let mut commands: Vec<Command> = (0..3)
            .map(|i| {
                let mut command = Command::new("etcd");
                command
                    .arg(format!("--name=m{i}"))
                    .arg(format!(
                        "--data-dir={}",
                        dir.path().join(format!("m{i}")).display()
                    ))
                    .arg(format!("--listen-client-urls={}", urls[i]))
                    .arg(format!("--advertise-client-urls={}", urls[i]))
                    .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", peers[i]))
                    .arg(format!(
                        "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                        peers[i]
                    ))
                    .arg(format!("--initial-cluster={}", initial.join(",")))
                    .arg(format!(
                        "--initial-cluster-token=fleet-{}",
                        std::process::id()
                    ))
                    .arg("--initial-cluster-state=new")
                    .arg("--log-level=error")
                    .arg("--logger=zap")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                command
            })
            .collect();
        let children = commands
            .iter_mut()
            .map(|command| {
                command
                    .spawn()
                    .expect("etcd installed (scripts/install-deps.sh)")
            })
            .collect();
        let cluster = EtcdCluster3 {
            children,
            commands,
            _dir: dir,
            urls,
        };
        let has_leader = |url: &String| {
            runtime.block_on(async {
                match etcd_connect(url).await {
                    Ok(client) => client.status().await.is_ok_and(|s| s.leader != 0),
                    Err(_) => false,
                }
            })
        };
        let started = Instant::now();
        while !cluster.urls.iter().all(has_leader) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the etcd cluster did not form"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// The member that leads, as the members report it.
    pub fn leader(&self, runtime: &tokio::runtime::Runtime) -> Option<usize> {
        runtime.block_on(async {
            for url in &self.urls {
                let Ok(client) = etcd_connect(url).await else {
                    continue;
                };
                let Ok(status) = client.status().await else {
                    continue;
                };
                if status.leader == 0 {
                    continue;
                }
                for (i, other) in self.urls.iter().enumerate() {
                    let Ok(client) = etcd_connect(other).await else {
                        continue;
                    };
                    if let Ok(theirs) = client.status().await
                        && theirs.header.map(|h| h.member_id) == Some(status.leader)
                    {
                        return Some(i);
                    }
                }
            }
            None
        })
    }

    pub fn kill(&mut self, i: usize) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
    }

    /// Starts a killed member again, with its data.
    pub fn restart(&mut self, i: usize) {
        self.children[i] = self.commands[i].spawn().unwrap();
    }

    /// Sum over the members of the counter or gauge `name` on the lines that contain `label`.
    pub fn counter(&self, runtime: &tokio::runtime::Runtime, name: &str, label: &str) -> f64 {
        self.counter_on(runtime, &[0, 1, 2], name, label)
    }

    /// [`EtcdCluster3::counter`] over some members only.
    pub fn counter_on(
        &self,
        runtime: &tokio::runtime::Runtime,
        members: &[usize],
        name: &str,
        label: &str,
    ) -> f64 {
        let urls: Vec<String> = members.iter().map(|&i| self.urls[i].clone()).collect();
        metric_sum(runtime, &urls, name, label)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for EtcdCluster3 {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time (user + system) a process has used so far.
/// The sum over the etcd members at `urls` of the Prometheus series `name` whose labels hold
/// `label`.
pub fn metric_sum(
    runtime: &tokio::runtime::Runtime,
    urls: &[String],
    name: &str,
    label: &str,
) -> f64 {
    let http = reqwest::Client::new();
    urls.iter()
        .map(|url| {
            let text = runtime
                .block_on(async {
                    http.get(format!("{url}/metrics"))
                        .send()
                        .await?
                        .text()
                        .await
                })
                .unwrap_or_default();
            text.lines()
                .filter(|line| line.split(['{', ' ']).next() == Some(name) && line.contains(label))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum()
}

/// Samples the gRPC calls started on the members at `urls` every 250 ms until `stop`; returns
/// the highest count over any 1 s (four consecutive samples).
pub fn peak_call_rate(urls: Vec<String>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<f64> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            samples.push(metric_sum(&runtime, &urls, "grpc_server_started_total", ""));
            std::thread::sleep(Duration::from_millis(250));
        }
        samples.windows(5).map(|w| w[4] - w[0]).fold(0.0, f64::max)
    })
}

pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses; utime and stime
    // are the 14th and 15th fields, in clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

pub fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter().map(|&pid| cpu_time(pid)).sum()
}

/// Waits until every file in `dests` holds all of `values`; returns how long after `since` each one
/// was renamed into place (inotify events, timestamped as they arrive).
pub fn fan_out(
    events: &std::sync::mpsc::Receiver<(PathBuf, Instant)>,
    dests: &std::collections::HashSet<PathBuf>,
    values: &[String],
    since: Instant,
    limit: Duration,
) -> Vec<Duration> {
    let mut done: std::collections::HashMap<PathBuf, Duration> = Default::default();
    let current = |path: &Path| {
        std::fs::read_to_string(path).is_ok_and(|t| values.iter().all(|v| t.contains(v.as_str())))
    };
    while done.len() < dests.len() {
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(first) => {
                // Everything queued too, each file at its latest event: an earlier event read
                // late must not be credited with a later rename's content.
                let mut latest: std::collections::HashMap<PathBuf, Instant> = Default::default();
                for (path, at) in std::iter::once(first).chain(events.try_iter()) {
                    latest.insert(path, at);
                }
                for (path, at) in latest {
                    if dests.contains(&path) && !done.contains_key(&path) && current(&path) {
                        done.insert(path, at.saturating_duration_since(since));
                    }
                }
            }
            // Quiet: an event may have been missed (the queue overflowed); look at the files.
            Err(_) => {
                assert!(
                    since.elapsed() < limit,
                    "{} of {} files current after {limit:?}",
                    done.len(),
                    dests.len()
                );
                for dest in dests {
                    if !done.contains_key(dest) && current(dest) {
                        done.insert(dest.clone(), since.elapsed());
                    }
                }
            }
        }
    }
    done.into_values().collect()
}

/// The fleet's processes, killed when dropped: a run that panics half-way must not leave
/// hundreds of terad processes behind (one did, before this).
pub struct Instances(pub Vec<Child>);

impl Drop for Instances {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `instances` `terad --watch` processes on `backend` at `nodes`, each with its own
/// confdir under `root` rendering the HAProxy example into its own destination; `extra(i)`
/// adds lines to instance i's resource. Returns the processes and the destinations.
pub fn spawn_fleet(
    terad: &Path,
    root: &Path,
    instances: usize,
    backend: &str,
    nodes: &[String],
    extra: impl Fn(usize) -> String,
) -> (Instances, Vec<PathBuf>) {
    let mut children = Instances(Vec::new());
    let mut dests = Vec::new();
    for i in 0..instances {
        let dir = root.join(format!("i{i:04}"));
        for sub in ["conf.d", "templates", "out"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/haproxy.cfg.tmpl"),
            dir.join("templates/haproxy.cfg.tmpl"),
        )
        .unwrap();
        let dest = dir.join("out/haproxy.cfg");
        std::fs::write(
            dir.join("conf.d/haproxy.toml"),
            format!(
                "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\n{}",
                dest.display(),
                extra(i)
            ),
        )
        .unwrap();
        let mut command = Command::new(terad);
        command
            .args(["--watch", "--log-level", "error", "--backend", backend])
            .args(["--instance", &format!("i{i:04}")])
            .arg("--confdir")
            .arg(&dir);
        for node in nodes {
            command.args(["--node", node]);
        }
        children.0.push(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        dests.push(dest);
    }
    (children, dests)
}

/// Timestamps every inotify event in the directories of `dests` as it arrives; the events
/// flow while the returned watcher lives.
pub fn watch_dests(
    dests: &std::collections::HashSet<PathBuf>,
) -> (
    notify::RecommendedWatcher,
    std::sync::mpsc::Receiver<(PathBuf, Instant)>,
) {
    use notify::Watcher;
    let (events_tx, events) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let at = Instant::now();
            for path in event.paths {
                let _ = events_tx.send((path, at));
            }
        }
    })
    .unwrap();
    for dest in dests {
        watcher
            .watch(dest.parent().unwrap(), notify::RecursiveMode::NonRecursive)
            .unwrap();
    }
    (watcher, events)
}

/// Where the fleet benchmarks write: the etcd cluster, or a Consul agent's KV.
#[derive(Clone)]
pub enum FleetWriter {
    Etcd(Box<EtcdClient>),
    Consul { http: reqwest::Client, url: String },
}

impl FleetWriter {
    pub async fn put(&self, key: &str, value: &str) {
        match self {
            FleetWriter::Etcd(client) => {
                client.put(etcd_put(key, value)).await.unwrap();
            }
            FleetWriter::Consul { http, url } => consul_put(http, url, key, value).await,
        }
    }
}

/// Fan-out: one put, then every file holding it; `rounds` times. Returns every file's latency
/// and each put's slowest file, sorted.
pub fn fan_out_rounds(
    runtime: &tokio::runtime::Runtime,
    writer: &FleetWriter,
    events: &std::sync::mpsc::Receiver<(PathBuf, Instant)>,
    dests: &std::collections::HashSet<PathBuf>,
    servers: usize,
    rounds: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut all = Vec::with_capacity(rounds * dests.len());
    let mut round_max = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let key = format!("/proxy/frontend/web-{:06}", (r * 7919) % servers);
        let value = format!("192.168.{}.{}:{}", r / 250, r % 250, 9000 + r);
        while events.try_recv().is_ok() {}
        let t0 = Instant::now();
        runtime.block_on(writer.put(&key, &value));
        let mut latencies = fan_out(events, dests, &[value], t0, Duration::from_secs(120));
        latencies.sort();
        round_max.push(*latencies.last().unwrap());
        all.extend(latencies);
        std::thread::sleep(Duration::from_secs(1));
    }
    all.sort();
    round_max.sort();
    (all, round_max)
}

/// A burst: 200 updates spread over 1 s (one every 5 ms, each on its own key, not waiting for
/// the one before), then every file holding all of them. Returns when it started, how long
/// sending took, and every file's latency, sorted.
pub fn burst(
    runtime: &tokio::runtime::Runtime,
    writer: &FleetWriter,
    events: &std::sync::mpsc::Receiver<(PathBuf, Instant)>,
    dests: &std::collections::HashSet<PathBuf>,
    servers: usize,
) -> (Instant, Duration, Vec<Duration>) {
    while events.try_recv().is_ok() {}
    let t0 = Instant::now();
    let values: Vec<String> = (0..200)
        .map(|i| format!("172.16.{}.{}:7000", i / 250, i % 250))
        .collect();
    let sent = runtime.block_on(async {
        let mut puts = tokio::task::JoinSet::new();
        for (i, value) in values.iter().enumerate() {
            let (writer, value) = (writer.clone(), value.clone());
            let key = format!("/proxy/frontend/web-{:06}", (i * 31) % servers);
            let due = tokio::time::Instant::from_std(t0 + Duration::from_millis(5 * i as u64));
            puts.spawn(async move {
                tokio::time::sleep_until(due).await;
                writer.put(&key, &value).await;
            });
        }
        while let Some(put) = puts.join_next().await {
            put.unwrap();
        }
        t0.elapsed()
    });
    let mut latencies = fan_out(events, dests, &values, t0, Duration::from_secs(120));
    latencies.sort();
    (t0, sent, latencies)
}

/// Issue 15's fleet: INSTANCES terad processes watching one prefix of SERVERS servers on a
/// 3-member etcd cluster.
pub fn fleet(instances: usize, servers: usize, rounds: usize) {
    let terad = terad_binary();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cluster = EtcdCluster3::start(&runtime);
    // One member is enough to write through; the leader kill below writes through a survivor.
    let mut client = runtime.block_on(etcd_connect(&cluster.urls[0])).unwrap();
    runtime.block_on(put_many(&mut client, haproxy_entries("80", servers)));
    let etcd_pids = cluster.pids();

    let root = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // No check or reload command: what is measured is the store's fan-out to the files.
    let (children, dest_list) = spawn_fleet(
        &terad,
        root.path(),
        instances,
        "etcd",
        &cluster.urls,
        |_| String::new(),
    );
    for dest in &dest_list {
        wait_initial_render(dest, servers, Duration::from_secs(300));
    }
    let all_rendered = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let dests: std::collections::HashSet<PathBuf> = dest_list.into_iter().collect();
    let (_watcher, events) = watch_dests(&dests);

    // The store's cost of an idle fleet: the watches it holds, and its CPU over 10 s (the
    // watch watchdog asks for a progress notification after each second of silence).
    let watchers = cluster.counter(&runtime, "etcd_debugging_mvcc_watcher_total", "");
    let streams = cluster.counter(&runtime, "etcd_debugging_mvcc_watch_stream_total", "");
    let cpu_before = cpu_of(&etcd_pids);
    let terad_pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    let terad_cpu_before = cpu_of(&terad_pids);
    std::thread::sleep(Duration::from_secs(10));
    let idle_store_cpu = cpu_of(&etcd_pids).saturating_sub(cpu_before);
    let idle_fleet_cpu = cpu_of(&terad_pids).saturating_sub(terad_cpu_before);

    let writer = FleetWriter::Etcd(Box::new(client.clone()));
    let (all, round_max) = fan_out_rounds(&runtime, &writer, &events, &dests, servers, rounds);
    let cpu_before = cpu_of(&etcd_pids);
    let (t0, sent, burst) = burst(&runtime, &writer, &events, &dests, servers);
    let burst_store_cpu = cpu_of(&etcd_pids).saturating_sub(cpu_before);
    let burst_wall = t0.elapsed();

    // A blip: the leader is killed and restarted 3 s later; a put right after the kill (once
    // the cluster takes it) must reach every file. The store's request counters over the
    // episode show whether the fleet came back with jittered retries or in a tight loop.
    std::thread::sleep(Duration::from_secs(2));
    let leader = cluster.leader(&runtime).expect("a leader");
    // Counted on the members that stay up (the restarted one starts its counters over).
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let count = |cluster: &EtcdCluster3, label: &str| {
        cluster.counter_on(&runtime, &survivors, "grpc_server_started_total", label)
    };
    let started_before = count(&cluster, "");
    let ranges_before = count(&cluster, "\"Range\"");
    let watches_before = count(&cluster, "\"Watch\"");
    let writer = runtime
        .block_on(etcd_connect(&cluster.urls[survivors[0]]))
        .unwrap();
    while events.try_recv().is_ok() {}
    let sampling = Arc::new(AtomicBool::new(false));
    let peak = peak_call_rate(
        survivors.iter().map(|&i| cluster.urls[i].clone()).collect(),
        Arc::clone(&sampling),
    );
    let blip = Instant::now();
    cluster.kill(leader);
    let value = "10.99.99.99:9999".to_owned();
    loop {
        let put = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(1),
                writer.put(etcd_put("/proxy/frontend/web-000000", &value)),
            )
            .await
        });
        if matches!(put, Ok(Ok(_))) {
            break;
        }
        assert!(
            blip.elapsed() < Duration::from_secs(30),
            "no write after the leader died"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let committed = blip.elapsed();
    let mut after_blip = fan_out(&events, &dests, &[value], blip, Duration::from_secs(120));
    after_blip.sort();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(blip.elapsed()));
    cluster.restart(leader);
    // Counted over 10 s from the kill: the failover and the member's return.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(blip.elapsed()));
    sampling.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    let window = blip.elapsed().as_secs_f64();
    let requests = count(&cluster, "") - started_before;
    let ranges = count(&cluster, "\"Range\"") - ranges_before;
    let watches = count(&cluster, "\"Watch\"") - watches_before;

    let rss: Vec<u64> = terad_pids.iter().map(|&pid| memory_kb(pid).0).collect();
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1024.0;
    let rss_max = *rss.iter().max().unwrap() as f64 / 1024.0;
    let pss: Vec<(u64, u64)> = terad_pids.iter().map(|&pid| pss_kb(pid)).collect();
    let pss_mean = pss.iter().map(|p| p.0).sum::<u64>() as f64 / pss.len() as f64 / 1024.0;
    let anon_mean = pss.iter().map(|p| p.1).sum::<u64>() as f64 / pss.len() as f64 / 1024.0;

    drop(children);
    println!("fleet: {instances} terad processes, {servers} servers, 3-member etcd cluster");
    println!(
        "every instance rendered {:.1} s after the first was started",
        all_rendered.as_secs_f64()
    );
    println!(
        "fan-out, one put to every file, {} puts x {instances} files: p50 {}, p99 {}, max {} (slowest file per put: median {})",
        rounds,
        ms(percentile(&all, 50)),
        ms(percentile(&all, 99)),
        ms(*all.last().unwrap()),
        ms(percentile(&round_max, 50)),
    );
    println!(
        "store: {:.0} watchers and {:.0} watch streams for {instances} instances ({:.2} and {:.2} per instance)",
        watchers,
        streams,
        watchers / instances as f64,
        streams / instances as f64
    );
    println!(
        "store CPU while the fleet idles: {:.1} % of one core (the fleet itself: {:.1} %)",
        idle_store_cpu.as_secs_f64() * 10.0,
        idle_fleet_cpu.as_secs_f64() * 10.0
    );
    println!(
        "burst of 200 updates sent in {:.2} s: every file holding all 200 {} after the first put (p50 {}; the driver saw it at {:.2} s); store CPU {:.2} s",
        sent.as_secs_f64(),
        ms(*burst.last().unwrap()),
        ms(percentile(&burst, 50)),
        burst_wall.as_secs_f64(),
        burst_store_cpu.as_secs_f64()
    );
    println!(
        "leader killed (restarted after 3 s): a put committed {:.2} s after the kill; every file current {} after the kill, {} after the commit (p50 {}); \
         over {window:.0} s the two other members counted {requests:.0} gRPC calls ({:.0}/s on average, {peak:.0} in the busiest second), {ranges:.0} Range ({:.2} per instance), {watches:.0} new watch streams",
        committed.as_secs_f64(),
        ms(*after_blip.last().unwrap()),
        ms(after_blip.last().unwrap().saturating_sub(committed)),
        ms(percentile(&after_blip, 50)),
        requests / window,
        ranges / instances as f64,
    );
    println!(
        "RSS per instance: mean {rss_mean:.1} MiB, max {rss_max:.1} MiB; PSS mean {pss_mean:.1} MiB, of it anonymous {anon_mean:.1} MiB"
    );

    rollout(&terad, &runtime, &cluster, &mut client, instances, servers);
}

/// The fleet's coordinated rollout: INSTANCES new `terad --watch` processes in one group with
/// `max_concurrent = 10` and a 200 ms reload; one put rolls through them while 20 are
/// SIGKILLed (ten of them holding a slot, mid-reload, as far as the reload log shows). Prints
/// the time for the change to reach every survivor, the most reloads seen running at once,
/// and whether every survivor reloaded.
pub fn rollout(
    terad: &Path,
    runtime: &tokio::runtime::Runtime,
    cluster: &EtcdCluster3,
    client: &mut EtcdClient,
    instances: usize,
    servers: usize,
) {
    const MAX_CONCURRENT: usize = 10;
    const KILLED: usize = 20;
    let root = tempfile::tempdir().unwrap();
    let reloads = root.path().join("reloads.log");
    // Each reload appends its start and end (one short O_APPEND write each) to one log.
    let (mut children, dests) = spawn_fleet(
        terad,
        root.path(),
        instances,
        "etcd",
        &cluster.urls,
        |i| {
            format!(
                "reload_cmd = \"sh -c 'echo s $(date +%s%N) {i} >> {log}; sleep 0.2; echo e $(date +%s%N) {i} >> {log}'\"\n\n\
             [template.coordination]\ngroup = \"bench-rollout\"\nmax_concurrent = {MAX_CONCURRENT}\n",
                log = reloads.display()
            )
        },
    );
    for dest in &dests {
        wait_initial_render(dest, servers, Duration::from_secs(300));
    }
    // The first renders' reloads (if any) settle before the change.
    std::thread::sleep(Duration::from_secs(3));
    let _ = std::fs::remove_file(&reloads);

    let value = "10.77.77.77:7777";
    let t0 = Instant::now();
    runtime
        .block_on(client.put(etcd_put("/proxy/frontend/web-000001", value)))
        .unwrap();
    // Once the rollout is under way, kill ten instances mid-reload and ten still waiting.
    let mut killed = std::collections::HashSet::new();
    let deadline = t0 + Duration::from_secs(30);
    while killed.len() < KILLED / 2 && Instant::now() < deadline {
        let log = std::fs::read_to_string(&reloads).unwrap_or_default();
        let (started, ended) = reloaded(&reload_marks(&log));
        for &i in &started {
            if !ended.contains(&i) && killed.len() < KILLED / 2 && killed.insert(i) {
                let _ = children.0[i].kill();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(&reloads).unwrap_or_default();
    let (started, _) = reloaded(&reload_marks(&log));
    for i in (0..instances).rev() {
        if killed.len() >= KILLED {
            break;
        }
        if !started.contains(&i) && killed.insert(i) {
            let _ = children.0[i].kill();
        }
    }
    let killed_at = t0.elapsed();

    // Every survivor must reload with the change; none may wait forever.
    let survivors: Vec<usize> = (0..instances).filter(|i| !killed.contains(i)).collect();
    let limit = Duration::from_secs(300);
    let done = loop {
        let log = std::fs::read_to_string(&reloads).unwrap_or_default();
        let (_, ended) = reloaded(&reload_marks(&log));
        let current = survivors.iter().all(|&i| {
            ended.contains(&i)
                && std::fs::read_to_string(&dests[i]).is_ok_and(|t| t.contains(value))
        });
        if current {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "{} of {} survivors reloaded after {limit:?}",
            survivors.iter().filter(|i| ended.contains(i)).count(),
            survivors.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Reloads of killed instances still running end later: read the log once they have.
    std::thread::sleep(Duration::from_secs(1));
    let marks = reload_marks(&std::fs::read_to_string(&reloads).unwrap_or_default());
    let (started, _) = reloaded(&marks);
    // The most reloads running at once: starts and ends in time order (an end first on a tie).
    let mut steps: Vec<(u128, i32)> = marks
        .iter()
        .map(|&(start, at, _)| (at, if start { 1 } else { -1 }))
        .collect();
    steps.sort();
    let (mut running, mut most) = (0i32, 0i32);
    for (_, step) in steps {
        running += step;
        most = most.max(running);
    }
    let last_end = marks
        .iter()
        .filter(|m| !m.0)
        .map(|m| m.1)
        .max()
        .unwrap_or(0);
    let first_start = marks.iter().filter(|m| m.0).map(|m| m.1).min().unwrap_or(0);
    println!(
        "coordinated rollout: {instances} instances, max_concurrent = {MAX_CONCURRENT}, a 200 ms reload, {} SIGKILLed ({} mid-reload) by {:.2} s: \
         every one of the {} survivors reloaded with the change {:.2} s after the put (first reload start to last end {:.2} s); \
         {} reloads in all, at most {most} running at once",
        killed.len(),
        killed.iter().filter(|i| started.contains(i)).count(),
        killed_at.as_secs_f64(),
        survivors.len(),
        done.as_secs_f64(),
        (last_end.saturating_sub(first_start)) as f64 / 1e9,
        marks.iter().filter(|m| m.0).count(),
    );
    assert!(
        most as usize <= MAX_CONCURRENT,
        "more than {MAX_CONCURRENT} reloads at once"
    );
}

/// The reload log's lines: (started, ns since the epoch, instance).
pub fn reload_marks(log: &str) -> Vec<(bool, u128, usize)> {
    log.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let started = match fields.next()? {
                "s" => true,
                "e" => false,
                _ => return None,
            };
            Some((
                started,
                fields.next()?.parse().ok()?,
                fields.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// The instances with a reload started, and those with one ended, in `marks`.
pub fn reloaded(
    marks: &[(bool, u128, usize)],
) -> (
    std::collections::HashSet<usize>,
    std::collections::HashSet<usize>,
) {
    let mut started = std::collections::HashSet::new();
    let mut ended = std::collections::HashSet::new();
    for &(start, _, i) in marks {
        if start {
            started.insert(i);
        } else {
            ended.insert(i);
        }
    }
    (started, ended)
}
