//! Writing part of a container's file system as a tar stream (`GET /archive`, `export`), as
//! dockerd's `archive.TarWithOptions` would, walking by descriptors so a container changing
//! its files meanwhile can never make it read outside its root.
//!
//! Every node is opened with `O_PATH | O_NOFOLLOW` relative to its directory's descriptor and
//! examined through that descriptor; a regular file's content is read by reopening exactly
//! that node (`/proc/self/fd/N`), so a file swapped for a fifo or a symlink between the
//! look and the read is never followed or blocked on. Names are sorted as Go's
//! `filepath.Walk` sorts them; symlinks are stored as symlinks, hard links as links to the
//! first name seen, sockets are left out (as dockerd leaves them), and kernel file systems
//! mounted inside (`/proc`, `/sys`…) appear as empty directories.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;
use tar::{EntryType, Header};

use super::fsroot::is_pseudo_fs;

/// Directories nested deeper than this are written but not walked into (each level holds
/// a descriptor).
const MAX_DEPTH: usize = 512;

/// Writes file-system trees into a tar stream.
pub(crate) struct TreeArchiver<W: Write> {
    builder: tar::Builder<W>,
    /// Names already written of files with more than one link, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
}

struct Frame {
    dir: OwnedFd,
    name: Vec<u8>,
    children: std::vec::IntoIter<Vec<u8>>,
}

