//! The shim's life once detached: start the container through the runtime, report on the
//! ready pipe, copy the container's output into its log (and to the engine's subscribed
//! channels), answer the engine's requests (stdin, resizes, exec), reap the container and
//! its exec'd processes, record how it ended, and delete it from the runtime.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_shim::control::{FromShim, ToShim, ATTACH_SOCKET, MAX_PAYLOAD};
use berth_shim::jsonfile::{JsonFileLog, Stream};
use berth_shim::{write_atomic, ExitStatus, Ready, ShimConfig};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cgroup;
use crate::channels::{Channels, Request};
use crate::console::{self, ConsoleSocket};
use crate::exec::Execs;
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

/// The detached shim's main: returns its exit status. `control` is the engine's first
/// channel, when it gave one.
pub fn run(config_path: &Path, ready: Option<File>, control: Option<OwnedFd>) -> i32 {
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
    Shim { config, log, ready }.run(control)
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

    fn run(&mut self, control: Option<OwnedFd>) -> i32 {
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

        // The engine's first channel: what it queued before starting us (a subscription
        // to the output) must count from the container's first byte.
        let mut channels = Channels::new();
        if let Some(fd) = control {
            channels.add(fd);
        }
        let mut early_requests = channels.read_all(&self.log);
        if let Err(e) = channels.listen(&self.config.bundle.join(ATTACH_SOCKET)) {
            self.log.warn(format!(
                "Cannot listen on the attach socket: {e}; only the engine's first channel will work"
            ));
        }

        let mut io = match ContainerIo::new(self.config.stdin, self.config.tty) {
            Ok(io) => io,
            Err(e) => return self.fail(format!("Cannot create the container's stdio pipes: {e}")),
        };
        let console = if self.config.tty {
            match ConsoleSocket::bind(&self.config.bundle.join("console.sock")) {
                Ok(c) => Some(c),
                Err(e) => return self.fail(format!("Cannot create the console socket: {e}")),
            }
        } else {
            None
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
        let mut runtime_args = Vec::new();
        if let Some(c) = &console {
            runtime_args.push(OsString::from("--console-socket"));
            runtime_args.push(c.arg().as_os_str().to_owned());
        }
        let runtime_pid =
            match runtime.spawn_run(&self.config.bundle, &pid_file, stdio, &runtime_args) {
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
        if let Some(console) = console {
            let master = console.receive().and_then(|master| {
                if let Some([h, w]) = self.config.console_size.filter(|&[h, w]| h > 0 && w > 0) {
                    if let Err(e) = console::resize(&master, h, w) {
                        self.log
                            .warn(format!("Cannot set the terminal's size: {e}"));
                    }
                }
                io.use_console(master, self.config.stdin)
            });
            if let Err(e) = master {
                let code = self.fail(format!("Cannot take the container's terminal: {e}"));
                self.delete(&runtime);
                return code;
            }
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
        let mut pump = Pump {
            io,
            signals: &signals,
            container: container_pid,
            exited,
            sink: LogSink {
                log: container_log,
                dropped: 0,
                failing: false,
            },
            channels,
            execs: Execs::new(runtime.clone(), &self.config.bundle),
            log: &self.log,
        };
        pump.handle(std::mem::take(&mut early_requests));
        let (status, finished_at) = pump.run();
        if pump.sink.dropped > 0 {
            self.log.warn(format!(
                "{} log entries could not be written and were dropped",
                pump.sink.dropped
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
        // What exec'd processes were left are gone with the cgroup: reap them and say so.
        pump.finish_execs();
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

/// Reaps every child that has exited (the runtime, the container, exec'd processes,
/// orphans reparented to this subreaper).
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

/// What the main loop works with once the container runs.
struct Pump<'a> {
    io: ContainerIo,
    signals: &'a SignalFd,
    container: Pid,
    exited: Option<(WaitStatus, String)>,
    sink: LogSink,
    channels: Channels,
    execs: Execs,
    log: &'a ShimLog,
}

/// Which descriptor a poll entry is.
#[derive(Clone, Copy)]
enum Polled {
    Signals,
    Listener,
    Channel(usize),
    Output(usize),
}

impl Pump<'_> {
    /// Answers the engine's requests.
    fn handle(&mut self, requests: Vec<Request>) {
        for req in requests {
            match req.message {
                ToShim::GetStdin => {
                    let tty = self.io.console().is_some();
                    match self.io.stdin_writer() {
                        Some(w) => {
                            self.channels
                                .send_to(req.channel, &FromShim::Stdin { tty }, vec![w])
                        }
                        None => self
                            .channels
                            .send_to(req.channel, &FromShim::NoStdin, Vec::new()),
                    }
                }
                ToShim::CloseStdin => self.io.close_stdin(),
                ToShim::Resize { height, width } => {
                    if let Some(console) = self.io.console() {
                        if let Err(e) = console::resize(console, height, width) {
                            self.log.warn(format!("Cannot resize the terminal: {e}"));
                        }
                    }
                }
                ToShim::Exec(exec) => {
                    if self.exited.is_some() {
                        self.channels.send_to(
                            req.channel,
                            &FromShim::ExecFailed {
                                id: exec.id,
                                message: "the container is not running".into(),
                            },
                            Vec::new(),
                        );
                    } else {
                        self.execs
                            .start(exec, req.fds, req.channel, &mut self.channels, self.log);
                    }
                }
                // Subscriptions are handled as they are read.
                ToShim::Subscribe | ToShim::Unsubscribe => {}
            }
        }
    }

    fn reap(&mut self, deadline: &mut Option<Instant>) {
        drain_signals(self.signals, self.log);
        let mut exits = Vec::new();
        reap_all(|pid, status| exits.push((pid, status)));
        for (pid, status) in exits {
            if pid == self.container {
                if self.exited.is_none() {
                    self.exited = Some((status, now()));
                    *deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                }
            } else {
                self.execs
                    .on_exit(pid, status, &mut self.channels, self.log);
            }
        }
    }

    /// The main loop: copies output into the log and to subscribers, answers the engine,
    /// and reaps children until the container's first process has exited and its output
    /// has ended (or [`DRAIN_TIMEOUT`] has passed). Returns the container's wait status
    /// and when it was seen.
    fn run(&mut self) -> (WaitStatus, String) {
        // Synchronous writes are the back-pressure: nothing more is read from a pipe until
        // what was read is in the log (and with the subscribers), so a slow disk or a slow
        // attached client slows the container's writes down.
        let mut buf = vec![0u8; MAX_PAYLOAD];
        let mut deadline = self.exited.as_ref().map(|_| Instant::now() + DRAIN_TIMEOUT);
        let mut not_our_child = false;
        loop {
            self.channels.prune();
            if let Some(deadline) = deadline {
                if self.io.all_closed() {
                    break;
                }
                if Instant::now() >= deadline {
                    self.log.warn(format!(
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
                None if self.io.all_closed() => PollTimeout::from(1000u16),
                None => PollTimeout::NONE,
            };
            let blocked = self.channels.output_blocked();
            let mut which = vec![Polled::Signals];
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            if let Some(l) = &self.channels.listener {
                which.push(Polled::Listener);
                fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
            }
            for (i, c) in self.channels.list.iter().enumerate() {
                let mut flags = PollFlags::POLLIN;
                if c.has_outbox() {
                    flags |= PollFlags::POLLOUT;
                }
                which.push(Polled::Channel(i));
                fds.push(PollFd::new(c.fd(), flags));
            }
            if !blocked {
                for (i, o) in self.io.outputs.iter().enumerate() {
                    if o.is_open() {
                        which.push(Polled::Output(i));
                        fds.push(PollFd::new(o.fd(), PollFlags::POLLIN));
                    }
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    self.log.error(format!(
                        "poll failed ({e}); waiting for the container without reading its output"
                    ));
                    drop(fds);
                    while self.exited.is_none() {
                        match waitpid(self.container, None) {
                            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                                self.exited = Some((status, now()))
                            }
                            Ok(_) | Err(Errno::EINTR) => {}
                            Err(_) => self.exited = Some((WaitStatus::StillAlive, now())),
                        }
                    }
                    break;
                }
            }
            let ready: Vec<(Polled, bool)> = which
                .iter()
                .zip(&fds)
                .map(|(w, fd)| (*w, fd.any().unwrap_or(false)))
                .collect();
            drop(fds);
            let timed_out = ready.iter().all(|(_, r)| !r);

            for (what, is_ready) in ready {
                if !is_ready {
                    continue;
                }
                match what {
                    Polled::Signals => self.reap(&mut deadline),
                    Polled::Listener => self.channels.accept(self.log),
                    Polled::Channel(i) => {
                        self.channels.list[i].flush();
                        let requests = self.channels.read(i, self.log);
                        self.handle(requests);
                    }
                    Polled::Output(i) => {
                        let time = now();
                        let (sink, log) = (&mut self.sink, self.log);
                        let output = &mut self.io.outputs[i];
                        let stream = output.stream;
                        match output.read(&mut buf, &mut |stream, bytes| {
                            sink.write(stream, bytes, &time, log)
                        }) {
                            Ok(ReadOutcome::Data(n)) if n > 0 => {
                                self.channels.broadcast(stream == Stream::Stdout, &buf[..n])
                            }
                            Ok(_) => {}
                            Err(e) => self.log.error(format!(
                                "Cannot read the container's {}: {e}",
                                stream.as_str()
                            )),
                        }
                    }
                }
            }

            if timed_out && self.exited.is_none() && self.io.all_closed() {
                match waitpid(self.container, Some(WaitPidFlag::WNOHANG)) {
                    Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                        self.exited = Some((status, now()));
                        deadline = Some(Instant::now());
                    }
                    Err(Errno::ECHILD) => {
                        // Not ours to reap: all we can learn is when it is gone.
                        if !not_our_child {
                            not_our_child = true;
                            self.log.error(format!(
                                "The container's process {} is not a child of the shim; its exit status will be unknown",
                                self.container
                            ));
                        }
                        if nix::sys::signal::kill(self.container, None) == Err(Errno::ESRCH) {
                            self.exited = Some((WaitStatus::StillAlive, now()));
                            deadline = Some(Instant::now());
                        }
                    }
                    _ => {}
                }
            }
        }
        let time = now();
        let (sink, log) = (&mut self.sink, self.log);
        for output in self.io.outputs.iter_mut().filter(|o| o.is_open()) {
            output.close(&mut |stream, bytes| sink.write(stream, bytes, &time, log));
        }
        self.exited
            .take()
            .unwrap_or_else(|| (WaitStatus::StillAlive, now()))
    }

    /// After the container: reaps what is left of exec'd processes (the runtime's delete
    /// killed them), reports their exits and sends what waits on the channels, for at
    /// most [`DRAIN_TIMEOUT`].
    fn finish_execs(&mut self) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut none = None;
        loop {
            self.reap(&mut none);
            self.channels.flush();
            self.channels.prune();
            let pending = self.channels.list.iter().any(|c| c.has_outbox());
            if (self.execs.is_empty() && !pending) || Instant::now() >= deadline {
                return;
            }
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            for c in self.channels.list.iter().filter(|c| c.has_outbox()) {
                fds.push(PollFd::new(c.fd(), PollFlags::POLLOUT));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = poll(
                &mut fds,
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
            );
        }
    }
}

pub fn read_pid(path: &Path) -> std::io::Result<Pid> {
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
pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => 255,
    }
}

pub fn describe(status: WaitStatus) -> String {
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
