//! CPU accounting with cgroups.
//!
//! Each engine gets two cgroups in the hierarchy that accounts CPU time (`cpuacct` on
//! cgroup v1, the unified hierarchy on v2), under `berth-bench-<pid>`: `cli`, which every
//! engine command the bench runs joins before it execs (so a daemonless CLI's shims land
//! there too), and `daemon`, which a private berthd joins when it starts (so its shims and
//! runtime invocations land there too). A container's own processes are moved to the
//! container's cgroup by the runtime, so they are not counted. The kernel keeps a cgroup's
//! usage for exited processes, so the difference of two readings is all the CPU time the
//! engine spent in between.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The bench's cgroup directory in the CPU accounting hierarchy.
pub struct Accounting {
    base: PathBuf,
    v2: bool,
    groups: std::sync::Mutex<Vec<PathBuf>>,
}

impl Accounting {
    /// Creates `berth-bench-<pid>` in the hierarchy the engine's containers use for CPU
    /// accounting.
    pub fn create() -> Result<Self> {
        let v2 = ::engine::cgroups::Version::detect() == ::engine::cgroups::Version::V2;
        let mount = if v2 {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            cpuacct_mount().context("No cgroup v1 hierarchy with the cpuacct controller")?
        };
        let base = mount.join(format!("berth-bench-{}", std::process::id()));
        std::fs::create_dir(&base)
            .with_context(|| format!("Cannot create the cgroup {}", base.display()))?;
        let accounting = Self {
            base,
            v2,
            groups: Default::default(),
        };
        // Joining a cgroup can be refused (a delegated or read-only hierarchy): then no
        // command may be asked to, or every engine command would fail.
        let probe = accounting.group("probe")?;
        let mut cmd = Command::new("true");
        probe.place(&mut cmd);
        cmd.status()
            .context("Cannot start a process in an accounting cgroup")?;
        let dir = accounting.groups.lock().unwrap().pop();
        if let Some(dir) = dir {
            remove_cgroup(&dir)
                .with_context(|| format!("Cannot remove the cgroup {}", dir.display()))?;
        }
        Ok(accounting)
    }

    /// A `description` for the report: which hierarchy and counter.
    pub fn describe(&self) -> String {
        if self.v2 {
            format!(
                "cgroup v2 `cpu.stat` usage_usec of {}/*",
                self.base.display()
            )
        } else {
            format!("cgroup v1 `cpuacct.usage` of {}/*", self.base.display())
        }
    }

    /// Creates the cgroup `name` (`<engine>-cli`, `<engine>-daemon`).
    pub fn group(&self, name: &str) -> Result<CpuGroup> {
        let dir = self.base.join(name);
        std::fs::create_dir(&dir)
            .with_context(|| format!("Cannot create the cgroup {}", dir.display()))?;
        self.groups.lock().unwrap().push(dir.clone());
        CpuGroup::new(dir, self.v2)
    }

    /// Removes the cgroups, waiting a little for exiting processes to leave them.
    pub fn remove(&self) -> Vec<String> {
        let mut dirs = std::mem::take(&mut *self.groups.lock().unwrap());
        dirs.push(self.base.clone());
        let mut warnings = Vec::new();
        for dir in dirs {
            if let Err(e) = remove_cgroup(&dir) {
                warnings.push(format!("Cannot remove the cgroup {}: {e}", dir.display()));
            }
        }
        warnings
    }
}

impl Drop for Accounting {
    fn drop(&mut self) {
        // Already done when `remove` was called: then there is nothing left to remove.
        let _ = self.remove();
    }
}

/// Removes an empty cgroup, retrying for up to five seconds while processes leave it.
fn remove_cgroup(dir: &Path) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Where the v1 `cpuacct` controller is mounted, from `/proc/self/mountinfo`.
fn cpuacct_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (head, tail) = line.split_once(" - ")?;
        let mut tail = tail.split(' ');
        let (fstype, _source, options) = (tail.next()?, tail.next()?, tail.next()?);
        if fstype == "cgroup" && options.split(',').any(|o| o == "cpuacct") {
            head.split(' ').nth(4).map(PathBuf::from)
        } else {
            None
        }
    })
}

/// One accounting cgroup: processes can be started in it and its usage read.
#[derive(Clone)]
pub struct CpuGroup {
    dir: PathBuf,
    procs: CString,
    v2: bool,
}

impl CpuGroup {
    fn new(dir: PathBuf, v2: bool) -> Result<Self> {
        let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
            .context("A cgroup path with a NUL byte")?;
        let group = Self { dir, procs, v2 };
        if group.usage().is_none() {
            bail!("Cannot read the CPU usage of {}", group.dir.display());
        }
        Ok(group)
    }

    /// The CPU time used by every process that has been in this cgroup.
    pub fn usage(&self) -> Option<Duration> {
        if self.v2 {
            let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
            let usec = stat
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))?
                .trim()
                .parse()
                .ok()?;
            Some(Duration::from_micros(usec))
        } else {
            let ns = std::fs::read_to_string(self.dir.join("cpuacct.usage")).ok()?;
            Some(Duration::from_nanos(ns.trim().parse().ok()?))
        }
    }

    /// Makes the process `cmd` starts join this cgroup between fork and exec, so that it and
    /// everything it forks are accounted here from their first instruction.
    #[allow(unsafe_code)]
    pub fn place(&self, cmd: &mut Command) {
        let procs = self.procs.clone();
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed. It calls open(2), write(2) and close(2) with
        // a path and a buffer made before the fork, allocates nothing, and reports a failure
        // with an OS error code (which does not allocate either).
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" is the writing process itself.
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if written != 1 {
                    return Err(err);
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cpuacct_mount_on_v1_hosts() {
        // Only checks the parser against this host: on a v1 or hybrid host there is one.
        if ::engine::cgroups::Version::detect() == ::engine::cgroups::Version::V1
            && Path::new("/sys/fs/cgroup/cpuacct/cpuacct.usage").exists()
        {
            assert!(cpuacct_mount().is_some());
        }
    }

    #[test]
    fn a_child_placed_in_a_group_is_accounted_there() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let Ok(acct) = Accounting::create() else {
            return;
        };
        let group = acct.group("test").unwrap();
        let before = group.usage().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]);
        group.place(&mut cmd);
        assert!(cmd.status().unwrap().success());
        let used = group.usage().unwrap() - before;
        assert!(used > Duration::from_millis(1), "accounted {used:?}");
        assert!(acct.remove().is_empty());
    }
}
