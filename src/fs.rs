//! The only place terad writes files.
//!
//! A new destination is staged as `.<dest-name>.<random>` in the destination's own directory
//! (created 0600, so nobody reads it before its final mode and owner are set), written, given its
//! mode and owner, fsynced, and then renamed over the destination; the directory is fsynced after
//! the rename. A reader therefore always sees the complete old or the complete new file, also
//! across a crash. A stage file that is not committed is removed when dropped.
//!
//! A destination that is a link is followed only along a path nobody but root and terad's own
//! user can change (sshd's `StrictModes` model, see [`resolve_destination`]); otherwise a user
//! who may write the destination's directory could point terad at any file. The current
//! destination is opened without following a link and without blocking, and anything but a
//! regular file (a FIFO, a device, a socket) is refused before a byte is read.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tempfile::NamedTempFile;

/// Mode of a destination that does not exist yet and has no `mode` configured.
pub const DEFAULT_MODE: u32 = 0o644;
/// Length of the random part of a stage file name; the start-up sweep relies on it.
const STAGE_RANDOM_LEN: usize = 10;
/// The largest destination terad reads back to compare with a render. A regular file this big
/// is no configuration file; the bound keeps a file that grows while it is read finite.
pub const MAX_DESTINATION_SIZE: u64 = 1 << 30;
/// Links followed while resolving one destination before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Why a file operation failed. Every variant names the path it failed on.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot read {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("destination {path:?} is a directory")]
    IsDirectory { path: PathBuf },
    #[error("destination {path:?} is a link to {target:?}, which does not exist")]
    DanglingLink { path: PathBuf, target: PathBuf },
    /// A link on the way to the destination could have been planted: see
    /// [`resolve_destination`].
    #[error("refusing to follow the link {link:?} to destination {path:?}: {reason}")]
    UntrustedLink {
        path: PathBuf,
        link: PathBuf,
        reason: String,
    },
    #[error("destination {path:?} goes through more than {MAX_LINKS} links")]
    TooManyLinks { path: PathBuf },
    #[error("destination {path:?} is a {kind}, not a regular file")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("destination {path:?} is larger than {MAX_DESTINATION_SIZE} bytes")]
    TooLarge { path: PathBuf },
    #[error("destination directory {path:?} does not exist (set create_dirs = true to create it)")]
    MissingDirectory { path: PathBuf },
    #[error("cannot create directory {path:?}: {source}")]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write stage file {path:?}: {source}")]
    Stage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set owner of {path:?} to {uid}:{gid}: {source}")]
    Chown {
        path: PathBuf,
        uid: u32,
        gid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot replace {path:?}: {source}")]
    Commit {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The destination as it is on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentFile {
    pub content: Vec<u8>,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The file to write: content plus the attributes it must end up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    pub mode: u32,
    /// `None`: whatever the writing process gets (no chown).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Where a write to `dest` really goes. A link (the destination itself, or a directory on the
/// way to it) is followed to its final target so the target is replaced atomically and the
/// link stays a link; a dangling link is refused, never silently turned into a regular file.
///
/// A link is followed only when nobody but root and terad's effective user can have planted it
/// or can redirect it: the link itself, every directory above it, and every directory on the
/// way to its target must be owned by root or by terad's user and must not be writable by group
/// or others (a sticky directory such as `/tmp` is accepted: only an entry's owner may replace
/// the entry, and that owner is checked in turn). This is sshd's `StrictModes`. Anything else is
/// [`FsError::UntrustedLink`], naming the link and why. A destination reached without any link
/// is not checked: it is never followed (it is read with `O_NOFOLLOW` and replaced by a rename).
pub fn resolve_destination(dest: &Path) -> Result<PathBuf, FsError> {
    let read_error = |source| FsError::Read {
        path: dest.to_owned(),
        source,
    };
    let absolute = if dest.is_absolute() {
        dest.to_owned()
    } else {
        std::env::current_dir().map_err(read_error)?.join(dest)
    };
    let trust = Trust::of_this_process();
    // Components still to walk, the next one last; `resolved` never contains a link.
    let mut pending: Vec<OsString> = components_reversed(&absolute);
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    // The last link followed, for the message when the way on from it is not trusted.
    let mut last_link = PathBuf::new();
    while let Some(name) = pending.pop() {
        match name.to_str() {
            Some(".") => continue,
            Some("..") => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = resolved.join(&name);
        let metadata = match std::fs::symlink_metadata(&candidate) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                // Nothing below a missing entry exists, so there is no link left to follow.
                resolved = candidate;
                while let Some(name) = pending.pop() {
                    match name.to_str() {
                        Some(".") => {}
                        Some("..") => {
                            resolved.pop();
                        }
                        _ => resolved.push(name),
                    }
                }
                break;
            }
            Err(error) => return Err(read_error(error)),
        };
        if !metadata.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(FsError::TooManyLinks {
                path: dest.to_owned(),
            });
        }
        let untrusted = |reason| FsError::UntrustedLink {
            path: dest.to_owned(),
            link: candidate.clone(),
            reason,
        };
        if !trust.owner_ok(metadata.uid()) {
            return Err(untrusted(format!(
                "the link is owned by uid {}, not by root or terad's uid {}",
                metadata.uid(),
                trust.euid
            )));
        }
        trust
            .check_directories(&resolved)
            .map_err(|reason| untrusted(reason.to_string()))?;
        let target = std::fs::read_link(&candidate).map_err(read_error)?;
        last_link = candidate;
        if target.is_absolute() {
            resolved = PathBuf::from("/");
        }
        pending.extend(components_reversed(&target));
    }
    if links == 0 {
        return match std::fs::symlink_metadata(dest) {
            Ok(metadata) if metadata.is_dir() => Err(FsError::IsDirectory {
                path: dest.to_owned(),
            }),
            _ => Ok(dest.to_owned()),
        };
    }
    // The target's own directory and those above it: the last stretch of the way.
    let target_dir = parent_dir(&resolved);
    let mut existing = target_dir;
    while std::fs::symlink_metadata(existing).is_err() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => break,
        }
    }
    trust
        .check_directories(existing)
        .map_err(|reason| FsError::UntrustedLink {
            path: dest.to_owned(),
            link: last_link,
            reason: format!("on the way to its target {resolved:?}: {reason}"),
        })?;
    match std::fs::symlink_metadata(&resolved) {
        Ok(metadata) if metadata.is_dir() => Err(FsError::IsDirectory {
            path: dest.to_owned(),
        }),
        Err(_) if std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_symlink()) => {
            Err(FsError::DanglingLink {
                path: dest.to_owned(),
                target: std::fs::read_link(dest).unwrap_or_default(),
            })
        }
        _ => Ok(resolved),
    }
}

