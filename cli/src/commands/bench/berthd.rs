//! A private berthd: its own socket, data root and exec root in the bench's temporary
//! directory, started the way a user starts berthd, and stopped (or killed, for the crash
//! scenario) only through the pid the bench got when it started it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::accounting::CpuGroup;

/// A berthd the bench started, and the directory that holds everything of it.
pub struct PrivateBerthd {
    bin: PathBuf,
    dir: PathBuf,
    cgroup: Option<CpuGroup>,
    child: Option<Child>,
}

impl PrivateBerthd {
    /// A daemon of `bin` living in `dir` (created), not started yet.
    pub fn new(bin: PathBuf, dir: PathBuf, cgroup: Option<CpuGroup>) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("Cannot create {}", dir.display()))?;
        Ok(Self {
            bin,
            dir,
            cgroup,
            child: None,
        })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("berthd.sock")
    }

    pub fn data_root(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn exec_root(&self) -> PathBuf {
        self.dir.join("exec")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("berthd.log")
    }

    /// `unix://<socket>`, for `BERTH_HOST` and `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The daemon's pid while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Starts berthd and waits until it answers `/_ping`; returns how long that took.
    pub fn start(&mut self) -> Result<Duration> {
        if self.child.is_some() {
            bail!("berthd is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("Cannot open {}", self.log_path().display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-H")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("--pidfile")
            .arg(self.dir.join("berthd.pid"))
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if let Some(g) = &self.cgroup {
            g.place(&mut cmd);
        }
        let start = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("Cannot start {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = start + Duration::from_secs(30);
        loop {
            if ping(&self.socket()) {
                return Ok(start.elapsed());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                bail!("berthd exited with {status}: {}", self.log_tail());
            }
            if Instant::now() > deadline {
                self.stop();
                bail!("berthd did not answer within 30 s: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills berthd with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("berthd is not running"))?;
        child.kill().context("Cannot kill berthd")?;
        child.wait().context("Cannot reap berthd")?;
        Ok(())
    }

    /// Stops berthd with SIGTERM (SIGKILL after 30 s) and reaps it. Containers keep
    /// running: remove them first.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The end of the daemon's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        if tail.is_empty() {
            "(its log is empty)".to_string()
        } else {
            tail
        }
    }
}

impl Drop for PrivateBerthd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a daemon answers `GET /_ping` with 200 on `socket`.
pub fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berthd\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}
