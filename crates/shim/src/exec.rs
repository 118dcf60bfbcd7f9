//! `exec` processes, shim side: the shim runs `runtime exec --detach` with the stdio the
//! engine sent, becomes the process's parent when the runtime exits (it is a child
//! subreaper), reaps it and reports its exit status on the channel that asked.
//!
//! The shim never copies an exec's input or output: its stdio are the engine's own pipes,
//! or a terminal whose master goes to the engine. So an exec costs the shim a few hundred
//! bytes of bookkeeping, and an engine restart leaves the process running and reaped.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_shim::control::{ExecRequest, FromShim, MAX_FDS};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::channels::Channels;
use crate::console::ConsoleSocket;
use crate::io::RuntimeStdio;
use crate::monitor::{describe, exit_code, read_pid};
use crate::runtime::{last_error_in, Runtime};
use crate::shimlog::ShimLog;

/// How many reaped children of unknown pid are remembered: an exec's process can end
/// before its runtime has exited and told us its pid.
const ORPHANS_KEPT: usize = 64;

struct ExecProc {
    id: String,
    /// The channel that asked, which gets the news.
    channel: u64,
    /// The runtime, until it exits.
    runtime: Option<Pid>,
    /// The process, once started.
    pid: Option<Pid>,
    console: Option<ConsoleSocket>,
    pid_file: PathBuf,
    log: PathBuf,
    process_file: PathBuf,
}

/// The exec processes of the container.
pub struct Execs {
    runtime: Runtime,
    bundle: PathBuf,
    list: Vec<ExecProc>,
    orphans: VecDeque<(Pid, WaitStatus)>,
}

/// An exec id names files in the bundle: nothing but letters and digits.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Execs {
    /// Execs through `runtime`, with their files in `bundle`.
    pub fn new(runtime: Runtime, bundle: &Path) -> Self {
        Self {
            runtime,
            bundle: bundle.to_path_buf(),
            list: Vec::new(),
            orphans: VecDeque::new(),
        }
    }

    /// Whether an exec's process (or runtime) is still around.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Starts `req` with the descriptors that came with it; failures go back to the
    /// channel as [`FromShim::ExecFailed`].
    pub fn start(
        &mut self,
        req: ExecRequest,
        fds: Vec<OwnedFd>,
        channel: u64,
        channels: &mut Channels,
        log: &ShimLog,
    ) {
        let fail = |channels: &mut Channels, message: String| {
            channels.send_to(
                channel,
                &FromShim::ExecFailed {
                    id: req.id.clone(),
                    message,
                },
                Vec::new(),
            );
        };
        let wanted = req.fds.iter().filter(|&&b| b).count();
        if !valid_id(&req.id) || fds.len() != wanted || fds.len() > MAX_FDS {
            return fail(channels, format!("invalid exec request for {:?}", req.id));
        }
        if self.list.iter().any(|e| e.id == req.id) {
            return fail(channels, format!("exec {} is already running", req.id));
        }
        let mut given = fds.into_iter();
        let mut stdio = [Stdio::null(), Stdio::null(), Stdio::null()];
        for (slot, present) in stdio.iter_mut().zip(req.fds) {
            if present {
                if let Some(fd) = given.next() {
                    *slot = Stdio::from(fd);
                }
            }
        }
        let [stdin, stdout, stderr] = stdio;
        let bundle = &self.bundle;
        let pid_file = bundle.join(format!("exec-{}.pid", req.id));
        let exec_log = bundle.join(format!("exec-{}.log", req.id));
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&exec_log);
        let console = if req.tty {
            match ConsoleSocket::bind(&bundle.join(format!("exec-{}.sock", req.id))) {
                Ok(c) => Some(c),
                Err(e) => return fail(channels, format!("cannot create a console socket: {e}")),
            }
        } else {
            None
        };
        let spawned = self.runtime.spawn_exec(
            &req.process,
            &pid_file,
            &exec_log,
            console.as_ref().map(|c| c.arg()),
            RuntimeStdio {
                stdin,
                stdout,
                stderr,
            },
        );
        match spawned {
            Ok(pid) => self.list.push(ExecProc {
                id: req.id,
                channel,
                runtime: Some(Pid::from_raw(pid as i32)),
                pid: None,
                console,
                pid_file,
                log: exec_log,
                process_file: req.process,
            }),
            Err(e) => {
                log.error(format!("Cannot run the runtime for exec {}: {e}", req.id));
                fail(channels, format!("cannot run the runtime: {e}"));
            }
        }
    }

    /// Handles a reaped child; `false` when it is none of ours (it is then remembered in
    /// case an exec's runtime names it later).
    pub fn on_exit(
        &mut self,
        pid: Pid,
        status: WaitStatus,
        channels: &mut Channels,
        log: &ShimLog,
    ) -> bool {
        if let Some(i) = self.list.iter().position(|e| e.runtime == Some(pid)) {
            self.runtime_exited(i, status, channels, log);
            return true;
        }
        if let Some(i) = self.list.iter().position(|e| e.pid == Some(pid)) {
            let e = self.list.remove(i);
            channels.send_to(
                e.channel,
                &FromShim::ExecExited {
                    id: e.id,
                    exit_code: exit_code(status),
                },
                Vec::new(),
            );
            return true;
        }
        if self.orphans.len() == ORPHANS_KEPT {
            self.orphans.pop_front();
        }
        self.orphans.push_back((pid, status));
        false
    }

    fn runtime_exited(
        &mut self,
        i: usize,
        status: WaitStatus,
        channels: &mut Channels,
        log: &ShimLog,
    ) {
        let e = &mut self.list[i];
        e.runtime = None;
        let started = matches!(status, WaitStatus::Exited(_, 0));
        let outcome = if started {
            let console = match e.console.take() {
                Some(sock) => sock.receive().map(Some),
                None => Ok(None),
            };
            console.and_then(|console| read_pid(&e.pid_file).map(|pid| (console, pid)))
        } else {
            Err(std::io::Error::other(last_error_in(&e.log).unwrap_or_else(
                || format!("the runtime {}", describe(status)),
            )))
        };
        for f in [&e.pid_file, &e.log, &e.process_file] {
            let _ = std::fs::remove_file(f);
        }
        e.console = None;
        match outcome {
            Ok((console, pid)) => {
                if let Some(master) = console {
                    channels.send_to(
                        e.channel,
                        &FromShim::ExecConsole { id: e.id.clone() },
                        vec![master],
                    );
                }
                channels.send_to(
                    e.channel,
                    &FromShim::ExecStarted {
                        id: e.id.clone(),
                        pid: pid.as_raw(),
                    },
                    Vec::new(),
                );
                e.pid = Some(pid);
                if let Some(j) = self.orphans.iter().position(|(p, _)| *p == pid) {
                    let (_, status) = self.orphans.remove(j).unwrap_or((pid, status));
                    self.on_exit(pid, status, channels, log);
                }
            }
            Err(err) => {
                let e = self.list.remove(i);
                if started {
                    log.error(format!(
                        "Exec {} started but cannot be followed: {err}",
                        e.id
                    ));
                }
                channels.send_to(
                    e.channel,
                    &FromShim::ExecFailed {
                        id: e.id,
                        message: err.to_string(),
                    },
                    Vec::new(),
                );
            }
        }
    }
}
