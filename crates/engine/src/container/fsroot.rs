//! A container's root file system as a directory descriptor, for copying files in and out
//! (`cp`, `export`).
//!
//! Which root: for a running container, the one its processes see (`/proc/<pid>/root`, so
//! its bind mounts and `/etc/hostname` are there too), accepted only if it is the container's
//! own overlay (same device and inode as the overlay's merged directory, so a recycled pid
//! can never hand out the host's `/`). For a stopped container, the overlay is mounted for
//! the duration of the copy ([`MountLease`]) and unmounted after, unless the container was
//! started meanwhile.
//!
//! Every path inside is then resolved by the kernel with `openat2(RESOLVE_IN_ROOT)` relative
//! to that descriptor: `..` and symlinks (absolute ones included) stay inside the root, and
//! magic links (`/proc/self/root`) are refused.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{Container, ContainerError};
use crate::cgroups::Cgroups;
use crate::engine::Engine;
use crate::rootfs::Overlay;

/// Which view of the container's files a copy works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootView {
    /// What the container's processes see when it runs (mounts included); the overlay when
    /// it does not.
    Live,
    /// The overlay only: image layers plus the container's writable layer (`export`).
    Layers,
}

/// An open container root, valid as long as this value lives. End a copy with
/// [`ContainerRoot::close`] (from a blocking thread), so a stopped container's overlay is
/// unmounted before the client hears the copy is done.
pub(crate) struct ContainerRoot {
    /// The root directory.
    pub fd: OwnedFd,
    /// The device of the root file system, to tell it from mounts inside it.
    pub dev: u64,
    lease: Option<MountLease>,
}

impl ContainerRoot {
    /// Closes the root; a stopped container's overlay is unmounted if this was the last copy
    /// using it. Blocks (on the container's lock): call it from a blocking thread.
    pub fn close(mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release_blocking();
        }
    }
}

/// How many copies use each temporarily mounted overlay (by merged directory).
static LEASES: Mutex<Option<HashMap<PathBuf, usize>>> = Mutex::new(None);

/// Keeps a stopped container's overlay mounted while a copy uses it.
struct MountLease {
    container: Arc<Container>,
    overlay: Overlay,
    cgroups: Cgroups,
    engine: Option<Arc<Engine>>,
    released: bool,
}

impl MountLease {
    /// Mounts the overlay (if this is its first lease). The caller holds the container's
    /// lock, so no start or removal runs meanwhile.
    fn acquire(
        engine: &Engine,
        container: &Arc<Container>,
        overlay: Overlay,
    ) -> Result<Self, ContainerError> {
        let mut leases = LEASES.lock().unwrap_or_else(|e| e.into_inner());
        let count = leases
            .get_or_insert_with(HashMap::new)
            .entry(overlay.merged.clone())
            .or_insert(0);
        if *count == 0 {
            overlay.mount()?;
        }
        *count += 1;
        Ok(Self {
            container: container.clone(),
            overlay,
            cgroups: engine.cgroups.clone(),
            engine: engine.self_arc(),
            released: false,
        })
    }

    /// Gives the lease back under the container's lock (the one a start holds from mounting
    /// to recording the container as running, in this process and others), so a container
    /// that was started meanwhile keeps its root.
    async fn release(
        engine: Option<Arc<Engine>>,
        container: Arc<Container>,
        overlay: Overlay,
        cgroups: Cgroups,
    ) {
        let _guard = match &engine {
            Some(engine) => match engine.lock_op(&container).await {
                Ok(guard) => Some(guard),
                // Removed meanwhile: its removal unmounted everything.
                Err(_) => {
                    Self::forget(&overlay);
                    return;
                }
            },
            None => None,
        };
        let _op = if engine.is_none() {
            Some(container.op.lock().await)
        } else {
            None
        };
        if !Self::forget(&overlay) {
            return;
        }
        // The record says whether it runs; its cgroup says so even for a start by another
        // process whose record this one has not read.
        let has_pids = || !super::top::container_pids(&cgroups, &container.id).is_empty();
        let mut recorded_running = container.snapshot().state.status.is_running();
        if recorded_running && !has_pids() {
            // A copy that raced the container's end: its exit is being recorded (berthd's
            // monitor does not need this lock). Give it a moment rather than leave the root
            // mounted; daemonless, the next command that looks records it and unmounts.
            for _ in 0..100 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                recorded_running = container.snapshot().state.status.is_running();
                if !recorded_running {
                    break;
                }
            }
        }
        let running = recorded_running || has_pids();
        if !running {
            if let Err(e) = overlay.unmount() {
                tracing::warn!(id = %container.id, error = %crate::error::Chain(&e), "cannot unmount a stopped container's root after a copy");
            }
        }
    }

    /// Counts one lease less; whether it was the last.
    fn forget(overlay: &Overlay) -> bool {
        let mut leases = LEASES.lock().unwrap_or_else(|e| e.into_inner());
        let map = leases.get_or_insert_with(HashMap::new);
        match map.get_mut(&overlay.merged) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                map.remove(&overlay.merged);
                true
            }
        }
    }

    fn parts(&mut self) -> (Option<Arc<Engine>>, Arc<Container>, Overlay, Cgroups) {
        self.released = true;
        (
            self.engine.clone(),
            self.container.clone(),
            self.overlay.clone(),
            self.cgroups.clone(),
        )
    }

    fn release_blocking(mut self) {
        let (engine, container, overlay, cgroups) = self.parts();
        let release = Self::release(engine, container, overlay, cgroups);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(release),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(release))
                .unwrap_or_else(|e| tracing::warn!(error = %crate::error::Chain(&e), "cannot release a copy's mount")),
        }
    }
}

