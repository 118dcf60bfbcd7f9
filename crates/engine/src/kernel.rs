//! The kernel calls of a container's life cycle, behind one small trait.
//!
//! Creating, starting, stopping, removing and restoring containers is bookkeeping around a
//! handful of kernel operations: mounting and unmounting a root file system, starting a
//! shim, watching and signalling processes through pidfds, freezing and removing cgroups.
//! They go through [`Kernel`], so the bookkeeping can be unit-tested as any user against
//! [`fake::FakeKernel`], which records every call and plays the shims' part; the engine
//! uses [`Host`], the real thing.

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use nix::sys::signal::Signal;
use shim::Ready;

use crate::cgroups::Cgroups;
use crate::container::Processes;
use crate::rootfs::{Overlay, RootfsError};

/// A future that a [`Kernel`] hands back.
pub type KernelFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the container life cycle asks of the kernel.
pub trait Kernel: Send + Sync {
    /// Mounts a container's overlay root (nothing if it is mounted already).
    fn mount_overlay(&self, overlay: &Overlay) -> Result<(), RootfsError>;

    /// Unmounts `target` if something is mounted there.
    fn unmount(&self, target: &Path) -> Result<(), RootfsError>;

    /// The mount points at or below `dir`, deepest first.
    fn mounts_under(&self, dir: &Path) -> Vec<PathBuf>;

    /// Starts `berth-shim` on its config file and blocks until it says whether the
    /// container started (run it on a blocking thread).
    fn spawn_shim(
        &self,
        shim_binary: &Path,
        config: &Path,
        control: Option<OwnedFd>,
    ) -> io::Result<Ready>;

    /// The container's processes as the engine records them, for a shim that started it.
    fn processes(&self, shim_pid: i32, container_pid: i32) -> Processes;

    /// Whether a container's shim still runs (and is the process that was recorded).
    fn shim_alive(&self, processes: &Processes) -> bool;

    /// Resolves when the shim exits; an error if it cannot be watched (the caller then
    /// polls [`Kernel::shim_alive`]).
    fn shim_exited(&self, processes: &Processes) -> KernelFuture<'static, io::Result<()>>;

    /// Sends `signal` to the container's first process; a process that is gone already is
    /// not an error.
    fn signal(&self, processes: &Processes, signal: Signal) -> io::Result<()>;

    /// Freezes (`true`) or thaws a container's processes.
    fn set_frozen(&self, cgroups: &Cgroups, id: &str, frozen: bool) -> io::Result<()>;

    /// Removes what is left of a removed container's cgroups.
    fn remove_cgroups(&self, cgroups: &Cgroups, id: &str);

    /// Removes the cgroups of containers `keep` says are gone (after a crash).
    fn remove_orphan_cgroups(&self, cgroups: &Cgroups, keep: &dyn Fn(&str) -> bool);
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Host;

impl Kernel for Host {
    fn mount_overlay(&self, overlay: &Overlay) -> Result<(), RootfsError> {
        overlay.mount()
    }

    fn unmount(&self, target: &Path) -> Result<(), RootfsError> {
        crate::rootfs::unmount(target)
    }

    fn mounts_under(&self, dir: &Path) -> Vec<PathBuf> {
        crate::rootfs::mounts_under(dir)
    }

    fn spawn_shim(
        &self,
        shim_binary: &Path,
        config: &Path,
        control: Option<OwnedFd>,
    ) -> io::Result<Ready> {
        shim::spawn(shim_binary, config, control)
    }

    fn processes(&self, shim_pid: i32, container_pid: i32) -> Processes {
        Processes {
            pid: container_pid,
            shim_pid,
            shim_start_time: crate::process::start_time(shim_pid).unwrap_or(0),
            shim_ino: crate::process::pidfs_ino(shim_pid).unwrap_or(0),
        }
    }

    fn shim_alive(&self, p: &Processes) -> bool {
        if p.shim_ino != 0 {
            crate::process::is_alive_ino(p.shim_pid, p.shim_ino)
        } else {
            crate::process::is_alive(p.shim_pid, p.shim_start_time)
        }
    }

    fn shim_exited(&self, p: &Processes) -> KernelFuture<'static, io::Result<()>> {
        Box::pin(crate::process::pidfd_exited(p.shim_pid))
    }

    fn signal(&self, p: &Processes, signal: Signal) -> io::Result<()> {
        // The shim holds the container's process until it has reaped it, so while the
        // shim lives the pid cannot have been reused.
        if !self.shim_alive(p) {
            return Ok(());
        }
        match crate::process::pidfd_open(p.pid)
            .and_then(|fd| crate::process::pidfd_send_signal(&fd, signal))
        {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    fn set_frozen(&self, cgroups: &Cgroups, id: &str, frozen: bool) -> io::Result<()> {
        cgroups.set_frozen(id, frozen)
    }

    fn remove_cgroups(&self, cgroups: &Cgroups, id: &str) {
        cgroups.remove(id)
    }

    fn remove_orphan_cgroups(&self, cgroups: &Cgroups, keep: &dyn Fn(&str) -> bool) {
        cgroups.remove_orphans(keep)
    }
}

#[cfg(test)]
pub(crate) mod fake;
