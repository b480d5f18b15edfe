//! The only place terad writes files.
//!
//! A new destination is staged as `.<dest-name>.<random>` in the destination's own directory
//! (created 0600, so nobody reads it before its final mode and owner are set), written, given its
//! mode and owner, fsynced, and then renamed over the destination; the directory is fsynced after
//! the rename. A reader therefore always sees the complete old or the complete new file, also
//! across a crash. A stage file that is not committed is removed when dropped.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Mode of a destination that does not exist yet and has no `mode` configured.
pub const DEFAULT_MODE: u32 = 0o644;
/// Length of the random part of a stage file name; the start-up sweep relies on it.
const STAGE_RANDOM_LEN: usize = 10;

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

/// Where a write to `dest` really goes. A link is followed to its final target so the target is
/// replaced atomically and the link stays a link; a dangling link is refused, never silently
/// turned into a regular file.
pub fn resolve_destination(dest: &Path) -> Result<PathBuf, FsError> {
    match std::fs::symlink_metadata(dest) {
        Ok(metadata) if metadata.file_type().is_symlink() => match dest.canonicalize() {
            Ok(target) => Ok(target),
            Err(_) => Err(FsError::DanglingLink {
                path: dest.to_owned(),
                target: std::fs::read_link(dest).unwrap_or_default(),
            }),
        },
        Ok(metadata) if metadata.is_dir() => Err(FsError::IsDirectory {
            path: dest.to_owned(),
        }),
        _ => Ok(dest.to_owned()),
    }
}

/// Reads the destination's content and attributes; `None` when it does not exist.
pub fn read_current(path: &Path) -> Result<Option<CurrentFile>, FsError> {
    let read_error = |source| FsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(read_error(error)),
    };
    let metadata = file.metadata().map_err(read_error)?;
    if metadata.is_dir() {
        return Err(FsError::IsDirectory {
            path: path.to_owned(),
        });
    }
    let mut content = Vec::with_capacity(metadata.len() as usize);
    std::io::Read::read_to_end(&mut file, &mut content).map_err(read_error)?;
    Ok(Some(CurrentFile {
        content,
        mode: metadata.mode() & 0o7777,
        uid: metadata.uid(),
        gid: metadata.gid(),
    }))
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
                let mut target = OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&self.dest)
                    .map_err(commit_error)?;
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
    fn drop(&mut self) {
        if let Some(file) = self.file.take()
            && self.keep
        {
            let _ = file.keep();
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
}
