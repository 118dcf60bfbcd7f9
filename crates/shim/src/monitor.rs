//! The shim's life once detached: start the container through the runtime, report on the
//! ready pipe, copy the container's output into its log, reap it, record how it ended,
//! and delete it from the runtime.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_shim::jsonfile::{JsonFileLog, Stream};
use berth_shim::{write_atomic, ExitStatus, Ready, ShimConfig};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroup;
use crate::io::{ContainerIo, ReadOutcome};
use crate::runtime::{last_line, Runtime};
use crate::shimlog::ShimLog;

/// How long the outputs may stay open once the container's first process has exited. A
/// process the container left behind outside a pid namespace can hold them forever.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How much of the runtime's stderr is read for its error when its log says nothing.
const RUNTIME_STDERR_LIMIT: usize = 64 * 1024;

/// Now, RFC 3339 in UTC with nanoseconds (`2026-11-27T14:35:55.252009639Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Writes `ready` as one line on the engine's pipe and closes it. The engine may be gone
/// (EPIPE: SIGPIPE is ignored): the shim carries on regardless.
pub fn report(pipe: Option<File>, ready: Ready) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut line = serde_json::to_string(&ready).unwrap_or_default();
    line.push('\n');
    let _ = pipe.write_all(line.as_bytes());
}

/// The detached shim's main: returns its exit status.
pub fn run(config_path: &Path, ready: Option<File>) -> i32 {
    let config = match ShimConfig::read(config_path).and_then(absolute) {
        Ok(c) => c,
        Err(e) => {
            report(
                ready,
                Ready::Failed {
                    message: format!("berth-shim cannot read its config {config_path:?}: {e}"),
                },
            );
            return 1;
        }
    };
    let log = match ShimLog::open(&config.shim_log) {
        Ok(l) => l,
        Err(e) => {
            report(
                ready,
                Ready::Failed {
                    message: format!("berth-shim cannot open its log {:?}: {e}", config.shim_log),
                },
            );
            return 1;
        }
    };
    // Hold no directory busy: every path is absolute by now.
    let _ = std::env::set_current_dir("/");
    Shim { config, log, ready }.run()
}

/// Makes the config's paths absolute (the runtime may be a bare name found on PATH).
fn absolute(mut c: ShimConfig) -> std::io::Result<ShimConfig> {
    for p in [
        &mut c.bundle,
        &mut c.runtime_root,
        &mut c.log_path,
        &mut c.exit_file,
        &mut c.shim_log,
    ] {
        *p = std::path::absolute(&*p)?;
    }
    if c.runtime.components().count() > 1 {
        c.runtime = std::path::absolute(&c.runtime)?;
    }
    Ok(c)
}

struct Shim {
    config: ShimConfig,
    log: ShimLog,
    ready: Option<File>,
}

impl Shim {
    fn fail(&mut self, message: String) -> i32 {
        self.log.error(&message);
        report(self.ready.take(), Ready::Failed { message });
        1
    }

    fn run(&mut self) -> i32 {
        let signals = match handle_signals() {
            Ok(s) => s,
            Err(e) => return self.fail(format!("berth-shim cannot set up signal handling: {e}")),
        };
        let container_log = match JsonFileLog::open(
            &self.config.log_path,
            self.config.log_max_size,
            self.config.log_max_files,
        ) {
            Ok(l) => l,
            Err(e) => {
                return self.fail(format!(
                    "Cannot open the container log {:?}: {e}",
                    self.config.log_path
                ))
            }
        };
        let cgroups_path = match cgroup::cgroups_path_of(&self.config.bundle) {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                self.log.warn(
                    "The bundle's config.json has no linux.cgroupsPath: OOM kills will not be seen",
                );
                None
            }
            Err(e) => {
                self.log
                    .warn(format!("Cannot read the bundle's cgroupsPath: {e}"));
                None
            }
        };
        let mut io = match ContainerIo::pipes() {
            Ok(io) => io,
            Err(e) => return self.fail(format!("Cannot create the container's stdio pipes: {e}")),
        };

