//! The runtime's event loop driven in-process, over the memory backend: the initial listing,
//! updates applied in place, only the touched resources rendered, and a configuration reload
//! diffed against the running one. Real files, real templates; no store server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Control, RunContext, RunOutcome, run};
use crate::backend::memory::MemorySource;
use crate::backend::{Backend, Listing, Update};
use crate::store::Change;
use crate::telemetry::Telemetry;

/// A confdir with one resource per `(name, key prefix)`, rendering `name=<value of /name/v>`.
fn confdir(dir: &Path, resources: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    for (name, prefix) in resources {
        std::fs::write(
            dir.join("templates").join(format!("{name}.tmpl")),
            format!("{name}={{{{ getv(key=\"{prefix}/v\", default=\"-\") }}}}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("conf.d").join(format!("{name}.toml")),
            format!(
                "[template]\nsrc = \"{name}.tmpl\"\ndest = \"{}\"\nkeys = [\"{prefix}\"]\n",
                dir.join("out").join(name).display()
            ),
        )
        .unwrap();
    }
}

fn cli(dir: &Path) -> crate::cli::Cli {
    crate::cli::try_parse_from([
        "terad",
        "--watch",
        "--backend",
        "env",
        "--confdir",
        dir.to_str().unwrap(),
    ])
    .expect("arguments parse")
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("out").join(name)).unwrap_or_default()
}

fn modified(dir: &Path, name: &str) -> std::time::SystemTime {
    std::fs::metadata(dir.join("out").join(name))
        .unwrap()
        .modified()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_render_only_what_they_touch_and_a_reload_is_applied_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    confdir(root, &[("a", "/a"), ("b", "/b")]);
    let cli = cli(root);
    let config = crate::setup::load(&cli).expect("the confdir loads");

    let source = MemorySource::default();
    *source.listing.lock().unwrap() = Listing {
        revision: 1,
        entries: vec![("/a/v".into(), "1".into()), ("/b/v".into(), "1".into())],
    };
    let (inject, injected) = mpsc::channel(8);
    *source.injected.lock().await = Some(injected);
    let (control_tx, control) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let context = RunContext {
        cli: cli.clone(),
        telemetry: Arc::new(Telemetry::new(Duration::from_secs(30))),
        exec: None,
        shutdown: shutdown.clone(),
        control,
    };
    let running = tokio::spawn(run(config, Backend::Memory(source), context));

    eventually("the first renders", || {
        read(root, "a") == "a=1\n" && read(root, "b") == "b=1\n"
    })
    .await;
    let b_written = modified(root, "b");

    // A change under /a renders a, and only a.
    inject
        .send(Update::Changes {
            revision: 2,
            changes: vec![Change::Put {
                key: "/a/v".into(),
                value: "2".into(),
            }],
        })
        .await
        .unwrap();
    eventually("a's change", || read(root, "a") == "a=2\n").await;
    assert_eq!(modified(root, "b"), b_written, "b was rewritten");

    // A configuration reload that changes b's template: b restarts and renders, a is kept.
    std::fs::write(
        root.join("templates/b.tmpl"),
        "B={{ getv(key=\"/b/v\") }}\n",
    )
    .unwrap();
    control_tx.send(Control::Reload).await.unwrap();
    eventually("b's new template", || read(root, "b") == "B=1\n").await;
    assert_eq!(read(root, "a"), "a=2\n");

    shutdown.cancel();
    assert_eq!(running.await.unwrap(), RunOutcome::Success);
}

