//! `docker cp` and `docker export`: the stat of a path in a container, a tar of a path out
//! of it, a tar extracted into it, and a tar of its whole file system.
//!
//! Paths are read as dockerd reads them: cleaned as if joined to `/` (so `../../etc/shadow`
//! is the container's `/etc/shadow`), every symlink before the last component followed
//! inside the container's root, the last one itself not followed when reading (the archive
//! holds the link) and followed when extracting (a link to a directory is a fine
//! destination). See [`super::fsroot`] for how the root is opened and why nothing can
//! resolve outside it.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use api_types::{file_mode, ContainerPathStat};
use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;
use tokio::sync::mpsc;

use super::extract::{self, Budget, ExtractOptions, Owners};
use super::fsroot::{
    clean_components, follow_in_scope, is_pseudo_fs, open_dir_in, open_in, ContainerRoot, RootView,
};
use super::tarwrite::{ChannelWriter, TreeArchiver};
use super::ContainerError;
use crate::engine::{Engine, EngineError};
use crate::{Caller, ErrorKind};

/// A tar stream being produced: chunks in order; an `Err` means the archive is broken off
/// and the transport should abort rather than end cleanly.
pub type TarStream = mpsc::Receiver<io::Result<bytes::Bytes>>;

/// How many chunks may wait for a slow client before the archiver pauses.
const STREAM_DEPTH: usize = 4;

/// Failures of copying files into or out of a container, in Docker's words where it has
/// them.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("bad parameter: path cannot be empty")]
    EmptyPath,
    #[error("Could not find the file {path} in container {container}")]
    NotFound { path: String, container: String },
    #[error("extraction point is not a directory")]
    NotADirectory,
    #[error("container rootfs is marked read-only")]
    ReadOnly,
    #[error("{message}")]
    Breakout { message: String },
    #[error("{message}")]
    Conflict { message: String },
    #[error("{message}")]
    TooLarge { message: String },
    #[error("{message}")]
    User { message: String },
    #[error("invalid tar archive: {message}")]
    Archive { message: String },
    #[error("cannot copy into {path}: it is a kernel file system, not the container's files")]
    PseudoFs { path: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    /// The kind of failure, for status codes: what the archive or the path asks for is the
    /// client's problem, a failing file system the engine's.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Io { source, .. } => match source.raw_os_error() {
                Some(
                    libc::ENOENT
                    | libc::ENOTDIR
                    | libc::EEXIST
                    | libc::ELOOP
                    | libc::EISDIR
                    | libc::ENAMETOOLONG
                    | libc::EXDEV
                    | libc::EMLINK
                    | libc::EROFS
                    | libc::ENOSPC
                    | libc::EDQUOT
                    | libc::ENOTEMPTY,
                ) => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::InvalidArgument,
        }
    }

    pub(crate) fn archive(e: io::Error) -> Self {
        Self::Archive {
            message: e.to_string(),
        }
    }
}

