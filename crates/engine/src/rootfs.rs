//! A container's root file system: the overlay mount of its image layers plus a private
//! upper directory, and safe access to files inside it.
//!
//! Anything read or created inside a container's root goes through [`open_in_root`], which
//! resolves paths with `openat2(RESOLVE_IN_ROOT)`: a symlink in the image that points to
//! `/etc/shadow` resolves to the container's own `/etc/shadow`, never the host's.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{OFlags, ResolveFlags};

/// Errors of setting up or reading a container's root file system.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("Failed to mount the overlay root file system at {target:?}")]
    Mount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("Failed to unmount {target:?}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("The overlay options for {target:?} are too long ({len} bytes): the image has too many layers")]
    TooManyLayers { target: PathBuf, len: usize },
    #[error("Failed to prepare {path:?} in the container's root file system")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The directories of one container's overlay.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Image layers, bottom first.
    pub lower: Vec<PathBuf>,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's work directory (same file system as `upper`).
    pub work: PathBuf,
    /// Where the merged tree is mounted.
    pub merged: PathBuf,
}

impl Overlay {
    /// The overlay of a container whose directory is `dir`.
    pub fn in_dir(dir: &Path, lower: Vec<PathBuf>) -> Self {
        Self {
            lower,
            upper: dir.join("diff"),
            work: dir.join("work"),
            merged: dir.join("rootfs"),
        }
    }

    /// `lowerdir=` for overlayfs: topmost layer first.
    pub fn lowerdir(&self) -> String {
        self.lower
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Creates the directories and mounts the overlay, unless it is mounted already.
    pub fn mount(&self) -> Result<(), RootfsError> {
        for d in [&self.upper, &self.work, &self.merged] {
            std::fs::create_dir_all(d).map_err(|source| RootfsError::Io {
                path: d.clone(),
                source,
            })?;
        }
        if is_mounted(&self.merged) {
            return Ok(());
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lowerdir(),
            self.upper.display(),
            self.work.display()
        );
        // The kernel copies at most one page of mount options.
        if data.len() >= 4096 {
            return Err(RootfsError::TooManyLayers {
                target: self.merged.clone(),
                len: data.len(),
            });
        }
        mount(
            Some("overlay"),
            &self.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|source| RootfsError::Mount {
            target: self.merged.clone(),
            source,
        })
    }

    /// Unmounts the merged tree if it is mounted.
    pub fn unmount(&self) -> Result<(), RootfsError> {
        unmount(&self.merged)
    }
}

/// Unmounts `target` (lazily, so a process still inside cannot block it) if mounted.
pub fn unmount(target: &Path) -> Result<(), RootfsError> {
    if !is_mounted(target) {
        return Ok(());
    }
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(source) => Err(RootfsError::Unmount {
            target: target.to_path_buf(),
            source,
        }),
    }
}

/// Whether something is mounted exactly at `target` (from `/proc/self/mountinfo`).
pub fn is_mounted(target: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = target.as_os_str().as_bytes();
    info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp).as_slice() == want)
    })
}

/// Mount points at or below `prefix`, deepest first (for clean-up).
pub fn mounts_under(prefix: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|mp| PathBuf::from(std::ffi::OsStr::from_bytes(&unescape_mountinfo(mp))))
        .filter(|p| p.starts_with(prefix))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Opens `path` inside `root` as if `root` were `/`: `..` and symlinks cannot leave it.
pub fn open_in_root(root: &Path, path: &Path, flags: OFlags) -> std::io::Result<File> {
    let root_fd = File::open(root)?;
    let fd = openat2_in_root(&root_fd, path, flags)?;
    Ok(File::from(fd))
}