/// The normal components of `path`, last first (a stack to pop from); the root is implied.
fn components_reversed(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir => Some(OsString::from(".")),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    names.reverse();
    names
}

/// Whose files and directories terad trusts to lead to a destination: root's and its own.
struct Trust {
    euid: u32,
}

impl Trust {
    fn of_this_process() -> Trust {
        Trust {
            euid: nix::unistd::geteuid().as_raw(),
        }
    }

    fn owner_ok(&self, uid: u32) -> bool {
        uid == 0 || uid == self.euid
    }

    /// Checks `dir` and every directory above it; the reason names the first one at fault.
    /// `dir` is a path without links.
    fn check_directories(&self, dir: &Path) -> Result<(), UntrustedDirectory> {
        for ancestor in dir.ancestors() {
            let path = ancestor.to_owned();
            let metadata = std::fs::symlink_metadata(ancestor).map_err(|source| {
                UntrustedDirectory::Uninspectable {
                    path: path.clone(),
                    source,
                }
            })?;
            let mode = metadata.mode() & 0o7777;
            if !self.owner_ok(metadata.uid()) {
                return Err(UntrustedDirectory::Owner {
                    path,
                    uid: metadata.uid(),
                    euid: self.euid,
                });
            }
            let sticky = mode & 0o1000 != 0;
            if !sticky && mode & 0o002 != 0 {
                return Err(UntrustedDirectory::WritableByOthers { path, mode });
            }
            if !sticky && mode & 0o020 != 0 {
                return Err(UntrustedDirectory::WritableByGroup { path, mode });
            }
        }
        Ok(())
    }
}

