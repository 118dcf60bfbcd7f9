//! What the two tar extractors share: `docker cp` into a container
//! ([`crate::container::extract`]) and image layers ([`crate::image::unpack`]).
//!
//! Entry names cleaned lexically, an entry's metadata (owner, mode, times, PAX
//! `SCHILY.xattr.*` records) and how it is applied to a node that was just created, and the
//! removal of whatever an entry replaces. Every call works on a directory descriptor and the
//! last name component, never following that component if it is a symlink; finding the
//! directory, and which errors the caller reports, stay with each extractor. Failures come
//! back as [`Errno`] or [`io::Error`], for the caller to wrap in its own error.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::XattrFlags;
use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// overlayfs's own attributes, which would change how the layers merge: only berth sets them.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// A cleaned relative path: its components, none of them empty, `.` or `..`.
pub(crate) type Components = Vec<Vec<u8>>;

/// Cleans a tar path lexically, as Go's `filepath.Clean` does relative to the root (`./`,
/// `//` and a leading `/` dropped, `a/../b` is `b`); `None` when it climbs above the root.
pub(crate) fn clean(raw: &[u8]) -> Option<Components> {
    let mut out = Vec::new();
    clean_onto(&mut out, raw)?;
    Some(out)
}

/// Applies the components of `raw` to `base` lexically; `None` when it climbs above `base`'s
/// starting point.
pub(crate) fn clean_onto(base: &mut Components, raw: &[u8]) -> Option<()> {
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                base.pop()?;
            }
            c => base.push(c.to_vec()),
        }
    }
    Some(())
}

/// The metadata of one entry, header and PAX records merged.
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits, setuid, setgid and sticky included.
    pub mode: u32,
    pub mtime: Timespec,
    /// The PAX `atime`; the mtime stands in for it when there is none.
    pub atime: Option<Timespec>,
    /// `SCHILY.xattr.*` records, overlayfs's own left out.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// The metadata a header's fields give, before any PAX record.
    pub fn new(uid: u32, gid: u32, mode: u32, mtime_secs: u64) -> Self {
        Self {
            uid,
            gid,
            mode,
            mtime: Timespec {
                tv_sec: i64::try_from(mtime_secs).unwrap_or(i64::MAX),
                tv_nsec: 0,
            },
            atime: None,
            xattrs: Vec::new(),
        }
    }

    /// Merges the entry's PAX records: its xattrs, and with `times` its `mtime` and `atime`
    /// (sub-second ones too).
    pub fn read_pax<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        times: bool,
        shown: &str,
    ) -> io::Result<()> {
        let Some(extensions) = entry.pax_extensions()? else {
            return Ok(());
        };
        for ext in extensions {
            let ext = ext?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            match key {
                b"mtime" if times => self.mtime = pax_time(value).unwrap_or(self.mtime),
                b"atime" if times => self.atime = pax_time(value),
                _ => {
                    if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                        if name.starts_with(OVERLAY_XATTR_PREFIX) {
                            tracing::debug!(
                                path = shown,
                                "dropping an overlay xattr from a tar entry"
                            );
                        } else {
                            self.xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The access and modification times to set.
    pub fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.atime.unwrap_or(self.mtime),
            last_modification: self.mtime,
        }
    }
}

/// Sets owner (unless `owner` is `None`), then mode (a chown clears setuid), then xattrs (a
/// chown clears `security.capability`) of an open file or directory.
pub(crate) fn set_fd_meta(
    fd: &impl AsFd,
    owner: Option<(u32, u32)>,
    meta: &Meta,
    shown: &str,
) -> rustix::io::Result<()> {
    if let Some((uid, gid)) = owner {
        rfs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    }
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))?;
    for (key, value) in &meta.xattrs {
        let r = rfs::fsetxattr(fd, OsStr::from_bytes(key), value, XattrFlags::empty());
        xattr_result(r, key, shown)?;
    }
    Ok(())
}

