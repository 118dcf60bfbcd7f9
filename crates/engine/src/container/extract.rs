//! Extracting a client's tar archive into a directory of a container (`PUT /archive`, what
//! `docker cp SRC CONTAINER:DST` sends), as dockerd's `archive.Untar` would, without any way
//! out of the container's root and with the client's appetite bounded.
//!
//! The container may be running and changing its files while this writes, so nothing is
//! ever looked up by a host path: every parent directory is found by the kernel with
//! `openat2(RESOLVE_IN_ROOT)` from the container's root descriptor (symlinks, absolute ones
//! included, resolve as they would inside the container), the last component is created with
//! `*at` calls that do not follow it, and metadata is set through a descriptor of the node
//! just created (or `/proc/self/fd/N` of one, for devices and fifos) rather than its name.
//!
//! Docker's rules kept: entry names are cleaned and may not climb above the extraction
//! directory; a symlink whose relative target climbs above it, or a hard link to outside it,
//! is refused; an existing file is replaced, an existing directory merged with a directory
//! entry; with `no_overwrite_dir_non_dir` a directory never replaces a file or the reverse;
//! the extraction directory's own entry (`.`) is skipped; owners come from the archive (or
//! the container's user with `copyUIDGID`); whiteout names are ordinary files here.
//!
//! Bounds: extension headers (long names, PAX records) over [`MAX_EXTENSION`] bytes are
//! refused before they are read into memory ([`TarGuard`]); the archive may hold at most
//! [`MAX_ENTRIES`] entries and no more data than the destination file system has free
//! (keeping a twentieth of it, at most [`MAX_RESERVE`], and of its inodes, in reserve).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::archive::ArchiveError;
use super::fsroot::{is_pseudo_fs, join_abs, open_dir_in};
use crate::tarfs::{self, clean, clean_onto, xattr_result, Meta};

/// The most entries one upload may hold.
pub const MAX_ENTRIES: u64 = 1 << 20;
/// The largest GNU long name or PAX extension block accepted.
pub const MAX_EXTENSION: u64 = 1 << 20;
/// Bytes charged per entry for its metadata (a tar header's worth).
const ENTRY_COST: u64 = 512;

/// Who owns what is extracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Owners {
    /// The owners the archive names (dockerd's default).
    #[default]
    Archive,
    /// One owner for everything (`copyUIDGID` with a container user).
    Fixed(u32, u32),
    /// Whoever extracts: no `chown` at all (`docker cp` to the host).
    Caller,
}

/// How an archive is extracted.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    pub owners: Owners,
    /// Renames the archive's first name component `.0` to `.1` (docker's
    /// `RebaseArchiveEntries`, applied while extracting); `/` as `.0` prefixes every name.
    pub rename: Option<(Vec<u8>, Vec<u8>)>,
}

/// What the destination file system can still take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub bytes: u64,
    pub entries: u64,
}

/// The most a copy into a container leaves free for everything else on its file system (the
/// engine's own records and logs must still be writable when a copy fills the disk).
pub const MAX_RESERVE: u64 = 1 << 30;

impl Budget {
    /// The room left on the file system of `dir`, less a reserve of a twentieth (at most
    /// [`MAX_RESERVE`]: on a large disk a twentieth can be more than a quota leaves free).
    pub fn of(dir: &impl AsFd) -> io::Result<Self> {
        let st = rfs::fstatvfs(dir)?;
        let unit = st.f_frsize.max(1);
        let reserve = (st.f_blocks.saturating_mul(unit) / 20).min(MAX_RESERVE);
        let bytes = st.f_bavail.saturating_mul(unit).saturating_sub(reserve);
        // File systems without inode accounting (f_files 0) report no limit.
        let entries = if st.f_files == 0 {
            MAX_ENTRIES
        } else {
            st.f_favail.saturating_sub(st.f_files / 20).min(MAX_ENTRIES)
        };
        Ok(Self { bytes, entries })
    }
}

impl Budget {
    /// The room left on the file system of `dir`, all of it (for data the engine keeps in
    /// its own storage, as `load` and a build context are: dockerd holds nothing back there).
    pub fn all_of(dir: &impl AsFd) -> io::Result<Self> {
        let st = rfs::fstatvfs(dir)?;
        let bytes = st.f_bavail.saturating_mul(st.f_frsize.max(1));
        let entries = if st.f_files == 0 {
            MAX_ENTRIES
        } else {
            st.f_favail.min(MAX_ENTRIES)
        };
        Ok(Self { bytes, entries })
    }
}

