//! Compare → stage → check → commit: the file half of the apply path ([`super`]).
//!
//! Rendering happens in memory. An unchanged result (same bytes, mode and owner as the
//! destination) writes nothing and runs nothing. A change is staged next to the destination,
//! validated by `check_cmd` against the stage file, and renamed into place only when the check
//! passed. A failing check leaves the destination byte for byte as it was.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::cli::NoopOutput;
use crate::config::Resource;
use crate::fs::{self, Attributes, CommitKind, CurrentFile, FsError};
use crate::process::{self, CommandError};

/// Run-wide switches that change what a sync does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Print a diff of each pending change; write and run nothing.
    pub noop: bool,
    /// What `noop` prints: a diff, or (consul-template's `-dry`) every render whole.
    pub noop_output: NoopOutput,
    /// Write changes, but run neither check_cmd nor reload_cmd.
    pub sync_only: bool,
    /// Keep every stage file that was not committed, an unchanged render's too, and log its
    /// path.
    pub keep_stage_file: bool,
}

/// Why a staged change did not go live. The destination is untouched.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The change may no longer go live (its coordination slot was lost).
    #[error("not applied to {dest:?}, which stays unchanged: {reason}")]
    Aborted { dest: PathBuf, reason: &'static str },
    #[error("check_cmd rejected the new content for {dest:?}, which stays unchanged: {source}")]
    Check {
        dest: PathBuf,
        #[source]
        source: CommandError,
        took: Duration,
    },
}

/// A condition checked right before the swap: when `token` is cancelled the staged change is
/// dropped instead of committed, with `reason`.
#[derive(Clone)]
pub struct AbortIf {
    pub token: tokio_util::sync::CancellationToken,
    pub reason: &'static str,
}

/// Where comparing and staging a render got to.
pub enum Staging {
    /// The destination already had this content, mode and owner.
    Unchanged,
    /// `--noop`: the change was printed as a diff and not written.
    Pending,
    /// Written to a stage file next to the destination, waiting for the check and the commit.
    Staged(StagedChange),
    /// Committed in the same step (no check to run): see [`Direct`].
    Committed(Committed),
}

/// Whether a change that needs no check is committed in the same blocking step as the compare
/// and the stage: every hand-off costs time, and the latency from a key change to the file is
/// what a sidecar is judged by.
pub enum Direct {
    /// Commit at once, unless `abort` fired.
    Commit(Option<AbortIf>),
    /// Stop at the stage file: the caller checks (or does more) before committing.
    Stage,
}

/// Compares `content` with the destination and stages it if it differs; with [`Direct::Commit`]
/// commits it too.
pub async fn stage(
    resource: &Arc<Resource>,
    content: Arc<Vec<u8>>,
    options: SyncOptions,
    direct: Direct,
) -> Result<Staging, StageError> {
    let resource = Arc::clone(resource);
    let dest = resource.dest.clone();
    let staging = blocking(move || -> Result<Result<Staging, &'static str>, FsError> {
        let staging = prepare(&resource, &content, options)?;
        match (staging, direct) {
            (Staging::Staged(staged), Direct::Commit(abort)) => match abort {
                // Dropping `staged` removes the stage file.
                Some(abort) if abort.token.is_cancelled() => Ok(Err(abort.reason)),
                _ => Ok(Ok(Staging::Committed(staged.commit_now()?))),
            },
            (other, _) => Ok(Ok(other)),
        }
    })
    .await?;
    staging.map_err(|reason| StageError::Aborted { dest, reason })
}

/// A render waiting in its stage file. Dropping it removes the stage file (unless
/// `--keep-stage-file`).
pub struct StagedChange {
    file: fs::StagedFile,
    target: PathBuf,
    /// What the destination held, for the log's old checksum and for a rollback.
    old_content: Option<Vec<u8>>,
}

/// A change that went live.
pub struct Committed {
    kind: CommitKind,
    /// The file actually replaced (a link's target).
    target: PathBuf,
    old_content: Option<Vec<u8>>,
}

impl StagedChange {
    /// What the destination holds now: `None` when there is no file yet.
    pub fn old_content(&self) -> Option<&[u8]> {
        self.old_content.as_deref()
    }

