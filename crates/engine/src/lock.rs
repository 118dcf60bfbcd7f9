//! Locks between processes that share a data root.
//!
//! A data root is either owned by one berthd or used by any number of daemonless `berth`
//! commands at once, never both: berthd holds an exclusive `flock(2)` on
//! `<data-root>/berthd.lock` for its lifetime (with its pid and socket written in the file),
//! every daemonless command holds a shared one. Daemonless commands then keep out of each
//! other's way with short locks of their own (the container names, each container, the
//! image store's tag index); see `container::store`, `image` and `store`.
//!
//! `flock` locks belong to the open file and die with the process, so a command killed in
//! the middle never leaves a stale lock behind: the next command simply gets it. A lock that
//! is really held for too long (a process stopped with SIGSTOP, say) makes the waiter fail
//! with the holders' pids, read from `/proc/locks`, rather than hang.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file berthd and daemonless commands lock to share a data root.
pub const ROOT_LOCK_FILE: &str = "berthd.lock";

/// How long a starting berthd waits for daemonless commands to finish before giving up.
pub const DAEMON_WAIT: Duration = Duration::from_secs(5);

/// How long a daemonless command waits for another one's hold on a container, the names or
/// the image store before it gives up naming the holder: two minutes (a `stop` holds its
/// container up to its timeout), or `BERTH_LOCK_TIMEOUT` seconds.
pub fn wait_limit() -> Duration {
    std::env::var("BERTH_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::from_secs(120), Duration::from_secs_f64)
}

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// Failures to take a lock, naming who holds it.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("The data root {root} is owned by berthd (pid {pid}, listening on {socket}): use berth without --daemonless, or stop berthd first")]
    OwnedByDaemon {
        root: PathBuf,
        pid: String,
        socket: String,
    },
    #[error("The data root {root} is in use by daemonless berth commands (pids {pids}): wait for them to finish or stop them, then start berthd again")]
    InUseDaemonless { root: PathBuf, pids: String },
    #[error("Timed out after {waited:?} waiting for the lock {path} (held by {holders})")]
    Timeout {
        path: PathBuf,
        waited: Duration,
        holders: String,
    },
    #[error("Cannot lock {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LockError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the thing to lock is not there (a directory that was removed).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// A held `flock(2)` lock, released when dropped or when the process dies.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

/// Opens `path` for locking: a directory as it is, a file created if missing.
fn open_for_lock(path: &Path) -> Result<File, LockError> {
    let file = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => File::open(path),
        _ => OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path),
    };
    file.map_err(|e| LockError::io(path, e))
}

fn try_lock(file: &File, mode: LockMode) -> io::Result<bool> {
    let r = match mode {
        LockMode::Shared => file.try_lock_shared(),
        LockMode::Exclusive => file.try_lock(),
    };
    match r {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

fn lock_blocking(file: &File, mode: LockMode) -> io::Result<()> {
    loop {
        let r = match mode {
            LockMode::Shared => file.lock_shared(),
            LockMode::Exclusive => file.lock(),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl FileLock {
    /// Takes the lock if it is free right now; `None` if someone holds it.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<Self>, LockError> {
        let file = open_for_lock(path)?;
        match try_lock(&file, mode) {
            Ok(true) => Ok(Some(Self {
                file,
                path: path.to_path_buf(),
            })),
            Ok(false) => Ok(None),
            Err(e) => Err(LockError::io(path, e)),
        }
    }

    /// Takes the lock, waiting up to `timeout` for its holders to let go. Blocks the thread.
    pub fn acquire(path: &Path, mode: LockMode, timeout: Duration) -> Result<Self, LockError> {
        let file = open_for_lock(path)?;
        if try_lock(&file, mode).map_err(|e| LockError::io(path, e))? {
            return Ok(Self {
                file,
                path: path.to_path_buf(),
            });
        }
        // Wait in a thread of its own, so the wait can time out: if it does, the thread
        // still gets the lock eventually, finds nobody to hand it to, and drops it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = lock_blocking(&file, mode).map(|()| file);
            let _ = tx.send(r);
        });
        match rx.recv_timeout(timeout) {
            Ok(Ok(file)) => Ok(Self {
                file,
                path: path.to_path_buf(),
            }),
            Ok(Err(e)) => Err(LockError::io(path, e)),
            Err(_) => Err(timeout_error(path, timeout)),
        }
    }

    /// [`FileLock::acquire`] for async code: the wait does not block the runtime's threads.
    pub async fn acquire_async(
        path: &Path,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<Self, LockError> {
        let file = open_for_lock(path)?;
        if try_lock(&file, mode).map_err(|e| LockError::io(path, e))? {
            return Ok(Self {
                file,
                path: path.to_path_buf(),
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let r = lock_blocking(&file, mode).map(|()| file);
            let _ = tx.send(r);
        });
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(file))) => Ok(Self {
                file,
                path: path.to_path_buf(),
            }),
            Ok(Ok(Err(e))) => Err(LockError::io(path, e)),
            Ok(Err(_)) => Err(LockError::io(
                path,
                io::Error::other("the lock's waiting thread went away"),
            )),
            Err(_) => Err(timeout_error(path, timeout)),
        }
    }

    /// The locked file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The locked path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Explicitly, not just by closing: a child forked meanwhile (spawning a shim, say)
        // holds a copy of the descriptor until it execs, and with it the lock.
        let _ = self.file.unlock();
    }
}