fn openat2_in_root(root: &File, path: &Path, flags: OFlags) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        root,
        relative(path),
        flags | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// `path` without its leading `/` (or `.` for the root itself).
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Reads a (small) file inside `root`; `Ok(None)` if it does not exist.
pub fn read_in_root(root: &Path, path: &Path) -> std::io::Result<Option<String>> {
    match open_in_root(root, path, OFlags::RDONLY) {
        Ok(f) => {
            let mut s = String::new();
            f.take(16 << 20).read_to_string(&mut s)?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates directory `path` and its parents inside `root` (as `mkdir -p` would inside the
/// container), never following a symlink out of `root`.
pub fn mkdir_all_in_root(root: &Path, path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let root_fd = File::open(root)?;
    let mut prefix = PathBuf::new();
    for comp in relative(path).components() {
        let Component::Normal(name) = comp else {
            prefix.push(comp);
            continue;
        };
        let parent = openat2_in_root(&root_fd, &prefix, OFlags::PATH | OFlags::DIRECTORY)?;
        prefix.push(name);
        match openat2_in_root(&root_fd, &prefix, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                nix::sys::stat::mkdirat(
                    Some(parent.as_raw_fd()),
                    name,
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                )
                .map_err(std::io::Error::from)?;
                nix::unistd::fchownat(
                    Some(parent.as_raw_fd()),
                    name,
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(std::io::Error::from)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A process identity resolved from a Docker `User` string against the image's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The home directory from `/etc/passwd` (`/` when unknown), for `HOME`.
    pub home: String,
}

/// Why a `User` string could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {name}: no matching entries in passwd file")]
    NoUser { name: String },
    #[error("unable to find group {name}: no matching entries in group file")]
    NoGroup { name: String },
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`) as Docker does, from the
/// contents of the container's `/etc/passwd` and `/etc/group` (either may be missing).
pub fn resolve_user(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, UserError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let passwd_entries: Vec<Vec<&str>> = passwd
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let group_entries: Vec<Vec<&str>> = group
        .unwrap_or("")
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let entry = passwd_entries
        .iter()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let (uid, mut gid, home, username) = match (entry, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[5].to_string(),
            Some(f[0].to_string()),
        ),
        (None, Ok(uid)) => (uid, 0, "/".to_string(), None),
        (None, Err(_)) => {
            return Err(UserError::NoUser {
                name: u.to_string(),
            })
        }
    };
    if let Some(g) = g {
        gid = match group_entries.iter().find(|f| f[0] == g) {
            Some(f) => f[2].parse().unwrap_or(0),
            None => g.parse::<u32>().map_err(|_| UserError::NoGroup {
                name: g.to_string(),
            })?,
        };
    }
    let additional_gids = match (&username, g) {
        (Some(name), None) => group_entries
            .iter()
            .filter(|f| f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|&x: &u32| x != gid)
            .collect(),
        _ => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nberth:x:1000:1000:b:/home/berth:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nberth:x:1000:\nwheel:x:10:berth\n";

    #[test]
    fn users_resolve_like_docker() {
        let r = resolve_user("", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let r = resolve_user("berth", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        let r = resolve_user("1234:55", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (1234, 55));
        let r = resolve_user("berth:wheel", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 10));
        assert_eq!(
            resolve_user("nobody2", Some(PASSWD), None),
            Err(UserError::NoUser {
                name: "nobody2".into()
            })
        );
        assert!(resolve_user("0:nogroup", None, None).is_err());
    }

    #[test]
    #[ignore = "needs root: it makes directories owned by root (run scripts/test.sh as root)"]
    fn symlinks_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(dir.path().join("secret"), "host secret").unwrap();
        std::os::unix::fs::symlink("/../../secret", root.join("etc/passwd")).unwrap();
        std::fs::write(root.join("secret"), "container file").unwrap();
        // The absolute symlink resolves inside the root.
        assert_eq!(
            read_in_root(&root, Path::new("/etc/passwd"))
                .unwrap()
                .as_deref(),
            Some("container file")
        );
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        mkdir_all_in_root(&root, Path::new("/up/up/work/dir"), 0, 0).unwrap();
        assert!(root.join("work/dir").is_dir());
        assert!(!dir.path().join("work").exists());
    }

    #[test]
    fn lowerdir_lists_the_top_layer_first() {
        let o = Overlay::in_dir(Path::new("/c"), vec!["/l/a".into(), "/l/b".into()]);
        assert_eq!(o.lowerdir(), "/l/b:/l/a");
    }
}
