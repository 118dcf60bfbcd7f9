//! `exec`: more processes in a running container.
//!
//! The engine writes the process as an OCI `process` file (the container's own process
//! from its bundle, with the exec's command, environment, user, working directory and
//! terminal, and every capability berth may give with `Privileged`, as dockerd does) and asks the
//! container's shim, over a channel of the exec's own, to run `runtime exec --detach`
//! with stdio the engine made: pipes it reads and writes itself, or a terminal whose
//! master the shim sends back. The shim, a child subreaper, reaps the process and reports
//! its exit, so the process joins every namespace and the cgroup of the container,
//! works the same with runc and berth-runtime, and is reaped even if the engine restarts
//! meanwhile (its streams end then, as with dockerd).
//!
//! The exit code is recorded before the output stream ends: the docker CLI inspects the
//! exec as soon as its stream closes.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_types::detach::{parse_detach_keys, DetachDetector};
use api_types::{ExecCreateRequest, ExecInspect, ExecProcessConfig, ExecStartRequest};
use nix::fcntl::OFlag;
use serde_json::{json, Value};
use shim::control::{ExecRequest, FromShim, ToShim};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::attach::AttachInput;
use super::create::DEFAULT_PATH;
use super::link::{async_fd, set_nonblocking, Channel};
use super::logs::{LogChunk, LogStream};
use super::{now_rfc3339, Container, ContainerError, Status};
use crate::engine::{Engine, EngineError};
use crate::rootfs;
use crate::{Caller, ErrorKind};

/// How long output may stay open once an exec's process has ended (a process it left
/// behind can hold its pipes).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long finished execs stay inspectable (dockerd's collector runs every 5 minutes).
const KEEP_FINISHED: Duration = Duration::from_secs(300);
/// How long a resize waits for the exec's process to start, as dockerd.
const RESIZE_WAIT: Duration = Duration::from_secs(10);
/// Output pieces that may wait for a slow client.
const OUTPUT_DEPTH: usize = 16;

/// Failures of exec operations, in Docker's words.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("No such exec instance: {id}")]
    NotFound { id: String },
    #[error("Container {id} is paused, unpause the container before exec")]
    Paused { id: String },
    #[error("Container {id} is restarting, wait until the container is running")]
    Restarting { id: String },
    #[error("No exec command specified")]
    NoCommand,
    #[error("Error: Exec command {id} is already running")]
    AlreadyRunning { id: String },
    #[error("Error: Exec command {id} has already run")]
    AlreadyRan { id: String },
    /// dockerd's words for exec (attach says "detach keys").
    #[error("Invalid escape keys ({keys}) provided")]
    DetachKeys { keys: String },
    #[error("{message}")]
    StartFailed { message: String, code: i64 },
    #[error("timeout waiting for exec session ready")]
    NotReady,
}

impl ExecError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Paused { .. }
            | Self::Restarting { .. }
            | Self::AlreadyRunning { .. }
            | Self::AlreadyRan { .. } => ErrorKind::Conflict,
            Self::NoCommand | Self::DetachKeys { .. } => ErrorKind::InvalidArgument,
            Self::StartFailed { code, .. } if *code == 126 || *code == 127 => {
                ErrorKind::InvalidArgument
            }
            Self::StartFailed { .. } | Self::NotReady => ErrorKind::Internal,
        }
    }
}

/// One exec.
pub(crate) struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecCreateRequest,
    state: Mutex<ExecState>,
    /// Set once the process has started or failed to.
    ready: watch::Sender<bool>,
}

#[derive(Default)]
struct ExecState {
    started: bool,
    running: bool,
    exit_code: Option<i64>,
    pid: i32,
    console: Option<Arc<AsyncFd<OwnedFd>>>,
    finished: Option<Instant>,
}

impl Exec {
    fn state(&self) -> std::sync::MutexGuard<'_, ExecState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Created or running: what a container's `ExecIDs` lists.
    fn is_live(&self) -> bool {
        self.state().exit_code.is_none()
    }

