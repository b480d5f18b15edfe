//! What terad tells the outside world about itself: Prometheus metrics, readiness (for `/ready`
//! and systemd's `READY=1`), and the backend's reachability.
//!
//! One [`Telemetry`] is shared by the runner, the workers, the reloads and the HTTP endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

type Labels = Vec<(&'static str, String)>;

fn duration_histogram() -> Histogram {
    // 0.5 ms to ~16 s: a render of a few keys up to a slow reload.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric terad exports.
pub struct Metrics {
    registry: Registry,
    renders: Family<Labels, Counter>,
    render_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    syncs: Family<Labels, Counter>,
    check_failures: Family<Labels, Counter>,
    check_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    reloads: Family<Labels, Counter>,
    reload_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    last_sync: Family<Labels, Gauge<f64, AtomicU64>>,
    backend_errors: Family<Labels, Counter>,
    store_revision: Gauge,
    store_keys: Gauge,
    watched_prefixes: Family<Labels, Gauge>,
    ready: Gauge,
    health_checks: Family<Labels, Counter>,
    rollbacks: Family<Labels, Counter>,
    slot_wait_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    group_halted: Family<Labels, Gauge>,
    slots_lost: Family<Labels, Counter>,
    behind: Family<Labels, Gauge>,
    haproxy_runtime_changes: Family<Labels, Counter>,
    haproxy_runtime_fallbacks: Family<Labels, Counter>,
    broken: Family<Labels, Gauge>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("terad");
        let metrics = Metrics {
            renders: Family::default(),
            render_seconds: Family::new_with_constructor(duration_histogram),
            syncs: Family::default(),
            check_failures: Family::default(),
            check_seconds: Family::new_with_constructor(duration_histogram),
            reloads: Family::default(),
            reload_seconds: Family::new_with_constructor(duration_histogram),
            last_sync: Family::default(),
            backend_errors: Family::default(),
            store_revision: Gauge::default(),
            store_keys: Gauge::default(),
            watched_prefixes: Family::default(),
            ready: Gauge::default(),
            health_checks: Family::default(),
            rollbacks: Family::default(),
            slot_wait_seconds: Family::new_with_constructor(duration_histogram),
            group_halted: Family::default(),
            slots_lost: Family::default(),
            behind: Family::default(),
            haproxy_runtime_changes: Family::default(),
            haproxy_runtime_fallbacks: Family::default(),
            broken: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "renders",
            "Template renders, by resource and outcome (ok, error)",
            metrics.renders.clone(),
        );
        registry.register(
            "render_duration_seconds",
            "Time to render a resource's template",
            metrics.render_seconds.clone(),
        );
        registry.register(
            "syncs",
            "Syncs of a destination, by resource and outcome (unchanged, updated, failed)",
            metrics.syncs.clone(),
        );
        registry.register(
            "check_failures",
            "Renders rejected by check_cmd, by resource",
            metrics.check_failures.clone(),
        );
        registry.register(
            "check_duration_seconds",
            "check_cmd run time, by resource",
            metrics.check_seconds.clone(),
        );
        registry.register(
            "reloads",
            "reload_cmd runs, by resource and outcome (ok, error)",
            metrics.reloads.clone(),
        );
        registry.register(
            "reload_duration_seconds",
            "reload_cmd run time, by resource",
            metrics.reload_seconds.clone(),
        );
        registry.register(
            "last_successful_sync_timestamp_seconds",
            "When a resource was last found or made in sync (Unix time)",
            metrics.last_sync.clone(),
        );
        registry.register(
            "backend_errors",
            "Failed backend listings and broken watches, by backend",
            metrics.backend_errors.clone(),
        );
        registry.register(
            "store_revision",
            "The backend position (etcd revision, Consul index) the store reflects",
            metrics.store_revision.clone(),
        );
        registry.register(
            "store_keys",
            "Keys held in the live store",
            metrics.store_keys.clone(),
        );
        registry.register(
            "watched_prefixes",
            "The merged key prefixes being watched (1 per prefix)",
            metrics.watched_prefixes.clone(),
        );
        registry.register(
            "ready",
            "1 once every resource has synced and the backend is reachable",
            metrics.ready.clone(),
        );
        registry.register(
            "health_checks",
            "Post-reload health checks, by resource and outcome (ok, error)",
            metrics.health_checks.clone(),
        );
        registry.register(
            "rollbacks",
            "Changes rolled back after a failed health check, by resource",
            metrics.rollbacks.clone(),
        );
        registry.register(
            "coordination_slot_wait_seconds",
            "Time spent waiting for a slot of a coordination group",
            metrics.slot_wait_seconds.clone(),
        );
        registry.register(
            "coordination_group_halted",
            "1 while this instance waits on a group's halt marker",
            metrics.group_halted.clone(),
        );
        registry.register(
            "coordination_slots_lost",
            "Coordination slots whose lease or session expired while their change was in progress, by group and whether the change was aborted before the swap (aborted) or was already live (applied)",
            metrics.slots_lost.clone(),
        );
        registry.register(
            "resource_behind",
            "1 while a resource's last sync or reload failed and is being retried: its file or service is behind the store",
            metrics.behind.clone(),
        );
        registry.register(
            "haproxy_runtime_changes",
            "Changes made in a running HAProxy through its runtime API instead of a reload, by resource",
            metrics.haproxy_runtime_changes.clone(),
        );
        registry.register(
            "haproxy_runtime_fallbacks",
            "Changes that took the reload path after the runtime API failed, by resource and reason (unreachable, timeout, refused, unexpected, mismatch; uncommitted: applied, but the file could not be written)",
            metrics.haproxy_runtime_fallbacks.clone(),
        );
        registry.register(
            "resource_broken",
            "1 while a resource is left out because its template cannot be used (a syntax error, an unknown function); the other resources run",
            metrics.broken.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

fn resource(name: &str) -> Labels {
    vec![("resource", name.to_owned())]
}

fn resource_outcome(name: &str, outcome: &str) -> Labels {
    vec![
        ("resource", name.to_owned()),
        ("outcome", outcome.to_owned()),
    ]
}

/// How a sync ended, as the `outcome` label of `terad_syncs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncLabel {
    /// The destination was replaced.
    Updated,
    /// The destination already matched.
    Unchanged,
    /// `--noop`: a change is pending.
    Pending,
    /// Nothing was written, or the change did not complete.
    Failed,
}

impl SyncLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncLabel::Updated => "updated",
            SyncLabel::Unchanged => "unchanged",
            SyncLabel::Pending => "pending",
            SyncLabel::Failed => "failed",
        }
    }
}

