//! The contract between the engine and `berth-shim`, the per-container monitor.
//!
//! The engine writes a [`ShimConfig`] as JSON and starts `berth-shim <config path>` with
//! file descriptor 3 open for writing. The shim detaches (it forks; the process the engine
//! started exits at once), becomes a child subreaper, starts the container through a
//! runc-compatible runtime, and writes one [`Ready`] line on fd 3. From then on it is the
//! container's parent: it copies the container's stdout and stderr into a `json-file` log,
//! reaps the container, writes an [`ExitStatus`] file atomically, asks the runtime to
//! delete the container's runtime state, and exits. The engine notices the shim's exit
//! (with a pidfd) and reads the exit file; when no engine is running the file waits.
//!
//! While the container runs, the engine talks to the shim over [`control`] channels: the
//! first is handed over at start (fd [`control::CONTROL_FD`]), later ones connect to
//! [`control::ATTACH_SOCKET`] in the bundle. They carry the container's stdin, its live
//! output for attached clients, terminal resizes, and `exec` requests.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod control;
pub mod jsonfile;
mod spawn;

pub use spawn::{spawn, READY_FD};

/// Everything a shim needs to run one container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShimConfig {
    /// The container's 64-hex id, also its id in the runtime.
    pub id: String,
    /// The OCI bundle directory holding `config.json`.
    pub bundle: PathBuf,
    /// The runc-compatible runtime binary (`berth-runtime` or `runc`).
    pub runtime: PathBuf,
    /// The runtime's state directory (`--root`).
    pub runtime_root: PathBuf,
    /// Where the `json-file` log goes.
    pub log_path: PathBuf,
    /// Rotate the log when it reaches this many bytes (`max-size`); `None` never rotates.
    pub log_max_size: Option<u64>,
    /// How many log files to keep, the current one included (`max-file`, at least 1).
    pub log_max_files: u32,
    /// Where the shim writes the container's [`ExitStatus`].
    pub exit_file: PathBuf,
    /// Where the shim writes its own log (runtime errors, reaping trouble).
    pub shim_log: PathBuf,
    /// Give the container a terminal: the shim holds its master (output is one stream).
    #[serde(default)]
    pub tty: bool,
    /// Give the container a stdin the engine writes to (`OpenStdin`); /dev/null otherwise.
    #[serde(default)]
    pub stdin: bool,
    /// The terminal's initial size, `[height, width]`.
    #[serde(default)]
    pub console_size: Option<[u16; 2]>,
}

/// The one line a shim writes on its ready pipe (fd 3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// The container's process runs.
    Started {
        /// The pid of the shim that monitors it.
        shim_pid: i32,
        /// The pid of the container's first process, in the host's pid namespace.
        container_pid: i32,
    },
    /// The container could not be started; `message` is the runtime's own explanation.
    Failed { message: String },
}

/// How a container ended, written by the shim once the container's first process is reaped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitStatus {
    /// The exit code as Docker reports it: the status, or 128 + the signal number.
    pub exit_code: i32,
    /// Whether the kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When the shim saw the exit, RFC 3339 with nanoseconds.
    pub finished_at: String,
}

/// One line of a `json-file` log, as dockerd writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    /// The bytes written (a whole line including its `\n`, or the last partial line).
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the shim read the bytes, RFC 3339 with nanoseconds.
    pub time: String,
}

impl ExitStatus {
    /// Reads an exit file; `Ok(None)` when the container has not exited yet.
    pub fn read(path: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the directory. Readers see the old content or the new, never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name")
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_round_trip() {
        let r = Ready::Started {
            shim_pid: 10,
            container_pid: 11,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(line, r#"{"started":{"shim_pid":10,"container_pid":11}}"#);
        assert_eq!(serde_json::from_str::<Ready>(&line).unwrap(), r);
    }

    #[test]
    fn exit_file_is_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit.json");
        assert_eq!(ExitStatus::read(&path).unwrap(), None);
        let st = ExitStatus {
            exit_code: 137,
            oom_killed: true,
            finished_at: "2026-11-27T14:35:55.252009639Z".into(),
        };
        write_atomic(&path, &serde_json::to_vec(&st).unwrap()).unwrap();
        assert_eq!(ExitStatus::read(&path).unwrap(), Some(st));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