    /// The command as one string, for events.
    fn command_line(&self) -> String {
        self.config.cmd.clone().unwrap_or_default().join(" ")
    }
}

/// Every exec the engine knows, by id.
#[derive(Default)]
pub(crate) struct ExecStore {
    map: Mutex<HashMap<String, Arc<Exec>>>,
}

impl ExecStore {
    fn get(&self, id: &str) -> Option<Arc<Exec>> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn insert(&self, exec: Arc<Exec>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, e| {
            e.state()
                .finished
                .is_none_or(|at| at.elapsed() < KEEP_FINISHED)
        });
        map.insert(exec.id.clone(), exec);
    }

    /// Forgets a container's execs (it was removed).
    pub fn forget(&self, container_id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.container_id != container_id);
    }

    /// The ids of a container's created and running execs; `None` when there are none
    /// (inspect shows `null`).
    pub fn live_ids(&self, container_id: &str) -> Option<Vec<String>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<String> = map
            .values()
            .filter(|e| e.container_id == container_id && e.is_live())
            .map(|e| e.id.clone())
            .collect();
        (!ids.is_empty()).then_some(ids)
    }
}

/// An attached exec: its output (raw with `tty`, else by stream) and its input.
pub struct ExecSession {
    /// Whether the output is raw (the start request's `Tty`).
    pub tty: bool,
    pub output: mpsc::Receiver<LogChunk>,
    pub input: Option<AttachInput>,
}

/// Docker's exit code for an exec that could not start (dockerd's
/// `translateContainerdStartErr`): 127 when the error names the program and says it is
/// not there, 126 for everything else (permission denied, a bad working directory, …).
fn start_failure_code(message: &str, program: &str) -> i64 {
    let m = message.to_ascii_lowercase();
    let program = program.to_ascii_lowercase();
    if m.contains(&program)
        && (m.contains("executable file not found") || m.contains("no such file or directory"))
    {
        127
    } else {
        126
    }
}