    /// Runs `check_cmd` against the stage file; returns how long it took, `None` when there is
    /// no check (or `--sync-only`).
    pub async fn check(
        &self,
        resource: &Resource,
        options: SyncOptions,
    ) -> Result<Option<Duration>, StageError> {
        let Some(check) = resource.check_cmd.as_ref().filter(|_| !options.sync_only) else {
            return Ok(None);
        };
        let command = check.render(self.file.path(), &resource.dest);
        let started = std::time::Instant::now();
        let result = process::run_shell(&command, resource.check_timeout).await;
        let took = started.elapsed();
        match result {
            Ok(_) => {
                debug!(resource = %resource.name, command = %check, "check passed");
                Ok(Some(took))
            }
            Err(source) => Err(StageError::Check {
                dest: resource.dest.clone(),
                source,
                took,
            }),
        }
    }

    /// Renames the stage file over the destination.
    pub async fn commit(self) -> Result<Committed, FsError> {
        blocking(move || self.commit_now()).await
    }

    fn commit_now(self) -> Result<Committed, FsError> {
        Ok(Committed {
            kind: self.file.commit()?,
            target: self.target,
            old_content: self.old_content,
        })
    }
}

/// Renders up to this size are hashed for the "config updated" line on the apply path itself.
const LOG_HASH_INLINE: usize = 256 * 1024;

impl Committed {
    /// Logs the change: a warning when the swap was not atomic, and the old and new checksums.
    pub fn log(self, resource: &Resource, content: Arc<Vec<u8>>) {
        if self.kind == CommitKind::RewrittenInPlace {
            warn!(
                resource = %resource.name,
                dest = %self.target.display(),
                "destination cannot be renamed over (a bind mount?); rewrote it in place, which is not atomic"
            );
        }
        // The hashes are for the log only; for a large file they take longer than the write, so
        // they are computed and logged on the side while the caller moves on to the reload.
        // They are keyed (not confd's plain md5): a rendered secret must not be brute-forceable
        // from a log.
        let old_content = self.old_content;
        let name = resource.name.clone();
        let dest = resource.dest.clone();
        let inline = content.len() < LOG_HASH_INLINE;
        let log = move || {
            let old_hash = old_content.as_deref().map(crate::redact::content_hash);
            let new_hash = crate::redact::content_hash(&content);
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
    }
}

/// The destination's current content (a link's target's), `None` when there is no file yet.
pub async fn current_content(resource: &Resource) -> Result<Option<Vec<u8>>, FsError> {
    let dest = resource.dest.clone();
    blocking(move || {
        let target = fs::resolve_destination(&dest)?;
        Ok(fs::read_current(&target)?.map(|current| current.content))
    })
    .await
}

/// Removes the destination: the rollback of a change that created it.
pub async fn remove_destination(resource: &Resource) -> Result<(), FsError> {
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

/// Compares the render with the destination and stages it if it differs. Blocking.
fn prepare(resource: &Resource, content: &[u8], options: SyncOptions) -> Result<Staging, FsError> {
    if options.noop && options.noop_output == NoopOutput::Contents {
        // consul-template's -dry: `> DEST` and the render, changed or not.
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "> {}", resource.dest.display());
        let _ = out.write_all(content);
        let _ = out.flush();
        return Ok(Staging::Pending);
    }
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
        if options.keep_stage_file && !options.noop {
            // confd stages every render and compares the stage file with the destination, so
            // --keep-stage-file keeps one for an unchanged render too: what it would have
            // written, for inspection. Dropped at once, it stays and its path is logged.
            fs::stage(&target, content, attributes, false, true)?;
        }
        return Ok(Staging::Unchanged);
    }
    if options.noop {
        let runtime = !options.sync_only;
        print_pending_change(resource, current.as_ref(), content, &attributes, runtime);
        return Ok(Staging::Pending);
    }
    let file = fs::stage(
        &target,
        content,
        attributes,
        resource.create_dirs,
        options.keep_stage_file,
    )?;
    Ok(Staging::Staged(StagedChange {
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

/// `--noop` output: a unified diff of the content and a note on mode or owner changes; with
/// `[template.haproxy]` (and `runtime`: not `--sync-only`), the runtime API's commands, or why
/// HAProxy would reload.
fn print_pending_change(
    resource: &Resource,
    current: Option<&CurrentFile>,
    content: &[u8],
    attributes: &Attributes,
    runtime: bool,
) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let label = resource.dest.display().to_string();
    let engine = match resource.template.engine {
        crate::template::EngineChoice::Go => "go",
        crate::template::EngineChoice::ConsulTemplate => "consul-template",
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
    if let Some(haproxy) = resource.haproxy.as_ref().filter(|_| runtime) {
        let live = current.map(|c| c.content.as_slice());
        let _ = write!(out, "{}", super::runtime::describe(haproxy, live, content));
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
