//! `diff`: what a container changed in its file system, read from its overlay's upper
//! directory as dockerd's overlay2 driver reads it (`archive.OverlayChanges`).
//!
//! Every path in the upper directory is a change: a whiteout (character device 0/0) or an
//! opaque directory is a deletion; anything else an addition, or a modification when the
//! image's layers have it. A directory the layers have with the same size, mode and mtime is
//! not reported (it is only there as a parent), and the parent of an addition or deletion
//! is always reported as modified. The walk is in lexical order, like Go's `filepath.Walk`.
//!
//! Docker keeps the mount points it creates (`/etc/hostname`, `/dev`, `/proc`…) in an init
//! layer below the container's, so they never show; berth's runtime creates them in the
//! upper directory, so they are left out here, and so is a directory changed only by them.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use api_types::{ChangeKind, ContainerChange};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use super::ContainerError;
use crate::engine::{Engine, EngineError};
use crate::Caller;

/// Paths that are mount points made for every container: not the container's changes.
pub(crate) const INIT_PATHS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/.dockerenv",
    "/sbin/docker-init",
];

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

impl Engine {
    /// The container's file-system changes (`GET /containers/{id}/changes`).
    pub async fn container_changes(
        &self,
        _caller: &Caller,
        name: &str,
    ) -> Result<Vec<ContainerChange>, EngineError> {
        let container = self.find(name)?;
        let rec = container.snapshot();
        let upper = container.dir.join("diff");
        let layers: Vec<PathBuf> = rec.layers.iter().rev().cloned().collect();
        let id = container.id.clone();
        tokio::task::spawn_blocking(move || overlay_changes(&upper, &layers))
            .await
            .map_err(|e| ContainerError::io("The diff task failed", io::Error::other(e)))?
            .map_err(|e| {
                ContainerError::io(format!("Cannot read the changes of container {id}"), e).into()
            })
    }
}

/// The changes recorded in `upper` over `layers` (topmost first).
pub(crate) fn overlay_changes(
    upper: &Path,
    layers: &[PathBuf],
) -> io::Result<Vec<ContainerChange>> {
    let root = match open_dir(upper) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let lowers: Vec<OwnedFd> = layers.iter().filter_map(|l| open_dir(l).ok()).collect();
    let mut walk = Walk {
        lowers,
        changes: Vec::new(),
        changed_dirs: HashSet::new(),
    };
    walk.dir(&root, Vec::new())?;
    Ok(walk.changes)
}

struct Walk {
    lowers: Vec<OwnedFd>,
    changes: Vec<ContainerChange>,
    changed_dirs: HashSet<Vec<u8>>,
}

