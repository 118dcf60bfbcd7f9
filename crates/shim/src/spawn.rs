//! The engine's side of starting a shim.

use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::OFlag;

use crate::control::CONTROL_FD;
use crate::{Ready, ShimConfig};

/// The file descriptor on which a shim writes its [`Ready`] line.
pub const READY_FD: i32 = 3;

/// Starts `shim_binary <config_path>` with a pipe on fd 3 and, when given, the engine's
/// first control channel on fd [`CONTROL_FD`]; reaps the process it started (the shim
/// forks and that process exits at once), and returns the shim's [`Ready`] line.
///
/// Safe to call from a blocking thread of a multi-threaded process: the child only
/// `fcntl`s and `dup2`s between fork and exec. Blocks until the container has started or
/// failed to.
pub fn spawn(
    shim_binary: &Path,
    config_path: &Path,
    control: Option<OwnedFd>,
) -> io::Result<Ready> {
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let write_fd = write_end.as_raw_fd();
    let control_fd = control.as_ref().map(|c| c.as_raw_fd());
    let mut command = Command::new(shim_binary);
    command
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[allow(unsafe_code)]
    // SAFETY: the closure runs between fork and exec in a possibly multi-threaded
    // process: it only calls fcntl(2) and dup2(2), both async-signal-safe, allocates
    // nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            use nix::fcntl::{fcntl, FcntlArg};
            // Move both out of the way first, so neither dup2 overwrites the other.
            let ready = fcntl(write_fd, FcntlArg::F_DUPFD_CLOEXEC(10))?;
            let control = control_fd
                .map(|fd| fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(10)))
                .transpose()?;
            // dup2 clears close-on-exec on the copies.
            nix::unistd::dup2(ready, READY_FD)?;
            if let Some(fd) = control {
                nix::unistd::dup2(fd, CONTROL_FD)?;
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    // Only the shim may hold the write end, or we would never see EOF.
    drop(write_end);
    drop(control);
    let status = child.wait()?;

    let mut line = String::new();
    BufReader::new(std::fs::File::from(read_end)).read_line(&mut line)?;
    if line.trim().is_empty() {
        let shim_log = ShimConfig::read(config_path)
            .map(|c| format!("{:?}", c.shim_log))
            .unwrap_or_else(|_| format!("named in {config_path:?}"));
        return Err(io::Error::other(format!(
            "berth-shim ({status}) exited without reporting whether the container started; see its log {shim_log}"
        )));
    }
    serde_json::from_str(line.trim_end()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("Bad ready line from berth-shim {line:?}: {e}"),
        )
    })
}

impl ShimConfig {
    /// Reads a shim configuration file.
    pub fn read(path: &Path) -> io::Result<Self> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;

    fn fake_shim(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("fake-shim");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn config(dir: &Path) -> PathBuf {
        let c = ShimConfig {
            id: "abc".into(),
            bundle: dir.into(),
            runtime: "/usr/sbin/runc".into(),
            runtime_root: dir.join("root"),
            log_path: dir.join("log"),
            log_max_size: None,
            log_max_files: 1,
            exit_file: dir.join("exit"),
            shim_log: dir.join("shim.log"),
            tty: false,
            stdin: false,
            console_size: None,
        };
        let path = dir.join("shim.json");
        std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
        path
    }

    #[test]
    fn the_ready_line_comes_from_the_detached_process() {
        let dir = tempfile::tempdir().unwrap();
        // Like the real shim: the first process exits at once, a background one reports.
        let shim = fake_shim(
            dir.path(),
            r#"( sleep 0.2; echo '{"started":{"shim_pid":10,"container_pid":11}}' >&3 ) & exit 0"#,
        );
        let ready = spawn(&shim, &config(dir.path()), None).unwrap();
        assert_eq!(
            ready,
            Ready::Started {
                shim_pid: 10,
                container_pid: 11
            }
        );
    }

    #[test]
    fn failures_are_reported_as_ready_lines() {
        let dir = tempfile::tempdir().unwrap();
        let shim = fake_shim(dir.path(), r#"echo '{"failed":{"message":"boom"}}' >&3"#);
        let ready = spawn(&shim, &config(dir.path()), None).unwrap();
        assert_eq!(
            ready,
            Ready::Failed {
                message: "boom".into()
            }
        );
    }

    #[test]
    fn eof_without_a_line_names_the_shim_log() {
        let dir = tempfile::tempdir().unwrap();
        let shim = fake_shim(dir.path(), "exit 3");
        let err = spawn(&shim, &config(dir.path()), None).unwrap_err();
        assert!(err.to_string().contains("shim.log"), "{err}");
    }
}
