//! A recorded fake of [`Kernel`] for unit tests that run as any user: it records every
//! call, "mounts" by making directories, and plays the part of the shims — a started
//! container runs until the test (or a signal) ends it, which writes the exit file a real
//! shim would write.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use shim::{ExitStatus, Ready, ShimConfig};
use tokio::sync::watch;

use super::{Kernel, KernelFuture};
use crate::cgroups::Cgroups;
use crate::container::Processes;
use crate::rootfs::{Overlay, RootfsError};

/// Pids no real process has (above Linux's largest `pid_max`).
const FIRST_PID: i32 = 1 << 23;

#[derive(Default)]
struct State {
    calls: Vec<String>,
    next_pid: i32,
    mounted: BTreeSet<PathBuf>,
    /// Unmounts at or below these paths fail (`EBUSY`).
    stuck: Vec<PathBuf>,
    /// The next start fails with this runtime message.
    fail_next_start: Option<String>,
    shims: HashMap<i32, FakeShim>,
}

struct FakeShim {
    id: String,
    exit_file: PathBuf,
    alive: watch::Sender<bool>,
}

/// The fake kernel (see the module documentation).
#[derive(Clone, Default)]
pub(crate) struct FakeKernel {
    state: Arc<Mutex<State>>,
}

impl FakeKernel {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: String) {
        self.state().calls.push(call);
    }

    /// Every call so far, as text (`mount <path>`, `spawn <id>`, `signal <id> SIGTERM`…).
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// The calls so far that start with `prefix`.
    pub fn calls_of(&self, prefix: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect()
    }

    /// Whether the fake has something "mounted" at `path`.
    pub fn is_mounted(&self, path: &Path) -> bool {
        self.state().mounted.contains(path)
    }

    /// Makes every unmount at or below `path` fail, as a busy mount would.
    pub fn make_unmount_fail(&self, path: &Path) {
        self.state().stuck.push(path.to_path_buf());
    }

    /// Lets unmounts work again.
    pub fn unstick(&self) {
        self.state().stuck.clear();
    }

    /// Makes the next container start fail with the runtime's `message`.
    pub fn fail_next_start(&self, message: &str) {
        self.state().fail_next_start = Some(message.into());
    }

    /// The shim pid of the running container `id`.
    pub fn shim_of(&self, id: &str) -> Option<i32> {
        let st = self.state();
        st.shims
            .iter()
            .find(|(_, s)| s.id == id && *s.alive.borrow())
            .map(|(pid, _)| *pid)
    }

    /// Ends container `id` with `exit_code`: its exit file is written and its shim exits.
    pub fn exit(&self, id: &str, exit_code: i32) {
        let Some(pid) = self.shim_of(id) else {
            panic!("container {id} is not running in the fake kernel");
        };
        self.exit_shim(pid, Some(exit_code));
    }

    /// Kills the shim of container `id` without an exit file (a shim killed with SIGKILL).
    pub fn kill_shim(&self, id: &str) {
        if let Some(pid) = self.shim_of(id) {
            self.exit_shim(pid, None);
        }
    }

    fn exit_shim(&self, pid: i32, exit_code: Option<i32>) {
        let st = self.state();
        let Some(shim) = st.shims.get(&pid) else {
            return;
        };
        if let Some(code) = exit_code {
            let status = ExitStatus {
                exit_code: code,
                oom_killed: false,
                finished_at: crate::container::now_rfc3339(),
            };
            let bytes = serde_json::to_vec(&status).expect("an exit status serializes");
            crate::fsutil::write_atomic(&shim.exit_file, &bytes).expect("write the exit file");
        }
        shim.alive.send_replace(false);
    }
}

impl Kernel for FakeKernel {
    fn mount_overlay(&self, overlay: &Overlay) -> Result<(), RootfsError> {
        for d in [&overlay.upper, &overlay.work, &overlay.merged] {
            std::fs::create_dir_all(d).map_err(|source| RootfsError::Io {
                path: d.clone(),
                source,
            })?;
        }
        self.record(format!("mount {}", overlay.merged.display()));
        self.state().mounted.insert(overlay.merged.clone());
        Ok(())
    }

    fn unmount(&self, target: &Path) -> Result<(), RootfsError> {
        let mut st = self.state();
        st.calls.push(format!("unmount {}", target.display()));
        if st.stuck.iter().any(|s| target.starts_with(s)) {
            return Err(RootfsError::Unmount {
                target: target.to_path_buf(),
                source: nix::Error::EBUSY,
            });
        }
        st.mounted.remove(target);
        Ok(())
    }

    fn mounts_under(&self, dir: &Path) -> Vec<PathBuf> {
        // What the fake "mounted", and real mounts a test made itself.
        let mut out: Vec<PathBuf> = self
            .state()
            .mounted
            .iter()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect();
        out.extend(crate::rootfs::mounts_under(dir));
        out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        out.dedup();
        out
    }

    fn spawn_shim(
        &self,
        _shim_binary: &Path,
        config: &Path,
        _control: Option<OwnedFd>,
    ) -> io::Result<Ready> {
        let config: ShimConfig = crate::fsutil::read_json(config)?;
        let mut st = self.state();
        st.calls.push(format!("spawn {}", config.id));
        if let Some(message) = st.fail_next_start.take() {
            return Ok(Ready::Failed { message });
        }
        let pid = FIRST_PID + st.next_pid;
        st.next_pid += 2;
        st.shims.insert(
            pid,
            FakeShim {
                id: config.id,
                exit_file: config.exit_file,
                alive: watch::channel(true).0,
            },
        );
        Ok(Ready::Started {
            shim_pid: pid,
            container_pid: pid + 1,
        })
    }

    fn processes(&self, shim_pid: i32, container_pid: i32) -> Processes {
        Processes {
            pid: container_pid,
            shim_pid,
            shim_start_time: 1,
            shim_ino: 0,
        }
    }

    fn shim_alive(&self, p: &Processes) -> bool {
        self.state()
            .shims
            .get(&p.shim_pid)
            .is_some_and(|s| *s.alive.borrow())
    }

    fn shim_exited(&self, p: &Processes) -> KernelFuture<'static, io::Result<()>> {
        let rx = self
            .state()
            .shims
            .get(&p.shim_pid)
            .map(|s| s.alive.subscribe());
        Box::pin(async move {
            let Some(mut rx) = rx else {
                return Ok(());
            };
            // An error means the fake is gone: as good as an exit.
            let _ = rx.wait_for(|alive| !alive).await;
            Ok(())
        })
    }

    fn signal(&self, p: &Processes, signal: Signal) -> io::Result<()> {
        let id = {
            let st = self.state();
            st.shims.get(&p.shim_pid).map(|s| s.id.clone())
        };
        let Some(id) = id else {
            return Ok(());
        };
        self.record(format!("signal {id} {}", signal.as_str()));
        if self.shim_alive(p) && matches!(signal, Signal::SIGTERM | Signal::SIGKILL) {
            self.exit_shim(p.shim_pid, Some(128 + signal as i32));
        }
        Ok(())
    }

    fn set_frozen(&self, _cgroups: &Cgroups, id: &str, frozen: bool) -> io::Result<()> {
        self.record(format!("{} {id}", if frozen { "freeze" } else { "thaw" }));
        Ok(())
    }

    fn remove_cgroups(&self, _cgroups: &Cgroups, id: &str) {
        self.record(format!("remove-cgroups {id}"));
    }

    fn remove_orphan_cgroups(&self, _cgroups: &Cgroups, _keep: &dyn Fn(&str) -> bool) {
        self.record("remove-orphan-cgroups".into());
    }
}