fn timeout_error(path: &Path, waited: Duration) -> LockError {
    let holders = holders(path);
    let holders = if holders.is_empty() {
        "a process that has let go since".to_string()
    } else {
        holders
            .iter()
            .map(|h| format!("pid {}", h.pid))
            .collect::<Vec<_>>()
            .join(", ")
    };
    LockError::Timeout {
        path: path.to_path_buf(),
        waited,
        holders,
    }
}

/// A process holding a `flock` on a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub mode: LockMode,
}

/// Who holds `flock` locks on `path` right now, from `/proc/locks` (waiters excluded).
pub fn holders(path: &Path) -> Vec<Holder> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let dev = meta.dev();
    let want = format!(
        "{:02x}:{:02x}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev),
        meta.ino()
    );
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    parse_proc_locks(&text, &want)
}

fn parse_proc_locks(text: &str, file_id: &str) -> Vec<Holder> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->" after the id.
        if fields.len() < 6 || fields[1] == "->" || fields[1] != "FLOCK" {
            continue;
        }
        if fields[5] != file_id {
            continue;
        }
        let Ok(pid) = fields[4].parse::<i32>() else {
            continue;
        };
        let mode = if fields[3] == "WRITE" {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        };
        out.push(Holder { pid, mode });
    }
    out
}

