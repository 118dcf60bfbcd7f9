//! Unpacking one layer tarball into a directory that overlayfs will use as a lowerdir, with
//! no way for the tarball to write outside that directory.
//!
//! Why not `tar::Entry::unpack_in`: it guards paths by canonicalising them with the host's
//! view of the file system and comparing prefixes. That silently skips entries with `..`
//! instead of reporting them, refuses rather than contains a layer whose own absolute
//! symlink is the parent of a later entry (`lib -> /usr/lib`, then `lib/x`), leaves a gap
//! between every check and the write that follows, and knows nothing of overlay whiteouts or
//! of xattrs a layer must not set. Here every directory is found by the kernel with
//! `openat2(RESOLVE_IN_ROOT)` relative to a descriptor of the layer directory, so symlinks
//! (absolute ones and `..` included) are read as they will be inside the container and can
//! never lead out of it; the last component of a path is then created or changed only with
//! `*at` calls that do not follow it (`O_NOFOLLOW | O_EXCL`, `AT_SYMLINK_NOFOLLOW`,
//! `linkat` without `AT_SYMLINK_FOLLOW`). Needs Linux 5.6 or later.
//!
//! The rules, which follow dockerd's overlay2 driver:
//! - entry names are cleaned (`./`, `//` and a leading `/` dropped, `a/../b` is `b`); a name
//!   that climbs above the layer root (`../../etc/passwd`) is refused;
//! - a hard link's target is cleaned the same way (an absolute target is relative to the
//!   layer root) and must exist in the layer; symlink targets are stored as they are;
//! - a later entry replaces an earlier one of the same name, and a directory over a
//!   directory merges;
//! - `.wh.NAME` becomes a 0/0 character device `NAME`, `.wh..wh..opq` sets
//!   `trusted.overlay.opaque=y` on its directory, other `.wh..wh.*` (aufs metadata) is skipped;
//! - owners, modes (setuid, setgid and sticky included), mtimes (PAX sub-second ones too) and
//!   PAX `SCHILY.xattr.*` xattrs are kept, except `trusted.overlay.*`, which only berth sets.
//!   Devices, fifos, symlinks and hard links are supported.
//!
//! The directory being filled must be private to the caller (the store unpacks into a fresh
//! temporary directory): a few metadata calls on a node this code has just created use its
//! name again, which is only race-free when nothing else writes there.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use tar::EntryType;

use crate::tarfs::{self, clean, Components, Meta};
use crate::ErrorKind;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The stream is not a readable tar archive.
    #[error("invalid layer tar")]
    Archive {
        #[source]
        source: io::Error,
    },
    /// An entry's name climbs out of the layer (`../../etc/passwd`).
    #[error("layer entry {path:?} points outside the layer")]
    Breakout { path: String },
    /// A hard link's target climbs out of the layer (`../../etc/shadow`).
    #[error("hard link {path:?} points outside the layer: {target:?}")]
    LinkBreakout { path: String, target: String },
    /// A whiteout that names no file (`.wh.`, `.wh..`).
    #[error("layer entry {path:?} is not a valid whiteout")]
    InvalidWhiteout { path: String },
    /// An entry under a symlink that leads to nothing that is a directory in the layer.
    #[error("layer entry {path:?} is under a symlink whose target is not in the layer")]
    DanglingParent { path: String },
    /// An entry type berth does not unpack (sockets, unknown type flags, a file as the root).
    #[error("layer entry {path:?} has an unsupported type ({kind})")]
    Unsupported { path: String, kind: String },
    /// A file-system call failed while writing the entry.
    #[error("cannot unpack layer entry {path:?}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// Errors that the archive's content causes (a hard link to nothing, a file where a
    /// directory must be, a symlink loop) are the client's; the rest are the engine's.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } => match source.raw_os_error() {
                Some(
                    libc::ENOENT
                    | libc::ENOTDIR
                    | libc::EEXIST
                    | libc::ELOOP
                    | libc::EISDIR
                    | libc::ENAMETOOLONG
                    | libc::EXDEV
                    | libc::EMLINK,
                ) => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// What unpacking found out about the layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Bytes of regular files and symlink targets: the layer's size as `docker images` shows it.
    pub size: u64,
}

