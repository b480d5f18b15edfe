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