impl<W: Write> TreeArchiver<W> {
    pub fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        Self {
            builder,
            links: HashMap::new(),
        }
    }

    /// Writes the node `node` (an `O_PATH | O_NOFOLLOW` descriptor) as `name`, and when it
    /// is a directory everything beneath it as `name/…`. `include_top` says whether the
    /// node's own entry is written (`export` leaves out the root).
    ///
    /// Fails only when the output fails (the client went away); nodes that vanish or cannot
    /// be read are logged and left out, as dockerd does.
    pub fn append_tree(&mut self, node: OwnedFd, name: &[u8], include_top: bool) -> io::Result<()> {
        let mut stack: Vec<Frame> = Vec::new();
        if let Some(frame) = self.append_node(node, name.to_vec(), include_top, 0)? {
            stack.push(frame);
        }
        while let Some(top) = stack.last_mut() {
            let Some(child) = top.children.next() else {
                stack.pop();
                continue;
            };
            let mut child_name = top.name.clone();
            if !child_name.is_empty() && !child_name.ends_with(b"/") {
                child_name.push(b'/');
            }
            child_name.extend_from_slice(&child);
            let fd = match rfs::openat(
                &top.dir,
                OsStr::from_bytes(&child),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(e) => {
                    skip(&child_name, e.into());
                    continue;
                }
            };
            let depth = stack.len();
            if let Some(frame) = self.append_node(fd, child_name, true, depth)? {
                stack.push(frame);
            }
        }
        Ok(())
    }

    /// Ends the archive and returns the output.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }

    fn append_node(
        &mut self,
        fd: OwnedFd,
        name: Vec<u8>,
        write_entry: bool,
        depth: usize,
    ) -> io::Result<Option<Frame>> {
        let st = match rfs::fstat(&fd) {
            Ok(st) => st,
            Err(e) => {
                skip(&name, e.into());
                return Ok(None);
            }
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        let mut h = Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid as u64);
        h.set_gid(st.st_gid as u64);
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        match kind {
            FileType::Directory => {
                if write_entry {
                    let mut dir_name = name.clone();
                    if !dir_name.ends_with(b"/") {
                        dir_name.push(b'/');
                    }
                    h.set_entry_type(EntryType::Directory);
                    self.write(h, &dir_name, None, &mut io::empty())?;
                }
                if depth >= MAX_DEPTH {
                    skip(&name, io::Error::other("nested too deep"));
                    return Ok(None);
                }
                let dir = match rfs::openat(
                    &fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(d) => d,
                    Err(e) => {
                        skip(&name, e.into());
                        return Ok(None);
                    }
                };
                if is_pseudo_fs(&dir) {
                    return Ok(None);
                }
                let mut children = Vec::new();
                let listing = rfs::Dir::read_from(&dir).and_then(|d| {
                    for entry in d {
                        let entry = entry?;
                        let n = entry.file_name().to_bytes();
                        if n != b"." && n != b".." {
                            children.push(n.to_vec());
                        }
                    }
                    Ok(())
                });
                if let Err(e) = listing {
                    skip(&name, e.into());
                    return Ok(None);
                }
                children.sort();
                return Ok(Some(Frame {
                    dir,
                    name,
                    children: children.into_iter(),
                }));
            }
            FileType::Socket | FileType::Unknown => {
                tracing::debug!(path = %String::from_utf8_lossy(&name), "leaving a socket out of an archive");
                return Ok(None);
            }
            _ => {}
        }
        if !write_entry {
            return Ok(None);
        }
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                h.set_entry_type(EntryType::Link);
                return self
                    .write(h, &name, Some(&first), &mut io::empty())
                    .map(|_| None);
            }
            self.links.insert(key, name.clone());
        }
        match kind {
            FileType::RegularFile => {
                // Reopen exactly the node looked at; never a path that could have changed.
                let file = match File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
                    Ok(f) => f,
                    Err(e) => {
                        skip(&name, e);
                        return Ok(None);
                    }
                };
                let size = st.st_size.max(0) as u64;
                h.set_entry_type(EntryType::Regular);
                h.set_size(size);
                if let Some(cap) = capability(&file) {
                    self.builder
                        .append_pax_extensions([("SCHILY.xattr.security.capability", &cap[..])])?;
                }
                let mut data = Exact {
                    file,
                    left: size,
                    failed: false,
                    name: &name,
                };
                let name = name.clone();
                self.write(h, &name, None, &mut data)?;
            }
            FileType::Symlink => {
                let target = match rfs::readlinkat(&fd, "", Vec::new()) {
                    Ok(t) => t.into_bytes(),
                    Err(e) => {
                        skip(&name, e.into());
                        return Ok(None);
                    }
                };
                h.set_entry_type(EntryType::Symlink);
                self.write(h, &name, Some(&target), &mut io::empty())?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                h.set_entry_type(match kind {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                });
                if kind != FileType::Fifo {
                    h.set_device_major(rfs::major(st.st_rdev))?;
                    h.set_device_minor(rfs::minor(st.st_rdev))?;
                }
                self.write(h, &name, None, &mut io::empty())?;
            }
            _ => {}
        }
        Ok(None)
    }

    /// Writes one entry, with GNU long-name members for names that do not fit the header.
    /// Names are written byte for byte (a leading `/` or `./` is meaningful to docker's
    /// client, which renames entries by prefix).
    fn write(
        &mut self,
        mut h: Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        if name.len() > 100 {
            self.long_member(EntryType::GNULongName, name)?;
        }
        if let Some(link) = link.filter(|l| l.len() > 100) {
            self.long_member(EntryType::GNULongLink, link)?;
        }
        let old = h.as_old_mut();
        let n = name.len().min(100);
        old.name = [0; 100];
        old.name[..n].copy_from_slice(&name[..n]);
        if let Some(link) = link {
            let n = link.len().min(100);
            old.linkname = [0; 100];
            old.linkname[..n].copy_from_slice(&link[..n]);
        }
        h.set_cksum();
        self.builder.append(&h, data)
    }

    fn long_member(&mut self, kind: EntryType, value: &[u8]) -> io::Result<()> {
        let mut h = Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_entry_type(kind);
        let mut data = value.to_vec();
        data.push(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, &data[..])
    }
}

/// A tar stream of a path of this host (`berth cp SRC CONTAINER:DST`): the node at `path`
/// named `name`, and everything beneath it, written as the client reads it. With `follow`,
/// a symlink at `path` is followed; symlinks beneath it never are.
pub fn archive_host_path(
    path: &std::path::Path,
    name: &[u8],
    follow: bool,
) -> io::Result<super::TarStream> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let node = rfs::open(path, flags, Mode::empty())?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let name = name.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut archiver = TreeArchiver::new(ChannelWriter::new(tx));
        let written = archiver
            .append_tree(node, &name, true)
            .and_then(|()| archiver.finish());
        if let Ok(mut out) = written {
            let _ = out.flush();
        }
    });
    Ok(rx)
}