/// Extracts `reader` into the directory `dest` (cleaned components, resolved) of the
/// container whose root is `root`. Returns the number of entries written.
pub(crate) fn extract(
    root: &OwnedFd,
    dest: Vec<Vec<u8>>,
    reader: &mut dyn Read,
    opts: ExtractOptions,
    budget: Budget,
) -> Result<u64, ArchiveError> {
    let shown = join_abs(&dest);
    extract_shown(root, dest, shown, reader, opts, budget)
}

/// Extracts a tar stream into a directory of this host (`berth cp CONTAINER:SRC DST`), with
/// the same rules and bounds as an upload into a container, `dir` standing for the root:
/// nothing the archive holds can land outside it.
pub fn extract_into_host_dir(
    dir: &Path,
    reader: &mut dyn Read,
    opts: ExtractOptions,
) -> Result<u64, ArchiveError> {
    let io_error = |e: io::Error| ArchiveError::Io {
        context: format!("cannot open {}", dir.display()),
        source: e,
    };
    let root = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(e.into()))?;
    let budget = Budget::of(&root).map_err(io_error)?;
    extract_shown(
        &root,
        Vec::new(),
        dir.display().to_string(),
        reader,
        opts,
        budget,
    )
}

/// [`extract_into_host_dir`] into the engine's own storage (a build context): bounded by
/// the file system's free space without the reserve kept for uploads into containers.
pub fn extract_into_engine_dir(
    dir: &Path,
    reader: &mut dyn Read,
    opts: ExtractOptions,
) -> Result<u64, ArchiveError> {
    let io_error = |e: io::Error| ArchiveError::Io {
        context: format!("cannot open {}", dir.display()),
        source: e,
    };
    let root = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(e.into()))?;
    let budget = Budget::all_of(&root).map_err(io_error)?;
    extract_shown(
        &root,
        Vec::new(),
        dir.display().to_string(),
        reader,
        opts,
        budget,
    )
}

fn extract_shown(
    root: &OwnedFd,
    dest: Vec<Vec<u8>>,
    dest_shown: String,
    reader: &mut dyn Read,
    opts: ExtractOptions,
    budget: Budget,
) -> Result<u64, ArchiveError> {
    let refusal = Rc::new(RefCell::new(None));
    let mut x = Extractor {
        root,
        refusal: refusal.clone(),
        dest_shown,
        dest,
        opts,
        budget,
        used_bytes: 0,
        entries: 0,
        dir_times: BTreeMap::new(),
        buf: vec![0; 128 * 1024],
    };
    let mut guard = TarGuard::new(reader, refusal);
    let mut archive = tar::Archive::new(&mut guard);
    let entries = archive.entries().map_err(|e| x.stream_error(e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| x.stream_error(e))?;
        x.entry(&mut entry)?;
    }
    x.finish()?;
    Ok(x.entries)
}

struct Extractor<'a> {
    root: &'a OwnedFd,
    /// Set when [`TarGuard`] refused to read on.
    refusal: Rc<RefCell<Option<String>>>,
    dest: Vec<Vec<u8>>,
    dest_shown: String,
    opts: ExtractOptions,
    budget: Budget,
    used_bytes: u64,
    entries: u64,
    dir_times: BTreeMap<Vec<Vec<u8>>, Timestamps>,
    buf: Vec<u8>,
}