/// Sets owner (unless `owner` is `None`), mode (with `chmod`), xattrs and times of the node
/// `parent/name`, which is not followed if it is a symlink (no descriptor of a symlink can
/// carry them).
///
/// `chmod` follows a symlink (Linux has no `lchmod`): ask for it only for a device or fifo
/// just made in a directory nothing else writes to.
pub(crate) fn set_meta_at(
    parent: &OwnedFd,
    name: &OsStr,
    owner: Option<(u32, u32)>,
    meta: &Meta,
    chmod: bool,
    shown: &str,
) -> rustix::io::Result<()> {
    if let Some((uid, gid)) = owner {
        rfs::chownat(
            parent,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    if chmod {
        rfs::chmodat(
            parent,
            name,
            Mode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )?;
    }
    if !meta.xattrs.is_empty() {
        // Name the node through its directory's descriptor: lsetxattr does not follow the
        // last component.
        let mut path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd()));
        path.push(name);
        for (key, value) in &meta.xattrs {
            let r = rfs::lsetxattr(&path, OsStr::from_bytes(key), value, XattrFlags::empty());
            xattr_result(r, key, shown)?;
        }
    }
    rfs::utimensat(parent, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
}

/// Like dockerd, an xattr the file system or the kernel refuses is a warning, not a failure.
pub(crate) fn xattr_result(
    r: rustix::io::Result<()>,
    key: &[u8],
    shown: &str,
) -> rustix::io::Result<()> {
    match r {
        Err(e @ (Errno::NOTSUP | Errno::PERM)) => {
            tracing::warn!(
                path = shown,
                xattr = %String::from_utf8_lossy(key),
                error = %crate::error::Chain(&e),
                "ignoring an xattr the file system does not take"
            );
            Ok(())
        }
        r => r,
    }
}

/// Opens the directory `parent/name`, not following it if it is a symlink.
pub(crate) fn open_dir_at(parent: &impl AsFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Creates the regular file `parent/name` (mode 0600 until its metadata is set), which must
/// not exist yet.
pub(crate) fn create_file_at(parent: &impl AsFd, name: &OsStr) -> rustix::io::Result<File> {
    let fd = rfs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Removes whatever is at `parent/name` (a directory with everything under it when `is_dir`),
/// never following a symlink and never entering a mount point (see
/// [`crate::fsutil::remove_tree`]).
pub(crate) fn remove_node(
    parent: &impl AsFd,
    name: &OsStr,
    is_dir: bool,
) -> rustix::io::Result<()> {
    if !is_dir {
        return rfs::unlinkat(parent, name, AtFlags::empty());
    }
    crate::fsutil::remove_tree_at(parent, name, Path::new(name)).map_err(|e| {
        e.raw_os_error()
            .map(rustix::io::Errno::from_raw_os_error)
            .unwrap_or(rustix::io::Errno::BUSY)
    })
}

/// A PAX time (`1700000000.5`, `-1.25`) as seconds and nanoseconds.
fn pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?;
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: i64 = digits.parse().ok()?;
    Some(match (negative, nanos) {
        (false, n) => Timespec {
            tv_sec: secs,
            tv_nsec: n,
        },
        (true, 0) => Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        },
        (true, n) => Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - n,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_not_climb_out() {
        assert_eq!(
            clean(b"./a//b/../c"),
            Some(vec![b"a".to_vec(), b"c".to_vec()])
        );
        assert_eq!(clean(b"../../etc/passwd"), None);
        assert_eq!(clean(b"a/../../x"), None);
        assert_eq!(clean(b"/abs/x"), Some(vec![b"abs".to_vec(), b"x".to_vec()]));
        assert_eq!(clean(b"./"), Some(vec![]));
        let mut at = vec![b"d".to_vec()];
        assert_eq!(clean_onto(&mut at, b"../x"), Some(()));
        assert_eq!(at, [b"x".to_vec()]);
        assert_eq!(clean_onto(&mut at, b"../../x"), None);
    }

    #[test]
    fn pax_time_parsing() {
        let t = |s: &str| pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("12"), Some((12, 0)));
        assert_eq!(t("12.5"), Some((12, 500_000_000)));
        assert_eq!(t("12.1234567891"), Some((12, 123_456_789)));
        assert_eq!(t("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(t("-3"), Some((-3, 0)));
        assert_eq!(t("x"), None);
        assert_eq!(t("1.x"), None);
    }

    #[test]
    fn remove_node_takes_trees_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        let parent = rfs::open(
            tmp.path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        remove_node(&parent, OsStr::new("tree"), true).unwrap();
        assert!(!tree.exists());
        assert!(outside.join("keep").exists());
    }
}
