//! Render: a resource's template against one state of the store, in memory, on the blocking
//! pool and within the resource's `render_timeout`. The first step of the apply path
//! ([`super`]); the runner calls it between batches of changes, so that every render reads
//! exactly one state of the store.

use std::sync::Arc;

use crate::config::Resource;
use crate::template::{KeyScope, RenderError, RenderInput, Templates};

/// The key scope a resource's template sees.
pub fn key_scope(resource: &Resource) -> KeyScope {
    KeyScope {
        resource: resource.name.clone(),
        prefix: resource.prefix.clone(),
        keys: resource.keys.clone(),
        values: resource.values.clone(),
    }
}

/// Why a bounded render produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    #[error(transparent)]
    Template(#[from] RenderError),
    /// The render took longer than the resource's `render_timeout`; it is abandoned and the
    /// last good file stays. A Go template's thread stops at the deadline too; Tera cannot be
    /// interrupted, so a Tera render's thread finishes on its own.
    #[error("rendering took longer than render_timeout ({}s); the template may loop over too much data", .0.as_secs_f64())]
    Timeout(std::time::Duration),
    /// Shutdown came first.
    #[error("shutting down")]
    Stopped,
}

/// Renders on the blocking pool, so a slow template stalls neither the runner's event loop nor
/// signal handling: gives up after the resource's `render_timeout` or at shutdown. `busy` is
/// true while the render's thread runs, including after it was abandoned.
pub async fn render_bounded(
    templates: Arc<Templates>,
    resource: Arc<Resource>,
    input: RenderInput,
    busy: Arc<std::sync::atomic::AtomicBool>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<Vec<u8>, RenderFailure> {
    use std::sync::atomic::Ordering;
    let budget = resource.render_timeout;
    busy.store(true, Ordering::Release);
    let deadline = std::time::Instant::now() + budget;
    let task = tokio::task::spawn_blocking(move || {
        let result = render(&templates, &resource, &input, Some(deadline));
        // The store reference goes before the flag clears: the runner updates the store in
        // place only when nothing else holds it.
        drop(input);
        busy.store(false, Ordering::Release);
        result
    });
    tokio::select! {
        joined = tokio::time::timeout(budget, task) => match joined {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(RenderFailure::Timeout(budget)),
        },
        _ = shutdown.cancelled() => Err(RenderFailure::Stopped),
    }
}

/// Renders a resource's template against its input; an engine that can be interrupted gives up
/// at `deadline`.
pub fn render(
    templates: &Templates,
    resource: &Resource,
    input: &RenderInput,
    deadline: Option<std::time::Instant>,
) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(8 * 1024);
    templates.render_until(&resource.template, input, deadline, &mut out)?;
    Ok(out)
}