/// A file's `security.capability`, which Docker keeps in archives (as PAX `SCHILY.xattr`).
fn capability(file: &File) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rfs::fgetxattr(file, "security.capability", &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

fn skip(name: &[u8], e: io::Error) {
    if e.raw_os_error() != Some(Errno::NOENT.raw_os_error()) {
        tracing::warn!(path = %String::from_utf8_lossy(name), error = %crate::error::Chain(&e), "leaving a file out of an archive");
    }
}

/// Exactly `left` bytes of a file whose size was recorded in the header: zeros if it
/// shrank or failed to read meanwhile, and no more than that if it grew.
struct Exact<'n> {
    file: File,
    left: u64,
    failed: bool,
    name: &'n [u8],
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = (self.left.min(buf.len() as u64)) as usize;
        let mut n = 0;
        while !self.failed {
            match self.file.read(&mut buf[..want]) {
                Ok(read) => {
                    n = read;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    skip(self.name, e);
                    self.failed = true;
                }
            }
        }
        let n = if n == 0 {
            // Shrunk or failed: pad with zeros so the archive stays well formed.
            self.failed = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// An [`io::Write`] that hands the bytes to an async consumer in chunks, blocking while the
/// consumer is behind (back-pressure) and failing once it has gone away.
pub(crate) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn listing(tar_bytes: &[u8]) -> Vec<(String, EntryType, String)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.header().entry_type(),
                    link,
                )
            })
            .collect()
    }

    fn opath(p: &std::path::Path) -> OwnedFd {
        rfs::open(
            p,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn trees_are_written_sorted_with_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("b"), b"bee").unwrap();
        std::fs::set_permissions(d.join("b"), std::fs::Permissions::from_mode(0o4751)).unwrap();
        std::fs::hard_link(d.join("b"), d.join("a-link")).unwrap();
        symlink("/etc/shadow", d.join("sub/s")).unwrap();
        let long = "n".repeat(150);
        std::fs::write(d.join(&long), b"x").unwrap();
        nix::unistd::mkfifo(
            &d.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let mut a = TreeArchiver::new(Vec::new());
        a.append_tree(opath(&d), b"./", true).unwrap();
        let out = a.finish().unwrap();
        let l = listing(&out);
        let names: Vec<&str> = l.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "./",
                "./a-link",
                "./b",
                "./fifo",
                &format!("./{long}"),
                "./sub/",
                "./sub/s"
            ]
        );
        assert_eq!(l[2].1, EntryType::Link);
        assert_eq!(l[2].2, "./a-link");
        assert_eq!(l[3].1, EntryType::Fifo);
        assert_eq!(
            l[6],
            ("./sub/s".into(), EntryType::Symlink, "/etc/shadow".into())
        );
        let mut ar = tar::Archive::new(&out[..]);
        let mut first = ar.entries().unwrap().nth(1).unwrap().unwrap();
        assert_eq!(first.header().mode().unwrap(), 0o4751);
        let mut s = String::new();
        first.read_to_string(&mut s).unwrap();
        assert_eq!(s, "bee");
    }

    #[test]
    fn a_shrinking_file_is_padded_and_a_growing_one_cut() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"01").unwrap();
        let mut data = Vec::new();
        Exact {
            file: File::open(&f).unwrap(),
            left: 5,
            failed: false,
            name: b"f",
        }
        .read_to_end(&mut data)
        .unwrap();
        assert_eq!(data, b"01\0\0\0");
        let mut data = Vec::new();
        Exact {
            file: File::open(&f).unwrap(),
            left: 1,
            failed: false,
            name: b"f",
        }
        .read_to_end(&mut data)
        .unwrap();
        assert_eq!(data, b"0");
    }
}