impl Walk {
    /// Records the children of the upper directory `dir` (at `path` in the container).
    fn dir(&mut self, dir: &OwnedFd, path: Vec<u8>) -> io::Result<()> {
        for name in sorted_children(dir)? {
            let mut child = path.clone();
            child.push(b'/');
            child.extend_from_slice(&name);
            let shown = String::from_utf8_lossy(&child).into_owned();
            if INIT_PATHS.contains(&shown.as_str()) {
                continue;
            }
            let os_name = OsStr::from_bytes(&name);
            let st = match rfs::statat(dir, os_name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let child_fd = if is_dir {
                Some(rfs::openat(
                    dir,
                    os_name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?)
            } else {
                None
            };
            let deleted = is_whiteout(&st)
                || child_fd.as_ref().is_some_and(|fd| {
                    let mut v = [0u8; 1];
                    rfs::fgetxattr(fd, OPAQUE_XATTR, &mut v[..])
                        .is_ok_and(|n| n == 1 && v[0] == b'y')
                });
            let kind = if deleted {
                Some(ChangeKind::Deleted)
            } else {
                match self.lower(&child) {
                    None => Some(ChangeKind::Added),
                    Some(low) => {
                        let low_dir = FileType::from_raw_mode(low.st_mode) == FileType::Directory;
                        // A directory holding the runtime's mount points changed size and
                        // time because of them; any real addition or deletion in it still
                        // reports it, as their parent.
                        let same = is_dir
                            && low_dir
                            && st.st_mode == low.st_mode
                            && ((st.st_size == low.st_size && same_time(&st, &low))
                                || child_fd
                                    .as_ref()
                                    .is_some_and(|fd| has_init_children(fd, &child)));
                        (!same).then_some(ChangeKind::Modified)
                    }
                }
            };
            if let Some(kind) = kind {
                if is_dir {
                    self.changed_dirs.insert(child.clone());
                }
                if kind != ChangeKind::Modified {
                    let parent = &child[..child.iter().rposition(|&b| b == b'/').unwrap_or(0)];
                    if !parent.is_empty() && !self.changed_dirs.contains(parent) {
                        self.changes.push(ContainerChange {
                            path: String::from_utf8_lossy(parent).into_owned(),
                            kind: ChangeKind::Modified,
                        });
                        self.changed_dirs.insert(parent.to_vec());
                    }
                }
                self.changes.push(ContainerChange { path: shown, kind });
            }
            if let Some(fd) = child_fd {
                self.dir(&fd, child)?;
            }
        }
        Ok(())
    }

    /// The entry at `path` in the image's layers, as overlayfs would find it: from the top
    /// layer down, a whiteout hides it and an opaque directory hides what is below.
    fn lower(&self, path: &[u8]) -> Option<Stat> {
        let rel = &path[1..];
        for layer in &self.lowers {
            match rfs::openat2(
                layer,
                OsStr::from_bytes(rel),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => {
                    let st = rfs::fstat(&fd).ok()?;
                    return (!is_whiteout(&st)).then_some(st);
                }
                Err(_) => {
                    if hidden_below(layer, rel) {
                        return None;
                    }
                }
            }
        }
        None
    }
}

/// Whether a parent of `rel` in this layer is a whiteout or an opaque directory.
fn hidden_below(layer: &OwnedFd, rel: &[u8]) -> bool {
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for i in 1..comps.len() {
        let prefix = comps[..i].join(&b'/');
        let Ok(fd) = rfs::openat2(
            layer,
            OsStr::from_bytes(&prefix),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) else {
            return false;
        };
        let Ok(st) = rfs::fstat(&fd) else {
            return false;
        };
        if is_whiteout(&st) {
            return true;
        }
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let mut v = [0u8; 1];
            let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            if rfs::getxattr(path.as_str(), OPAQUE_XATTR, &mut v[..])
                .is_ok_and(|n| n == 1 && v[0] == b'y')
            {
                return true;
            }
        }
    }
    false
}

/// Whether a directory holds one of the mount points left out of the changes.
fn has_init_children(dir: &OwnedFd, path: &[u8]) -> bool {
    sorted_children(dir).is_ok_and(|children| {
        children.iter().any(|c| {
            let mut p = path.to_vec();
            p.push(b'/');
            p.extend_from_slice(c);
            INIT_PATHS.contains(&String::from_utf8_lossy(&p).as_ref())
        })
    })
}

/// Go's `sameFsTime`: equal, or equal seconds where one side has no sub-second part.
fn same_time(a: &Stat, b: &Stat) -> bool {
    a.st_mtime == b.st_mtime
        && (a.st_mtime_nsec == b.st_mtime_nsec || a.st_mtime_nsec == 0 || b.st_mtime_nsec == 0)
}

fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn open_dir(path: &Path) -> rustix::io::Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn sorted_children(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn whiteout(p: &Path) {
        nix::sys::stat::mknod(
            p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
    }

    fn list(changes: &[ContainerChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect()
    }

    #[test]
    #[ignore = "needs root: whiteouts and trusted xattrs (run scripts/test.sh as root)"]
    fn upper_entries_become_docker_changes() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "needs root: whiteouts and trusted xattrs (run scripts/test.sh as root)"
        );
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["etc", "srv", "usr/bin", "var/cache"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        fs::write(lower.join("srv/conf"), "a").unwrap();
        fs::write(lower.join("usr/bin/tool"), "x").unwrap();
        fs::write(lower.join("var/cache/old"), "x").unwrap();
        symlink("/etc", lower.join("link")).unwrap();
        for d in ["etc", "srv", "usr/bin", "var/cache", "new/dir", "proc"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        // The runtime's mount points: /etc changes only because of them.
        fs::write(upper.join("etc/hostname"), "").unwrap();
        fs::write(upper.join("etc/hosts"), "").unwrap();
        fs::write(upper.join("srv/conf"), "b").unwrap();
        whiteout(&upper.join("usr/bin/tool"));
        fs::write(upper.join("new/dir/f"), "f").unwrap();
        rustix::fs::setxattr(
            upper.join("var/cache").as_path(),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        // Copied-up parents keep the lower directories' times.
        for d in ["srv", "usr", "usr/bin", "var"] {
            set_mtime(
                &upper.join(d),
                filetime_of(&fs::metadata(lower.join(d)).unwrap()),
            );
        }
        let got = list(&overlay_changes(&upper, std::slice::from_ref(&lower)).unwrap());
        assert_eq!(
            got,
            [
                "A /new",
                "A /new/dir",
                "A /new/dir/f",
                "C /srv/conf",
                "C /usr/bin",
                "D /usr/bin/tool",
                "C /var",
                "D /var/cache",
            ]
        );
        // A file the image deleted (a whiteout in its layer) is new when it comes back.
        let top = t.path().join("top");
        fs::create_dir_all(top.join("srv")).unwrap();
        whiteout(&top.join("srv/conf"));
        let got = list(&overlay_changes(&upper, &[top, lower]).unwrap());
        assert!(got.contains(&"A /srv/conf".to_string()), "{got:?}");
        assert!(overlay_changes(&t.path().join("none"), &[])
            .unwrap()
            .is_empty());
    }

    fn filetime_of(m: &fs::Metadata) -> (i64, i64) {
        use std::os::unix::fs::MetadataExt;
        (m.mtime(), m.mtime_nsec())
    }

    fn set_mtime(p: &Path, (s, ns): (i64, i64)) {
        let t = rustix::fs::Timespec {
            tv_sec: s,
            tv_nsec: ns,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::empty(),
        )
        .unwrap();
    }
}
