//! Small file-system helpers shared by the stores.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};

use serde::{de::DeserializeOwned, Serialize};

pub use shim::write_atomic;

/// Serializes `value` as JSON and writes it atomically (temp file, fsync, rename).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads a JSON file; a file that does not parse is an `InvalidData` error naming the path.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// The bytes of what lies under `dir`, as dockerd counts a container's changes (`SizeRw`):
/// the sizes of everything but directories, each inode once (hard links), not following
/// symlinks. Unreadable parts count as empty.
pub fn tree_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.len() > 0 && seen.insert(meta.ino()) {
                total += meta.len();
            }
        }
    }
    total
}

/// Removes `path` and everything below it without ever crossing into another mount: a
/// mount point met on the way (a bind mount of a host directory, a root file system left
/// mounted) stops the removal with an error naming it, and what lies behind it is not
/// touched; the directories above it stay. Symlinks are removed, never followed. A path
/// that is not there is not an error.
///
/// The kernel enforces it: every directory is opened with `openat2(RESOLVE_NO_XDEV)`
/// relative to its parent's descriptor, which fails rather than enter a mount, and a mount
/// point that is a file cannot be unlinked (`EBUSY`). It walks with a stack of its own, so
/// no depth of directories can overflow the thread's stack.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to remove {}", path.display()),
        ));
    };
    let parent = match rfs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(at(path, e.into())),
    };
    remove_tree_at(&parent, name, path)
}

/// [`remove_tree`] of `parent/name`, where `shown` is the path to name in errors.
pub(crate) fn remove_tree_at(parent: &impl AsFd, name: &OsStr, shown: &Path) -> io::Result<()> {
    let top = match open_beneath(parent, name) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        // Not a directory (a file, a symlink): one unlink.
        Err(rustix::io::Errno::NOTDIR) | Err(rustix::io::Errno::LOOP) => {
            return match rfs::unlinkat(parent, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(at(shown, e.into())),
            }
        }
        Err(e) => return Err(at(shown, mount_or(e))),
    };
    let mut walk = Walk {
        anchor: parent.as_fd(),
        stack: vec![Level::read(top, name.to_os_string(), shown.to_path_buf())?],
        lo: 0,
    };
    while let Some(top) = walk.stack.last_mut() {
        let Some(child) = top.left.pop() else {
            // Everything below is gone: remove the directory from its parent.
            let done = walk.stack.pop().expect("a level");
            drop(done.dir);
            let parent = walk.top_dir()?;
            match rfs::unlinkat(parent, &done.name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(at(&done.path, mount_or(e))),
            }
        };
        let child_path = top.path.join(&child);
        let dir = walk.top_dir()?;
        match open_beneath(&dir, &child) {
            Ok(fd) => walk.push(Level::read(fd, child, child_path)?),
            Err(rustix::io::Errno::NOTDIR) | Err(rustix::io::Errno::LOOP) => {
                match rfs::unlinkat(dir, &child, AtFlags::empty()) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(at(&child_path, mount_or(e))),
                }
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(at(&child_path, mount_or(e))),
        }
    }
    Ok(())
}

/// How many directories of one walk are open at once: a tree of any depth is removed with
/// a bounded number of descriptors (a container can make one deeper than any limit).
const OPEN_LEVELS: usize = 64;

/// One directory of a [`remove_tree`] walk: its descriptor (while it is among the deepest
/// [`OPEN_LEVELS`]), its name in its parent, its path (for messages) and the entries left.
struct Level {
    dir: Option<OwnedFd>,
    name: OsString,
    path: PathBuf,
    left: Vec<OsString>,
}

impl Level {
    fn read(dir: OwnedFd, name: OsString, path: PathBuf) -> io::Result<Self> {
        let mut left = Vec::new();
        for entry in rfs::Dir::read_from(&dir).map_err(|e| at(&path, e.into()))? {
            let entry = entry.map_err(|e| at(&path, e.into()))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                left.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        Ok(Self {
            dir: Some(dir),
            name,
            path,
            left,
        })
    }
}

/// The directories from the top of a removal down to where it is: the deepest
/// [`OPEN_LEVELS`] open (`lo..`), those above closed and opened again, from the top down
/// (never following a symlink or crossing a mount), when the walk climbs back to them.
struct Walk<'a> {
    /// The descriptor of the top directory's parent.
    anchor: std::os::fd::BorrowedFd<'a>,
    stack: Vec<Level>,
    lo: usize,
}

