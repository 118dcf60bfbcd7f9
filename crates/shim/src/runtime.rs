//! The runc-compatible runtime as the shim drives it (`berth-runtime` or `runc`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_shim::ShimConfig;

use crate::io::RuntimeStdio;

/// One container's runtime command lines.
#[derive(Clone)]
pub struct Runtime {
    binary: PathBuf,
    root: PathBuf,
    /// The runtime's own log (`--log`, JSON lines), so its errors stay apart from the
    /// container's output even though both share the runtime's stderr.
    log: PathBuf,
    id: String,
}

impl Runtime {
    pub fn new(config: &ShimConfig) -> Self {
        Self {
            binary: config.runtime.clone(),
            root: config.runtime_root.clone(),
            log: config.bundle.join("log.json"),
            id: config.id.clone(),
        }
    }

    /// The runtime log; removed before a run so the errors in it are this run's.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .args(["--log-format", "json"]);
        cmd
    }

    /// `run --detach --bundle <bundle> --pid-file <pid_file> <id>` with `stdio` as the
    /// runtime's (and so the container's) stdio. The child is reaped by the caller.
    pub fn spawn_run(
        &self,
        bundle: &Path,
        pid_file: &Path,
        stdio: RuntimeStdio,
        extra_args: &[OsString],
    ) -> std::io::Result<u32> {
        let mut cmd = self.command();
        cmd.args(["run", "--detach", "--bundle"])
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .args(extra_args)
            .arg(&self.id)
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        // Dropping the Child neither waits nor kills: the shim reaps with waitpid(-1).
        let child = cmd.spawn()?;
        Ok(child.id())
    }

    /// `exec --detach --pid-file <pid_file> --process <process> [--console-socket
    /// <console>] <id>` with its own log, and `stdio` as the runtime's (and so the
    /// process's) stdio. The child is reaped by the caller.
    pub fn spawn_exec(
        &self,
        process: &Path,
        pid_file: &Path,
        log: &Path,
        console: Option<&Path>,
        stdio: RuntimeStdio,
    ) -> std::io::Result<u32> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(log)
            .args(["--log-format", "json", "exec", "--detach", "--pid-file"])
            .arg(pid_file)
            .arg("--process")
            .arg(process);
        if let Some(console) = console {
            cmd.arg("--console-socket").arg(console);
        }
        cmd.arg(&self.id)
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        Ok(cmd.spawn()?.id())
    }

    /// `delete --force <id>`: kills what is left in the container's cgroup and removes
    /// the runtime's state and the cgroup. Waits for it.
    pub fn delete_force(&self) -> Result<(), String> {
        let output = self
            .command()
            .args(["delete", "--force"])
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("Cannot run {:?}: {e}", self.binary))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = self
            .last_error()
            .or_else(|| last_line(&stderr))
            .unwrap_or_else(|| output.status.to_string());
        Err(why)
    }

    /// The message of the last `error` line of the runtime log.
    pub fn last_error(&self) -> Option<String> {
        last_error_in(&self.log)
    }
}

/// The message of the last `error` line of a runc-style JSON log.
pub fn last_error_in(log: &Path) -> Option<String> {
    let file = std::fs::File::open(log).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .filter(|v| v["level"] == "error")
        .filter_map(|v| v["msg"].as_str().map(str::to_owned))
        .last()
}

/// The last non-empty line of `text`, trimmed.
pub fn last_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_of_a_runc_json_log_is_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let config = ShimConfig {
            id: "x".into(),
            bundle: dir.path().into(),
            runtime: "/usr/sbin/runc".into(),
            runtime_root: dir.path().join("root"),
            log_path: dir.path().join("log"),
            log_max_size: None,
            log_max_files: 1,
            exit_file: dir.path().join("exit"),
            shim_log: dir.path().join("shim.log"),
            tty: false,
            stdin: false,
            console_size: None,
        };
        let rt = Runtime::new(&config);
        assert_eq!(rt.last_error(), None);
        std::fs::write(
            rt.log_path(),
            concat!(
                r#"{"level":"warning","msg":"cgroup hugetlb not supported","time":"t"}"#,
                "\n",
                r#"{"level":"error","msg":"runc run failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH","time":"t"}"#,
                "\n",
                "not json\n",
            ),
        )
        .unwrap();
        assert_eq!(
            rt.last_error().unwrap(),
            r#"runc run failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH"#
        );
    }

    #[test]
    fn last_line_skips_blank_lines() {
        assert_eq!(last_line("a\nb\n\n  \n").as_deref(), Some("b"));
        assert_eq!(last_line(""), None);
    }
}