impl Drop for MountLease {
    /// A lease not closed (a copy abandoned on an async path): released by a task.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (engine, container, overlay, cgroups) = self.parts();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(Self::release(engine, container, overlay, cgroups));
        }
    }
}

impl Engine {
    /// Opens a container's root for a copy.
    pub(crate) async fn open_container_root(
        &self,
        container: &Arc<Container>,
        view: RootView,
    ) -> Result<ContainerRoot, ContainerError> {
        let _guard = self.lock_op(container).await?;
        let rec = container.snapshot();
        let overlay = Overlay::in_dir(&container.dir, rec.layers.clone());
        let running = rec.state.status.is_running();
        let cannot = |e: io::Error| {
            ContainerError::io(
                format!("Cannot open the file system of container {}", container.id),
                e,
            )
        };
        if running {
            if let Some(root) = live_root(container, &rec, &overlay, view).map_err(cannot)? {
                return Ok(root);
            }
            // Recorded as running, but its root is unmounted already: the container is
            // ending and its exit is being recorded. Copy as from a stopped container.
            tracing::debug!(id = %container.id, "copying from a container that is ending");
        }
        let lease = MountLease::acquire(self, container, overlay.clone())?;
        let fd = open_dir(&overlay.merged).map_err(cannot)?;
        let st = rfs::fstat(&fd).map_err(|e| cannot(e.into()))?;
        Ok(ContainerRoot {
            fd,
            dev: st.st_dev,
            lease: Some(lease),
        })
    }
}

