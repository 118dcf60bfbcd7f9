//! `attach` and `resize`: clients on a container's stdio while it runs.
//!
//! A session gets the container's live output from its shim (through the container's
//! [`ShimLink`]) and, with stdin, writes the client's input to the container's stdin.
//! A session opened before the container starts (as `docker run` and `start -a` do) waits
//! in [`Streams`] and is handed to the link at start, so it sees the first byte; input
//! that arrives before the start waits too. Several sessions may share a container.
//!
//! When the client's input ends: without a terminal and with `StdinOnce`, the container's
//! stdin is closed and output keeps flowing until it exits; otherwise the session just
//! ends (Docker's rules). With a terminal the detach keys end the session too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use api_types::detach::{parse_detach_keys, DetachDetector};
use tokio::sync::{mpsc, watch};

use super::link::{ShimLink, Subscriber};
use super::logs::LogChunk;
use super::{Container, ContainerError, Status};
use crate::engine::{Engine, EngineError};
use crate::{Caller, ErrorKind};

/// How many pieces of output may wait for a slow client before the container waits.
const OUTPUT_DEPTH: usize = 16;
/// How many pieces of a client's input may wait before the client waits.
const INPUT_DEPTH: usize = 16;

/// Failures of attach and resize, in Docker's words.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("You cannot attach to a paused container, unpause it first")]
    Paused,
    #[error("You cannot attach to a restarting container, wait until it is running")]
    Restarting,
    #[error("Invalid detach keys ({keys}) provided")]
    DetachKeys { keys: String },
    #[error("Cannot reach the shim of container {id}")]
    Link {
        id: String,
        #[source]
        source: std::io::Error,
    },
}

impl AttachError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Paused | Self::Restarting => ErrorKind::Conflict,
            Self::DetachKeys { .. } => ErrorKind::InvalidArgument,
            Self::Link { .. } => ErrorKind::Internal,
        }
    }
}

/// What an attach connects.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// `--detach-keys`; `None` or empty for ctrl-p,ctrl-q.
    pub detach_keys: Option<String>,
}

/// A live attach: output until the container's current (or next) run ends or the session
/// is detached, and the way in to its stdin.
pub struct AttachSession {
    /// Whether the container has a terminal (output is one raw stream).
    pub tty: bool,
    pub output: mpsc::Receiver<LogChunk>,
    /// With `stdin`: the client's input. Dropping it is the client's end of input.
    pub input: Option<AttachInput>,
}

/// The client's input to a session.
pub struct AttachInput {
    tx: mpsc::Sender<Vec<u8>>,
}

impl AttachInput {
    /// Passes input on; waits while earlier input has not been taken (back-pressure).
    /// `false` once the session takes no more input.
    pub async fn write(&self, bytes: Vec<u8>) -> bool {
        self.tx.send(bytes).await.is_ok()
    }

    /// Passes on everything `from` gives until its end (or an error), or until the session
    /// takes no more input. Dropping `self` afterwards is the client's end of input.
    pub async fn copy_from<R: tokio::io::AsyncRead + Unpin>(&self, mut from: R) {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !self.write(buf[..n].to_vec()).await {
                        return;
                    }
                }
            }
        }
    }

    /// A pair for sessions whose input is pumped by the engine itself.
    pub(crate) fn channel() -> (Self, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(INPUT_DEPTH);
        (Self { tx }, rx)
    }
}

/// A container's live link and the sessions waiting for its next start.
#[derive(Default)]
pub(crate) struct Streams {
    inner: Mutex<StreamsInner>,
    /// Bumped whenever a link is set.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct StreamsInner {
    link: Option<Arc<ShimLink>>,
    waiting: BTreeMap<u64, Subscriber>,
    next: u64,
}

impl Streams {
    /// The current link, if it is still open.
    pub fn link(&self) -> Option<Arc<ShimLink>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .link
            .clone()
            .filter(|l| !l.is_closed())
    }

    /// Installs the link of a new run, handing it the sessions that waited for it.
    pub fn set_link(&self, link: Arc<ShimLink>) {
        {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            for (id, sub) in std::mem::take(&mut inner.waiting) {
                link.subscribe(id, sub);
            }
            inner.link = Some(link);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Registers a session's output: on `link`, or waiting for the next one.
    fn add(&self, link: Option<&Arc<ShimLink>>, sub: Subscriber) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next += 1;
        let id = inner.next;
        match link {
            Some(link) => {
                link.subscribe(id, sub);
            }
            None => {
                inner.waiting.insert(id, sub);
            }
        }
        id
    }

    /// Ends a session's output.
    pub fn end(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.waiting.remove(&id).is_none() {
            if let Some(link) = &inner.link {
                link.unsubscribe(id);
            }
        }
    }

    /// Drops the sessions still waiting (the container is gone).
    pub fn close_waiting(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting
            .clear();
    }
}