impl Engine {
    /// Registers an exec (`POST /containers/{id}/exec`); returns its id.
    pub async fn create_exec(
        &self,
        caller: &Caller,
        name: &str,
        req: ExecCreateRequest,
    ) -> Result<String, EngineError> {
        let container = self.find(name)?;
        self.refresh(&container).await;
        self.check_exec_target(&container)?;
        if req.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(ExecError::NoCommand.into());
        }
        parse_detach_keys(&req.detach_keys).map_err(|_| ExecError::DetachKeys {
            keys: req.detach_keys.clone(),
        })?;
        let exec = Arc::new(Exec {
            id: super::new_id(),
            container_id: container.id.clone(),
            config: req,
            state: Mutex::new(ExecState::default()),
            ready: watch::channel(false).0,
        });
        self.execs.insert(exec.clone());
        let mut attrs = container.event_attributes();
        attrs.insert("execID".into(), exec.id.clone());
        self.events.emit(
            caller,
            "container",
            &format!("exec_create: {}", exec.command_line()),
            &container.id,
            attrs,
        );
        Ok(exec.id.clone())
    }

    fn check_exec_target(&self, container: &Container) -> Result<(), EngineError> {
        match container.snapshot().state.status {
            Status::Running => Ok(()),
            Status::Paused => Err(ExecError::Paused {
                id: container.id.clone(),
            }
            .into()),
            Status::Restarting => Err(ExecError::Restarting {
                id: container.id.clone(),
            }
            .into()),
            _ => Err(ContainerError::NotRunning {
                id: container.id.clone(),
            }
            .into()),
        }
    }

    fn find_exec(&self, id: &str) -> Result<(Arc<Exec>, Arc<Container>), EngineError> {
        let exec = self
            .execs
            .get(id)
            .ok_or_else(|| ExecError::NotFound { id: id.into() })?;
        match self.find(&exec.container_id) {
            Ok(c) => Ok((exec, c)),
            Err(_) => {
                self.execs.forget(&exec.container_id);
                Err(ExecError::NotFound { id: id.into() }.into())
            }
        }
    }

    /// Starts an exec (`POST /exec/{id}/start`). Detached, it returns once the process
    /// runs (`None`); attached, at once with the session, and a failure to start shows in
    /// the output (with exit code 126 or 127), as with dockerd.
    pub async fn start_exec(
        &self,
        caller: &Caller,
        id: &str,
        opts: ExecStartRequest,
    ) -> Result<Option<ExecSession>, EngineError> {
        let (exec, container) = self.find_exec(id)?;
        self.refresh(&container).await;
        {
            let mut st = exec.state();
            if st.exit_code.is_some() {
                return Err(ExecError::AlreadyRan {
                    id: exec.id.clone(),
                }
                .into());
            }
            if st.started {
                return Err(ExecError::AlreadyRunning {
                    id: exec.id.clone(),
                }
                .into());
            }
            self.check_exec_target(&container)?;
            st.started = true;
        }
        let engine = self.self_arc().ok_or_else(|| {
            ContainerError::io(
                "The engine is shutting down",
                std::io::ErrorKind::Other.into(),
            )
        })?;
        let caller = *caller;
        let (started_tx, started_rx) = oneshot::channel();
        if opts.detach {
            tokio::spawn(run_exec(
                engine, caller, container, exec, None, None, started_tx,
            ));
            return match started_rx.await {
                Ok(Ok(())) => Ok(None),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(ExecError::StartFailed {
                    message: "the exec ended before it started".into(),
                    code: 126,
                }
                .into()),
            };
        }
        let (out_tx, output) = mpsc::channel(OUTPUT_DEPTH);
        let (input, in_rx) = if exec.config.attach_stdin {
            let (input, rx) = AttachInput::channel();
            (Some(input), Some(rx))
        } else {
            (None, None)
        };
        tokio::spawn(run_exec(
            engine,
            caller,
            container,
            exec,
            Some(out_tx),
            in_rx,
            started_tx,
        ));
        Ok(Some(ExecSession {
            tty: opts.tty,
            output,
            input,
        }))
    }

    /// Resizes an exec's terminal (`POST /exec/{id}/resize`), waiting up to 10 s for its
    /// process to start; an exec without a terminal ignores it.
    pub async fn resize_exec(
        &self,
        _caller: &Caller,
        id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), EngineError> {
        let (exec, container) = self.find_exec(id)?;
        let mut ready = exec.ready.subscribe();
        if !*ready.borrow() {
            self.check_exec_target(&container)?;
        }
        match tokio::time::timeout(RESIZE_WAIT, ready.wait_for(|r| *r)).await {
            Ok(_) => {}
            Err(_) => return Err(ExecError::NotReady.into()),
        }
        let console = exec.state().console.clone();
        if let Some(master) = console {
            // A terminal whose process is gone cannot be resized, and need not be.
            let _ = resize(master.get_ref().as_fd(), height, width);
        }
        Ok(())
    }

    /// An exec's state (`GET /exec/{id}/json`).
    pub fn inspect_exec(&self, _caller: &Caller, id: &str) -> Result<ExecInspect, EngineError> {
        let (exec, _) = self.find_exec(id)?;
        let st = exec.state();
        let cmd = exec.config.cmd.clone().unwrap_or_default();
        let (entrypoint, arguments) = match cmd.split_first() {
            Some((first, rest)) => (first.clone(), rest.to_vec()),
            None => (String::new(), Vec::new()),
        };
        Ok(ExecInspect {
            id: exec.id.clone(),
            running: st.running,
            exit_code: st.exit_code,
            process_config: ExecProcessConfig {
                tty: exec.config.tty,
                entrypoint,
                arguments,
                privileged: Some(exec.config.privileged),
                user: exec.config.user.clone(),
            },
            open_stdin: exec.config.attach_stdin,
            open_stderr: exec.config.attach_stderr,
            open_stdout: exec.config.attach_stdout,
            can_remove: false,
            container_id: exec.container_id.clone(),
            detach_keys: exec.config.detach_keys.clone(),
            pid: i64::from(st.pid),
        })
    }
}

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