/// The root of a running container: its first process's root for the live view (mounts
/// included), else the mounted overlay. `None` when the overlay is not mounted any more (the
/// container is ending). The overlay is checked after it is opened, so an unmount racing
/// this open cannot hand out the empty directory beneath it.
fn live_root(
    container: &Container,
    rec: &super::ContainerRecord,
    overlay: &Overlay,
    view: RootView,
) -> io::Result<Option<ContainerRoot>> {
    let beneath = rfs::stat(&container.dir)?;
    let fd = match open_dir(&overlay.merged) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let merged = rfs::fstat(&fd)?;
    if merged.st_dev == beneath.st_dev {
        return Ok(None);
    }
    let pid = rec.state.processes.as_ref().map(|p| p.pid).unwrap_or(0);
    if view == RootView::Live && pid > 0 {
        let live = format!("/proc/{pid}/root");
        if let Ok(proc_root) = rfs::open(
            live.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            let st = rfs::fstat(&proc_root)?;
            // The process behind the pid might not be the container any more.
            if st.st_dev == merged.st_dev && st.st_ino == merged.st_ino {
                return Ok(Some(ContainerRoot {
                    fd: proc_root,
                    dev: st.st_dev,
                    lease: None,
                }));
            }
            tracing::debug!(id = %container.id, pid, "the container's pid is not the container any more");
        }
    }
    Ok(Some(ContainerRoot {
        fd,
        dev: merged.st_dev,
        lease: None,
    }))
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// A path inside a container, cleaned lexically as Go's `filepath.Join("/", path)` would:
/// its components, none empty, `.` or `..` (a `..` above the root stays at the root).
pub(crate) fn clean_components(path: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

/// `/a/b` for components `[a, b]`, `/` for none.
pub(crate) fn join_abs(comps: &[Vec<u8>]) -> String {
    let mut s = String::from("/");
    s.push_str(&String::from_utf8_lossy(&comps.join(&b'/')));
    s
}

/// Opens `comps` beneath `root` as a directory, following symlinks as the container would
/// (`RESOLVE_IN_ROOT`), with `flags` (`PATH` or `RDONLY`).
pub(crate) fn open_dir_in(
    root: &impl AsFd,
    comps: &[Vec<u8>],
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    open_in(root, comps, flags | OFlags::DIRECTORY)
}

/// Opens `comps` beneath `root`, symlinks (the last one too, unless `flags` has `NOFOLLOW`)
/// resolved inside the root.
pub(crate) fn open_in(
    root: &impl AsFd,
    comps: &[Vec<u8>],
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    let path = if comps.is_empty() {
        b".".to_vec()
    } else {
        comps.join(&b'/')
    };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut attempts = 0;
    loop {
        match rfs::openat2(
            root,
            OsStr::from_bytes(&path),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            // A concurrent rename raced the lookup; the kernel asks for a retry.
            Err(Errno::AGAIN) if attempts < 16 => attempts += 1,
            other => return other,
        }
    }
}

/// Kernel file systems a copy never walks into or writes to (`/proc`, `/sys`, `/dev/pts`…):
/// their files are not the container's data, and some are the host's kernel knobs.
pub(crate) fn is_pseudo_fs(fd: &impl AsFd) -> bool {
    const PSEUDO: &[u64] = &[
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x1cd1,      // devpts
        0x1980_0202, // mqueue
        0x6462_6720, // debugfs
        0x7363_6673, // securityfs
        0x7472_6163, // tracefs
        0xcafe_4a11, // bpf
        0x6165_676c, // pstore
        0xf97c_ff8c, // selinuxfs
        0x6265_6570, // configfs
        0x6573_5543, // fusectl
        0x4249_4e4d, // binfmt_misc
        0x6e73_6673, // nsfs
        0xde5e_81e4, // efivarfs
    ];
    match rfs::fstatfs(fd) {
        Ok(st) => PSEUDO.contains(&(st.f_type as u64)),
        Err(_) => true,
    }
}

/// Resolves `path` inside the root as the container would, every symlink followed, and
/// returns the absolute path it leads to (components that do not exist are kept as they
/// are, as Docker's `FollowSymlinkInScope` does). For the `linkTarget` of a path stat.
pub(crate) fn follow_in_scope(root: &impl AsFd, path: &[u8]) -> io::Result<String> {
    let mut pending: std::collections::VecDeque<Vec<u8>> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut resolved: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while let Some(comp) = pending.pop_front() {
        match comp.as_slice() {
            b"." => continue,
            b".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let parent = match open_dir_in(root, &resolved, OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => {
                resolved.push(comp);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let name = OsStr::from_bytes(&comp);
        match rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                links += 1;
                if links > 255 {
                    return Err(Errno::LOOP.into());
                }
                let target = rfs::readlinkat(&parent, name, Vec::new())?.into_bytes();
                if target.starts_with(b"/") {
                    resolved.clear();
                }
                for c in target.split(|&b| b == b'/').rev().filter(|c| !c.is_empty()) {
                    pending.push_front(c.to_vec());
                }
            }
            Ok(_) | Err(Errno::NOENT) => resolved.push(comp),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(join_abs(&resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_like_join_with_root() {
        let c = |p: &str| join_abs(&clean_components(p.as_bytes()));
        assert_eq!(c("../../../etc/shadow"), "/etc/shadow");
        assert_eq!(c("/a/./b//c/"), "/a/b/c");
        assert_eq!(c(""), "/");
        assert_eq!(c("a/../../b"), "/b");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("hostroot")).unwrap();
        std::os::unix::fs::symlink("../../../etc", root.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let fd = open_dir(&root).unwrap();
        assert_eq!(
            follow_in_scope(&fd, b"/hostroot/etc/shadow").unwrap(),
            "/etc/shadow"
        );
        assert_eq!(follow_in_scope(&fd, b"/etc/up").unwrap(), "/etc");
        assert!(follow_in_scope(&fd, b"/loop").is_err());
        // The kernel agrees: the host's /etc/shadow is never reached.
        let etc = open_dir_in(&fd, &clean_components(b"/hostroot/etc"), OFlags::PATH).unwrap();
        let st = rfs::fstat(&etc).unwrap();
        let own = std::fs::metadata(root.join("etc")).unwrap();
        assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&own));
        assert!(!is_pseudo_fs(&fd));
        let proc = open_dir(Path::new("/proc")).unwrap();
        assert!(is_pseudo_fs(&proc));
    }
}
