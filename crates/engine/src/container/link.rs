//! The engine's end of a shim's control channels (see `shim::control`).
//!
//! [`ShimLink`] is the one channel per running container that carries output to attached
//! clients, the container's stdin writer and resizes. It is handed to the shim at start
//! (so nothing the container writes is missed) or, after an engine restart, connected to
//! the shim's attach socket when first needed. Each exec gets a channel of its own
//! ([`Channel::connect`]), so a slow attached client never delays an exec.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use shim::control::{self, FromShim, ToShim, MAX_MESSAGE};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use super::logs::{LogChunk, LogStream};

/// One control channel: packets with descriptors, both ways, without blocking a thread.
pub(crate) struct Channel {
    fd: AsyncFd<OwnedFd>,
}

/// Registers a non-blocking descriptor with the tokio reactor (needs a runtime).
#[allow(unsafe_code)]
pub(crate) fn async_fd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns `fd`, an open descriptor that stays open and unchanged
    // until the AsyncFd is dropped.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

impl Channel {
    /// Wraps a connected, non-blocking channel (needs a tokio runtime).
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        Ok(Self { fd: async_fd(fd)? })
    }

    /// Connects to a shim's attach socket in `run_dir`.
    pub fn connect(run_dir: &Path) -> io::Result<Self> {
        let fd =
            control::connect(&run_dir.join(control::ATTACH_SOCKET)).map_err(io::Error::from)?;
        Self::new(fd)
    }

    /// Sends a message with `fds`.
    pub async fn send(&self, msg: &ToShim, fds: &[RawFd]) -> io::Result<()> {
        let packet = msg.encode();
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| {
                control::send(fd.get_ref().as_fd(), &packet, fds).map_err(io::Error::from)
            }) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends a message now, or fails with `WouldBlock` (for the few packets queued in a
    /// fresh socket pair before the shim runs).
    pub fn send_now(&self, msg: &ToShim) -> io::Result<()> {
        control::send(self.fd.get_ref().as_fd(), &msg.encode(), &[]).map_err(io::Error::from)
    }

    /// The next message and its descriptors; `None` once the shim has closed the channel.
    pub async fn recv(&self) -> io::Result<Option<(FromShim, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let mut guard = self.fd.readable().await?;
            match guard
                .try_io(|fd| control::recv(fd.get_ref().as_fd(), &mut buf).map_err(io::Error::from))
            {
                Ok(Ok(Some(got))) => {
                    let msg = FromShim::decode(&buf[..got.len])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    return Ok(Some((msg, got.fds)));
                }
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Writes to the container's stdin: its pipe, or its terminal's master.
pub(crate) struct StdinWriter {
    fd: tokio::sync::Mutex<Option<AsyncFd<OwnedFd>>>,
    /// The descriptor is the terminal's master.
    tty: bool,
}

impl StdinWriter {
    fn new(fd: OwnedFd, tty: bool) -> io::Result<Self> {
        set_nonblocking(&fd)?;
        Ok(Self {
            fd: tokio::sync::Mutex::new(Some(async_fd(fd)?)),
            tty,
        })
    }

    /// Sets the terminal's size through the master this writer holds, so it has taken
    /// effect when this returns; `None` when it holds no terminal (any more).
    async fn resize(&self, height: u16, width: u16) -> Option<io::Result<()>> {
        if !self.tty {
            return None;
        }
        let guard = self.fd.lock().await;
        let fd = guard.as_ref()?;
        Some(super::exec::resize(fd.get_ref().as_fd(), height, width).map_err(io::Error::from))
    }

    /// Writes all of `bytes`; one writer at a time, so clients' pieces do not interleave.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        let guard = self.fd.lock().await;
        let Some(fd) = guard.as_ref() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        while !bytes.is_empty() {
            let mut ready = fd.writable().await?;
            match ready
                .try_io(|fd| nix::unistd::write(fd.get_ref(), bytes).map_err(io::Error::from))
            {
                Ok(Ok(n)) => bytes = &bytes[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Closes the engine's copy (the shim is told separately).
    pub async fn close(&self) {
        self.fd.lock().await.take();
    }
}

/// Makes a descriptor non-blocking (its open file description, shared with the shim).
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Where the container's stdin stands, as far as the link knows.
#[derive(Clone)]
pub(crate) enum StdinState {
    /// Not asked for yet, or the answer has not come.
    Unknown,
    Open(Arc<StdinWriter>),
    /// No stdin, or it was closed.
    Closed,
}

/// An attached client's share of the output.
pub(crate) struct Subscriber {
    pub stdout: bool,
    pub stderr: bool,
    pub tx: mpsc::Sender<LogChunk>,
}

#[derive(Default)]
struct Subscribers {
    list: BTreeMap<u64, Subscriber>,
}

/// The engine's link to a running container's shim.
pub(crate) struct ShimLink {
    channel: Channel,
    subscribers: Mutex<Subscribers>,
    stdin: watch::Sender<StdinState>,
    stdin_asked: Mutex<bool>,
    closed: watch::Sender<bool>,
}

impl ShimLink {
    /// A link over a connected channel; its reader runs until the shim closes it. Needs a
    /// tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<Arc<Self>> {
        let link = Arc::new(Self {
            channel: Channel::new(fd)?,
            subscribers: Mutex::new(Subscribers::default()),
            stdin: watch::channel(StdinState::Unknown).0,
            stdin_asked: Mutex::new(false),
            closed: watch::channel(false).0,
        });
        tokio::spawn(link.clone().read());
        Ok(link)
    }

    /// Connects to the shim of a container whose bundle is `run_dir`.
    pub fn connect(run_dir: &Path) -> io::Result<Arc<Self>> {
        let fd =
            control::connect(&run_dir.join(control::ATTACH_SOCKET)).map_err(io::Error::from)?;
        Self::new(fd)
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Adds a subscriber under `id`; the first one subscribes the link. A closed link
    /// drops it at once (its output ends).
    pub fn subscribe(&self, id: u64, sub: Subscriber) {
        let mut s = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock the reader clears the list with, after it has set
        // `closed`: a subscriber is either refused or cleared.
        if self.is_closed() {
            return;
        }
        s.list.insert(id, sub);
        if s.list.len() == 1 {
            // Sent under the lock, so subscriptions and their ends reach the shim in
            // the order the list changed.
            self.queue(ToShim::Subscribe);
        }
    }

    /// Removes a subscriber (its output ends); the last one unsubscribes the link.
    pub fn unsubscribe(&self, id: u64) {
        let mut s = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        if s.list.remove(&id).is_some() && s.list.is_empty() {
            self.queue(ToShim::Unsubscribe);
        }
    }

    /// Sends a small message without waiting: at once when the socket has room (always,
    /// in practice: the shim reads its channels promptly), else from a task of its own.
    fn queue(&self, msg: ToShim) {
        match self.channel.send_now(&msg) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A task needs its own handle on the socket: a copy of the descriptor.
                if let Ok(fd) = self.channel.fd.get_ref().try_clone() {
                    tokio::spawn(async move {
                        if let Ok(ch) = Channel::new(fd) {
                            let _ = ch.send(&msg, &[]).await;
                        }
                    });
                }
            }
            _ => {}
        }
    }

    /// Sets the container's terminal size.
    /// Sets the container's terminal size: directly on the master the engine holds when it
    /// has one (the container has stdin: done when this returns, as with dockerd), else
    /// through the shim, which applies it just after.
    pub async fn resize(&self, height: u16, width: u16) -> io::Result<()> {
        let writer = match &*self.stdin.borrow() {
            StdinState::Open(w) => Some(w.clone()),
            _ => None,
        };
        if let Some(w) = writer {
            if let Some(done) = w.resize(height, width).await {
                return done;
            }
        }
        self.channel
            .send(&ToShim::Resize { height, width }, &[])
            .await
    }

    /// The container's stdin writer, asking the shim for it the first time; `None` when
    /// the container has no stdin (any more) or its shim is gone.
    pub async fn stdin(&self) -> Option<Arc<StdinWriter>> {
        self.prefetch_stdin();
        let mut rx = self.stdin.subscribe();
        let mut closed = self.closed.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                StdinState::Open(w) => return Some(w.clone()),
                StdinState::Closed => return None,
                StdinState::Unknown => {}
            }
            if *closed.borrow_and_update() {
                return None;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return None },
                r = closed.changed() => if r.is_err() { return None },
            }
        }
    }

    /// Closes the container's stdin: the engine's writer, then the shim's.
    pub async fn close_stdin(&self) {
        let state = self.stdin.send_replace(StdinState::Closed);
        if let StdinState::Open(w) = state {
            w.close().await;
        }
        let _ = self.channel.send(&ToShim::CloseStdin, &[]).await;
    }

    /// Asks for the stdin writer now, so it is there when the first client writes.
    pub fn prefetch_stdin(&self) {
        let ask = {
            let mut asked = self.stdin_asked.lock().unwrap_or_else(|e| e.into_inner());
            !std::mem::replace(&mut *asked, true)
        };
        if ask {
            self.queue(ToShim::GetStdin);
        }
    }

    async fn read(self: Arc<Self>) {
        loop {
            let (msg, mut fds) = match self.channel.recv().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %crate::error::Chain(&e), "shim control channel failed");
                    break;
                }
            };
            match msg {
                FromShim::Stdout(bytes) => self.fan_out(LogStream::Stdout, bytes).await,
                FromShim::Stderr(bytes) => self.fan_out(LogStream::Stderr, bytes).await,
                FromShim::Stdin { tty } => {
                    let state = match fds.pop().map(|fd| StdinWriter::new(fd, tty)) {
                        Some(Ok(w)) => StdinState::Open(Arc::new(w)),
                        Some(Err(e)) => {
                            tracing::warn!(error = %crate::error::Chain(&e), "cannot use the container's stdin");
                            StdinState::Closed
                        }
                        None => StdinState::Closed,
                    };
                    // A close that came first wins.
                    self.stdin.send_if_modified(|s| {
                        if matches!(s, StdinState::Unknown) {
                            *s = state;
                            true
                        } else {
                            false
                        }
                    });
                }
                FromShim::NoStdin => {
                    self.stdin.send_replace(StdinState::Closed);
                }
                other => tracing::debug!(?other, "unexpected message on a container's link"),
            }
        }
        // The shim is gone: every subscriber's output ends here.
        self.closed.send_replace(true);
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .clear();
        self.stdin.send_replace(StdinState::Closed);
    }

    /// Gives a piece of output to every subscriber that wants its stream, waiting for
    /// slow ones (back-pressure to the container, as Docker does); gone ones are dropped.
    async fn fan_out(&self, stream: LogStream, bytes: Vec<u8>) {
        let targets: Vec<(u64, mpsc::Sender<LogChunk>)> = {
            let s = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
            s.list
                .iter()
                .filter(|(_, sub)| match stream {
                    LogStream::Stdout => sub.stdout,
                    LogStream::Stderr => sub.stderr,
                })
                .map(|(id, sub)| (*id, sub.tx.clone()))
                .collect()
        };
        if targets.is_empty() {
            return;
        }
        let chunk = LogChunk {
            stream,
            bytes,
            time: super::now_rfc3339(),
        };
        for (id, tx) in targets {
            if tx.send(chunk.clone()).await.is_err() {
                self.unsubscribe(id);
            }
        }
    }
}

/// A fresh link for a container about to start, installed in its streams (sessions that
/// waited for this start move to it, so they see the first byte, and the stdin writer is
/// asked for). Returns the shim's end, to hand over at spawn.
pub(crate) fn prepare_start(container: &super::Container) -> io::Result<OwnedFd> {
    let (ours, theirs) = control::pair().map_err(io::Error::from)?;
    let link = ShimLink::new(ours)?;
    let rec = container.snapshot();
    if rec.config.open_stdin || rec.config.tty {
        link.prefetch_stdin();
    }
    container.streams.set_link(link);
    Ok(theirs)
}