/// Sets a terminal's size; its foreground process group gets SIGWINCH.
#[allow(unsafe_code)]
pub(crate) fn resize(
    master: std::os::fd::BorrowedFd<'_>,
    height: u16,
    width: u16,
) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from a pointer valid for the call; on a
    // descriptor that is not a terminal the ioctl just fails.
    unsafe { set_winsize(master.as_raw_fd(), &ws) }.map(drop)
}

/// Replaces or appends `KEY=value` entries, as dockerd merges environments.
fn merge_env(base: &mut Vec<String>, overrides: &[String]) {
    for e in overrides {
        let key = e.split('=').next().unwrap_or(e);
        match base.iter_mut().find(|b| b.split('=').next() == Some(key)) {
            // `KEY` without `=` keeps the value it had, as dockerd does.
            Some(b) if e.contains('=') => *b = e.clone(),
            Some(_) => {}
            None => base.push(e.clone()),
        }
    }
}

/// The exec's OCI process: the container's process from its bundle with the exec's
/// settings. Runs blocking file reads (small ones).
fn process_spec(container: &Container, exec: &Exec) -> Result<Value, String> {
    let rec = container.snapshot();
    let spec_path = container.run_dir.join("config.json");
    let spec: Value = std::fs::read(&spec_path)
        .map_err(|e| format!("cannot read {}: {e}", spec_path.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))?;
    let mut process = spec["process"].clone();
    let root = Path::new(spec["root"]["path"].as_str().unwrap_or("/"));
    let cfg = &exec.config;

    let user_spec = if cfg.user.is_empty() {
        rec.config.user.clone()
    } else {
        cfg.user.clone()
    };
    let passwd = rootfs::read_in_root(root, Path::new("/etc/passwd"))
        .ok()
        .flatten();
    let group = rootfs::read_in_root(root, Path::new("/etc/group"))
        .ok()
        .flatten();
    let user = rootfs::resolve_user(&user_spec, passwd.as_deref(), group.as_deref())
        .map_err(|e| e.to_string())?;

    // dockerd's CreateDaemonEnvironment, then the container's and the exec's own.
    let mut env = vec![
        DEFAULT_PATH.to_string(),
        format!("HOSTNAME={}", rec.config.hostname),
    ];
    if cfg.tty {
        env.push("TERM=xterm".into());
    }
    merge_env(&mut env, rec.config.env.as_deref().unwrap_or_default());
    merge_env(&mut env, cfg.env.as_deref().unwrap_or_default());
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = [&cfg.working_dir, &rec.config.working_dir]
        .into_iter()
        .find(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| "/".into());

    process["args"] = json!(cfg.cmd.clone().unwrap_or_default());
    process["env"] = json!(env);
    process["cwd"] = json!(cwd);
    process["terminal"] = json!(cfg.tty);
    process["user"] = json!({
        "uid": user.uid,
        "gid": user.gid,
        "additionalGids": user.additional_gids,
    });
    if cfg.privileged {
        let all = crate::spec::grantable_capabilities();
        process["capabilities"] = json!({
            "bounding": all, "effective": all, "permitted": all,
            "inheritable": [], "ambient": [],
        });
    }
    if let Some(obj) = process.as_object_mut() {
        obj.remove("consoleSize");
    }
    Ok(process)
}

/// What the task's pipes and terminal are.
struct ExecStdio {
    /// Sent to the shim (the process's ends), in stdin, stdout, stderr order.
    child: Vec<OwnedFd>,
    present: [bool; 3],
    stdin: Option<tokio::net::unix::pipe::Sender>,
    stdout: Option<tokio::net::unix::pipe::Receiver>,
    stderr: Option<tokio::net::unix::pipe::Receiver>,
}

