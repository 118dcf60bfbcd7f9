//! Running one engine command and timing it.
//!
//! Every child gets its own process group, so a Ctrl-C at the terminal reaches only
//! `berth bench` (which then removes what it made) and not the daemons and commands it runs.
//! A child that outlives its timeout is killed through that group, which only it and the
//! processes it forked belong to.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

/// What one command did.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// From just before the fork to the child's exit.
    pub elapsed: Duration,
}

impl Outcome {
    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// A one-line reason for a failure: the first line of standard error that says "error"
    /// (CLIs follow it with usage hints), else its last non-empty line, else the exit status.
    pub fn reason(&self) -> String {
        let stderr = String::from_utf8_lossy(&self.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines
            .iter()
            .find(|l| l.to_ascii_lowercase().contains("error"))
            .or(lines.last())
            .map(|l| l.to_string())
            .unwrap_or_else(|| self.status.to_string())
    }
}

/// Runs `cmd` with no standard input, collecting its output, and kills it (and its process
/// group) after `timeout`.
pub fn run(mut cmd: Command, timeout: Duration) -> Result<Outcome> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    run_with_stdio(cmd, timeout)
}

/// [`run`] with the standard output and error the caller gave `cmd` (the outcome's are then
/// empty): a container a runtime starts inherits them, and a pipe it holds would keep the
/// wait for the runtime's output going until the container exits.
pub fn run_with_stdio(mut cmd: Command, timeout: Duration) -> Result<Outcome> {
    cmd.stdin(Stdio::null()).process_group(0);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let start = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("Cannot run {program}"))?;
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send((out, Instant::now()));
    });
    match rx.recv_timeout(timeout) {
        Ok((out, end)) => {
            let out = out.with_context(|| format!("Cannot wait for {program}"))?;
            Ok(Outcome {
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
                elapsed: end - start,
            })
        }
        Err(_) => {
            // The waiting thread has not reaped the child, so the group is still its own.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = rx.recv_timeout(Duration::from_secs(10));
            Err(anyhow!(
                "{program} did not finish within {} s and was killed",
                timeout.as_secs()
            ))
        }
    }
}

/// Set when the user interrupts the bench: no new engine command starts, and the bench
/// goes on to clean up.
#[derive(Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks everything to stop; returns whether it had been asked already.
    pub fn cancel(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An error when cancelled, for `?`.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Interrupted.into())
        } else {
            Ok(())
        }
    }
}

/// The error of work stopped by [`Cancel`].
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Whether `e` is (or wraps) [`Interrupted`].
pub fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Interrupted>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_output_status_and_time() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo first >&2; echo last >&2; exit 3"]);
        let out = run(cmd, Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout(), "out\n");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.reason(), "last");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'error: no such thing' >&2; echo >&2; echo 'See --help.' >&2; exit 1",
        ]);
        assert_eq!(
            run(cmd, Duration::from_secs(10)).unwrap().reason(),
            "error: no such thing"
        );
        assert!(out.elapsed > Duration::ZERO);
    }

    #[test]
    fn a_child_past_its_timeout_is_killed() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let t = Instant::now();
        let err = run(cmd, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn cancel_is_seen_by_check() {
        let c = Cancel::default();
        assert!(c.check().is_ok());
        assert!(!c.cancel());
        assert!(c.cancel());
        assert!(is_interrupted(
            &c.check().unwrap_err().context("while running")
        ));
    }
}
