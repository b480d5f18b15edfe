//! Render scheduling: which resources a change reaches ([`DependencyIndex`]), when they render (at
//! once, or when their `wait` expires), and that a resource never renders twice at once.
//!
//! Renders run off the event loop on the blocking pool, each against the store as it was when
//! it started, and come back through a channel; each result goes to its resource's worker
//! through the resource's reload-group [`Member`], which holds the shared reload back from the
//! moment the render starts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::guard::Guard;
use super::services::Catalog;
use crate::apply::reload::Member;
use crate::apply::render::{self, RenderFailure};
use crate::catalog::{ServiceQuery, ServiceRecord};
use crate::config::{Resource, WaitSpec};
use crate::dependency::{Dependency, DependencyIndex};
use crate::quiescence::Quiescence;
use crate::store::KeyStore;
use crate::telemetry::Telemetry;
use crate::template::go::ct::{Awaited, awaited};
use crate::template::{KeyScope, RenderInput, Templates};

/// How long a resource waits for a missing key its template reads before a warning says so.
const KEY_WAIT_WARNING: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the event loop holds changes back for a running render (see [`Scheduler::stalls`]).
const STALL_LIMIT: std::time::Duration = std::time::Duration::from_millis(200);

/// One resource with what scheduling keeps for it.
pub(super) struct Slot {
    /// Unique within the process (reload groups know members by it); a render reports by it.
    pub(super) id: usize,
    pub(super) resource: Arc<Resource>,
    scope: Arc<KeyScope>,
    /// Where renders go: the resource's worker, through its reload groups.
    pub(super) member: Arc<Member>,
    pub(super) wait: Option<WaitSpec>,
    /// Pending render under `wait`.
    debounce: Quiescence,
    /// What the resource's template reads.
    pub(super) dependencies: Vec<Dependency>,
    /// The template set this resource renders with: the current one, or for a running
    /// resource whose edited template broke, the set holding its last good template.
    pub(super) templates: Arc<Templates>,
    guard: Guard,
    /// The resource waits for the first answer to a catalog query it uses (logged once).
    awaiting_services: bool,
    /// The missing key a consul-template template's `key` waits for, shared with the timer
    /// that warns when the wait lasts.
    awaiting_key: Arc<std::sync::Mutex<Option<String>>>,
    /// True while a render of this resource runs on the blocking pool, including one that
    /// overran its budget and was abandoned: a resource never renders twice at once.
    busy: Arc<AtomicBool>,
}

impl Slot {
    pub(super) fn new(
        id: usize,
        resource: Arc<Resource>,
        member: Arc<Member>,
        default_wait: Option<WaitSpec>,
        templates: Arc<Templates>,
    ) -> Slot {
        Slot {
            id,
            scope: Arc::new(render::key_scope(&resource)),
            wait: resource.wait.or(default_wait),
            dependencies: dependencies(&resource, &templates),
            templates,
            resource,
            member,
            debounce: Quiescence::default(),
            guard: Guard::default(),
            awaiting_services: false,
            awaiting_key: Arc::default(),
            busy: Arc::default(),
        }
    }
}

impl Slot {
    /// The resource renders with `templates` from now on (a configuration reload that kept
    /// the resource; its template may have been edited).
    pub(super) fn use_templates(&mut self, templates: &Arc<Templates>) {
        self.dependencies = dependencies(&self.resource, templates);
        self.templates = Arc::clone(templates);
    }
}

/// What a resource reads: its keys, and the catalog queries written out in its template,
/// watched before the first render (the others are found by the renders).
fn dependencies(resource: &Resource, templates: &Templates) -> Vec<Dependency> {
    let mut dependencies = Dependency::from_keys(&resource.keys);
    for call in templates.service_calls(&resource.template) {
        if let Ok(Some(query)) = call.query {
            let dependency = Dependency::Service(query);
            if !dependencies.contains(&dependency) {
                dependencies.push(dependency);
            }
        }
    }
    dependencies
}

/// A resource's render, back from the blocking pool.
pub(super) struct Rendered {
    slot: usize,
    result: Result<Vec<u8>, RenderFailure>,
    took: std::time::Duration,
    /// The catalog queries the render made.
    services: Arc<ServiceRecord>,
}