/// Unpacks the tar stream `reader` into the existing, empty, private directory `dest`.
///
/// Reads up to the end-of-archive marker and no further; a caller hashing the stream should
/// read the rest itself.
pub fn unpack_layer(reader: &mut dyn Read, dest: &Path) -> Result<UnpackStats, UnpackError> {
    let root = rfs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(&dest.display().to_string(), e))?;
    let mut unpacker = LayerUnpacker {
        root,
        dir_times: BTreeMap::new(),
        size: 0,
        buf: vec![0; 128 * 1024],
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        unpacker.unpack_entry(&mut entry)?;
    }
    unpacker.finish()?;
    Ok(UnpackStats {
        size: unpacker.size,
    })
}

struct LayerUnpacker {
    /// The layer directory; every path is resolved beneath it.
    root: OwnedFd,
    /// Directory times, set at the end once nothing more is written into them.
    dir_times: BTreeMap<Components, Timestamps>,
    size: u64,
    buf: Vec<u8>,
}

/// An entry's metadata, header and PAX records (times too) merged.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta, UnpackError> {
    let header = entry.header();
    let id = |v: u64| -> Result<u32, UnpackError> {
        u32::try_from(v)
            .ok()
            .filter(|&v| v != u32::MAX)
            .ok_or_else(|| {
                archive_error(io::Error::other(format!(
                    "owner of {shown:?} is out of range"
                )))
            })
    };
    let uid = id(header.uid().map_err(archive_error)?)?;
    let gid = id(header.gid().map_err(archive_error)?)?;
    let mode = header.mode().map_err(archive_error)? & 0o7777;
    let secs = header.mtime().map_err(archive_error)?;
    let mut meta = Meta::new(uid, gid, mode, secs);
    meta.read_pax(entry, true, shown).map_err(archive_error)?;
    Ok(meta)
}

impl LayerUnpacker {
    fn unpack_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let mut kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let header = entry.header();
        if kind.is_file()
            && raw.ends_with(b"/")
            && header.as_ustar().is_none()
            && header.as_gnu().is_none()
        {
            // Pre-POSIX archives mark directories with a trailing slash only.
            kind = EntryType::Directory;
        }
        let comps = clean(&raw).ok_or_else(|| UnpackError::Breakout {
            path: shown.clone(),
        })?;
        let meta = read_meta(entry, &shown)?;

        let Some((name, dir)) = comps.split_last() else {
            // The layer root itself: only its metadata can change.
            if !kind.is_dir() {
                return Err(UnpackError::Unsupported {
                    path: shown,
                    kind: format!("{kind:?} as the layer root"),
                });
            }
            let root = self.root.try_clone().map_err(|e| UnpackError::Io {
                path: shown.clone(),
                source: e,
            })?;
            set_fd_meta(&root, &meta, &shown)?;
            self.dir_times.insert(Vec::new(), meta.times());
            return Ok(());
        };

        if name == WHITEOUT_OPAQUE {
            return self.opaque(dir, &shown);
        }
        if comps.iter().any(|c| c.starts_with(WHITEOUT_META_PREFIX)) {
            tracing::debug!(path = shown, "skipping aufs metadata in a layer");
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(dir, hidden, &meta, &shown);
        }