impl Walk<'_> {
    fn push(&mut self, level: Level) {
        self.stack.push(level);
        if self.stack.len() - self.lo > OPEN_LEVELS {
            self.stack[self.lo].dir = None;
            self.lo += 1;
        }
    }

    /// The descriptor of the deepest directory (the top's parent when the stack is empty),
    /// opening it again if the walk had closed it.
    fn top_dir(&mut self) -> io::Result<std::os::fd::BorrowedFd<'_>> {
        let Some(last) = self.stack.len().checked_sub(1) else {
            return Ok(self.anchor);
        };
        if self.stack[last].dir.is_none() {
            // Everything from the top down is closed: open it again, keeping the deepest.
            self.lo = last.saturating_sub(OPEN_LEVELS - 1);
            for k in 0..=last {
                let fd = {
                    let base = match k {
                        0 => self.anchor,
                        _ => self.stack[k - 1].dir.as_ref().expect("just opened").as_fd(),
                    };
                    open_beneath(&base, &self.stack[k].name)
                        .map_err(|e| at(&self.stack[k].path, mount_or(e)))?
                };
                self.stack[k].dir = Some(fd);
                if k >= OPEN_LEVELS {
                    self.stack[k - OPEN_LEVELS].dir = None;
                }
            }
        }
        self.lo = self.lo.min(last);
        Ok(self.stack[last].dir.as_ref().expect("open").as_fd())
    }
}

/// Opens the directory `parent/name` for reading, failing with `EXDEV` if it is a mount
/// point and with `ENOTDIR`/`ELOOP` if it is not a directory (symlinks are not followed).
fn open_beneath(parent: &impl AsFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat2(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_XDEV | ResolveFlags::NO_SYMLINKS,
    )
}

/// A crossing refused (`EXDEV` on open, `EBUSY` on removal) as an error that says so.
fn mount_or(e: rustix::io::Errno) -> io::Error {
    match e {
        rustix::io::Errno::XDEV | rustix::io::Errno::BUSY => io::Error::new(
            io::ErrorKind::ResourceBusy,
            "it is a mount point: left in place, with everything above it",
        ),
        e => e.into(),
    }
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_tree_takes_deep_trees_and_symlinks_without_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let tree = dir.path().join("tree");
        let mut deep = tree.clone();
        // Deeper than the descriptors a process may open (run it under `ulimit -n 256`).
        for _ in 0..700 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), b"x").unwrap();
        // Something beside the chain at every depth, so the walk climbs back through all.
        let mut side = tree.clone();
        for n in 0..700 {
            if n % 5 == 0 {
                std::fs::create_dir_all(side.join("s")).unwrap();
                std::fs::write(side.join("s/g"), b"y").unwrap();
            }
            side.push("d");
        }
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, deep.join("link")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(outside.join("keep").exists(), "a symlink was followed");
        // Gone already, or a file: both fine.
        remove_tree(&tree).unwrap();
        std::fs::write(&tree, b"x").unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
    }

    #[test]
    #[ignore = "needs root: makes a bind mount (scripts/test.sh runs it as root)"]
    fn remove_tree_never_crosses_a_mount() {
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("precious"), b"keep me").unwrap();
        let tree = dir.path().join("container");
        let target = tree.join("rootfs/data");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(tree.join("before"), b"x").unwrap();
        mount(
            Some(&host),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = umount2(&self.0, MntFlags::MNT_DETACH);
            }
        }
        let guard = Unmount(target.clone());
        let e = remove_tree(&tree).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy, "{e}");
        assert!(e.to_string().contains("rootfs/data"), "{e}");
        assert_eq!(std::fs::read(host.join("precious")).unwrap(), b"keep me");
        assert!(target.is_dir(), "the mount point was removed");
        drop(guard);
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(host.join("precious").exists());
    }

    #[test]
    fn tree_size_counts_files_once_and_not_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/one"), vec![0u8; 100]).unwrap();
        std::fs::write(d.join("a/b/two"), vec![0u8; 20]).unwrap();
        std::fs::hard_link(d.join("a/one"), d.join("again")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
        std::fs::write(d.join("empty"), b"").unwrap();
        let link_len = std::fs::symlink_metadata(d.join("link")).unwrap().len();
        assert_eq!(tree_size(d), 120 + link_len);
        assert_eq!(tree_size(&d.join("missing")), 0);
    }
}