/// The resources, what their templates read, and their renders in flight.
pub(super) struct Scheduler {
    pub(super) slots: Vec<Slot>,
    /// The current template set, for the slots started from now on.
    pub(super) templates: Arc<Templates>,
    /// Which resources each dependency feeds, by slot position.
    index: DependencyIndex,
    /// Renders run off the event loop and report here.
    rendered_tx: mpsc::UnboundedSender<Rendered>,
    pub(super) rendered_rx: mpsc::UnboundedReceiver<Rendered>,
    /// Slot id → when its running render started.
    in_flight: HashMap<usize, tokio::time::Instant>,
    /// Slot ids whose render waits for the previous render of the same resource.
    deferred: BTreeSet<usize>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
}

/// What a render reads: the store and the catalog as they are now.
pub(super) struct Sources<'a> {
    pub(super) store: &'a Arc<KeyStore>,
    pub(super) catalog: &'a mut Catalog,
}

impl Scheduler {
    pub(super) fn new(
        templates: Arc<Templates>,
        telemetry: Arc<Telemetry>,
        shutdown: CancellationToken,
    ) -> Scheduler {
        let (rendered_tx, rendered_rx) = mpsc::unbounded_channel();
        Scheduler {
            slots: Vec::new(),
            templates,
            index: DependencyIndex::default(),
            rendered_tx,
            rendered_rx,
            in_flight: HashMap::new(),
            deferred: BTreeSet::new(),
            telemetry,
            shutdown,
        }
    }

    /// Rebuilds the dependency index after the slots changed; returns the catalog queries the
    /// resources use.
    pub(super) fn reindex(&mut self) -> BTreeSet<ServiceQuery> {
        self.index =
            DependencyIndex::new(self.slots.iter().map(|slot| slot.dependencies.as_slice()));
        self.slots
            .iter()
            .flat_map(|slot| &slot.dependencies)
            .filter_map(|dependency| match dependency {
                Dependency::Service(query) => Some(query.clone()),
                Dependency::Prefix(_) => None,
            })
            .collect()
    }

    /// When the next `wait` expires.
    pub(super) fn next_deadline(&self) -> Option<tokio::time::Instant> {
        self.slots
            .iter()
            .filter_map(|slot| slot.debounce.deadline())
            .min()
    }

    /// While a render started moments ago runs, changes wait for it: it reads the store that a
    /// change would otherwise have to copy. A render that takes longer no longer holds anything
    /// back (a change copies the store once, the render finishes on its own snapshot). Returns
    /// until when changes wait.
    pub(super) fn stalls(&self) -> Option<tokio::time::Instant> {
        self.in_flight
            .values()
            .map(|started| *started + STALL_LIMIT)
            .max()
            .filter(|until| *until > tokio::time::Instant::now())
    }

    pub(super) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Reacts to changed keys: renders the resources that read them now, or arms their `wait`.
    pub(super) fn keys_changed(&mut self, changed: &[String], sources: Sources<'_>) {
        if changed.is_empty() {
            return;
        }
        let touched = self.index.touched(changed.iter().map(String::as_str));
        let render_now = self.schedule(touched);
        debug!(
            changed = changed.len(),
            resources = render_now.len(),
            "store changed"
        );
        self.render(render_now, sources);
    }

    /// Reacts to new answers of catalog queries: renders the resources that use them now, or
    /// arms their `wait`. A resource waiting for its first answers renders at once.
    pub(super) fn services_changed(&mut self, queries: &[ServiceQuery], sources: Sources<'_>) {
        let touched: BTreeSet<usize> = queries
            .iter()
            .flat_map(|query| self.index.using(query).iter().copied())
            .collect();
        if touched.is_empty() {
            return;
        }
        let first: BTreeSet<usize> = touched
            .iter()
            .copied()
            .filter(|&index| !self.slots[index].guard.rendered_before())
            .collect();
        let mut render_now = self.schedule(touched.difference(&first).copied().collect());
        render_now.extend(first);
        debug!(
            queries = queries.len(),
            resources = render_now.len(),
            "service catalog changed"
        );
        self.render(render_now, sources);
    }