        let parent = self.make_dirs(dir, &shown)?;
        let name = OsStr::from_bytes(name);
        match kind {
            EntryType::Directory => {
                if !self.clear(&parent, name, true, &shown)? {
                    rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| io_error(&shown, e))?;
                }
                let fd = tarfs::open_dir_at(&parent, name).map_err(|e| io_error(&shown, e))?;
                set_fd_meta(&fd, &meta, &shown)?;
                self.dir_times.insert(comps.clone(), meta.times());
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.clear(&parent, name, false, &shown)?;
                let mut file =
                    tarfs::create_file_at(&parent, name).map_err(|e| io_error(&shown, e))?;
                self.copy_content(entry, &mut file, &shown)?;
                set_fd_meta(&file, &meta, &shown)?;
                rfs::futimens(&file, &meta.times()).map_err(|e| io_error(&shown, e))?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.clear(&parent, name, false, &shown)?;
                rfs::symlinkat(OsStr::from_bytes(&target), &parent, name)
                    .map_err(|e| io_error(&shown, e))?;
                self.set_node_meta(&parent, name, &meta, false, &shown)?;
                self.size += target.len() as u64;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hard_link(&parent, name, &comps, &target, &shown)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, device) = if kind == EntryType::Fifo {
                    (FileType::Fifo, 0) // writers leave the device fields of a fifo empty
                } else {
                    let header = entry.header();
                    let major = header.device_major().map_err(archive_error)?.unwrap_or(0);
                    let minor = header.device_minor().map_err(archive_error)?.unwrap_or(0);
                    let file_type = match kind {
                        EntryType::Char => FileType::CharacterDevice,
                        _ => FileType::BlockDevice,
                    };
                    (file_type, rfs::makedev(major, minor))
                };
                self.clear(&parent, name, false, &shown)?;
                rfs::mknodat(&parent, name, file_type, Mode::from_raw_mode(0o600), device)
                    .map_err(|e| io_error(&shown, e))?;
                self.set_node_meta(&parent, name, &meta, true, &shown)?;
            }
            other => {
                return Err(UnpackError::Unsupported {
                    path: shown,
                    kind: format!("{other:?}"),
                })
            }
        }
        Ok(())
    }

    fn copy_content(
        &mut self,
        from: &mut dyn Read,
        to: &mut File,
        shown: &str,
    ) -> Result<(), UnpackError> {
        loop {
            let n = match from.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(archive_error(e)),
            };
            to.write_all(&self.buf[..n]).map_err(|e| UnpackError::Io {
                path: shown.to_string(),
                source: e,
            })?;
            self.size += n as u64;
        }
    }

    /// Owner, mode (for `chmod`able nodes), xattrs and times of a node just created under
    /// `parent`, which is never followed if it is a symlink. The mode follows a symlink, but
    /// this is the device or fifo just made, in a directory only this unpacker writes to.
    fn set_node_meta(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Meta,
        chmod: bool,
        shown: &str,
    ) -> Result<(), UnpackError> {
        tarfs::set_meta_at(parent, name, Some((meta.uid, meta.gid)), meta, chmod, shown)
            .map_err(|e| io_error(shown, e))
    }

    fn hard_link(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        comps: &[Vec<u8>],
        target: &[u8],
        shown: &str,
    ) -> Result<(), UnpackError> {
        let breakout = || UnpackError::LinkBreakout {
            path: shown.to_string(),
            target: String::from_utf8_lossy(target).into_owned(),
        };
        let target_comps = clean(target).ok_or_else(breakout)?;
        let Some((target_name, target_dir)) = target_comps.split_last() else {
            return Err(breakout());
        };
        if target_comps == comps {
            return Ok(());
        }
        let target_parent = self
            .resolve_dir(target_dir, OFlags::PATH)
            .map_err(|e| io_error(shown, e))?;
        self.clear(parent, name, false, shown)?;
        rfs::linkat(
            &target_parent,
            OsStr::from_bytes(target_name),
            parent,
            name,
            AtFlags::empty(),
        )
        .map_err(|e| io_error(shown, e))
    }

    fn whiteout(
        &mut self,
        dir: &[Vec<u8>],
        hidden: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(UnpackError::InvalidWhiteout {
                path: shown.to_string(),
            });
        }
        let parent = self.make_dirs(dir, shown)?;
        let name = OsStr::from_bytes(hidden);
        self.clear(&parent, name, false, shown)?;
        rfs::mknodat(
            &parent,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(|e| io_error(shown, e))?;
        rfs::chownat(
            &parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_error(shown, e))
    }

    fn opaque(&mut self, dir: &[Vec<u8>], shown: &str) -> Result<(), UnpackError> {
        self.make_dirs(dir, shown)?;
        let fd = self
            .resolve_dir(dir, OFlags::RDONLY)
            .map_err(|e| io_error(shown, e))?;
        rfs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty()).map_err(|e| io_error(shown, e))
    }

    /// Opens the directory `comps` beneath the root, symlinks resolved as if the root were `/`.
    fn resolve_dir(&self, comps: &[Vec<u8>], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let path = if comps.is_empty() {
            b".".to_vec()
        } else {
            comps.join(&b'/')
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
        let mut attempts = 0;
        loop {
            let r = rfs::openat2(
                &self.root,
                OsStr::from_bytes(&path),
                flags | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                resolve,
            );
            // EAGAIN: a concurrent rename raced the lookup; the kernel asks for a retry.
            match r {
                Err(Errno::AGAIN) if attempts < 16 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Opens the directory `comps`, creating what is missing of it (mode 0755, root's).
    fn make_dirs(&self, comps: &[Vec<u8>], shown: &str) -> Result<OwnedFd, UnpackError> {
        let err = |e| io_error(shown, e);
        match self.resolve_dir(comps, OFlags::PATH) {
            Err(Errno::NOENT) => {}
            other => return other.map_err(err),
        }
        let mut fd = self.resolve_dir(&[], OFlags::PATH).map_err(err)?;
        for i in 0..comps.len() {
            fd = match self.resolve_dir(&comps[..=i], OFlags::PATH) {
                Ok(next) => next,
                Err(Errno::NOENT) => {
                    let name = OsStr::from_bytes(&comps[i]);
                    match rfs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        // It exists, yet does not resolve: a symlink to a missing target.
                        Err(Errno::EXIST) => {
                            return Err(UnpackError::DanglingParent {
                                path: shown.to_string(),
                            })
                        }
                        Err(e) => return Err(err(e)),
                    }
                    rfs::chmodat(&fd, name, Mode::from_raw_mode(0o755), AtFlags::empty())
                        .map_err(err)?;
                    rfs::openat(
                        &fd,
                        name,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(err)?
                }
                Err(e) => return Err(err(e)),
            };
        }
        Ok(fd)
    }

    /// Removes whatever is at `parent/name` so an entry can take its place, without following
    /// it. Keeps an existing directory when `keep_dir` (and says so).
    fn clear(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        keep_dir: bool,
        shown: &str,
    ) -> Result<bool, UnpackError> {
        let err = |e| io_error(shown, e);
        let stat = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(err(e)),
        };
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        if is_dir && keep_dir {
            return Ok(true);
        }
        tarfs::remove_node(parent, name, is_dir).map_err(err)?;
        Ok(false)
    }

    fn finish(&mut self) -> Result<(), UnpackError> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dir_times).into_iter().collect();
        dirs.sort_by_key(|(comps, _)| Reverse(comps.len()));
        for (comps, times) in dirs {
            let shown = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
            let r = match comps.split_last() {
                None => rfs::futimens(&self.root, &times),
                Some((name, dir)) => self.resolve_dir(dir, OFlags::PATH).and_then(|parent| {
                    rfs::utimensat(
                        &parent,
                        OsStr::from_bytes(name),
                        &times,
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                }),
            };
            match r {
                // A later entry replaced the directory or one of its parents.
                Ok(()) | Err(Errno::NOENT) | Err(Errno::NOTDIR) => {}
                Err(e) => return Err(io_error(&shown, e)),
            }
        }
        Ok(())
    }
}

/// Owner (the archive's), then mode, then xattrs of an open file or directory.
fn set_fd_meta(fd: &impl AsFd, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
    tarfs::set_fd_meta(fd, Some((meta.uid, meta.gid)), meta, shown).map_err(|e| io_error(shown, e))
}

fn archive_error(source: io::Error) -> UnpackError {
    UnpackError::Archive { source }
}

fn io_error(shown: &str, e: Errno) -> UnpackError {
    UnpackError::Io {
        path: shown.to_string(),
        source: e.into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    use super::*;

    /// Builds tar archives entry by entry, writing names as they are: `tar::Builder`'s own
    /// path setters refuse `..`, which malicious layers are made of.
    pub(crate) struct TarMaker {
        builder: tar::Builder<Vec<u8>>,
    }

    impl Default for TarMaker {
        fn default() -> Self {
            Self {
                builder: tar::Builder::new(Vec::new()),
            }
        }
    }

    impl TarMaker {
        pub(crate) fn header(kind: EntryType, name: &str, mode: u32) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            // Owned by whoever runs the tests, so they unpack without root too.
            h.set_uid(nix::unistd::geteuid().as_raw().into());
            h.set_gid(nix::unistd::getegid().as_raw().into());
            h.set_mtime(1_600_000_000);
            h.set_size(0);
            let old = h.as_old_mut();
            assert!(name.len() < 100, "test names must fit the header");
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            h
        }

        pub(crate) fn raw(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
            h.set_size(data.len() as u64);
            h.set_cksum();
            self.builder.append(&h, data).unwrap();
            self
        }

        pub(crate) fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
            self.raw(Self::header(EntryType::Regular, name, 0o644), data)
        }

        pub(crate) fn dir(&mut self, name: &str) -> &mut Self {
            self.raw(Self::header(EntryType::Directory, name, 0o755), b"")
        }

        pub(crate) fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Self {
            let mut h = Self::header(kind, name, 0o777);
            let old = h.as_old_mut();
            old.linkname = [0; 100];
            old.linkname[..target.len()].copy_from_slice(target.as_bytes());
            self.raw(h, b"")
        }

        pub(crate) fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.link(EntryType::Symlink, name, target)
        }

        pub(crate) fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.link(EntryType::Link, name, target)
        }

        /// A PAX header with `records` for the next entry.
        pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            let mut body = Vec::new();
            for (key, value) in records {
                let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
                let mut len = rest + 1;
                while len != rest + len.to_string().len() {
                    len = rest + len.to_string().len();
                }
                body.extend_from_slice(format!("{len} {key}=").as_bytes());
                body.extend_from_slice(value);
                body.push(b'\n');
            }
            let h = Self::header(EntryType::XHeader, "PaxHeader", 0o644);
            self.raw(h, &body)
        }

        pub(crate) fn finish(&mut self) -> Vec<u8> {
            self.builder.finish().unwrap();
            std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()))
                .into_inner()
                .unwrap()
        }
    }

    /// An xattr of `path` itself (not of a symlink's target).
    pub(crate) fn xattr(path: &Path, key: &str) -> Result<Vec<u8>, Errno> {
        let mut buf = [0u8; 256];
        let n = rfs::lgetxattr(path, key, &mut buf)?;
        Ok(buf[..n].to_vec())
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        layer: PathBuf,
        outside: PathBuf,
    }

    /// A layer directory and, beside it, an "outside" directory with a file a malicious layer
    /// would like to change.
    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        let outside = tmp.path().join("outside");
        fs::create_dir(&layer).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"untouched").unwrap();
        Fixture {
            _tmp: tmp,
            layer,
            outside,
        }
    }

    impl Fixture {
        fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
            unpack_layer(&mut &tar[..], &self.layer)
        }

        fn assert_outside_untouched(&self) {
            assert_eq!(fs::read(self.outside.join("secret")).unwrap(), b"untouched");
            let names: Vec<_> = fs::read_dir(&self.outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                names,
                ["secret"],
                "nothing may be created outside the layer"
            );
            assert_eq!(
                fs::metadata(self.outside.join("secret")).unwrap().nlink(),
                1
            );
        }
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn files_dirs_and_metadata_are_kept() {
        let f = fixture();
        let mut t = TarMaker::default();
        let mut d = TarMaker::header(EntryType::Directory, "usr/", 0o750);
        d.set_uid(12);
        d.set_gid(34);
        d.set_mtime(1_000_000);
        t.raw(d, b"");
        let mut su = TarMaker::header(EntryType::Regular, "usr/su", 0o4755);
        su.set_uid(0);
        su.set_mtime(2_000_000);
        t.raw(su, b"#!/bin/sh\n");
        let mut owned = TarMaker::header(EntryType::Regular, "usr/owned", 0o640);
        owned.set_uid(1000);
        owned.set_gid(1001);
        t.raw(owned, b"abc");
        let mut sticky = TarMaker::header(EntryType::Directory, "tmp", 0o1777);
        sticky.set_mtime(3_000_000);
        t.raw(sticky, b"");
        t.file("deep/er/file", b"x"); // parents missing from the archive
        let stats = f.unpack(&t.finish()).unwrap();
        assert_eq!(stats.size, 10 + 3 + 1);

        let usr = fs::metadata(f.layer.join("usr")).unwrap();
        assert_eq!((usr.uid(), usr.gid(), usr.mode() & 0o7777), (12, 34, 0o750));
        assert_eq!(
            usr.mtime(),
            1_000_000,
            "directory times are set after their content"
        );
        let su = fs::metadata(f.layer.join("usr/su")).unwrap();
        assert_eq!(su.mode() & 0o7777, 0o4755, "setuid survives the chown");
        assert_eq!(su.mtime(), 2_000_000);
        let owned = fs::metadata(f.layer.join("usr/owned")).unwrap();
        assert_eq!(
            (owned.uid(), owned.gid(), owned.mode() & 0o777),
            (1000, 1001, 0o640)
        );
        assert_eq!(
            fs::metadata(f.layer.join("tmp")).unwrap().mode() & 0o7777,
            0o1777
        );
        let deep = fs::metadata(f.layer.join("deep/er")).unwrap();
        assert_eq!((deep.mode() & 0o7777, deep.uid()), (0o755, 0));
        assert_eq!(fs::read(f.layer.join("deep/er/file")).unwrap(), b"x");
    }

    #[test]
    fn dot_dot_entries_are_refused() {
        for name in ["../../etc/passwd", "../x", "a/../../x", "./../x"] {
            let f = fixture();
            let tar = TarMaker::default().file(name, b"pwned").finish();
            let err = f.unpack(&tar).unwrap_err();
            assert!(matches!(err, UnpackError::Breakout { .. }), "{name}: {err}");
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(
                err.to_string().contains("points outside the layer"),
                "{err}"
            );
            f.assert_outside_untouched();
        }
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn dot_dot_that_stays_inside_is_cleaned() {
        let f = fixture();
        let tar = TarMaker::default()
            .file("a/../b", b"1")
            .file("./c//d", b"2")
            .finish();
        f.unpack(&tar).unwrap();
        assert_eq!(fs::read(f.layer.join("b")).unwrap(), b"1");
        assert_eq!(fs::read(f.layer.join("c/d")).unwrap(), b"2");
        assert!(!f.layer.join("a").exists());
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn absolute_names_are_contained() {
        let f = fixture();
        let inside_name = format!("{}/secret", f.outside.display());
        let tar = TarMaker::default().file(&inside_name, b"pwned").finish();
        f.unpack(&tar).unwrap();
        f.assert_outside_untouched();
        let contained = f.layer.join(inside_name.trim_start_matches('/'));
        assert_eq!(fs::read(contained).unwrap(), b"pwned");
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn symlink_to_root_then_entry_through_it_is_contained() {
        let f = fixture();
        let outside = f.outside.display().to_string();
        let tar = TarMaker::default()
            .symlink("a", "/")
            .file("a/etc/passwd", b"root::0:0::/:/bin/sh\n")
            .symlink("o", &outside)
            .dir(&outside) // the layer's own directory of that name
            .file("o/secret", b"pwned")
            .file("o/new", b"pwned")
            .finish();
        f.unpack(&tar).unwrap();
        f.assert_outside_untouched();
        assert_eq!(fs::read_link(f.layer.join("a")).unwrap(), Path::new("/"));
        assert_eq!(
            fs::read(f.layer.join("etc/passwd")).unwrap(),
            b"root::0:0::/:/bin/sh\n"
        );
        let contained = f.layer.join(f.outside.strip_prefix("/").unwrap());
        assert_eq!(fs::read(contained.join("secret")).unwrap(), b"pwned");
        assert_eq!(fs::read(contained.join("new")).unwrap(), b"pwned");
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn entries_under_a_symlink_to_nothing_are_refused() {
        let f = fixture();
        let tar = TarMaker::default()
            .symlink("o", &f.outside.display().to_string())
            .file("o/secret", b"pwned")
            .finish();
        let err = f.unpack(&tar).unwrap_err();
        assert!(matches!(err, UnpackError::DanglingParent { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        f.assert_outside_untouched();
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn relative_symlink_climbing_out_is_contained() {
        let f = fixture();
        let tar = TarMaker::default()
            .symlink("up", "../../../../../../..")
            .file("up/escaped", b"x")
            .symlink("d/loop", "../outside")
            .finish();
        f.unpack(&tar).unwrap();
        f.assert_outside_untouched();
        assert_eq!(fs::read(f.layer.join("escaped")).unwrap(), b"x");
        assert_eq!(
            fs::read_link(f.layer.join("d/loop")).unwrap(),
            Path::new("../outside")
        );
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn an_entry_replacing_a_symlink_does_not_follow_it() {
        let f = fixture();
        let secret = f.outside.join("secret").display().to_string();
        let tar = TarMaker::default()
            .symlink("x", &secret)
            .file("x", b"replaced")
            .symlink("d", &f.outside.display().to_string())
            .dir("d")
            .file("d/f", b"in layer")
            .finish();
        f.unpack(&tar).unwrap();
        f.assert_outside_untouched();
        assert_eq!(fs::read(f.layer.join("x")).unwrap(), b"replaced");
        assert!(fs::symlink_metadata(f.layer.join("d")).unwrap().is_dir());
        assert_eq!(fs::read(f.layer.join("d/f")).unwrap(), b"in layer");
    }

    #[test]
    fn hard_links_out_of_the_layer_are_refused() {
        let f = fixture();
        let tar = TarMaker::default()
            .hardlink("shadow", "../../etc/shadow")
            .finish();
        let err = f.unpack(&tar).unwrap_err();
        assert!(matches!(err, UnpackError::LinkBreakout { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);

        // An absolute target is the layer's own path; here it does not exist in the layer.
        let f = fixture();
        let secret = f.outside.join("secret").display().to_string();
        let tar = TarMaker::default().hardlink("l", &secret).finish();
        let err = f.unpack(&tar).unwrap_err();
        assert!(matches!(err, UnpackError::Io { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        f.assert_outside_untouched();

        // Nor through a symlinked directory.
        let f = fixture();
        let tar = TarMaker::default()
            .symlink("o", &f.outside.display().to_string())
            .hardlink("l", "o/secret")
            .finish();
        assert!(f.unpack(&tar).is_err());
        f.assert_outside_untouched();
        assert!(!f.layer.join("l").exists());
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn hard_links_inside_the_layer_work() {
        let f = fixture();
        let tar = TarMaker::default()
            .file("bin/busybox", b"elf")
            .hardlink("bin/sh", "bin/busybox")
            .hardlink("sbin/init", "/bin/busybox")
            .symlink("s", "/nowhere")
            .hardlink("s2", "s")
            .finish();
        let stats = f.unpack(&tar).unwrap();
        let a = fs::metadata(f.layer.join("bin/busybox")).unwrap();
        assert_eq!(a.nlink(), 3);
        assert_eq!(
            fs::metadata(f.layer.join("sbin/init")).unwrap().ino(),
            a.ino()
        );
        // A hard link to a symlink links the symlink, not what it points to.
        assert_eq!(
            fs::read_link(f.layer.join("s2")).unwrap(),
            Path::new("/nowhere")
        );
        assert_eq!(stats.size, 3 + "/nowhere".len() as u64);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn whiteouts_become_overlay_whiteouts() {
        let f = fixture();
        let mut wh = TarMaker::header(EntryType::Regular, "etc/.wh.motd", 0o600);
        wh.set_uid(5);
        let tar = TarMaker::default()
            .dir("etc/")
            .file("etc/motd", b"old")
            .raw(wh, b"")
            .dir("var/cache/")
            .file("var/cache/.wh..wh..opq", b"")
            .file(".wh..wh.plnk/1234.5678", b"aufs")
            .finish();
        f.unpack(&tar).unwrap();
        let motd = fs::symlink_metadata(f.layer.join("etc/motd")).unwrap();
        assert!(motd.file_type().is_char_device());
        assert_eq!((motd.rdev(), motd.uid()), (0, 5));
        assert!(!f.layer.join("etc/.wh.motd").exists());
        assert_eq!(
            xattr(&f.layer.join("var/cache"), OPAQUE_XATTR).unwrap(),
            b"y"
        );
        assert!(!f.layer.join("var/cache/.wh..wh..opq").exists());
        assert!(!f.layer.join(".wh..wh.plnk").exists());

        for bad in [".wh.", "etc/.wh.."] {
            let f = fixture();
            let err = f
                .unpack(&TarMaker::default().file(bad, b"").finish())
                .unwrap_err();
            assert!(
                matches!(err, UnpackError::InvalidWhiteout { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn devices_and_fifos_are_made() {
        let f = fixture();
        let mut null = TarMaker::header(EntryType::Char, "dev/null", 0o666);
        null.set_device_major(1).unwrap();
        null.set_device_minor(3).unwrap();
        let mut loop0 = TarMaker::header(EntryType::Block, "dev/loop0", 0o660);
        loop0.set_device_major(7).unwrap();
        loop0.set_device_minor(0).unwrap();
        loop0.set_gid(6);
        let fifo = TarMaker::header(EntryType::Fifo, "run/fifo", 0o620);
        let tar = TarMaker::default()
            .raw(null, b"")
            .raw(loop0, b"")
            .raw(fifo, b"")
            .finish();
        f.unpack(&tar).unwrap();
        let null = fs::symlink_metadata(f.layer.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(
            (null.rdev(), null.mode() & 0o7777),
            (rfs::makedev(1, 3), 0o666)
        );
        let loop0 = fs::symlink_metadata(f.layer.join("dev/loop0")).unwrap();
        assert!(loop0.file_type().is_block_device());
        assert_eq!((loop0.gid(), loop0.mode() & 0o777), (6, 0o660));
        let fifo = fs::symlink_metadata(f.layer.join("run/fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.permissions().mode() & 0o777, 0o620);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn pax_times_owners_and_xattrs_are_kept_but_overlay_xattrs_dropped() {
        let f = fixture();
        let tar = TarMaker::default()
            .pax(&[
                ("mtime", b"1700000000.25"),
                ("uid", b"3000000"),
                ("SCHILY.xattr.user.berth", b"hello"),
                ("SCHILY.xattr.trusted.berth", b"t"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ])
            .file("f", b"data")
            .pax(&[
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                ("mtime", b"-1.5"),
            ])
            .dir("d")
            .pax(&[("SCHILY.xattr.trusted.berth", b"on a symlink")])
            .symlink("s", "f")
            .finish();
        f.unpack(&tar).unwrap();
        let m = fs::metadata(f.layer.join("f")).unwrap();
        assert_eq!(
            (m.mtime(), m.mtime_nsec(), m.uid()),
            (1_700_000_000, 250_000_000, 3_000_000)
        );
        let get = |p: &str, k: &str| xattr(&f.layer.join(p), k);
        assert_eq!(get("f", "user.berth").unwrap(), b"hello");
        assert_eq!(get("f", "trusted.berth").unwrap(), b"t");
        assert_eq!(get("f", "trusted.overlay.redirect"), Err(Errno::NODATA));
        assert_eq!(get("d", "trusted.overlay.opaque"), Err(Errno::NODATA));
        assert_eq!(get("s", "trusted.berth").unwrap(), b"on a symlink");
        let d = fs::metadata(f.layer.join("d")).unwrap();
        assert_eq!((d.mtime(), d.mtime_nsec()), (-2, 500_000_000));
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn later_entries_replace_earlier_ones() {
        let f = fixture();
        let tar = TarMaker::default()
            .file("a", b"file")
            .dir("a")
            .file("a/inner", b"1")
            .dir("b")
            .file("b/inner", b"2")
            .file("b", b"now a file")
            .dir("c")
            .file("c/kept", b"3")
            .dir("c")
            .finish();
        f.unpack(&tar).unwrap();
        assert_eq!(fs::read(f.layer.join("a/inner")).unwrap(), b"1");
        assert_eq!(fs::read(f.layer.join("b")).unwrap(), b"now a file");
        assert_eq!(fs::read(f.layer.join("c/kept")).unwrap(), b"3");
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn the_root_entry_sets_the_layer_root() {
        let f = fixture();
        let mut root = TarMaker::header(EntryType::Directory, "./", 0o700);
        root.set_mtime(42);
        let tar = TarMaker::default().raw(root, b"").file("x", b"").finish();
        f.unpack(&tar).unwrap();
        let m = fs::metadata(&f.layer).unwrap();
        assert_eq!((m.mode() & 0o777, m.mtime()), (0o700, 42));

        let f = fixture();
        let err = f
            .unpack(&TarMaker::default().file("/", b"x").finish())
            .unwrap_err();
        assert!(matches!(err, UnpackError::Unsupported { .. }), "{err}");
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn symlink_loops_and_files_as_directories_fail_cleanly() {
        let f = fixture();
        let tar = TarMaker::default()
            .symlink("a", "b")
            .symlink("b", "a")
            .file("a/x", b"")
            .finish();
        let err = f.unpack(&tar).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

        let f = fixture();
        let tar = TarMaker::default().file("f", b"").file("f/x", b"").finish();
        let err = f.unpack(&tar).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        f.assert_outside_untouched();
    }

    #[test]
    fn garbage_is_an_archive_error() {
        let f = fixture();
        let err = f.unpack(&[7u8; 1024]).unwrap_err();
        assert!(matches!(err, UnpackError::Archive { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        // An empty stream is an empty layer.
        assert_eq!(f.unpack(&[]).unwrap().size, 0);
    }

    #[test]
    fn sockets_are_unsupported() {
        let f = fixture();
        let h = TarMaker::header(EntryType::new(b'Z'), "weird", 0o644);
        let err = f
            .unpack(&TarMaker::default().raw(h, b"").finish())
            .unwrap_err();
        assert!(matches!(err, UnpackError::Unsupported { .. }), "{err}");
    }
}