fn make_stdio(cfg: &ExecCreateRequest, attached: bool) -> std::io::Result<ExecStdio> {
    let mut io = ExecStdio {
        child: Vec::new(),
        present: [false; 3],
        stdin: None,
        stdout: None,
        stderr: None,
    };
    if cfg.tty {
        return Ok(io);
    }
    if attached && cfg.attach_stdin {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        io.child.push(r);
        io.present[0] = true;
        io.stdin = Some(tokio::net::unix::pipe::Sender::from_owned_fd(w)?);
    }
    if attached && cfg.attach_stdout {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        io.child.push(w);
        io.present[1] = true;
        io.stdout = Some(tokio::net::unix::pipe::Receiver::from_owned_fd(r)?);
    }
    if attached && cfg.attach_stderr {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        io.child.push(w);
        io.present[2] = true;
        io.stderr = Some(tokio::net::unix::pipe::Receiver::from_owned_fd(r)?);
    }
    Ok(io)
}

/// Where a piece of the exec's output goes.
struct Output {
    tx: Option<mpsc::Sender<LogChunk>>,
}

impl Output {
    async fn send(&mut self, stream: LogStream, bytes: &[u8]) {
        if let Some(tx) = &self.tx {
            let chunk = LogChunk {
                stream,
                bytes: bytes.to_vec(),
                time: now_rfc3339(),
            };
            if tx.send(chunk).await.is_err() {
                // The client is gone; the process runs on, as with dockerd.
                self.tx = None;
            }
        }
    }
}