        // Start the container.
        let runtime = Runtime::new(&self.config);
        let pid_file = self.config.bundle.join("init.pid");
        for stale in [pid_file.as_path(), runtime.log_path()] {
            if let Err(e) = std::fs::remove_file(stale) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.log.warn(format!("Cannot remove {stale:?}: {e}"));
                }
            }
        }
        let Some(stdio) = io.take_runtime_stdio() else {
            return self.fail("The container's stdio was already given away".into());
        };
        let runtime_pid =
            match runtime.spawn_run(&self.config.bundle, &pid_file, stdio, &io.runtime_args()) {
                Ok(pid) => Pid::from_raw(pid as i32),
                Err(e) => {
                    return self.fail(format!(
                        "Cannot run the runtime {:?}: {e}",
                        self.config.runtime
                    ))
                }
            };
        let mut early_exits = Vec::new();
        let runtime_status = wait_for(runtime_pid, &signals, &mut early_exits, &self.log);
        if !matches!(runtime_status, WaitStatus::Exited(_, 0)) {
            let stderr = io
                .output_mut(Stream::Stderr)
                .map(|o| o.read_available(RUNTIME_STDERR_LIMIT))
                .unwrap_or_default();
            let message = runtime
                .last_error()
                .or_else(|| last_line(&String::from_utf8_lossy(&stderr)))
                .unwrap_or_else(|| {
                    format!("{:?} {}", self.config.runtime, describe(runtime_status))
                });
            let code = self.fail(message);
            self.delete(&runtime);
            return code;
        }
        let container_pid = match read_pid(&pid_file) {
            Ok(pid) => pid,
            Err(e) => {
                let code = self.fail(format!(
                    "Cannot read the container's pid from {pid_file:?}: {e}"
                ));
                self.delete(&runtime);
                return code;
            }
        };
        report(
            self.ready.take(),
            Ready::Started {
                shim_pid: std::process::id() as i32,
                container_pid: container_pid.as_raw(),
            },
        );
        self.log.info(format!(
            "Container {} started, pid {container_pid}",
            self.config.id
        ));

        // Copy its output until it has exited and the output is drained.
        let exited = early_exits
            .into_iter()
            .find(|(pid, _, _)| *pid == container_pid)
            .map(|(_, status, at)| (status, at));
        let mut sink = LogSink {
            log: container_log,
            dropped: 0,
            failing: false,
        };
        let (status, finished_at) = pump(
            &mut io,
            &signals,
            container_pid,
            exited,
            &mut sink,
            &self.log,
        );
        if sink.dropped > 0 {
            self.log.warn(format!(
                "{} log entries could not be written and were dropped",
                sink.dropped
            ));
        }

        // Record how it ended, then delete it: the cgroup with its OOM counter goes too.
        let oom_killed = match &cgroups_path {
            Some(path) => match cgroup::oom_kill_count(path) {
                Ok(n) => n > 0,
                Err(e) => {
                    self.log
                        .warn(format!("Cannot read the OOM-kill count: {e}"));
                    false
                }
            },
            None => false,
        };
        let exit = ExitStatus {
            exit_code: exit_code(status),
            oom_killed,
            finished_at,
        };
        let bytes = serde_json::to_vec(&exit).unwrap_or_default();
        if let Err(e) = write_atomic(&self.config.exit_file, &bytes) {
            self.log.error(format!(
                "Cannot write the exit file {:?}: {e}",
                self.config.exit_file
            ));
        }
        self.log.info(format!(
            "Container {} exited with {} (oom_killed: {})",
            self.config.id, exit.exit_code, exit.oom_killed
        ));
        self.delete(&runtime);
        0
    }

    fn delete(&self, runtime: &Runtime) {
        if let Err(e) = runtime.delete_force() {
            self.log.error(format!(
                "Cannot delete container {} from the runtime: {e}",
                self.config.id
            ));
        }
    }
}

