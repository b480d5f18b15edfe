//! One resource's pipeline: render → compare → stage → check → commit. (The reload that follows
//! is coalesced across resources by [`crate::reload`].)
//!
//! Rendering happens in memory. An unchanged result (same bytes, mode and owner as the
//! destination) writes nothing and runs nothing. A change is staged next to the destination,
//! validated by `check_cmd` against the stage file, renamed into place, and only then announced
//! to the service with `reload_cmd`. A failing check leaves the destination byte for byte as it
//! was and causes no reload.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::config::Resource;
use crate::fs::{self, Attributes, CommitKind, CurrentFile, FsError};
use crate::process::{self, CommandError};
use crate::template::{KeyScope, RenderError, RenderInput, Templates};

/// Run-wide switches that change what a sync does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Print a diff of each pending change; write and run nothing.
    pub noop: bool,
    /// Write changes, but run neither check_cmd nor reload_cmd.
    pub sync_only: bool,
    /// Keep stage files that were not committed.
    pub keep_stage_file: bool,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The destination already had this content, mode and owner.
    Unchanged,
    /// The destination was replaced; the caller runs the reload (coalesced across resources).
    Updated {
        /// How long `check_cmd` took, when it ran.
        checked_in: Option<std::time::Duration>,
    },
    /// `--noop`: a change is pending; its diff was printed.
    Pending,
}

/// Why a sync failed. The destination is untouched unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The change may no longer go live (its coordination slot was lost); the destination
    /// stays unchanged.
    #[error("not applied to {dest:?}, which stays unchanged: {reason}")]
    Aborted { dest: PathBuf, reason: &'static str },
    #[error("check_cmd rejected the new content for {dest:?}, which stays unchanged: {source}")]
    Check {
        dest: PathBuf,
        #[source]
        source: CommandError,
        took: std::time::Duration,
    },
}

/// The key scope a resource's template sees.
pub fn key_scope(resource: &Resource) -> KeyScope {
    KeyScope {
        resource: resource.name.clone(),
        prefix: resource.prefix.clone(),
        keys: resource.keys.clone(),
        values: resource.values.clone(),
    }
}

/// Renders up to this size are hashed for the "config updated" line on the sync's own path.
const LOG_HASH_INLINE: usize = 256 * 1024;

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

/// Brings the resource's destination in line with `content`.
pub async fn sync(
    resource: &Arc<Resource>,
    content: Arc<Vec<u8>>,
    options: SyncOptions,
) -> Result<SyncOutcome, SyncError> {
    sync_unless(resource, content, options, None).await
}

/// A condition checked right before the swap: when `token` is cancelled the staged change is
/// dropped instead of committed, with `reason`.
#[derive(Clone)]
pub struct AbortIf {
    pub token: tokio_util::sync::CancellationToken,
    pub reason: &'static str,
}