/// Readiness: which resources have synced at least once, which are held back, and whether the
/// backend answers.
struct Health {
    /// Resource name → synced successfully at least once.
    synced: BTreeMap<String, bool>,
    /// Resource name → why the empty-store guard holds it back.
    held: BTreeMap<String, String>,
    /// Resources whose last sync or reload failed: their file (or service) is behind the store.
    behind: BTreeSet<String>,
    /// Resource name → why its template cannot be used.
    broken: BTreeMap<String, String>,
    /// Since when the backend has been failing; `None` while it answers.
    failing_since: Option<Instant>,
}

/// Metrics, readiness and notifications, shared across the process.
pub struct Telemetry {
    pub metrics: Metrics,
    health: Mutex<Health>,
    ready_timeout: Duration,
    /// Flips to true once every resource has synced; the supervisor and systemd wait on it.
    first_sync: watch::Sender<bool>,
}

impl Telemetry {
    pub fn new(ready_timeout: Duration) -> Telemetry {
        Telemetry {
            metrics: Metrics::new(),
            health: Mutex::new(Health {
                synced: BTreeMap::new(),
                held: BTreeMap::new(),
                behind: BTreeSet::new(),
                broken: BTreeMap::new(),
                failing_since: None,
            }),
            ready_timeout,
            first_sync: watch::channel(false).0,
        }
    }