/// Blocks SIGCHLD (read through a signalfd, so `poll` sees it) and SIGHUP/SIGINT (the
/// shim outlives the engine and its terminal; they are read and ignored). The runtime
/// gets a clean mask: `std::process::Command` resets it in the child.
fn handle_signals() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGHUP, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

fn drain_signals(signals: &SignalFd, log: &ShimLog) {
    while let Ok(Some(info)) = signals.read_signal() {
        if info.ssi_signo != Signal::SIGCHLD as u32 {
            log.info(format!("Ignoring signal {}", info.ssi_signo));
        }
    }
}

/// Reaps every child that has exited (the runtime, the container, orphans reparented to
/// this subreaper).
fn reap_all(mut on_exit: impl FnMut(Pid, WaitStatus)) {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    on_exit(pid, status);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// Waits for the runtime to exit. Other exits seen meanwhile (the container may be quick)
/// are kept with their time, since the container's pid is not known yet.
fn wait_for(
    runtime: Pid,
    signals: &SignalFd,
    early_exits: &mut Vec<(Pid, WaitStatus, String)>,
    log: &ShimLog,
) -> WaitStatus {
    loop {
        let mut found = None;
        reap_all(|pid, status| {
            if pid == runtime {
                found = Some(status);
            } else {
                early_exits.push((pid, status, now()));
            }
        });
        if let Some(status) = found {
            return status;
        }
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => drain_signals(signals, log),
            Err(e) => {
                // Cannot happen with a valid signalfd; fall back to a blocking wait.
                log.error(format!(
                    "poll failed ({e}); waiting for the runtime directly"
                ));
                return waitpid(runtime, None).unwrap_or(WaitStatus::StillAlive);
            }
        }
    }
}

/// The container log, dropping (and counting) entries it cannot write rather than
/// queueing them: a full disk must neither block the container nor grow the shim.
struct LogSink {
    log: JsonFileLog,
    dropped: u64,
    failing: bool,
}

impl LogSink {
    fn write(&mut self, stream: Stream, bytes: &[u8], time: &str, shim_log: &ShimLog) {
        match self.log.write(stream, bytes, time) {
            Ok(()) if self.failing => {
                self.failing = false;
                shim_log.info(format!(
                    "The container log is writable again; {} entries were dropped",
                    self.dropped
                ));
            }
            Ok(()) => {}
            Err(e) => {
                self.dropped += 1;
                if !self.failing {
                    self.failing = true;
                    shim_log.error(format!(
                        "Cannot write the container log ({e}); dropping entries until it works again"
                    ));
                }
            }
        }
    }
}