/// Issue 15: the cluster came back between the watch loop's probing listing (which failed) and
/// its next watch, which then delivered. The file was current but `/ready` stayed false until
/// that watch broke again: only a listing marked the backend reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_delivers_after_an_outage_makes_the_backend_reachable() {
    use crate::backend::memory::WatchStep;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    confdir(root, &[("a", "/a")]);
    let cli = cli(root);
    let config = crate::setup::load(&cli).expect("the confdir loads");

    let source = MemorySource::default();
    *source.listing.lock().unwrap() = Listing {
        revision: 1,
        entries: vec![("/a/v".into(), "1".into())],
    };
    // The first listing works; the first watch breaks and the listing after it fails; the
    // next watch follows the injected updates.
    source.list_script.lock().unwrap().extend([true, false]);
    source
        .watch_script
        .lock()
        .unwrap()
        .push_back(WatchStep::Fails);
    let (inject, injected) = mpsc::channel(8);
    *source.injected.lock().await = Some(injected);
    let (_control_tx, control) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    // Not ready as soon as the backend fails.
    let telemetry = Arc::new(Telemetry::new(Duration::ZERO));
    let context = RunContext {
        cli: cli.clone(),
        telemetry: Arc::clone(&telemetry),
        exec: None,
        shutdown: shutdown.clone(),
        control,
    };
    let running = tokio::spawn(run(config, Backend::Memory(source), context));

    eventually("the outage", || {
        read(root, "a") == "a=1\n" && telemetry.readiness().is_err()
    })
    .await;
    inject
        .send(Update::Changes {
            revision: 2,
            changes: vec![Change::Put {
                key: "/a/v".into(),
                value: "2".into(),
            }],
        })
        .await
        .unwrap();
    eventually("the change, and ready again", || {
        read(root, "a") == "a=2\n" && telemetry.readiness().is_ok()
    })
    .await;

    shutdown.cancel();
    assert_eq!(running.await.unwrap(), RunOutcome::Success);
}

/// terad running in-process on the memory backend, on the test's runtime: with
/// `start_paused`, time is tokio's, so waits, quiescence and backoff are exact and instant.
/// (Renders and writes run on the blocking pool, during which paused time does not advance.)
struct Running {
    root: std::path::PathBuf,
    inject: mpsc::Sender<Update>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<RunOutcome>,
    revision: u64,
}

impl Running {
    /// Runs the confdir at `root` with the store holding `entries`.
    async fn start(root: &Path, entries: &[(&str, &str)]) -> Running {
        let cli = cli(root);
        let config = crate::setup::load(&cli).expect("the confdir loads");
        let source = MemorySource::default();
        *source.listing.lock().unwrap() = Listing {
            revision: 1,
            entries: entries
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        };
        let (inject, injected) = mpsc::channel(64);
        *source.injected.lock().await = Some(injected);
        let (_control_tx, control) = mpsc::channel(1);
        let telemetry = Arc::new(Telemetry::new(Duration::from_secs(30)));
        let shutdown = CancellationToken::new();
        let context = RunContext {
            cli,
            telemetry: Arc::clone(&telemetry),
            exec: None,
            shutdown: shutdown.clone(),
            control,
        };
        let task = tokio::spawn(run(config, Backend::Memory(source), context));
        Running {
            root: root.to_owned(),
            inject,
            telemetry,
            shutdown,
            task,
            revision: 1,
        }
    }

    async fn change(&mut self, change: Change) {
        self.revision += 1;
        let update = Update::Changes {
            revision: self.revision,
            changes: vec![change],
        };
        self.inject.send(update).await.unwrap();
    }

    async fn put(&mut self, key: &str, value: &str) {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.change(Change::Put { key, value }).await;
    }

    /// `terad_syncs_total` of `resource` with `outcome`.
    fn syncs(&self, resource: &str, outcome: &str) -> u64 {
        let metrics = self.telemetry.encode_metrics();
        let labels = [
            format!("resource=\"{resource}\""),
            format!("outcome=\"{outcome}\""),
        ];
        metrics
            .lines()
            .filter(|line| line.starts_with("terad_syncs_total{"))
            .find(|line| labels.iter().all(|label| line.contains(label.as_str())))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    }

    fn read(&self, name: &str) -> String {
        read(&self.root, name)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        assert_eq!(self.task.await.unwrap(), RunOutcome::Success);
    }
}