/// Why a directory on the way to a linked destination cannot be trusted: someone other than
/// root or terad could swap what lies below it.
#[derive(Debug, thiserror::Error)]
enum UntrustedDirectory {
    #[error("cannot inspect {path:?}: {source}")]
    Uninspectable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("directory {path:?} is owned by uid {uid}, not by root or terad's uid {euid}")]
    Owner { path: PathBuf, uid: u32, euid: u32 },
    #[error("directory {path:?} is writable by others (mode {mode:04o})")]
    WritableByOthers { path: PathBuf, mode: u32 },
    #[error("directory {path:?} is writable by its group (mode {mode:04o})")]
    WritableByGroup { path: PathBuf, mode: u32 },
}

/// Reads the destination's content and attributes; `None` when it does not exist.
///
/// `path` is what [`resolve_destination`] returned, so a link found here now was planted since:
/// it is not followed (`O_NOFOLLOW`). The file is opened without blocking (a FIFO would block
/// the open, and a read, forever) and checked with `fstat` before anything is read: only a
/// regular file of at most [`MAX_DESTINATION_SIZE`] bytes is read.
pub fn read_current(path: &Path) -> Result<Option<CurrentFile>, FsError> {
    let read_error = |source| FsError::Read {
        path: path.to_owned(),
        source,
    };
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        // ELOOP: a link where none was; ENXIO: a socket. Name what is there.
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(nix::libc::ELOOP | nix::libc::ENXIO)
            ) =>
        {
            return Err(match std::fs::symlink_metadata(path) {
                Ok(metadata) => not_regular(path, &metadata),
                Err(_) => read_error(error),
            });
        }
        Err(error) => return Err(read_error(error)),
    };
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(not_regular(path, &metadata));
    }
    if metadata.len() > MAX_DESTINATION_SIZE {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
        });
    }
    let mut content = Vec::with_capacity(metadata.len() as usize);
    // One byte more than allowed tells a file that grew past the bound while being read.
    file.take(MAX_DESTINATION_SIZE + 1)
        .read_to_end(&mut content)
        .map_err(read_error)?;
    if content.len() as u64 > MAX_DESTINATION_SIZE {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(Some(CurrentFile {
        content,
        mode: metadata.mode() & 0o7777,
        uid: metadata.uid(),
        gid: metadata.gid(),
    }))
}

/// The error for a destination that is not a regular file.
fn not_regular(path: &Path, metadata: &std::fs::Metadata) -> FsError {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        return FsError::IsDirectory {
            path: path.to_owned(),
        };
    }
    let kind = if file_type.is_symlink() {
        "link that appeared after it was checked"
    } else if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else {
        "special file"
    };
    FsError::NotRegular {
        path: path.to_owned(),
        kind,
    }
}

/// A fully written stage file waiting to be committed over its destination.
#[derive(Debug)]
pub struct StagedFile {
    file: Option<NamedTempFile>,
    /// The staged path, kept for messages after the file was consumed.
    path: PathBuf,
    dest: PathBuf,
    content_len: usize,
    keep: bool,
}