/// The main loop: copies output into the log and reaps children until the container's
/// first process has exited and its output has ended (or [`DRAIN_TIMEOUT`] has passed).
/// Returns the container's wait status and when it was seen.
fn pump(
    io: &mut ContainerIo,
    signals: &SignalFd,
    container: Pid,
    mut exited: Option<(WaitStatus, String)>,
    sink: &mut LogSink,
    log: &ShimLog,
) -> (WaitStatus, String) {
    // Synchronous writes are the back-pressure: nothing more is read from a pipe until
    // what was read is in the log, so a slow disk slows the container's writes down.
    let mut buf = vec![0u8; 32 * 1024];
    let mut deadline = exited.as_ref().map(|_| Instant::now() + DRAIN_TIMEOUT);
    let mut not_our_child = false;
    loop {
        if let Some(deadline) = deadline {
            if io.all_closed() {
                break;
            }
            if Instant::now() >= deadline {
                log.warn(format!(
                    "The container's output is still open {DRAIN_TIMEOUT:?} after it exited (a leftover process holds it); not reading it further"
                ));
                break;
            }
        }
        let timeout = match deadline {
            Some(d) => PollTimeout::try_from(d.saturating_duration_since(Instant::now()))
                .unwrap_or(PollTimeout::MAX),
            // Output ended but no exit seen: check now and then that the container's
            // process is really our child (runc and berth-runtime guarantee it).
            None if io.all_closed() => PollTimeout::from(1000u16),
            None => PollTimeout::NONE,
        };
        let open: Vec<usize> = (0..io.outputs.len())
            .filter(|&i| io.outputs[i].is_open())
            .collect();
        let mut fds: Vec<PollFd<'_>> =
            std::iter::once(PollFd::new(signals.as_fd(), PollFlags::POLLIN))
                .chain(
                    open.iter()
                        .map(|&i| PollFd::new(io.outputs[i].fd(), PollFlags::POLLIN)),
                )
                .collect();
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log.error(format!(
                    "poll failed ({e}); waiting for the container without reading its output"
                ));
                drop(fds);
                while exited.is_none() {
                    match waitpid(container, None) {
                        Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                            exited = Some((status, now()))
                        }
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(_) => exited = Some((WaitStatus::StillAlive, now())),
                    }
                }
                break;
            }
        }
        let timed_out = fds.iter().all(|fd| !fd.any().unwrap_or(false));
        let signalled = fds[0].any().unwrap_or(false);
        let readable: Vec<usize> = open
            .iter()
            .zip(&fds[1..])
            .filter(|(_, fd)| fd.any().unwrap_or(false))
            .map(|(&i, _)| i)
            .collect();
        drop(fds);

        if signalled {
            drain_signals(signals, log);
            reap_all(|pid, status| {
                if pid == container && exited.is_none() {
                    exited = Some((status, now()));
                    deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                }
            });
        }
        if timed_out && exited.is_none() && io.all_closed() {
            match waitpid(container, Some(WaitPidFlag::WNOHANG)) {
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    exited = Some((status, now()));
                    deadline = Some(Instant::now());
                }
                Err(Errno::ECHILD) => {
                    // Not ours to reap: all we can learn is when it is gone.
                    if !not_our_child {
                        not_our_child = true;
                        log.error(format!(
                            "The container's process {container} is not a child of the shim; its exit status will be unknown"
                        ));
                    }
                    if nix::sys::signal::kill(container, None) == Err(Errno::ESRCH) {
                        exited = Some((WaitStatus::StillAlive, now()));
                        deadline = Some(Instant::now());
                    }
                }
                _ => {}
            }
        }
        for i in readable {
            let time = now();
            let output = &mut io.outputs[i];
            match output.read(&mut buf, &mut |stream, bytes| {
                sink.write(stream, bytes, &time, log)
            }) {
                Ok(ReadOutcome::Data) | Ok(ReadOutcome::Eof) => {}
                Err(e) => log.error(format!(
                    "Cannot read the container's {}: {e}",
                    output.stream.as_str()
                )),
            }
        }
    }
    let time = now();
    for output in io.outputs.iter_mut().filter(|o| o.is_open()) {
        output.close(&mut |stream, bytes| sink.write(stream, bytes, &time, log));
    }
    exited.unwrap_or_else(|| (WaitStatus::StillAlive, now()))
}

fn read_pid(path: &PathBuf) -> std::io::Result<Pid> {
    let text = std::fs::read_to_string(path)?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|&p| p > 0)
        .map(Pid::from_raw)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a pid: {text:?}"),
            )
        })
}

/// The exit code as Docker reports it: the status, or 128 + the signal number.
fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => 255,
    }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("was killed by {signal}"),
        other => format!("ended as {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_dockers() {
        let pid = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), 3);
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            137
        );
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGTERM, true)),
            143
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_nanoseconds() {
        let t = now();
        assert_eq!(t.len(), "2026-11-27T14:35:55.252009639Z".len(), "{t}");
        assert!(t.ends_with('Z'));
        chrono::DateTime::parse_from_rfc3339(&t).unwrap();
    }

    #[test]
    fn pid_files_are_parsed_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("init.pid");
        std::fs::write(&path, "1234").unwrap();
        assert_eq!(read_pid(&path).unwrap(), Pid::from_raw(1234));
        std::fs::write(&path, "1234\n").unwrap();
        assert_eq!(read_pid(&path).unwrap(), Pid::from_raw(1234));
        std::fs::write(&path, "x").unwrap();
        assert!(read_pid(&path).is_err());
    }
}