impl Extractor<'_> {
    /// A failure while reading the archive: the guard's own refusal if it stopped the read.
    fn stream_error(&self, e: io::Error) -> ArchiveError {
        if let Some(message) = self.refusal.borrow().clone() {
            return ArchiveError::TooLarge { message };
        }
        ArchiveError::archive(e)
    }

    fn charge(&mut self, bytes: u64) -> Result<(), ArchiveError> {
        self.used_bytes = self.used_bytes.saturating_add(bytes);
        if self.used_bytes > self.budget.bytes {
            return Err(ArchiveError::TooLarge {
                message: format!(
                    "the archive is larger than the space left in the container's file system at {} ({} bytes)",
                    self.dest_shown, self.budget.bytes
                ),
            });
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        self.entries += 1;
        if self.entries > self.budget.entries {
            return Err(ArchiveError::TooLarge {
                message: format!(
                    "the archive has more entries than the container's file system at {} can take ({})",
                    self.dest_shown, self.budget.entries
                ),
            });
        }
        self.charge(ENTRY_COST)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = self.renamed(&entry.path_bytes());
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let rel = clean(&raw).ok_or_else(|| ArchiveError::Breakout {
            message: format!("{shown:?} is outside of {:?}", self.dest_shown),
        })?;
        let meta = self.meta(entry, &shown)?;
        let Some((name, dir)) = rel.split_last() else {
            // The extraction directory itself: Docker leaves it as it is.
            return Ok(());
        };
        let mut parent_comps = self.dest.clone();
        parent_comps.extend(dir.iter().cloned());
        let parent = self.make_dirs(&parent_comps, &shown)?;
        let mut full = parent_comps.clone();
        full.push(name.clone());
        let shown = join_abs(&full);
        let name = OsStr::from_bytes(name);

        let is_dir = kind.is_dir();
        match rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if self.opts.no_overwrite_dir_non_dir && existing_dir && !is_dir {
                    return Err(ArchiveError::Conflict {
                        message: format!(
                            "cannot overwrite directory {shown:?} with non-directory {:?}",
                            self.dest_shown
                        ),
                    });
                }
                if self.opts.no_overwrite_dir_non_dir && !existing_dir && is_dir {
                    return Err(ArchiveError::Conflict {
                        message: format!(
                            "cannot overwrite non-directory {shown:?} with directory {:?}",
                            self.dest_shown
                        ),
                    });
                }
                if !(existing_dir && is_dir) {
                    tarfs::remove_node(&parent, name, existing_dir)
                        .map_err(|e| io_err(&shown, e))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(io_err(&shown, e)),
        }

        match kind {
            EntryType::Directory => {
                match rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_err(&shown, e)),
                }
                let fd = tarfs::open_dir_at(&parent, name).map_err(|e| io_err(&shown, e))?;
                tarfs::set_fd_meta(&fd, self.owner(&meta), &meta, &shown)
                    .map_err(|e| io_err(&shown, e))?;
                self.dir_times.insert(full, meta.times());
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut file =
                    tarfs::create_file_at(&parent, name).map_err(|e| io_err(&shown, e))?;
                self.copy_data(entry, &mut file, &shown)?;
                tarfs::set_fd_meta(&file, self.owner(&meta), &meta, &shown)
                    .map_err(|e| io_err(&shown, e))?;
                rfs::futimens(&file, &meta.times()).map_err(|e| io_err(&shown, e))?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                if !target.starts_with(b"/") {
                    let mut at: Vec<Vec<u8>> = dir.to_vec();
                    if clean_onto(&mut at, &target).is_none() {
                        return Err(ArchiveError::Breakout {
                            message: format!(
                                "invalid symlink {shown:?} -> {:?}",
                                String::from_utf8_lossy(&target)
                            ),
                        });
                    }
                }
                self.charge(target.len() as u64)?;
                rfs::symlinkat(OsStr::from_bytes(&target), &parent, name)
                    .map_err(|e| io_err(&shown, e))?;
                tarfs::set_meta_at(&parent, name, self.owner(&meta), &meta, false, &shown)
                    .map_err(|e| io_err(&shown, e))?;
            }
            EntryType::Link => {
                let target = self.renamed(&entry.link_name_bytes().unwrap_or_default());
                let breakout = || ArchiveError::Breakout {
                    message: format!(
                        "invalid hardlink {shown:?} -> {:?}",
                        String::from_utf8_lossy(&target)
                    ),
                };
                let target_rel = clean(&target).ok_or_else(breakout)?;
                let Some((target_name, target_dir)) = target_rel.split_last() else {
                    return Err(breakout());
                };
                let mut target_parent = self.dest.clone();
                target_parent.extend(target_dir.iter().cloned());
                let target_parent = open_dir_in(self.root, &target_parent, OFlags::PATH)
                    .map_err(|e| io_err(&shown, e))?;
                rfs::linkat(
                    &target_parent,
                    OsStr::from_bytes(target_name),
                    &parent,
                    name,
                    AtFlags::empty(),
                )
                .map_err(|e| io_err(&shown, e))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, device) = if kind == EntryType::Fifo {
                    (FileType::Fifo, 0)
                } else {
                    let h = entry.header();
                    let major = h.device_major().ok().flatten().unwrap_or(0);
                    let minor = h.device_minor().ok().flatten().unwrap_or(0);
                    let t = if kind == EntryType::Char {
                        FileType::CharacterDevice
                    } else {
                        FileType::BlockDevice
                    };
                    (t, rfs::makedev(major, minor))
                };
                rfs::mknodat(&parent, name, file_type, Mode::from_raw_mode(0o600), device)
                    .map_err(|e| io_err(&shown, e))?;
                // Set the rest through a descriptor of exactly this node: by name, a
                // container process could have swapped it for a symlink meanwhile.
                let fd = rfs::openat(
                    &parent,
                    name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(&shown, e))?;
                let st = rfs::fstat(&fd).map_err(|e| io_err(&shown, e))?;
                if FileType::from_raw_mode(st.st_mode) != file_type {
                    return Err(io_err(&shown, Errno::AGAIN));
                }
                let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
                if let Some((uid, gid)) = self.owner(&meta) {
                    rfs::chown(
                        path.as_str(),
                        Some(Uid::from_raw(uid)),
                        Some(Gid::from_raw(gid)),
                    )
                    .map_err(|e| io_err(&shown, e))?;
                }
                rfs::chmod(path.as_str(), Mode::from_raw_mode(meta.mode))
                    .map_err(|e| io_err(&shown, e))?;
                for (key, value) in &meta.xattrs {
                    let r = rfs::setxattr(
                        path.as_str(),
                        OsStr::from_bytes(key),
                        value,
                        XattrFlags::empty(),
                    );
                    xattr_result(r, key, &shown).map_err(|e| io_err(&shown, e))?;
                }
                rfs::utimensat(rfs::CWD, path.as_str(), &meta.times(), AtFlags::empty())
                    .map_err(|e| io_err(&shown, e))?;
            }
            other => {
                return Err(ArchiveError::Archive {
                    message: format!("unhandled tar header type {other:?} for {shown:?}"),
                })
            }
        }
        Ok(())
    }

    fn owner(&self, meta: &Meta) -> Option<(u32, u32)> {
        match self.opts.owners {
            Owners::Archive => Some((meta.uid, meta.gid)),
            Owners::Fixed(uid, gid) => Some((uid, gid)),
            Owners::Caller => None,
        }
    }

    /// A name with the archive's first component renamed, if asked.
    fn renamed(&self, name: &[u8]) -> Vec<u8> {
        let Some((old, new)) = &self.opts.rename else {
            return name.to_vec();
        };
        if old.as_slice() == b"/" {
            let mut out = new.clone();
            out.extend_from_slice(name);
            return out;
        }
        let rest = name.strip_prefix(old.as_slice());
        match rest {
            Some(rest) if rest.is_empty() || rest.starts_with(b"/") => {
                let mut out = new.clone();
                out.extend_from_slice(rest);
                out
            }
            _ => name.to_vec(),
        }
    }

    fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<Meta, ArchiveError> {
        let h = entry.header();
        // An empty field is 0, as Go's archive/tar reads it (the tar crate refuses it).
        let id = |v: io::Result<u64>, raw: &[u8]| -> Result<u32, ArchiveError> {
            let blank = raw.iter().all(|&b| b == 0 || b == b' ');
            match v {
                Err(_) if blank => Ok(0),
                v => v
                    .ok()
                    .and_then(|v| u32::try_from(v).ok())
                    .filter(|&v| v != u32::MAX)
                    .ok_or_else(|| ArchiveError::Archive {
                        message: format!("the owner of {shown:?} is out of range"),
                    }),
            }
        };
        let uid = id(h.uid(), &h.as_old().uid)?;
        let gid = id(h.gid(), &h.as_old().gid)?;
        let blank = |raw: &[u8]| raw.iter().all(|&b| b == 0 || b == b' ');
        let mode = match h.mode() {
            Err(_) if blank(&h.as_old().mode) => 0,
            m => m.map_err(ArchiveError::archive)? & 0o7777,
        };
        let secs = match h.mtime() {
            Err(_) if blank(&h.as_old().mtime) => 0,
            t => t.map_err(ArchiveError::archive)?,
        };
        let mut meta = Meta::new(uid, gid, mode, secs);
        // Only the header's whole-second mtime is applied here; PAX times are not read.
        meta.read_pax(entry, false, shown)
            .map_err(ArchiveError::archive)?;
        Ok(meta)
    }

    fn copy_data(
        &mut self,
        from: &mut dyn Read,
        to: &mut File,
        shown: &str,
    ) -> Result<(), ArchiveError> {
        loop {
            let n = match from.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.stream_error(e)),
            };
            self.charge(n as u64)?;
            to.write_all(&self.buf[..n]).map_err(|e| ArchiveError::Io {
                context: format!("cannot write {shown:?}"),
                source: e,
            })?;
        }
    }

    /// Opens the directory `comps` (inside the root), creating what is missing of it as
    /// Docker does (mode 0755, owned by root). Refuses kernel file systems.
    fn make_dirs(&self, comps: &[Vec<u8>], shown: &str) -> Result<OwnedFd, ArchiveError> {
        let fd = match open_dir_in(self.root, comps, OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let mut fd =
                    open_dir_in(self.root, &[], OFlags::PATH).map_err(|e| io_err(shown, e))?;
                for i in 0..comps.len() {
                    fd = match open_dir_in(self.root, &comps[..=i], OFlags::PATH) {
                        Ok(next) => next,
                        Err(Errno::NOENT) => {
                            self.refuse_pseudo(&fd, &comps[..i])?;
                            let name = OsStr::from_bytes(&comps[i]);
                            match rfs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                                Ok(()) => {}
                                // It exists yet does not resolve: a dangling symlink.
                                Err(e) => return Err(io_err(&join_abs(&comps[..=i]), e)),
                            }
                            let dir =
                                tarfs::open_dir_at(&fd, name).map_err(|e| io_err(shown, e))?;
                            rfs::fchmod(&dir, Mode::from_raw_mode(0o755))
                                .map_err(|e| io_err(shown, e))?;
                            dir
                        }
                        Err(e) => return Err(io_err(&join_abs(&comps[..=i]), e)),
                    };
                }
                fd
            }
            Err(e) => return Err(io_err(&join_abs(comps), e)),
        };
        self.refuse_pseudo(&fd, comps)?;
        Ok(fd)
    }

    fn refuse_pseudo(&self, fd: &OwnedFd, comps: &[Vec<u8>]) -> Result<(), ArchiveError> {
        if is_pseudo_fs(fd) {
            return Err(ArchiveError::PseudoFs {
                path: join_abs(comps),
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ArchiveError> {
        let dirs: Vec<_> = std::mem::take(&mut self.dir_times).into_iter().collect();
        for (comps, times) in dirs.into_iter().rev() {
            let Some((name, dir)) = comps.split_last() else {
                continue;
            };
            let r = open_dir_in(self.root, dir, OFlags::PATH).and_then(|parent| {
                rfs::utimensat(
                    &parent,
                    OsStr::from_bytes(name),
                    &times,
                    AtFlags::SYMLINK_NOFOLLOW,
                )
            });
            match r {
                // Replaced by a later entry, or by the container meanwhile.
                Ok(()) | Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => {}
                Err(e) => return Err(io_err(&join_abs(&comps), e)),
            }
        }
        Ok(())
    }
}

fn io_err(shown: &str, e: Errno) -> ArchiveError {
    ArchiveError::Io {
        context: format!("cannot extract {shown:?}"),
        source: e.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    SparseExtension,
    Data,
    End,
}

/// Watches the tar stream as the `tar` crate reads it and refuses extension members (GNU
/// long names and link names, PAX records) larger than [`MAX_EXTENSION`] before the crate
/// reads them into memory, which it would do whatever their size.
///
/// It follows the archive's layout exactly as the crate does: headers are 512-byte blocks,
/// data is rounded up to blocks, a PAX `size` record sizes the next member, GNU sparse
/// headers may be followed by extension blocks, and a zero block ends the archive.
struct TarGuard<'r> {
    inner: &'r mut dyn Read,
    phase: Phase,
    block: [u8; 512],
    filled: usize,
    data_left: u64,
    pax: Option<Vec<u8>>,
    pax_left: u64,
    next_size: Option<u64>,
    refusal: Rc<RefCell<Option<String>>>,
}

impl<'r> TarGuard<'r> {
    fn new(inner: &'r mut dyn Read, refusal: Rc<RefCell<Option<String>>>) -> Self {
        Self {
            inner,
            phase: Phase::Header,
            block: [0; 512],
            filled: 0,
            data_left: 0,
            pax: None,
            pax_left: 0,
            next_size: None,
            refusal,
        }
    }

    fn observe(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.phase {
                Phase::End => return Ok(()),
                Phase::Header | Phase::SparseExtension => {
                    let n = (512 - self.filled).min(bytes.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    bytes = &bytes[n..];
                    if self.filled == 512 {
                        self.filled = 0;
                        if self.phase == Phase::Header {
                            self.header()?;
                        } else if self.block[504] == 0 {
                            self.phase = self.after_header();
                        }
                    }
                }
                Phase::Data => {
                    let n = (self.data_left.min(bytes.len() as u64)) as usize;
                    if let Some(pax) = self.pax.as_mut() {
                        let keep = (self.pax_left.min(n as u64)) as usize;
                        pax.extend_from_slice(&bytes[..keep]);
                        self.pax_left -= keep as u64;
                    }
                    self.data_left -= n as u64;
                    bytes = &bytes[n..];
                    if self.data_left == 0 {
                        self.end_of_data();
                        self.phase = Phase::Header;
                    }
                }
            }
        }
        Ok(())
    }

    fn after_header(&self) -> Phase {
        if self.data_left == 0 {
            Phase::Header
        } else {
            Phase::Data
        }
    }

    fn end_of_data(&mut self) {
        if let Some(pax) = self.pax.take() {
            self.next_size = tar_pax_size(&pax);
        }
    }

    fn header(&mut self) -> Result<(), String> {
        let h = self.block;
        if h.iter().all(|&b| b == 0) {
            self.phase = Phase::End;
            return Ok(());
        }
        let magic = &h[257..265];
        let recognized = magic == b"ustar\x0000" || magic == b"ustar  \x00";
        let kind = h[156];
        let Ok(mut size) = parse_numeric(&h[124..136]) else {
            // The tar crate fails on this header too; nothing more to watch.
            self.phase = Phase::End;
            return Ok(());
        };
        let extension = recognized && matches!(kind, b'L' | b'K' | b'x' | b'g');
        if extension {
            if size > MAX_EXTENSION {
                return Err(format!(
                    "a tar extension header of {size} bytes is larger than the {MAX_EXTENSION} bytes accepted"
                ));
            }
            if kind == b'x' {
                self.pax = Some(Vec::with_capacity(size as usize));
                self.pax_left = size;
            }
        } else if let Some(s) = self.next_size.take() {
            size = s;
        }
        if !extension {
            self.next_size = None;
        }
        self.data_left = size
            .checked_add(511)
            .ok_or_else(|| "tar entry size overflow".to_string())?
            & !511;
        if kind == b'S' && magic == b"ustar  \x00" && h[482] != 0 {
            self.phase = Phase::SparseExtension;
        } else {
            self.phase = self.after_header();
            if self.phase == Phase::Header {
                self.end_of_data();
            }
        }
        Ok(())
    }
}

impl Read for TarGuard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(message) = self.observe(&buf[..n]) {
            *self.refusal.borrow_mut() = Some(message.clone());
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

/// A tar number field: octal text, or base-256 when the high bit is set (as the tar crate
/// reads it).
fn parse_numeric(field: &[u8]) -> io::Result<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = 0;
        let skip = if field.len() == 8 {
            v = (field[0] ^ 0x80) as u64;
            1
        } else {
            field.len() - 8
        };
        for &b in &field[skip..] {
            v = (v << 8) | b as u64;
        }
        return Ok(v);
    }
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(&field[..end])
        .map_err(|_| io::Error::other("numeric field did not have utf-8 text"))?;
    u64::from_str_radix(text.trim(), 8)
        .map_err(|_| io::Error::other(format!("numeric field was not a number: {text}")))
}

/// The `size` record of a PAX extension block, as the tar crate finds it (the first one).
fn tar_pax_size(block: &[u8]) -> Option<u64> {
    let mut rest = block;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len > rest.len() || len <= space + 1 {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"size=") {
            return std::str::from_utf8(value).ok()?.parse().ok();
        }
        rest = &rest[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_sizes_and_numbers_parse() {
        assert_eq!(
            tar_pax_size(b"20 path=aaaaaaaaaaa\n15 size=123456\n"),
            Some(123456)
        );
        assert_eq!(tar_pax_size(b"12 path=abc\n"), None);
        assert_eq!(parse_numeric(b"00000001750\0").unwrap(), 0o1750);
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[11] = 7;
        assert_eq!(parse_numeric(&b256).unwrap(), 7);
    }

    use crate::image::unpack::tests::TarMaker;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "host").unwrap();
        Fixture {
            _dir: dir,
            root,
            outside,
        }
    }

    const PLENTY: Budget = Budget {
        bytes: 1 << 30,
        entries: 1000,
    };

    impl Fixture {
        fn extract_with(
            &self,
            dest: &str,
            tar: &[u8],
            opts: ExtractOptions,
            budget: Budget,
        ) -> Result<u64, ArchiveError> {
            let root = rfs::open(
                &self.root,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap();
            let dest = super::super::fsroot::clean_components(dest.as_bytes());
            extract(&root, dest, &mut &tar[..], opts, budget)
        }

        fn extract(&self, dest: &str, tar: &[u8]) -> Result<u64, ArchiveError> {
            self.extract_with(dest, tar, ExtractOptions::default(), PLENTY)
        }

        fn outside_untouched(&self) {
            let names: Vec<_> = fs::read_dir(&self.outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["secret"]);
            assert_eq!(
                fs::read_to_string(self.outside.join("secret")).unwrap(),
                "host"
            );
        }
    }

    #[test]
    #[ignore = "needs root: extracted files keep their owners (run scripts/test.sh as root)"]
    fn files_directories_and_links_arrive_with_their_owners() {
        let f = fixture();
        let mut h = TarMaker::header(EntryType::Regular, "d/owned", 0o4750);
        h.set_uid(1234);
        h.set_gid(5678);
        let tar = TarMaker::default()
            .dir("d/")
            .raw(h, b"data")
            .symlink("d/s", "/etc/passwd")
            .hardlink("d/h", "d/owned")
            .file("./x", b"x")
            .finish();
        assert_eq!(f.extract("/tmp", &tar).unwrap(), 5);
        let m = fs::metadata(f.root.join("tmp/d/owned")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1234, 5678, 0o4750));
        assert_eq!(fs::read(f.root.join("tmp/d/owned")).unwrap(), b"data");
        assert_eq!(m.nlink(), 2);
        assert_eq!(
            fs::read_link(f.root.join("tmp/d/s")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(fs::read(f.root.join("tmp/x")).unwrap(), b"x");
        // With the container's user, everything is that user's.
        let opts = ExtractOptions {
            owners: Owners::Fixed(7, 8),
            ..Default::default()
        };
        f.extract_with("/tmp", &tar, opts.clone(), PLENTY).unwrap();
        let m = fs::symlink_metadata(f.root.join("tmp/d/s")).unwrap();
        assert_eq!((m.uid(), m.gid()), (7, 8));
    }

    #[test]
    #[ignore = "needs root: extracted files keep their owners (run scripts/test.sh as root)"]
    fn nothing_leaves_the_root() {
        let f = fixture();
        let outside = f.outside.display().to_string();
        std::os::unix::fs::symlink("/", f.root.join("hostroot")).unwrap();
        std::os::unix::fs::symlink(&outside, f.root.join("out")).unwrap();
        std::os::unix::fs::symlink("../../../../../..", f.root.join("tmp/up")).unwrap();
        // Through the container's own symlinks: its root, never the host's.
        let tar = TarMaker::default()
            .file("hostroot/etc/shadow", b"mine")
            .file("up/etc/passwd", b"mine too")
            .finish();
        f.extract("/", &tar).unwrap();
        f.extract("/tmp", &tar).unwrap();
        assert_eq!(fs::read(f.root.join("etc/shadow")).unwrap(), b"mine");
        assert_eq!(fs::read(f.root.join("etc/passwd")).unwrap(), b"mine too");
        // The destination itself through a symlink to the host's directory: the container's
        // directory of that name (which does not exist).
        let tar = TarMaker::default().file("secret", b"pwned").finish();
        assert!(matches!(
            f.extract("/out", &tar),
            Err(ArchiveError::Io { .. })
        ));
        // Into a directory the entry names climb out of.
        for name in ["../x", "a/../../x", "../../../../../../etc/x"] {
            let tar = TarMaker::default().file(name, b"pwned").finish();
            let err = f.extract("/tmp", &tar).unwrap_err();
            assert!(
                matches!(err, ArchiveError::Breakout { .. }),
                "{name}: {err}"
            );
        }
        let tar = TarMaker::default().symlink("l", "../../x").finish();
        let err = f.extract("/tmp", &tar).unwrap_err();
        assert!(err.to_string().starts_with("invalid symlink"), "{err}");
        let tar = TarMaker::default().hardlink("l", "../etc/passwd").finish();
        let err = f.extract("/tmp", &tar).unwrap_err();
        assert!(err.to_string().starts_with("invalid hardlink"), "{err}");
        // A symlink made by the archive, then a file through it: stays inside.
        let tar = TarMaker::default()
            .symlink("o", &outside)
            .file("o/secret", b"pwned")
            .finish();
        assert!(f.extract("/tmp", &tar).is_err());
        f.outside_untouched();
    }

    #[test]
    #[ignore = "needs root: extracted files keep their owners (run scripts/test.sh as root)"]
    fn directories_and_files_do_not_replace_each_other_when_asked() {
        let f = fixture();
        fs::create_dir_all(f.root.join("tmp/d")).unwrap();
        fs::write(f.root.join("tmp/file"), "old").unwrap();
        let opts = ExtractOptions {
            no_overwrite_dir_non_dir: true,
            ..Default::default()
        };
        let tar = TarMaker::default().file("d", b"x").finish();
        let err = f
            .extract_with("/tmp", &tar, opts.clone(), PLENTY)
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot overwrite directory"),
            "{err}"
        );
        let tar = TarMaker::default().dir("file").finish();
        let err = f
            .extract_with("/tmp", &tar, opts.clone(), PLENTY)
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot overwrite non-directory"),
            "{err}"
        );
        // Without the option a file replaces a directory, and a file another file.
        let tar = TarMaker::default()
            .file("d", b"x")
            .file("file", b"new")
            .finish();
        f.extract("/tmp", &tar).unwrap();
        assert_eq!(fs::read(f.root.join("tmp/d")).unwrap(), b"x");
        assert_eq!(fs::read(f.root.join("tmp/file")).unwrap(), b"new");
        // The extraction directory's own entry leaves it as it was.
        fs::set_permissions(f.root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        let root_entry = TarMaker::header(EntryType::Directory, "./", 0o700);
        let tar = TarMaker::default().raw(root_entry, b"").finish();
        f.extract("/tmp", &tar).unwrap();
        assert_eq!(
            fs::metadata(f.root.join("tmp")).unwrap().mode() & 0o7777,
            0o1777
        );
    }

    #[test]
    #[ignore = "needs root: extracted files keep their owners (run scripts/test.sh as root)"]
    fn bombs_are_refused() {
        let f = fixture();
        let tar = TarMaker::default().file("big", &[7u8; 4096]).finish();
        let small = Budget {
            bytes: 2048,
            entries: 100,
        };
        let err = f
            .extract_with("/tmp", &tar, ExtractOptions::default(), small)
            .unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
        let mut many = TarMaker::default();
        for i in 0..20 {
            many.file(&format!("f{i}"), b"");
        }
        let few = Budget {
            bytes: 1 << 20,
            entries: 10,
        };
        let err = f
            .extract_with("/tmp", &many.finish(), ExtractOptions::default(), few)
            .unwrap_err();
        assert!(err.to_string().contains("more entries"), "{err}");
        // A long-name member claiming 8 GiB is refused from its header, before any read.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::GNULongName);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(8 << 30);
        h.set_cksum();
        let mut bomb = h.as_bytes().to_vec();
        bomb.extend(std::iter::repeat_n(b'a', 4096));
        let err = f.extract("/tmp", &bomb).unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
        // Garbage is an archive error.
        let err = f.extract("/tmp", &[9u8; 1024]).unwrap_err();
        assert!(matches!(err, ArchiveError::Archive { .. }), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
    }

    #[test]
    #[ignore = "needs root: extracted files keep their owners (run scripts/test.sh as root)"]
    fn the_guard_follows_pax_sizes() {
        // A PAX size record larger than the header's: the guard must skip the right amount
        // of data and still see the long name that follows.
        let mut t = TarMaker::default();
        t.pax(&[("size", b"1024")]);
        let mut h = TarMaker::header(EntryType::Regular, "f", 0o644);
        h.set_size(0);
        h.set_cksum();
        let mut bytes = t.finish();
        bytes.truncate(bytes.len() - 1024); // drop the end-of-archive blocks
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, 1024));
        let mut long = tar::Header::new_gnu();
        long.set_entry_type(EntryType::GNULongName);
        long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        long.set_size(MAX_EXTENSION + 1);
        long.set_cksum();
        bytes.extend_from_slice(long.as_bytes());
        let f = fixture();
        let err = f.extract("/tmp", &bytes).unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
        assert_eq!(fs::metadata(f.root.join("tmp/f")).unwrap().len(), 1024);
    }

    #[test]
    #[ignore = "needs root: extracted files keep their owners (run scripts/test.sh as root)"]
    fn host_extraction_renames_and_leaves_owners_to_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let mut owned = TarMaker::header(EntryType::Regular, "tree/f", 0o640);
        owned.set_uid(1234);
        let tar = TarMaker::default()
            .dir("tree/")
            .raw(owned, b"f")
            .hardlink("tree/h", "tree/f")
            .file("other", b"untouched name")
            .finish();
        let opts = ExtractOptions {
            no_overwrite_dir_non_dir: true,
            owners: Owners::Caller,
            rename: Some((b"tree".to_vec(), b"copy".to_vec())),
        };
        extract_into_host_dir(dir.path(), &mut &tar[..], opts).unwrap();
        let m = fs::metadata(dir.path().join("copy/f")).unwrap();
        assert_eq!(
            (m.uid(), m.mode() & 0o777, m.nlink()),
            (nix::unistd::geteuid().as_raw(), 0o640, 2)
        );
        assert!(dir.path().join("other").is_file());
        assert!(!dir.path().join("tree").exists());
        // `/` as the old name prefixes every entry (an archive of a container's root).
        let tar = TarMaker::default()
            .raw(TarMaker::header(EntryType::Directory, "/", 0o755), b"")
            .finish();
        let opts = ExtractOptions {
            rename: Some((b"/".to_vec(), b"rootcopy".to_vec())),
            ..Default::default()
        };
        extract_into_host_dir(dir.path(), &mut &tar[..], opts).unwrap();
        assert!(dir.path().join("rootcopy").is_dir());
    }
}