/// [`sync`], unless `abort` fires before the swap.
pub async fn sync_unless(
    resource: &Arc<Resource>,
    content: Arc<Vec<u8>>,
    options: SyncOptions,
    abort: Option<AbortIf>,
) -> Result<SyncOutcome, SyncError> {
    let will_check = !options.sync_only && resource.check_cmd.is_some();
    let content_for_log = Arc::clone(&content);
    // All file work before the check, and the commit too when there is no check, runs in one
    // blocking section: every hand-off costs time, and the latency from a key change to the
    // file is what a sidecar is judged by.
    let step = {
        let resource = Arc::clone(resource);
        let abort = abort.clone();
        blocking(move || {
            let step = prepare(&resource, &content, options)?;
            match step {
                Step::Staged(staged) if !will_check => match abort {
                    // Dropping `staged` removes the stage file.
                    Some(abort) if abort.token.is_cancelled() => Ok(Step::Aborted(abort.reason)),
                    _ => Ok(Step::Committed(staged.commit()?)),
                },
                other => Ok(other),
            }
        })
        .await?
    };
    let committed = match step {
        Step::Unchanged => {
            debug!(resource = %resource.name, dest = %resource.dest.display(), "config unchanged");
            return Ok(SyncOutcome::Unchanged);
        }
        Step::Pending => {
            info!(resource = %resource.name, dest = %resource.dest.display(), "noop: change not written");
            return Ok(SyncOutcome::Pending);
        }
        Step::Aborted(reason) => {
            return Err(SyncError::Aborted {
                dest: resource.dest.clone(),
                reason,
            });
        }
        Step::Committed(committed) => (committed, None),
        Step::Staged(staged) => {
            let mut checked_in = None;
            if let Some(check) = &resource.check_cmd {
                let command = check.render(staged.file.path(), &resource.dest);
                let started = std::time::Instant::now();
                let result = process::run_shell(&command, resource.check_timeout).await;
                let took = started.elapsed();
                if let Err(source) = result {
                    // Dropping `staged` removes the stage file (unless --keep-stage-file).
                    return Err(SyncError::Check {
                        dest: resource.dest.clone(),
                        source,
                        took,
                    });
                }
                checked_in = Some(took);
                debug!(resource = %resource.name, command = %check, "check passed");
            }
            // The check may have taken long: the last moment to learn the change must not go live.
            if let Some(abort) = abort.filter(|abort| abort.token.is_cancelled()) {
                return Err(SyncError::Aborted {
                    dest: resource.dest.clone(),
                    reason: abort.reason,
                });
            }
            (blocking(move || staged.commit()).await?, checked_in)
        }
    };
    let (committed, checked_in) = committed;

    if committed.kind == CommitKind::RewrittenInPlace {
        warn!(
            resource = %resource.name,
            dest = %committed.target.display(),
            "destination cannot be renamed over (a bind mount?); rewrote it in place, which is not atomic"
        );
    }

    // The hashes are for the log only; for a large file they take longer than the write, so
    // they are computed and logged on the side while the caller moves on to the reload. They are
    // keyed (not confd's plain md5): a rendered secret must not be brute-forceable from a log.
    let old_content = committed.old_content;
    let name = resource.name.clone();
    let dest = resource.dest.clone();
    let inline = content_for_log.len() < LOG_HASH_INLINE;
    let log = move || {
        let old_hash = old_content.as_deref().map(crate::redact::content_hash);
        let new_hash = crate::redact::content_hash(&content_for_log);
        info!(
            resource = %name,
            dest = %dest.display(),
            old_hash = old_hash.as_deref().unwrap_or("none"),
            new_hash = %new_hash,
            "config updated"
        );
    };
    // Hashing a small file costs microseconds: log it at once, so that a one-shot run that
    // exits right after cannot lose the line. Only a large one is hashed on the side.
    if inline {
        log();
    } else {
        tokio::task::spawn_blocking(log);
    }
    Ok(SyncOutcome::Updated { checked_in })
}

/// The destination's current content (a link's target's), `None` when there is no file yet.
pub async fn current_content(resource: &Arc<Resource>) -> Result<Option<Vec<u8>>, FsError> {
    let dest = resource.dest.clone();
    blocking(move || {
        let target = fs::resolve_destination(&dest)?;
        Ok(fs::read_current(&target)?.map(|current| current.content))
    })
    .await
}

/// Removes the destination: the rollback of a change that created it.
pub async fn remove_destination(resource: &Arc<Resource>) -> Result<(), FsError> {
    let dest = resource.dest.clone();
    blocking(move || {
        let target = fs::resolve_destination(&dest)?;
        match std::fs::remove_file(&target) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(FsError::Commit {
                path: target,
                source,
            }),
        }
    })
    .await
}