fn pid_list(holders: &[Holder]) -> String {
    let mut pids: Vec<i32> = holders.iter().map(|h| h.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A claim on a whole data root: berthd's exclusive ownership, or one daemonless command's
/// shared use. Released when dropped or when the process dies.
#[derive(Debug)]
pub struct RootLock {
    lock: FileLock,
}

impl RootLock {
    /// berthd's claim: exclusive. Waits up to `wait` for daemonless commands to finish;
    /// another berthd holding the root fails at once. Writes this process's pid and
    /// `socket` into the lock file for daemonless commands to name.
    pub fn daemon(data_root: &Path, socket: &str, wait: Duration) -> Result<Self, LockError> {
        let path = data_root.join(ROOT_LOCK_FILE);
        let deadline = Instant::now() + wait;
        loop {
            if let Some(lock) = FileLock::try_acquire(&path, LockMode::Exclusive)? {
                let mut file = lock.file();
                file.set_len(0).map_err(|e| LockError::io(&path, e))?;
                file.write_all(format!("{}\n{}\n", std::process::id(), socket).as_bytes())
                    .and_then(|()| file.sync_data())
                    .map_err(|e| LockError::io(&path, e))?;
                return Ok(Self { lock });
            }
            let holders = holders(&path);
            if holders.iter().any(|h| h.mode == LockMode::Exclusive) {
                return Err(owned_by_daemon(data_root, &path, &holders));
            }
            if Instant::now() >= deadline {
                return Err(LockError::InUseDaemonless {
                    root: data_root.to_path_buf(),
                    pids: pid_list(&holders),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A daemonless command's claim: shared with other daemonless commands; refused while
    /// berthd owns the root.
    pub fn daemonless(data_root: &Path) -> Result<Self, LockError> {
        let path = data_root.join(ROOT_LOCK_FILE);
        match FileLock::try_acquire(&path, LockMode::Shared)? {
            Some(lock) => Ok(Self { lock }),
            None => Err(owned_by_daemon(data_root, &path, &holders(&path))),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        self.lock.path()
    }
}

/// The error for a root berthd holds: its pid from `/proc/locks`, its socket from the lock
/// file (which a berthd that just started may not have written yet: wait a moment for it).
fn owned_by_daemon(root: &Path, path: &Path, holders: &[Holder]) -> LockError {
    let holder = holders
        .iter()
        .find(|h| h.mode == LockMode::Exclusive)
        .map(|h| h.pid);
    let mut pid = holder.map(|p| p.to_string());
    let mut socket = None;
    for _ in 0..50 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut lines = text.lines();
        let (file_pid, file_socket) = (lines.next(), lines.next());
        if let (Some(p), Some(s)) = (file_pid, file_socket) {
            if holder.is_none() || holder.map(|h| h.to_string()).as_deref() == Some(p) {
                pid = Some(p.to_string());
                socket = Some(s.to_string());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    LockError::OwnedByDaemon {
        root: root.to_path_buf(),
        pid: pid.unwrap_or_else(|| "unknown".into()),
        socket: socket.map_or_else(|| "an unknown socket".into(), |s| format!("unix://{s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines_are_read() {
        let text = "1: FLOCK  ADVISORY  WRITE 100 08:01:42 0 EOF\n\
                    2: FLOCK  ADVISORY  READ  200 08:01:42 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 300 08:01:42 0 EOF\n\
                    3: POSIX  ADVISORY  WRITE 400 08:01:42 0 EOF\n\
                    4: FLOCK  ADVISORY  READ  500 08:01:43 0 EOF\n";
        assert_eq!(
            parse_proc_locks(text, "08:01:42"),
            vec![
                Holder {
                    pid: 100,
                    mode: LockMode::Exclusive
                },
                Holder {
                    pid: 200,
                    mode: LockMode::Shared
                }
            ]
        );
    }

    #[test]
    fn locks_exclude_each_other_and_name_their_holders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let a = FileLock::try_acquire(&path, LockMode::Shared)
            .unwrap()
            .unwrap();
        let b = FileLock::try_acquire(&path, LockMode::Shared)
            .unwrap()
            .unwrap();
        assert!(FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .is_none());
        let me = std::process::id() as i32;
        assert!(holders(&path).iter().all(|h| h.pid == me));
        let e =
            FileLock::acquire(&path, LockMode::Exclusive, Duration::from_millis(50)).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("held by pid {me}, pid {me}")),
            "{e}"
        );
        drop((a, b));
        let x = FileLock::acquire(&path, LockMode::Exclusive, Duration::from_secs(1)).unwrap();
        assert_eq!(holders(&path)[0].mode, LockMode::Exclusive);
        // A waiter gets the lock as soon as it is let go.
        let p2 = path.clone();
        let waiter = std::thread::spawn(move || {
            FileLock::acquire(&p2, LockMode::Shared, Duration::from_secs(10)).is_ok()
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(x);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn directories_can_be_locked_and_missing_ones_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let l = FileLock::try_acquire(dir.path(), LockMode::Exclusive)
            .unwrap()
            .unwrap();
        assert!(FileLock::try_acquire(dir.path(), LockMode::Exclusive)
            .unwrap()
            .is_none());
        drop(l);
        let gone = dir.path().join("gone").join("x");
        assert!(FileLock::try_acquire(&gone, LockMode::Exclusive)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn a_daemon_and_daemonless_commands_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let d1 = RootLock::daemonless(root).unwrap();
        let d2 = RootLock::daemonless(root).unwrap();
        let e = RootLock::daemon(root, "/run/x.sock", Duration::from_millis(60)).unwrap_err();
        let me = std::process::id().to_string();
        assert!(
            matches!(&e, LockError::InUseDaemonless { pids, .. } if *pids == me),
            "{e}"
        );
        drop((d1, d2));
        let daemon = RootLock::daemon(root, "/run/x.sock", Duration::ZERO).unwrap();
        let e = RootLock::daemonless(root).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "The data root {} is owned by berthd (pid {me}, listening on unix:///run/x.sock): use berth without --daemonless, or stop berthd first",
                root.display()
            )
        );
        let e = RootLock::daemon(root, "/run/y.sock", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, LockError::OwnedByDaemon { .. }), "{e}");
        drop(daemon);
        // The file still names the old daemon, but nobody holds it: the root is free.
        RootLock::daemonless(root).unwrap();
    }
}