    /// Declares the current set of resources (at start and after a configuration reload);
    /// resources that were synced before keep that state.
    pub fn set_resources<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut health = self.health.lock().expect("health lock");
        let previous = std::mem::take(&mut health.synced);
        for name in names {
            let synced = previous.get(name).copied().unwrap_or(false);
            health.synced.insert(name.to_owned(), synced);
        }
        let Health {
            synced,
            held,
            behind,
            ..
        } = &mut *health;
        held.retain(|name, _| synced.contains_key(name));
        behind.retain(|name| synced.contains_key(name));
        drop(health);
        self.update_ready();
    }

    pub fn set_prefixes(&self, prefixes: &[String]) {
        self.metrics.watched_prefixes.clear();
        for prefix in prefixes {
            self.metrics
                .watched_prefixes
                .get_or_create(&vec![("prefix", prefix.clone())])
                .set(1);
        }
    }

    pub fn store_changed(&self, revision: u64, keys: usize) {
        self.metrics
            .store_revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
        self.metrics
            .store_keys
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
    }

    pub fn rendered(&self, name: &str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.metrics
            .renders
            .get_or_create(&resource_outcome(name, outcome))
            .inc();
        self.metrics
            .render_seconds
            .get_or_create(&resource(name))
            .observe(took.as_secs_f64());
    }

    pub fn checked(&self, name: &str, ok: bool, took: Duration) {
        if !ok {
            self.metrics
                .check_failures
                .get_or_create(&resource(name))
                .inc();
        }
        self.metrics
            .check_seconds
            .get_or_create(&resource(name))
            .observe(took.as_secs_f64());
    }

    /// A sync finished. A failed one leaves the resource behind the store (not ready) until a
    /// sync succeeds.
    pub fn synced(&self, name: &str, outcome: SyncLabel) {
        self.metrics
            .syncs
            .get_or_create(&resource_outcome(name, outcome.as_str()))
            .inc();
        let in_sync = outcome != SyncLabel::Failed;
        self.behind(name, !in_sync);
        if in_sync {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            self.metrics
                .last_sync
                .get_or_create(&resource(name))
                .set(now);
            let mut health = self.health.lock().expect("health lock");
            if let Some(synced) = health.synced.get_mut(name) {
                *synced = true;
            }
            drop(health);
            self.update_ready();
        }
    }

    pub fn reloaded(&self, names: &[String], ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        for name in names {
            self.behind(name, !ok);
            self.metrics
                .reloads
                .get_or_create(&resource_outcome(name, outcome))
                .inc();
            self.metrics
                .reload_seconds
                .get_or_create(&resource(name))
                .observe(took.as_secs_f64());
        }
    }

    pub fn health_checked(&self, name: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.metrics
            .health_checks
            .get_or_create(&resource_outcome(name, outcome))
            .inc();
    }

    pub fn rolled_back(&self, name: &str) {
        self.metrics.rollbacks.get_or_create(&resource(name)).inc();
    }

    pub fn slot_waited(&self, group: &str, took: Duration) {
        self.metrics
            .slot_wait_seconds
            .get_or_create(&vec![("group", group.to_owned())])
            .observe(took.as_secs_f64());
    }

    pub fn group_halted(&self, group: &str, halted: bool) {
        self.metrics
            .group_halted
            .get_or_create(&vec![("group", group.to_owned())])
            .set(i64::from(halted));
    }

    pub fn slot_lost(&self, group: &str, aborted: bool) {
        let outcome = if aborted { "aborted" } else { "applied" };
        self.metrics
            .slots_lost
            .get_or_create(&vec![
                ("group", group.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// A change went into HAProxy through its runtime API, without a reload.
    pub fn haproxy_runtime_changed(&self, name: &str) {
        self.metrics
            .haproxy_runtime_changes
            .get_or_create(&resource(name))
            .inc();
    }

    /// A change took the reload path after the runtime API failed; `reason` is short and fixed
    /// (`RuntimeError::reason`).
    pub fn haproxy_runtime_fell_back(&self, name: &str, reason: &str) {
        self.metrics
            .haproxy_runtime_fallbacks
            .get_or_create(&vec![
                ("resource", name.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
    }

    /// The backend answered. Returns how long it had been failing, if it had.
    pub fn backend_ok(&self) -> Option<Duration> {
        let mut health = self.health.lock().expect("health lock");
        let outage = health.failing_since.take().map(|since| since.elapsed());
        drop(health);
        self.update_ready();
        outage
    }

    pub fn backend_error(&self, backend: &'static str) {
        self.metrics
            .backend_errors
            .get_or_create(&vec![("backend", backend.to_owned())])
            .inc();
        let mut health = self.health.lock().expect("health lock");
        health.failing_since.get_or_insert_with(Instant::now);
        drop(health);
        self.update_ready();
    }

    /// Every resource has synced at least once.
    pub fn fully_synced(&self) -> bool {
        let health = self.health.lock().expect("health lock");
        !health.synced.is_empty() && health.synced.values().all(|synced| *synced)
    }

    /// Whether `name` is behind the store: its last sync or reload failed.
    pub fn behind(&self, name: &str, behind: bool) {
        self.metrics
            .behind
            .get_or_create(&resource(name))
            .set(i64::from(behind));
        let mut health = self.health.lock().expect("health lock");
        let changed = if behind {
            health.behind.insert(name.to_owned())
        } else {
            health.behind.remove(name)
        };
        drop(health);
        if changed {
            self.update_ready();
        }
    }

    /// The resources left out because their templates cannot be used, with why (at start and
    /// after each configuration reload; an empty list clears them).
    pub fn set_broken(&self, broken: &[(String, String)]) {
        self.metrics.broken.clear();
        for (name, _) in broken {
            self.metrics.broken.get_or_create(&resource(name)).set(1);
        }
        let mut health = self.health.lock().expect("health lock");
        health.broken = broken.iter().cloned().collect();
        drop(health);
        self.update_ready();
    }

    /// The empty-store guard holds `name` back (`Some(reason)`) or no longer does.
    pub fn held(&self, name: &str, reason: Option<String>) {
        let mut health = self.health.lock().expect("health lock");
        match reason {
            Some(reason) => health.held.insert(name.to_owned(), reason),
            None => health.held.remove(name),
        };
        drop(health);
        self.update_ready();
    }

    /// `/ready`: fully synced, nothing held back by the empty-store guard, and the backend
    /// answering (or failing for less than the ready timeout).
    pub fn ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Why terad is not ready, one line per reason (the body of a 503 from `/ready`).
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let health = self.health.lock().expect("health lock");
        let mut reasons = Vec::new();
        if health.synced.is_empty() {
            reasons.push("no resources yet".to_owned());
        }
        for (name, synced) in &health.synced {
            if !synced {
                reasons.push(format!("{name}: not synced yet"));
            }
        }
        for (name, reason) in &health.held {
            reasons.push(format!("{name}: {reason}"));
        }
        for (name, reason) in &health.broken {
            reasons.push(format!("{name}: its template cannot be used: {reason}"));
        }
        for name in &health.behind {
            reasons.push(format!(
                "{name}: behind the store (its last sync or reload failed; retrying)"
            ));
        }
        if let Some(since) = health.failing_since
            && since.elapsed() >= self.ready_timeout
        {
            reasons.push(format!(
                "backend unreachable for {:.0}s",
                since.elapsed().as_secs_f64()
            ));
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    fn update_ready(&self) {
        let ready = self.ready();
        self.metrics.ready.set(i64::from(ready));
        if self.fully_synced() && !*self.first_sync.borrow() {
            self.first_sync.send_replace(true);
            notify_systemd(&[sd_notify::NotifyState::Ready]);
            tracing::info!("first full sync done; ready");
        }
    }

    /// Resolves once every resource has synced at least once.
    pub async fn first_full_sync(&self) {
        let mut receiver = self.first_sync.subscribe();
        let _ = receiver.wait_for(|done| *done).await;
    }

    /// The metrics in Prometheus' text format.
    pub fn encode_metrics(&self) -> String {
        // Readiness depends on time (an outage grows older), so refresh it when scraped.
        self.metrics.ready.set(i64::from(self.ready()));
        let mut text = String::new();
        encode(&mut text, &self.metrics.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Sends a state to systemd when it started terad with `Type=notify` (`NOTIFY_SOCKET` set);
/// does nothing otherwise.
pub fn notify_systemd(states: &[sd_notify::NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(error = %error, "cannot notify systemd");
    }
}

/// `RELOADING=1` with the timestamp systemd ≥ 253 requires.
pub fn notify_systemd_reloading() {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(now) => notify_systemd(&[sd_notify::NotifyState::Reloading, now]),
        Err(_) => notify_systemd(&[sd_notify::NotifyState::Reloading]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_every_resource_synced_and_a_reachable_backend() {
        let telemetry = Telemetry::new(Duration::from_millis(50));
        assert!(!telemetry.ready(), "no resources yet");
        telemetry.set_resources(["a", "b"]);
        telemetry.synced("a", SyncLabel::Updated);
        assert!(!telemetry.ready());
        telemetry.synced("b", SyncLabel::Failed);
        assert!(!telemetry.ready(), "a failed sync does not count");
        telemetry.synced("b", SyncLabel::Unchanged);
        assert!(telemetry.ready());
        telemetry.synced("b", SyncLabel::Failed);
        assert!(!telemetry.ready(), "behind the store after a failure");
        assert!(telemetry.readiness().unwrap_err()[0].contains("b: behind the store"));
        telemetry.synced("b", SyncLabel::Unchanged);
        assert!(telemetry.ready());
        telemetry.backend_error("etcd");
        assert!(telemetry.ready(), "within the grace period");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!telemetry.ready(), "backend down for too long");
        telemetry.backend_ok();
        assert!(telemetry.ready());
        // A reload keeps what was synced and adds a new, not yet synced resource.
        telemetry.set_resources(["a", "c"]);
        assert!(!telemetry.ready());
    }

    #[test]
    fn metrics_encode_with_labels() {
        let telemetry = Telemetry::new(Duration::from_secs(1));
        telemetry.set_resources(["haproxy"]);
        telemetry.rendered("haproxy", true, Duration::from_millis(2));
        telemetry.synced("haproxy", SyncLabel::Updated);
        telemetry.reloaded(&["haproxy".to_owned()], true, Duration::from_millis(5));
        telemetry.backend_error("etcd");
        telemetry.store_changed(42, 7);
        telemetry.set_prefixes(&["/proxy".to_owned()]);
        telemetry.haproxy_runtime_changed("haproxy");
        telemetry.haproxy_runtime_changed("haproxy");
        telemetry.haproxy_runtime_fell_back("haproxy", "refused");
        let text = telemetry.encode_metrics();
        for want in [
            "terad_renders_total{resource=\"haproxy\",outcome=\"ok\"} 1",
            "terad_syncs_total{resource=\"haproxy\",outcome=\"updated\"} 1",
            "terad_reloads_total{resource=\"haproxy\",outcome=\"ok\"} 1",
            "terad_backend_errors_total{backend=\"etcd\"} 1",
            "terad_store_revision 42",
            "terad_store_keys 7",
            "terad_watched_prefixes{prefix=\"/proxy\"} 1",
            "terad_ready 1",
            "terad_render_duration_seconds_bucket",
            "terad_haproxy_runtime_changes_total{resource=\"haproxy\"} 2",
            "terad_haproxy_runtime_fallbacks_total{resource=\"haproxy\",reason=\"refused\"} 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