impl Engine {
    /// Attaches to a container (`POST /containers/{id}/attach`): a running one from now
    /// on, a stopped one from its next start.
    pub async fn attach_container(
        &self,
        caller: &Caller,
        name: &str,
        opts: AttachOptions,
    ) -> Result<AttachSession, EngineError> {
        let container = self.find(name)?;
        self.refresh(&container).await;
        let rec = container.snapshot();
        match rec.state.status {
            Status::Paused => return Err(AttachError::Paused.into()),
            Status::Restarting => return Err(AttachError::Restarting.into()),
            _ => {}
        }
        let keys = opts.detach_keys.as_deref().unwrap_or("");
        let keys = parse_detach_keys(keys).map_err(|_| AttachError::DetachKeys {
            keys: keys.to_string(),
        })?;
        let link = if rec.state.status == Status::Running {
            Some(self.ensure_link(&container)?)
        } else {
            None
        };
        let (tx, output) = mpsc::channel(OUTPUT_DEPTH);
        let id = container.streams.add(
            link.as_ref(),
            Subscriber {
                stdout: opts.stdout,
                stderr: opts.stderr,
                tx,
            },
        );
        self.events.emit(
            caller,
            "container",
            "attach",
            &container.id,
            container.event_attributes(),
        );
        let tty = rec.config.tty;
        let input = if opts.stdin {
            let (input, rx) = AttachInput::channel();
            let stdin_once = rec.config.stdin_once;
            let on_detach = self.self_arc().map(|engine| (engine, *caller));
            tokio::spawn(forward_input(
                container.clone(),
                id,
                rx,
                tty,
                stdin_once,
                keys,
                on_detach,
            ));
            Some(input)
        } else {
            None
        };
        Ok(AttachSession { tty, output, input })
    }

    /// Sets a running container's terminal size (`POST /containers/{id}/resize`); the
    /// kernel signals SIGWINCH to its foreground process. A container without a terminal
    /// ignores it, as with Docker.
    pub async fn resize_container(
        &self,
        _caller: &Caller,
        name: &str,
        height: u16,
        width: u16,
    ) -> Result<(), EngineError> {
        let container = self.find(name)?;
        self.refresh(&container).await;
        let rec = container.snapshot();
        if !rec.state.status.is_running() {
            return Err(ContainerError::NotRunning {
                id: container.id.clone(),
            }
            .into());
        }
        if !rec.config.tty {
            return Ok(());
        }
        let link = self.ensure_link(&container)?;
        link.resize(height, width)
            .await
            .map_err(|source| AttachError::Link {
                id: container.id.clone(),
                source,
            })?;
        Ok(())
    }

    /// The running container's link, connecting to its shim when this engine has none
    /// (it was restarted, or runs daemonless).
    pub(crate) fn ensure_link(
        &self,
        container: &Arc<Container>,
    ) -> Result<Arc<ShimLink>, AttachError> {
        if let Some(link) = container.streams.link() {
            return Ok(link);
        }
        let link = ShimLink::connect(&container.run_dir).map_err(|source| AttachError::Link {
            id: container.id.clone(),
            source,
        })?;
        container.streams.set_link(link.clone());
        Ok(link)
    }
}

/// Waits for the container's running link: the current one, or the next run's. `None`
/// when the container is removed first.
async fn wait_for_link(container: &Container) -> Option<Arc<ShimLink>> {
    let mut changed = container.streams.changed.subscribe();
    let mut life = container.lifecycle.subscribe();
    loop {
        if let Some(link) = container.streams.link() {
            return Some(link);
        }
        if life.borrow_and_update().removed {
            return None;
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return None },
            r = life.changed() => if r.is_err() { return None },
        }
    }
}

/// Moves a session's input to the container's stdin, watching for the detach keys (with
/// a terminal) and applying Docker's end-of-input rules.
async fn forward_input(
    container: Arc<Container>,
    session: u64,
    mut rx: mpsc::Receiver<Vec<u8>>,
    tty: bool,
    stdin_once: bool,
    keys: Vec<u8>,
    on_detach: Option<(Arc<Engine>, Caller)>,
) {
    let mut detector = DetachDetector::new(if tty { keys } else { Vec::new() });
    let mut writer = None;
    while let Some(bytes) = rx.recv().await {
        let (pass, detached) = detector.feed(&bytes);
        if !pass.is_empty() {
            if writer.is_none() {
                let Some(link) = wait_for_link(&container).await else {
                    return;
                };
                writer = link.stdin().await.map(|w| (link, w));
            }
            // A container without stdin takes no input: it is dropped, as with Docker.
            if let Some((_, w)) = &writer {
                if w.write_all(&pass).await.is_err() {
                    writer = None;
                }
            }
        }
        if detached {
            container.streams.end(session);
            if let Some((engine, caller)) = on_detach {
                engine.events.emit(
                    &caller,
                    "container",
                    "detach",
                    &container.id,
                    container.event_attributes(),
                );
            }
            return;
        }
    }
    if stdin_once && !tty {
        let link = match writer {
            Some((link, _)) => Some(link),
            None => wait_for_link(&container).await,
        };
        if let Some(link) = link {
            link.close_stdin().await;
        }
    } else {
        container.streams.end(session);
    }
}