/// Reads a terminal master: `Ok(0)` at its end (EIO once the process side is closed).
async fn read_master(master: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut guard = master.readable().await?;
        match guard.try_io(|fd| {
            nix::unistd::read(fd.get_ref().as_raw_fd(), buf).map_err(std::io::Error::from)
        }) {
            Ok(Ok(n)) => return Ok(n),
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

async fn write_master(master: &AsyncFd<OwnedFd>, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let mut guard = master.writable().await?;
        match guard
            .try_io(|fd| nix::unistd::write(fd.get_ref(), bytes).map_err(std::io::Error::from))
        {
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// The next message of an optional receiver; pending forever when there is none.
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads one piece from an optional pipe; pending forever when there is none.
async fn read_pipe(
    pipe: &mut Option<tokio::net::unix::pipe::Receiver>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn read_console(
    master: &Option<Arc<AsyncFd<OwnedFd>>>,
    open: bool,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match master {
        Some(m) if open => read_master(m, buf).await,
        _ => std::future::pending().await,
    }
}

/// Runs an exec from start to exit: the process file, the stdio, the shim's channel, the
/// output, and the exit code (recorded before the output's end).
async fn run_exec(
    engine: Arc<Engine>,
    caller: Caller,
    container: Arc<Container>,
    exec: Arc<Exec>,
    out_tx: Option<mpsc::Sender<LogChunk>>,
    in_rx: Option<mpsc::Receiver<Vec<u8>>>,
    started: oneshot::Sender<Result<(), ExecError>>,
) {
    let attached = out_tx.is_some();
    let mut output = Output { tx: out_tx };
    let program = exec
        .config
        .cmd
        .as_ref()
        .and_then(|c| c.first())
        .cloned()
        .unwrap_or_default();
    let fail = |message: String| {
        let code = start_failure_code(&message, &program);
        ExecError::StartFailed { message, code }
    };

    // Set up and ask the shim.
    let setup = async {
        let process = process_spec(&container, &exec)?;
        let path = container.run_dir.join(format!("exec-{}.json", exec.id));
        let bytes = serde_json::to_vec(&process).map_err(|e| e.to_string())?;
        // Read once by the runtime, then removed: no need to survive a crash (no fsync).
        std::fs::write(&path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let io = make_stdio(&exec.config, attached).map_err(|e| e.to_string())?;
        let channel = Channel::connect(&container.run_dir).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            format!("cannot reach the container's shim: {e}")
        })?;
        let req = ExecRequest {
            id: exec.id.clone(),
            process: path,
            tty: exec.config.tty,
            fds: io.present,
        };
        let raw: Vec<_> = io.child.iter().map(|f| f.as_raw_fd()).collect();
        channel
            .send(&ToShim::Exec(req), &raw)
            .await
            .map_err(|e| format!("cannot reach the container's shim: {e}"))?;
        Ok::<_, String>((channel, io))
    };
    let (channel, mut io) = match setup.await {
        Ok((channel, mut io)) => {
            // The process's ends now live in the shim (and soon the process).
            io.child.clear();
            (channel, io)
        }
        Err(message) => {
            return finish_failed(&engine, &exec, &mut output, started, fail(message)).await;
        }
    };

    // Wait for the start.
    let mut master: Option<Arc<AsyncFd<OwnedFd>>> = None;
    let pid = loop {
        match channel.recv().await {
            Ok(Some((FromShim::ExecConsole { .. }, mut fds))) => {
                if let Some(fd) = fds.pop() {
                    if set_nonblocking(&fd).is_ok() {
                        if let Ok(m) = async_fd(fd) {
                            let m = Arc::new(m);
                            exec.state().console = Some(m.clone());
                            master = Some(m);
                        }
                    }
                }
            }
            Ok(Some((FromShim::ExecStarted { pid, .. }, _))) => break pid,
            Ok(Some((FromShim::ExecFailed { message, .. }, _))) => {
                let message = format!("OCI runtime exec failed: {message}: unknown");
                return finish_failed(&engine, &exec, &mut output, started, fail(message)).await;
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => {
                let e = fail(format!("Container {} is not running", container.id));
                return finish_failed(&engine, &exec, &mut output, started, e).await;
            }
        }
    };
    {
        let mut st = exec.state();
        st.running = true;
        st.pid = pid;
    }
    exec.ready.send_replace(true);
    let _ = started.send(Ok(()));
    let mut attrs = container.event_attributes();
    attrs.insert("execID".into(), exec.id.clone());
    engine.events.emit(
        &caller,
        "container",
        &format!("exec_start: {}", exec.command_line()),
        &container.id,
        attrs.clone(),
    );

    // Input goes in a task of its own: a process that stops reading its stdin must not
    // stop us reading its output (nor the other way round).
    // `true` when the detach keys ended the session, `false` for the end of its input.
    let (ended_tx, ended_rx) = mpsc::channel::<bool>(1);
    let mut ended_rx = in_rx.is_some().then_some(ended_rx);
    if let Some(rx) = in_rx {
        let keys = parse_detach_keys(&exec.config.detach_keys).unwrap_or_default();
        tokio::spawn(forward_exec_input(
            rx,
            io.stdin.take(),
            master.clone(),
            keys,
            ended_tx,
        ));
    } else {
        drop(ended_tx);
        drop(io.stdin.take());
    }

    // Output until the process has exited and the output has ended.
    let (mut out_buf, mut err_buf, mut tty_buf) = (
        vec![0u8; 32 * 1024],
        vec![0u8; 32 * 1024],
        vec![0u8; 32 * 1024],
    );
    let mut exit: Option<i64> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut console_open = master.is_some();
    let mut channel_open = true;
    loop {
        let outputs_done = io.stdout.is_none() && io.stderr.is_none() && !console_open;
        if exit.is_some() && outputs_done {
            break;
        }
        if exit.is_none() && !channel_open {
            // The shim went away without a word: the container (and the process) ended.
            exit = Some(137);
            record_exit(&engine, &caller, &container, &exec, 137, &attrs);
            deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = channel.recv(), if channel_open => match ev {
                Ok(Some((FromShim::ExecExited { exit_code, .. }, _))) => {
                    exit = Some(i64::from(exit_code));
                    record_exit(&engine, &caller, &container, &exec, exit_code.into(), &attrs);
                    deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                    channel_open = false;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => channel_open = false,
            },
            n = read_pipe(&mut io.stdout, &mut out_buf) => match n {
                Ok(n) if n > 0 => output.send(LogStream::Stdout, &out_buf[..n]).await,
                _ => io.stdout = None,
            },
            n = read_pipe(&mut io.stderr, &mut err_buf) => match n {
                Ok(n) if n > 0 => output.send(LogStream::Stderr, &err_buf[..n]).await,
                _ => io.stderr = None,
            },
            n = read_console(&master, console_open, &mut tty_buf) => match n {
                Ok(n) if n > 0 => output.send(LogStream::Stdout, &tty_buf[..n]).await,
                _ => console_open = false,
            },
            ended = recv_opt(&mut ended_rx), if output.tx.is_some() => {
                if let Some(detached) = ended {
                    // Detached, or input ended on a terminal: this client's stream ends,
                    // the process runs on (dockerd's rules).
                    output.tx = None;
                    if detached {
                        engine.events.emit(
                            &caller,
                            "container",
                            "exec_detach",
                            &container.id,
                            attrs.clone(),
                        );
                    }
                }
                ended_rx = None;
            }
            () = sleep => break,
        }
    }
    // `exit` is recorded; dropping the sender now ends the client's stream.
    exec.state().console = None;
    drop(output);
}

/// Records the exit: inspect shows it from now on.
fn record_exit(
    engine: &Engine,
    caller: &Caller,
    container: &Container,
    exec: &Exec,
    code: i64,
    attrs: &std::collections::BTreeMap<String, String>,
) {
    {
        let mut st = exec.state();
        st.running = false;
        st.exit_code = Some(code);
        st.finished = Some(Instant::now());
    }
    let mut attrs = attrs.clone();
    attrs.insert("exitCode".into(), code.to_string());
    engine
        .events
        .emit(caller, "container", "exec_die", &container.id, attrs);
}

/// An exec that did not start: its code is recorded, and an attached client reads the
/// error as dockerd writes it (on stdout, ending with `\r\n`).
async fn finish_failed(
    _engine: &Engine,
    exec: &Exec,
    output: &mut Output,
    started: oneshot::Sender<Result<(), ExecError>>,
    err: ExecError,
) {
    let code = match &err {
        ExecError::StartFailed { code, .. } => *code,
        _ => 126,
    };
    {
        let mut st = exec.state();
        st.exit_code = Some(code);
        st.finished = Some(Instant::now());
    }
    exec.ready.send_replace(true);
    let text = format!("{err}\r\n");
    let _ = started.send(Err(err));
    output.send(LogStream::Stdout, text.as_bytes()).await;
}

/// Moves a client's input to the exec: its stdin pipe (closed at the client's end of
/// input) or its terminal (where end of input, or the detach keys, end the session).
async fn forward_exec_input(
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut pipe: Option<tokio::net::unix::pipe::Sender>,
    master: Option<Arc<AsyncFd<OwnedFd>>>,
    keys: Vec<u8>,
    ended: mpsc::Sender<bool>,
) {
    let tty = master.is_some();
    let mut detector = DetachDetector::new(if tty { keys } else { Vec::new() });
    while let Some(bytes) = rx.recv().await {
        let (pass, detached) = detector.feed(&bytes);
        if !pass.is_empty() {
            let ok = match (&master, &mut pipe) {
                (Some(m), _) => write_master(m, &pass).await.is_ok(),
                (None, Some(p)) => p.write_all(&pass).await.is_ok(),
                (None, None) => true,
            };
            if !ok {
                break;
            }
        }
        if detached {
            let _ = ended.send(true).await;
            return;
        }
    }
    // End of input: the pipe closes (the process reads EOF); a terminal session ends.
    drop(pipe);
    if tty {
        let _ = ended.send(false).await;
    }
}

impl Engine {
    /// The ids of a container's live execs, for inspect.
    pub(crate) fn exec_ids(&self, container_id: &str) -> Option<Vec<String>> {
        self.execs.live_ids(container_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_merge_as_dockerd_does() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        merge_env(&mut env, &["A=2".into(), "B=3".into(), "PATH".into()]);
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn start_failures_get_docker_codes() {
        let code = start_failure_code;
        assert_eq!(
            code("exec: \"x\": executable file not found in $PATH", "x"),
            127
        );
        assert_eq!(
            code("exec: \"/x\": stat /x: no such file or directory", "/x"),
            127
        );
        assert_eq!(code("exec: \"/etc\": permission denied", "/etc"), 126);
        assert_eq!(code("unable to find user nobody2", "true"), 126);
        let cwd = "chdir to cwd (\"/nope\") set in config.json failed: no such file or directory";
        assert_eq!(code(cwd, "true"), 126);
    }
}