    /// Of the resources a change reached, the ones to render now; the others' `wait` is armed.
    fn schedule(&mut self, touched: BTreeSet<usize>) -> BTreeSet<usize> {
        let mut render_now = BTreeSet::new();
        for index in touched {
            let slot = &mut self.slots[index];
            match slot.wait {
                None => {
                    render_now.insert(index);
                }
                Some(wait) => slot.debounce.change(wait),
            }
        }
        render_now
    }

    /// Renders the resources whose quiescence has expired.
    pub(super) fn render_due(&mut self, sources: Sources<'_>) {
        let due: BTreeSet<usize> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| slot.debounce.take_if_due().then_some(index))
            .collect();
        self.render(due, sources);
    }

    /// Renders every resource at once, whatever its `wait`: the first render is never delayed.
    pub(super) fn render_all(&mut self, sources: Sources<'_>) {
        for slot in &mut self.slots {
            slot.debounce.clear();
        }
        let all = (0..self.slots.len()).collect();
        self.render(all, sources);
    }

    /// Starts rendering the resources at `indexes` off the event loop, each against the store
    /// as it is now. A resource whose previous render still runs (or was abandoned at its time
    /// budget and has not finished) renders once that one is done.
    fn render(&mut self, indexes: BTreeSet<usize>, sources: Sources<'_>) {
        for index in indexes {
            let slot = &mut self.slots[index];
            if self.in_flight.contains_key(&slot.id) || slot.busy.load(Ordering::Acquire) {
                self.deferred.insert(slot.id);
                continue;
            }
            // A template reads a service's instances only once terad has them: a render before
            // that would list none.
            let waiting: Vec<String> = slot
                .dependencies
                .iter()
                .filter_map(|dependency| match dependency {
                    Dependency::Service(query) if !sources.catalog.ready(query) => {
                        Some(query.to_string())
                    }
                    _ => None,
                })
                .collect();
            if !waiting.is_empty() {
                if !slot.awaiting_services {
                    info!(resource = %slot.resource.name, queries = crate::logging::json(&waiting), "waiting for service data before rendering");
                    slot.awaiting_services = true;
                }
                continue;
            }
            slot.awaiting_services = false;
            if !slot.guard.admit(
                &slot.resource,
                sources.store,
                sources.catalog.snapshot(),
                &slot.dependencies,
                &self.telemetry,
            ) {
                continue;
            }
            // The reload groups wait for this render from now on: a fast worker must not finish
            // (and start a shared reload) while another resource of the same change is still
            // rendering or writing.
            slot.member.render_started();
            let input = RenderInput {
                store: Arc::clone(sources.store),
                scope: Arc::clone(&slot.scope),
                services: sources.catalog.input(),
            };
            let services = Arc::clone(&input.services.record);
            let (templates, resource, busy) = (
                Arc::clone(&slot.templates),
                Arc::clone(&slot.resource),
                Arc::clone(&slot.busy),
            );
            let (id, shutdown, report) = (slot.id, self.shutdown.clone(), self.rendered_tx.clone());
            self.in_flight.insert(id, tokio::time::Instant::now());
            tokio::spawn(async move {
                let started = Instant::now();
                let result =
                    render::render_bounded(templates, resource, input, busy, &shutdown).await;
                let _ = report.send(Rendered {
                    slot: id,
                    result,
                    took: started.elapsed(),
                    services,
                });
            });
        }
    }

    /// Hands a finished render to its worker, or reports why there is none.
    pub(super) fn finish_render(&mut self, rendered: Rendered, sources: Sources<'_>) {
        let Rendered {
            slot,
            result,
            took,
            services,
        } = rendered;
        self.in_flight.remove(&slot);
        // A configuration reload may have ended the slot meanwhile.
        let Some(position) = self.slots.iter().position(|s| s.id == slot) else {
            return;
        };
        let waiting = self.found_services(position, &services, sources.catalog);
        let awaited_key = match &result {
            Err(RenderFailure::Template(error)) => match awaited(error) {
                Some(Awaited::Key(key)) => Some(key),
                _ => None,
            },
            _ => None,
        };
        let was_awaiting = self.slots[position]
            .awaiting_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if awaited_key != was_awaiting {
            self.key_wait_changed(position, awaited_key.clone());
        }
        let slot = &self.slots[position];
        let name = &slot.resource.name;
        match result {
            Err(_) if awaited_key.is_some() => {
                // consul-template waits for a missing key without a word; terad waits too
                // (the last good file stays), but says which key, in /ready and in the log.
                slot.member.render_finished(None);
            }
            Ok(content) => {
                self.telemetry.rendered(name, true, took);
                let size = content.len();
                slot.member.render_finished(Some(content));
                release_free_memory(size);
            }
            Err(_) if !waiting.is_empty() => {
                info!(resource = %name, queries = crate::logging::json(&waiting), "the template asks for services not watched yet; rendering again once they answer");
                slot.member.render_finished(None);
            }
            Err(err) => {
                if !matches!(err, RenderFailure::Stopped) {
                    self.telemetry.rendered(name, false, took);
                    error!(
                        resource = %name,
                        dest = %slot.resource.dest.display(),
                        error = %err,
                        "render failed; destination left unchanged"
                    );
                }
                slot.member.render_finished(None);
            }
        }
        let id = slot.id;
        if !waiting.is_empty()
            && self.slots[position]
                .dependencies
                .iter()
                .all(|dependency| match dependency {
                    Dependency::Service(query) => sources.catalog.ready(query),
                    Dependency::Prefix(_) => true,
                })
        {
            // The answers arrived while the render ran: nothing else will bring it back.
            self.deferred.insert(id);
        }
        if self.deferred.contains(&id) {
            self.render_deferred(sources);
        }
    }

    /// The resource at `position` now waits for `key` (or no longer waits): `/ready` says so,
    /// the log says so at once, and warns if the key has not appeared after
    /// [`KEY_WAIT_WARNING`].
    fn key_wait_changed(&self, position: usize, key: Option<String>) {
        let slot = &self.slots[position];
        let name = slot.resource.name.clone();
        *slot.awaiting_key.lock().unwrap_or_else(|e| e.into_inner()) = key.clone();
        let Some(key) = key else {
            self.telemetry.held(&name, None);
            return;
        };
        info!(resource = %name, key = %key, "waiting for a key the template reads, which does not exist");
        self.telemetry.held(
            &name,
            Some(format!("waiting for key {key:?}, which its template reads")),
        );
        let awaiting = Arc::clone(&slot.awaiting_key);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(KEY_WAIT_WARNING) => {}
                _ = shutdown.cancelled() => return,
            }
            if awaiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_deref()
                == Some(key.as_str())
            {
                warn!(resource = %name, key = %key, waited_s = KEY_WAIT_WARNING.as_secs(), "still waiting for a key the template reads; the destination keeps its last good content");
            }
        });
    }

    /// Takes in the catalog queries a render made: one the resource did not know of becomes its
    /// dependency and is watched. Returns the queries the render had to do without (it failed
    /// waiting for them).
    fn found_services(
        &mut self,
        position: usize,
        record: &ServiceRecord,
        catalog: &mut Catalog,
    ) -> Vec<String> {
        let mut new = Vec::new();
        for query in record.used() {
            let dependency = Dependency::Service(query.clone());
            if !self.slots[position].dependencies.contains(&dependency) {
                self.index.add(position, &dependency);
                self.slots[position].dependencies.push(dependency);
                new.push(query);
            }
        }
        if !new.is_empty() {
            catalog.watch(new.iter());
        }
        record.missing().iter().map(ToString::to_string).collect()
    }

    /// Renders what waited for the previous render of its resource, against the store as it
    /// is now.
    pub(super) fn render_deferred(&mut self, sources: Sources<'_>) {
        if self.deferred.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.deferred);
        let indexes = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| ids.contains(&slot.id))
            .map(|(index, _)| index)
            .collect();
        self.render(indexes, sources);
    }
}

/// Rendering builds a value per key and drops them all at the end; for a large template that is
/// tens of MiB that glibc keeps mapped. Handing it back keeps a sidecar's resident memory at its
/// working set between changes. Skipped for small renders, where it would cost more than it saves.
fn release_free_memory(rendered_bytes: usize) {
    const WORTH_IT: usize = 1024 * 1024;
    if rendered_bytes < WORTH_IT {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it has no preconditions.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