/// Writes `content` to a new stage file next to `dest` with the given attributes, fsynced.
/// `create_dirs` creates a missing destination directory; otherwise that is an error.
pub fn stage(
    dest: &Path,
    content: &[u8],
    attributes: Attributes,
    create_dirs: bool,
    keep: bool,
) -> Result<StagedFile, FsError> {
    let dir = parent_dir(dest);
    if !dir.is_dir() {
        if !create_dirs {
            return Err(FsError::MissingDirectory {
                path: dir.to_owned(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| FsError::CreateDirectory {
            path: dir.to_owned(),
            source,
        })?;
    }
    let stage_error = |path: &Path, source| FsError::Stage {
        path: path.to_owned(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(&stage_prefix(dest))
        .rand_bytes(STAGE_RANDOM_LEN)
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|source| stage_error(dir, source))?;
    let path = file.path().to_owned();
    file.write_all(content)
        .map_err(|source| stage_error(&path, source))?;
    // Owner before mode: chown clears set-id bits.
    if attributes.uid.is_some() || attributes.gid.is_some() {
        let current = file
            .as_file()
            .metadata()
            .map_err(|source| stage_error(&path, source))?;
        let (uid, gid) = (
            attributes.uid.unwrap_or(current.uid()),
            attributes.gid.unwrap_or(current.gid()),
        );
        if (uid, gid) != (current.uid(), current.gid()) {
            nix::unistd::fchown(
                &file,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|errno| FsError::Chown {
                path: path.clone(),
                uid,
                gid,
                source: errno.into(),
            })?;
        }
    }
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(attributes.mode))
        .map_err(|source| stage_error(&path, source))?;
    file.as_file()
        .sync_all()
        .map_err(|source| stage_error(&path, source))?;
    Ok(StagedFile {
        file: Some(file),
        path,
        dest: dest.to_owned(),
        content_len: content.len(),
        keep,
    })
}

impl StagedFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the stage file over the destination and fsyncs the directory. Where the
    /// destination cannot be replaced by a rename (`EBUSY`: a file bind-mounted into a
    /// container), it is rewritten in place instead, which is not atomic; the caller is told so
    /// it can warn.
    pub fn commit(mut self) -> Result<CommitKind, FsError> {
        let file = self.file.take().expect("a stage file is committed once");
        let dest = self.dest.clone();
        let commit_error = |source| FsError::Commit {
            path: dest.clone(),
            source,
        };
        let kind = match file.persist(&self.dest) {
            Ok(_) => CommitKind::Renamed,
            Err(error) if error.error.raw_os_error() == Some(nix::libc::EBUSY) => {
                let staged = error.file;
                let content = std::fs::read(staged.path()).map_err(commit_error)?;
                debug_assert_eq!(content.len(), self.content_len);
                // The same care as for reading: no link, no blocking, a regular file only.
                let mut target = OpenOptions::new()
                    .write(true)
                    .custom_flags(
                        nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY,
                    )
                    .open(&self.dest)
                    .map_err(commit_error)?;
                let metadata = target.metadata().map_err(commit_error)?;
                if !metadata.is_file() {
                    return Err(not_regular(&self.dest, &metadata));
                }
                target.set_len(0).map_err(commit_error)?;
                target.write_all(&content).map_err(commit_error)?;
                target.sync_all().map_err(commit_error)?;
                drop(staged);
                CommitKind::RewrittenInPlace
            }
            Err(error) => {
                // Put the file back so Drop honours --keep-stage-file.
                self.file = Some(error.file);
                return Err(commit_error(error.error));
            }
        };
        if let Ok(dir) = File::open(parent_dir(&self.dest)) {
            // The rename is durable only once the directory entry is on disk.
            dir.sync_all().map_err(commit_error)?;
        }
        Ok(kind)
    }
}

impl Drop for StagedFile {
    /// A stage file not committed is removed, or with `--keep-stage-file` kept, and its path
    /// logged so that it can be found (confd logs "Keeping staged file").
    fn drop(&mut self) {
        if let Some(file) = self.file.take()
            && self.keep
            && file.keep().is_ok()
        {
            tracing::info!(
                path = %self.path.display(),
                dest = %self.dest.display(),
                "kept the stage file (--keep-stage-file)"
            );
        }
    }
}

/// How a commit replaced the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    /// Atomically, by rename.
    Renamed,
    /// In place, because the destination could not be renamed over (bind mount).
    RewrittenInPlace,
}

/// Removes stage files a crashed run left next to `dest`. Only names of terad's own pattern,
/// `.<dest-name>.` plus the random suffix, are touched. Returns the files removed.
pub fn remove_stale_stage_files(dest: &Path) -> Vec<PathBuf> {
    let prefix = stage_prefix(dest);
    let Ok(entries) = std::fs::read_dir(parent_dir(dest)) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_stage = name.strip_prefix(&prefix).is_some_and(|random| {
            random.len() == STAGE_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if is_stage && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            if std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed
}

/// Where the content a health-gated change replaced is kept: `.<dest-name>.terad-backup` next
/// to the destination (hidden, so include globs such as `conf.d/*.conf` skip it, and not of the
/// stage-file pattern, so the crash clean-up leaves it).
pub fn backup_path(dest: &Path) -> PathBuf {
    parent_dir(dest).join(format!("{}terad-backup", stage_prefix(dest)))
}

/// Writes `content` to [`backup_path`], mode 0600, by rename so a crash leaves the old backup
/// or the new one.
pub fn write_backup(dest: &Path, content: &[u8]) -> Result<PathBuf, FsError> {
    let path = backup_path(dest);
    let stage_error = |source| FsError::Stage {
        path: path.clone(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(&stage_prefix(dest))
        .rand_bytes(STAGE_RANDOM_LEN)
        .tempfile_in(parent_dir(dest))
        .map_err(stage_error)?;
    file.write_all(content).map_err(stage_error)?;
    file.as_file().sync_all().map_err(stage_error)?;
    file.persist(&path).map_err(|e| stage_error(e.error))?;
    Ok(path)
}

fn stage_prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(mode: u32) -> Attributes {
        Attributes {
            mode,
            uid: None,
            gid: None,
        }
    }

    #[test]
    fn stage_and_commit_replace_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("app.conf");
        std::fs::write(&dest, "old").unwrap();
        let staged = stage(&dest, b"new", attrs(0o640), false, false).unwrap();
        let name = staged
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(name.starts_with(".app.conf.") && name.len() == ".app.conf.".len() + 10);
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            b"old",
            "not visible before commit"
        );
        assert_eq!(staged.commit().unwrap(), CommitKind::Renamed);
        let current = read_current(&dest).unwrap().unwrap();
        assert_eq!(current.content, b"new");
        assert_eq!(current.mode, 0o640);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no stage file left"
        );
    }

    #[test]
    fn dropped_stage_files_are_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a");
        let staged = stage(&dest, b"x", attrs(0o644), false, false).unwrap();
        let path = staged.path().to_owned();
        drop(staged);
        assert!(!path.exists());
        let staged = stage(&dest, b"x", attrs(0o644), false, true).unwrap();
        let path = staged.path().to_owned();
        drop(staged);
        assert!(path.exists(), "--keep-stage-file keeps it");
    }

    #[test]
    fn missing_directory_is_an_error_unless_create_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/dir/a.conf");
        let err = stage(&dest, b"x", attrs(0o644), false, false).unwrap_err();
        assert!(matches!(err, FsError::MissingDirectory { .. }));
        assert!(
            err.to_string().contains("sub/dir\" does not exist"),
            "{err}"
        );
        stage(&dest, b"x", attrs(0o644), true, false)
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"x");
    }

    #[test]
    fn links_are_followed_and_stay_links() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.cfg");
        let link = dir.path().join("link.cfg");
        std::fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let resolved = resolve_destination(&link).unwrap();
        assert_eq!(resolved, target.canonicalize().unwrap());
        stage(&resolved, b"new", attrs(0o644), false, false)
            .unwrap()
            .commit()
            .unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&link).unwrap(), b"new");

        let dangling = dir.path().join("dangling.cfg");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let err = resolve_destination(&dangling).unwrap_err();
        assert!(matches!(err, FsError::DanglingLink { .. }), "{err}");
        let err = resolve_destination(dir.path()).unwrap_err();
        assert!(matches!(err, FsError::IsDirectory { .. }), "{err}");
    }

    #[test]
    fn stale_stage_files_of_this_destination_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("haproxy.cfg");
        let stale = dir.path().join(".haproxy.cfg.AbCdE12345");
        let other_dest = dir.path().join(".nginx.conf.AbCdE12345");
        let unrelated = dir.path().join(".haproxy.cfg.backup");
        for path in [&stale, &other_dest, &unrelated] {
            std::fs::write(path, "x").unwrap();
        }
        assert_eq!(
            remove_stale_stage_files(&dest),
            std::slice::from_ref(&stale)
        );
        assert!(!stale.exists() && other_dest.exists() && unrelated.exists());
    }

    #[test]
    fn read_current_reports_missing_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_current(&dir.path().join("nope")).unwrap(), None);
        assert!(matches!(
            read_current(dir.path()).unwrap_err(),
            FsError::IsDirectory { .. } | FsError::Read { .. }
        ));
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_link_in_a_directory_others_may_write_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        let link = shared.join("app.conf");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for (mode, why) in [
            (0o777, "is writable by others (mode 0777)"),
            (0o770, "is writable by its group (mode 0770)"),
        ] {
            chmod(&shared, mode);
            let err = resolve_destination(&link).unwrap_err();
            assert!(matches!(err, FsError::UntrustedLink { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("follow the link {link:?} to destination"))
                    && text.contains(why),
                "{text}"
            );
        }
        // Sticky, like /tmp: only the link's owner (terad's user) could replace it.
        chmod(&shared, 0o1777);
        assert_eq!(
            resolve_destination(&link).unwrap(),
            victim.canonicalize().unwrap()
        );
        // A linked directory on the way counts the same.
        chmod(&shared, 0o777);
        let linked_dir = shared.join("conf");
        std::os::unix::fs::symlink(dir.path(), &linked_dir).unwrap();
        let err = resolve_destination(&linked_dir.join("victim")).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("follow the link {linked_dir:?}")),
            "{err}"
        );
    }

    #[test]
    fn the_way_to_a_link_target_must_be_trusted_too() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        let target = open.join("app.conf");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("app.conf");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(resolve_destination(&link).is_ok());
        chmod(&open, 0o777);
        let err = resolve_destination(&link).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("on the way to its target") && text.contains("writable by others"),
            "{text}"
        );
    }

    #[test]
    fn link_loops_end_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let err = resolve_destination(&a).unwrap_err();
        assert!(matches!(err, FsError::TooManyLinks { .. }), "{err}");
    }

    #[test]
    fn plain_destinations_resolve_to_themselves_even_in_open_directories() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o777);
        let dest = dir.path().join("new.conf");
        assert_eq!(resolve_destination(&dest).unwrap(), dest);
        let missing = dir.path().join("sub/dir/new.conf");
        assert_eq!(resolve_destination(&missing).unwrap(), missing);
    }

    #[test]
    fn fifos_sockets_and_planted_links_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = read_current(&fifo).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("destination {fifo:?} is a fifo, not a regular file")
        );
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = read_current(&socket).unwrap_err();
        assert!(err.to_string().contains("is a socket"), "{err}");
        // A link where resolve_destination saw none is not followed.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = read_current(&link).unwrap_err();
        assert!(matches!(err, FsError::NotRegular { .. }), "{err}");
    }

    #[test]
    fn a_destination_over_the_size_bound_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        // Sparse: no disk space used.
        File::create(&big)
            .unwrap()
            .set_len(MAX_DESTINATION_SIZE + 1)
            .unwrap();
        let err = read_current(&big).unwrap_err();
        assert!(matches!(err, FsError::TooLarge { .. }), "{err}");
    }
}
