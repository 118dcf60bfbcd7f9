//! A container's changes as a layer tar (`commit`, build steps): its overlay upper directory
//! written as dockerd's overlay2 driver writes it, with overlayfs whiteouts (character device
//! 0/0) as `.wh.<name>` files and opaque directories with a `.wh..wh..opq` file in them.
//!
//! The walk is by descriptors (never following a symlink, so a running container cannot make
//! it read outside the directory), in lexical order. The mount points berth's runtime makes
//! for every container (`/etc/hostname`, `/dev`, …) are not the container's changes and are
//! left out, and so is a directory the image already has that holds nothing else.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use tar::{EntryType, Header};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// One node to write, in walk order.
enum Node {
    Dir {
        path: Vec<u8>,
        st: rfs::Stat,
        opaque: bool,
    },
    Other {
        path: Vec<u8>,
        fd: OwnedFd,
        st: rfs::Stat,
    },
}

/// Writes the changes in `upper` (over `lowers`, topmost first) as a tar into `out`.
/// Returns whether the tar has any entry (an empty one is an empty layer).
pub(crate) fn write_upper_tar(
    upper: &Path,
    lowers: &[std::path::PathBuf],
    skip: &[&str],
    out: &mut dyn Write,
) -> io::Result<bool> {
    let root = match rfs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => {
            tar::Builder::new(out).finish()?;
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    let lowers: Vec<OwnedFd> = lowers
        .iter()
        .filter_map(|l| {
            rfs::open(
                l,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
        })
        .collect();
    let mut nodes = Vec::new();
    collect(&root, Vec::new(), skip, &lowers, &mut nodes)?;
    let any = !nodes.is_empty();
    let mut builder = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    for node in nodes {
        write_node(&mut builder, node, &mut links)?;
    }
    builder.finish()?;
    Ok(any)
}

fn children(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
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

/// Collects the nodes of directory `dir` (at `path`); returns whether anything under it was
/// left out as a runtime mount point.
fn collect(
    dir: &OwnedFd,
    path: Vec<u8>,
    skip: &[&str],
    lowers: &[OwnedFd],
    nodes: &mut Vec<Node>,
) -> io::Result<bool> {
    let mut skipped = false;
    for name in children(dir)? {
        let mut child = path.clone();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(&name);
        let shown = format!("/{}", String::from_utf8_lossy(&child));
        if skip.contains(&shown.as_str()) {
            skipped = true;
            continue;
        }
        let fd = match rfs::openat(
            dir,
            OsStr::from_bytes(&name),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let st = rfs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            nodes.push(Node::Other {
                path: child,
                fd,
                st,
            });
            continue;
        }
        let dir_fd = rfs::openat(
            dir,
            OsStr::from_bytes(&name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut v = [0u8; 1];
        let opaque =
            rfs::fgetxattr(&dir_fd, OPAQUE_XATTR, &mut v[..]).is_ok_and(|n| n == 1 && v[0] == b'y');
        let at = nodes.len();
        nodes.push(Node::Dir {
            path: child.clone(),
            st,
            opaque,
        });
        let inner_skipped = collect(&dir_fd, child.clone(), skip, lowers, nodes)?;
        let nothing_else = nodes.len() == at + 1;
        if inner_skipped && nothing_else && !opaque && same_dir_below(lowers, &child, &st) {
            // Only there for the runtime's mount points.
            nodes.pop();
            skipped = true;
        }
    }
    Ok(skipped)
}

/// Whether the image's layers have `path` as a directory with the same mode.
fn same_dir_below(lowers: &[OwnedFd], path: &[u8], st: &rfs::Stat) -> bool {
    for layer in lowers {
        if let Ok(fd) = rfs::openat2(
            layer,
            OsStr::from_bytes(path),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            return rfs::fstat(&fd).is_ok_and(|low| low.st_mode == st.st_mode);
        }
    }
    false
}

fn header(st: &rfs::Stat, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

fn write_node<W: Write>(
    b: &mut tar::Builder<W>,
    node: Node,
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> io::Result<()> {
    match node {
        Node::Dir { path, st, opaque } => {
            let mut h = header(&st, EntryType::Directory);
            let mut name = path.clone();
            name.push(b'/');
            b.append_data(&mut h, OsStr::from_bytes(&name), io::empty())?;
            if opaque {
                let mut wo = header(&st, EntryType::Regular);
                wo.set_mode(st.st_mode & 0o777);
                let mut name = path;
                name.push(b'/');
                name.extend_from_slice(OPAQUE_MARKER.as_bytes());
                b.append_data(&mut wo, OsStr::from_bytes(&name), io::empty())?;
            }
        }
        Node::Other { path, fd, st } => {
            let kind = FileType::from_raw_mode(st.st_mode);
            let os_path = OsStr::from_bytes(&path);
            if kind == FileType::CharacterDevice && st.st_rdev == 0 {
                let (dir, file) = match path.iter().rposition(|&c| c == b'/') {
                    Some(i) => (&path[..=i], &path[i + 1..]),
                    None => (&b""[..], &path[..]),
                };
                let mut name = dir.to_vec();
                name.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
                name.extend_from_slice(file);
                let mut h = header(&st, EntryType::Regular);
                h.set_mode(0o600);
                return b.append_data(&mut h, OsStr::from_bytes(&name), io::empty());
            }
            if kind != FileType::Directory && st.st_nlink > 1 {
                let key = (st.st_dev, st.st_ino);
                if let Some(first) = links.get(&key) {
                    let mut h = header(&st, EntryType::Link);
                    return b.append_link(&mut h, os_path, OsStr::from_bytes(first));
                }
                links.insert(key, path.clone());
            }
            match kind {
                FileType::RegularFile => {
                    let file = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
                    let mut cap = vec![0u8; 256];
                    if let Ok(n) = rfs::fgetxattr(&file, "security.capability", &mut cap[..]) {
                        cap.truncate(n);
                        b.append_pax_extensions([("SCHILY.xattr.security.capability", &cap[..])])?;
                    }
                    let mut h = header(&st, EntryType::Regular);
                    let size = st.st_size.max(0) as u64;
                    h.set_size(size);
                    b.append_data(&mut h, os_path, io::Read::take(file, size))?;
                }
                FileType::Symlink => {
                    let target = rfs::readlinkat(&fd, "", Vec::new())?;
                    let mut h = header(&st, EntryType::Symlink);
                    b.append_link(&mut h, os_path, OsStr::from_bytes(target.as_bytes()))?;
                }
                FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                    let mut h = header(
                        &st,
                        match kind {
                            FileType::CharacterDevice => EntryType::Char,
                            FileType::BlockDevice => EntryType::Block,
                            _ => EntryType::Fifo,
                        },
                    );
                    if kind != FileType::Fifo {
                        h.set_device_major(rfs::major(st.st_rdev))?;
                        h.set_device_minor(rfs::minor(st.st_rdev))?;
                    }
                    b.append_data(&mut h, os_path, io::empty())?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn entries(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!(
                    "{:?} {}",
                    e.header().entry_type(),
                    String::from_utf8_lossy(&e.path_bytes())
                )
            })
            .collect()
    }

    #[test]
    fn whiteouts_opaque_dirs_and_mount_points() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: whiteouts and trusted xattrs need root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(upper.join("data/sub")).unwrap();
        fs::write(upper.join("etc/hostname"), b"").unwrap();
        fs::write(upper.join("data/sub/f"), b"hello").unwrap();
        fs::set_permissions(
            upper.join("etc"),
            fs::metadata(lower.join("etc")).unwrap().permissions(),
        )
        .unwrap();
        rfs::setxattr(
            upper.join("data").as_path(),
            OPAQUE_XATTR,
            b"y",
            rfs::XattrFlags::empty(),
        )
        .unwrap();
        nix::sys::stat::mknod(
            &upper.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(write_upper_tar(&upper, &[lower], &["/etc/hostname"], &mut out).unwrap());
        assert_eq!(
            entries(&out),
            [
                "Directory data/",
                "Regular data/.wh..wh..opq",
                "Directory data/sub/",
                "Regular data/sub/f",
                "Regular .wh.gone",
            ]
        );
    }
}