/// Adds `line` to the `[template]` table of resource `name`.
fn add_to_resource(root: &Path, name: &str, line: &str) {
    let path = root.join("conf.d").join(format!("{name}.toml"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// `wait = "1s:5s"`: a burst of changes 200 ms apart renders once, 1 s after the last one,
/// with the last value; nothing is written in between.
#[tokio::test(start_paused = true)]
async fn a_burst_under_wait_renders_once_when_the_keys_are_quiet() {
    let dir = tempfile::tempdir().unwrap();
    confdir(dir.path(), &[("a", "/a")]);
    add_to_resource(dir.path(), "a", "wait = \"1s:5s\"");
    let mut terad = Running::start(dir.path(), &[("/a/v", "0")]).await;
    eventually("the first render, at once", || terad.read("a") == "a=0\n").await;
    assert_eq!(terad.syncs("a", "updated"), 1);

    for value in 1..=5 {
        terad.put("/a/v", &value.to_string()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // 200 ms after the last change: 800 ms of quiet still to go.
    tokio::time::sleep(Duration::from_millis(790)).await;
    assert_eq!(
        terad.read("a"),
        "a=0\n",
        "rendered before the keys were quiet"
    );
    assert_eq!(terad.syncs("a", "updated"), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    eventually("the render after the burst", || terad.read("a") == "a=5\n").await;
    assert_eq!(terad.syncs("a", "updated"), 2, "one write for the burst");
    terad.stop().await;
}

/// `wait = "1s:3s"`: changes that never stop for 1 s still render 3 s after the first.
#[tokio::test(start_paused = true)]
async fn changes_that_never_stop_render_at_the_waits_maximum() {
    let dir = tempfile::tempdir().unwrap();
    confdir(dir.path(), &[("a", "/a")]);
    add_to_resource(dir.path(), "a", "wait = \"1s:3s\"");
    let mut terad = Running::start(dir.path(), &[("/a/v", "0")]).await;
    eventually("the first render", || terad.read("a") == "a=0\n").await;
    let started = tokio::time::Instant::now();
    let mut value = 0;
    'changing: loop {
        value += 1;
        assert!(value < 20, "never rendered");
        terad.put("/a/v", &value.to_string()).await;
        // A change every 500 ms, the file looked at every 10 ms.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if terad.syncs("a", "updated") == 2 {
                break 'changing;
            }
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took <= Duration::from_millis(3020),
        "rendered {took:?} after the first change"
    );
    terad.stop().await;
}

/// A write that fails for a reason that may pass (here the destination's directory is a file)
/// is retried with backoff, without any change in the store, and goes through once the
/// obstacle is gone.
#[tokio::test(start_paused = true)]
async fn a_failed_write_is_retried_with_backoff_until_it_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    confdir(root, &[("a", "/a")]);
    let dest = root.join("out/sub/a");
    let text = std::fs::read_to_string(root.join("conf.d/a.toml"))
        .unwrap()
        .replace(
            &root.join("out/a").display().to_string(),
            &dest.display().to_string(),
        );
    std::fs::write(root.join("conf.d/a.toml"), text).unwrap();
    std::fs::write(root.join("out/sub"), "not a directory").unwrap();
    let terad = Running::start(root, &[("/a/v", "1")]).await;

    eventually("three failed attempts", || terad.syncs("a", "failed") >= 3).await;
    let failed = terad.syncs("a", "failed");
    // The backoff spaces the attempts: 50–100 ms, then 100–200, 200–400, …: not a busy loop.
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(
        terad.syncs("a", "failed") <= failed + 1,
        "retried without backoff"
    );

    std::fs::remove_file(root.join("out/sub")).unwrap();
    std::fs::create_dir(root.join("out/sub")).unwrap();
    eventually("the retried write", || {
        std::fs::read_to_string(&dest).is_ok_and(|content| content == "a=1\n")
    })
    .await;
    assert_eq!(terad.syncs("a", "updated"), 1);
    terad.stop().await;
}

/// The empty-store guard in watch mode: the resource's keys going from some to none keep the
/// last good file and show in `/ready`; the keys coming back render again.
#[tokio::test(start_paused = true)]
async fn keys_going_from_some_to_none_keep_the_last_good_file() {
    let dir = tempfile::tempdir().unwrap();
    confdir(dir.path(), &[("a", "/a")]);
    let mut terad = Running::start(dir.path(), &[("/a/v", "1")]).await;
    eventually("the first render", || terad.read("a") == "a=1\n").await;

    terad
        .change(Change::Delete {
            key: "/a/v".to_owned(),
        })
        .await;
    eventually("the guard", || terad.telemetry.readiness().is_err()).await;
    let reasons = terad.telemetry.readiness().unwrap_err().join("\n");
    assert!(reasons.contains("went from 1 to none"), "{reasons}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(terad.read("a"), "a=1\n", "the last good file stays");

    terad.put("/a/v", "2").await;
    eventually("the render after the keys came back", || {
        terad.read("a") == "a=2\n" && terad.telemetry.readiness().is_ok()
    })
    .await;
    terad.stop().await;
}