/// Options of `PUT /containers/{id}/archive`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyToOptions {
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID` (`docker cp -a`): with a container user set, everything extracted is
    /// owned by that user, as dockerd does; without one the archive's owners are kept
    /// (which they are anyway).
    pub copy_uid_gid: bool,
}

/// A path of a request resolved inside a container.
struct Located {
    /// `O_PATH | O_NOFOLLOW` descriptor of the node.
    node: OwnedFd,
    stat: ContainerPathStat,
    /// The name the archive's entries start with (`filepath.Base` of the cleaned path).
    rebase: Vec<u8>,
}

impl Engine {
    /// The stat of `path` in a container (`HEAD /containers/{id}/archive`).
    pub async fn stat_container_path(
        &self,
        _caller: &Caller,
        name: &str,
        path: &str,
    ) -> Result<ContainerPathStat, EngineError> {
        if path.is_empty() {
            return Err(ArchiveError::EmptyPath.into());
        }
        let container = self.find(name)?;
        let root = self.open_container_root(&container, RootView::Live).await?;
        let (name, path) = (name.to_string(), path.to_string());
        let located = blocking(move || {
            let located = locate(&root, &path, &name);
            root.close();
            located
        })
        .await??;
        Ok(located.stat)
    }

    /// The stat of `path` and a tar of it (`GET /containers/{id}/archive`). The tar is
    /// written as the client reads it; the container's root stays open until it is done.
    pub async fn archive_container_path(
        &self,
        caller: &Caller,
        name: &str,
        path: &str,
    ) -> Result<(ContainerPathStat, TarStream), EngineError> {
        if path.is_empty() {
            return Err(ArchiveError::EmptyPath.into());
        }
        let container = self.find(name)?;
        let root = self.open_container_root(&container, RootView::Live).await?;
        let (name, path) = (name.to_string(), path.to_string());
        let (located, root) = blocking(move || match locate(&root, &path, &name) {
            Ok(l) => Ok((l, root)),
            Err(e) => {
                root.close();
                Err(e)
            }
        })
        .await??;
        let stat = located.stat.clone();
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        tokio::task::spawn_blocking(move || {
            let archiver = TreeArchiver::new(ChannelWriter::new(tx));
            write_archive(archiver, located.node, &located.rebase, true, root);
        });
        self.events.emit(
            caller,
            "container",
            "archive-path",
            &container.id,
            container.event_attributes(),
        );
        Ok((stat, rx))
    }

    /// Extracts the tar archive `input` into the directory `path` of a container
    /// (`PUT /containers/{id}/archive`).
    pub async fn extract_to_container(
        &self,
        caller: &Caller,
        name: &str,
        path: &str,
        opts: CopyToOptions,
        input: Box<dyn Read + Send>,
    ) -> Result<(), EngineError> {
        if path.is_empty() {
            return Err(ArchiveError::EmptyPath.into());
        }
        let container = self.find(name)?;
        let root = self.open_container_root(&container, RootView::Live).await?;
        let rec = container.snapshot();
        let (name, path) = (name.to_string(), path.to_string());
        let user = rec.config.user.clone();
        let readonly_rootfs = rec.host_config.readonly_rootfs;
        blocking(move || {
            let result = extract_into(&root, &path, &name, opts, &user, readonly_rootfs, input);
            root.close();
            result
        })
        .await??;
        self.events.emit(
            caller,
            "container",
            "extract-to-dir",
            &container.id,
            container.event_attributes(),
        );
        Ok(())
    }

    /// A tar of the container's whole file system, its image layers and its own changes
    /// without the mounts (`GET /containers/{id}/export`).
    pub async fn export_container(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<TarStream, EngineError> {
        let container = self.find(name)?;
        let root = self
            .open_container_root(&container, RootView::Layers)
            .await?;
        let (tx, rx) = mpsc::channel(STREAM_DEPTH);
        let node = open_in(&root.fd, &[], OFlags::PATH).map_err(|e| {
            ContainerError::io(
                format!("Cannot export container {}", container.id),
                e.into(),
            )
        })?;
        tokio::task::spawn_blocking(move || {
            let archiver = TreeArchiver::new(ChannelWriter::new(tx));
            write_archive(archiver, node, b"", false, root);
        });
        self.events.emit(
            caller,
            "container",
            "export",
            &container.id,
            container.event_attributes(),
        );
        Ok(rx)
    }
}

/// Extracts an upload into the directory `path` of an open container root.
fn extract_into(
    root: &ContainerRoot,
    path: &str,
    name: &str,
    opts: CopyToOptions,
    user: &str,
    readonly_rootfs: bool,
    mut input: Box<dyn Read + Send>,
) -> Result<u64, ArchiveError> {
    let (dest, dest_fd) = extraction_dir(root, path, name)?;
    if readonly_rootfs && rfs::fstat(&dest_fd).map(|st| st.st_dev).ok() == Some(root.dev) {
        return Err(ArchiveError::ReadOnly);
    }
    if is_pseudo_fs(&dest_fd) {
        return Err(ArchiveError::PseudoFs {
            path: super::fsroot::join_abs(&dest),
        });
    }
    let owners = if opts.copy_uid_gid && !user.is_empty() {
        let (uid, gid) = container_user(root, user)?;
        Owners::Fixed(uid, gid)
    } else {
        Owners::Archive
    };
    let budget = Budget::of(&dest_fd).map_err(|e| ArchiveError::Io {
        context: "cannot measure the free space of the container's file system".into(),
        source: e,
    })?;
    let xopts = ExtractOptions {
        no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
        owners,
        rename: None,
    };
    extract::extract(&root.fd, dest, &mut input, xopts, budget)
}

/// Writes a tree into an archive stream, then closes the container's root before the
/// stream ends (so a stopped container is unmounted by the time its client is done).
fn write_archive(
    mut archiver: TreeArchiver<ChannelWriter>,
    node: OwnedFd,
    name: &[u8],
    include_top: bool,
    root: ContainerRoot,
) {
    let written = archiver
        .append_tree(node, name, include_top)
        .and_then(|()| archiver.finish());
    match written {
        Ok(mut out) => {
            let _ = io::Write::flush(&mut out);
            root.close();
            drop(out);
        }
        Err(e) => {
            tracing::debug!(error = %crate::error::Chain(&e), "archive broken off");
            root.close();
        }
    }
}

/// Runs file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<Result<T, ArchiveError>, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        EngineError::from(ContainerError::io(
            "A copy task failed",
            io::Error::other(e.to_string()),
        ))
    })
}

/// Go's `filepath.Join("/", path)` keeping a trailing `/` or `/.` (Docker's
/// `PreserveTrailingDotOrSeparator`), as bytes.
fn absolute(path: &str) -> Vec<u8> {
    let comps = clean_components(path.as_bytes());
    let mut abs = super::fsroot::join_abs(&comps).into_bytes();
    let original = path.as_bytes();
    let dot = original == b"." || original.ends_with(b"/.");
    if dot {
        if !abs.ends_with(b"/") {
            abs.push(b'/');
        }
        abs.push(b'.');
    } else if original.ends_with(b"/") && !abs.ends_with(b"/") {
        abs.push(b'/');
    }
    abs
}

/// Go's `filepath.Base`: the last element, trailing slashes ignored; `/` for the root.
fn go_base(path: &[u8]) -> Vec<u8> {
    let trimmed = {
        let mut p = path;
        while p.len() > 1 && p.ends_with(b"/") {
            p = &p[..p.len() - 1];
        }
        p
    };
    if trimmed == b"/" {
        return b"/".to_vec();
    }
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => trimmed[i + 1..].to_vec(),
        None => trimmed.to_vec(),
    }
}

fn not_found(path: &str, container: &str) -> ArchiveError {
    ArchiveError::NotFound {
        path: path.to_string(),
        container: container.to_string(),
    }
}

fn io_err(context: String, e: Errno) -> ArchiveError {
    ArchiveError::Io {
        context,
        source: e.into(),
    }
}

/// Resolves `path` for reading: the directory part followed, the last element not.
fn locate(root: &ContainerRoot, path: &str, container: &str) -> Result<Located, ArchiveError> {
    if path.contains('\0') {
        return Err(not_found(path, container));
    }
    let abs = absolute(path);
    let split = abs.iter().rposition(|&b| b == b'/').unwrap_or(0);
    let (dir, base) = (&abs[..=split], &abs[split + 1..]);
    let dir_fd = match open_dir_in(&root.fd, &clean_components(dir), OFlags::PATH) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Err(not_found(path, container)),
        Err(e) => return Err(io_err(format!("cannot resolve {path}"), e)),
    };
    let node = if base.is_empty() || base == b"." {
        dir_fd
    } else {
        match rfs::openat(
            &dir_fd,
            std::ffi::OsStr::from_bytes(base),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Err(not_found(path, container)),
            Err(e) => return Err(io_err(format!("cannot open {path}"), e)),
        }
    };
    let st = rfs::fstat(&node).map_err(|e| io_err(format!("cannot stat {path}"), e))?;
    let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        follow_in_scope(&root.fd, &abs).map_err(|e| ArchiveError::Io {
            context: format!("cannot resolve the link {path}"),
            source: e,
        })?
    } else {
        String::new()
    };
    let rebase = go_base(&abs);
    Ok(Located {
        node,
        stat: ContainerPathStat {
            name: String::from_utf8_lossy(&rebase).into_owned(),
            size: st.st_size,
            mode: file_mode::from_unix(st.st_mode),
            mtime: go_time(st.st_mtime, st.st_mtime_nsec as i64),
            link_target,
        },
        rebase,
    })
}

/// Resolves the directory an upload is extracted into: every symlink followed (the last one
/// too), inside the root.
fn extraction_dir(
    root: &ContainerRoot,
    path: &str,
    container: &str,
) -> Result<(Vec<Vec<u8>>, OwnedFd), ArchiveError> {
    if path.contains('\0') {
        return Err(not_found(path, container));
    }
    let abs = absolute(path);
    let fd = match open_in(&root.fd, &clean_components(&abs), OFlags::PATH) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Err(not_found(path, container)),
        Err(e) => return Err(io_err(format!("cannot resolve {path}"), e)),
    };
    let st = rfs::fstat(&fd).map_err(|e| io_err(format!("cannot stat {path}"), e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(ArchiveError::NotADirectory);
    }
    let resolved = follow_in_scope(&root.fd, &abs).map_err(|e| ArchiveError::Io {
        context: format!("cannot resolve {path}"),
        source: e,
    })?;
    Ok((clean_components(resolved.as_bytes()), fd))
}

/// The uid and gid of the container's configured user, from its own `/etc/passwd` and
/// `/etc/group`.
fn container_user(root: &ContainerRoot, user: &str) -> Result<(u32, u32), ArchiveError> {
    use std::os::fd::AsRawFd;
    let dir = std::path::PathBuf::from(format!("/proc/self/fd/{}", root.fd.as_raw_fd()));
    let read = |p: &str| {
        crate::rootfs::read_in_root(&dir, std::path::Path::new(p))
            .ok()
            .flatten()
    };
    let (passwd, group) = (read("/etc/passwd"), read("/etc/group"));
    crate::rootfs::resolve_user(user, passwd.as_deref(), group.as_deref())
        .map(|u| (u.uid, u.gid))
        .map_err(|e| ArchiveError::User {
            message: e.to_string(),
        })
}

/// A time as Go's RFC 3339 with nanoseconds writes it: UTC, trailing zeros of the fraction
/// dropped.
fn go_time(secs: i64, nanos: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .unwrap_or_default();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = format!("{:09}", t.timestamp_subsec_nanos());
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{base}Z")
    } else {
        format!("{base}.{frac}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_absolute_like_dockerd() {
        let a = |p: &str| String::from_utf8(absolute(p)).unwrap();
        assert_eq!(a("../../../etc/shadow"), "/etc/shadow");
        assert_eq!(a("/tmp/"), "/tmp/");
        assert_eq!(a("/tmp/."), "/tmp/.");
        assert_eq!(a("tmp/./"), "/tmp/");
        assert_eq!(a("/"), "/");
        assert_eq!(a("."), "/.");
        let b = |p: &str| String::from_utf8(go_base(p.as_bytes())).unwrap();
        assert_eq!(b("/tmp/"), "tmp");
        assert_eq!(b("/tmp/."), ".");
        assert_eq!(b("/"), "/");
        assert_eq!(b("/etc/hostname"), "hostname");
    }

    #[test]
    fn times_look_like_go() {
        assert_eq!(
            go_time(1_795_790_154, 704_408_890),
            "2026-11-27T14:35:54.70440889Z"
        );
        assert_eq!(go_time(0, 0), "1970-01-01T00:00:00Z");
    }
}