/// Where the blocking part of a sync got to.
enum Step {
    Unchanged,
    /// `--noop`: the diff was printed.
    Pending,
    /// Written to a stage file, waiting for the check.
    Staged(Staged),
    /// Staged, and dropped before the swap because the abort condition fired.
    Aborted(&'static str),
    Committed(Committed),
}

struct Staged {
    file: fs::StagedFile,
    target: PathBuf,
    /// What the destination held, for the log's old checksum.
    old_content: Option<Vec<u8>>,
}

struct Committed {
    kind: CommitKind,
    /// The file actually replaced (a link's target).
    target: PathBuf,
    old_content: Option<Vec<u8>>,
}

impl Staged {
    fn commit(self) -> Result<Committed, FsError> {
        Ok(Committed {
            kind: self.file.commit()?,
            target: self.target,
            old_content: self.old_content,
        })
    }
}

/// Compares the render with the destination and stages it if it differs. Blocking.
fn prepare(resource: &Resource, content: &[u8], options: SyncOptions) -> Result<Step, FsError> {
    let target = fs::resolve_destination(&resource.dest)?;
    let current = fs::read_current(&target)?;
    let attributes = Attributes {
        mode: resource
            .mode
            .or(current.as_ref().map(|c| c.mode))
            .unwrap_or(fs::DEFAULT_MODE),
        uid: resource.uid,
        gid: resource.gid,
    };
    if let Some(current) = &current
        && current.content == content
        && attributes_match(current, &attributes)
    {
        return Ok(Step::Unchanged);
    }
    if options.noop {
        print_pending_change(resource, current.as_ref(), content, &attributes);
        return Ok(Step::Pending);
    }
    let file = fs::stage(
        &target,
        content,
        attributes,
        resource.create_dirs,
        options.keep_stage_file,
    )?;
    Ok(Step::Staged(Staged {
        file,
        target,
        old_content: current.map(|c| c.content),
    }))
}

fn attributes_match(current: &CurrentFile, wanted: &Attributes) -> bool {
    current.mode == wanted.mode
        && wanted.uid.is_none_or(|uid| uid == current.uid)
        && wanted.gid.is_none_or(|gid| gid == current.gid)
}

/// `--noop` output: a unified diff of the content and a note on mode or owner changes.
fn print_pending_change(
    resource: &Resource,
    current: Option<&CurrentFile>,
    content: &[u8],
    attributes: &Attributes,
) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let label = resource.dest.display().to_string();
    let engine = match resource.template.engine {
        crate::template::EngineChoice::Go => "go",
        _ => "tera",
    };
    let _ = writeln!(
        out,
        "# {}: template {} ({engine})",
        resource.name, resource.template.name
    );
    let old = current.map(|c| c.content.as_slice()).unwrap_or_default();
    match (std::str::from_utf8(old), std::str::from_utf8(content)) {
        (Ok(old_text), Ok(new_text)) => {
            if old_text != new_text {
                let diff = similar::TextDiff::from_lines(old_text, new_text);
                let (from, to) = match current {
                    Some(_) => (format!("{label} (current)"), format!("{label} (rendered)")),
                    None => ("/dev/null".to_owned(), format!("{label} (new file)")),
                };
                let _ = write!(
                    out,
                    "{}",
                    diff.unified_diff().context_radius(3).header(&from, &to)
                );
            }
        }
        _ => {
            let _ = writeln!(out, "Binary content of {label} differs");
        }
    }
    if let Some(current) = current {
        if current.mode != attributes.mode {
            let _ = writeln!(
                out,
                "mode of {label}: {:04o} -> {:04o}",
                current.mode, attributes.mode
            );
        }
        if attributes.uid.is_some_and(|uid| uid != current.uid)
            || attributes.gid.is_some_and(|gid| gid != current.gid)
        {
            let _ = writeln!(
                out,
                "owner of {label}: {}:{} -> {}:{}",
                current.uid,
                current.gid,
                attributes.uid.unwrap_or(current.uid),
                attributes.gid.unwrap_or(current.gid)
            );
        }
    }
    let _ = out.flush();
}

/// Runs blocking file I/O without stalling other tasks. On the multi-thread runtime terad runs
/// on, `block_in_place` hands this worker's other tasks to another thread and does the I/O right
/// here: no hop to the blocking pool and back, which measured 0.2–0.3 ms of a 3 ms key-to-file
/// latency. A resource's sync is the only thing its task does, so nothing waits on it meanwhile.
/// The current-thread runtime of unit tests cannot hand off; there it goes to the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        return tokio::task::block_in_place(work);
    }
    tokio::task::spawn_blocking(work)
        .await
        .expect("file operations do not panic")
}
