//! The engine's control channels, shim side: who is subscribed to the container's output,
//! what could not be sent yet, and the attach socket later channels connect to.
//!
//! Sending never blocks the shim. A packet that does not fit waits in the channel's
//! outbox, and while any subscribed channel has output waiting the shim reads no more of
//! the container's output: a slow reader slows the container down (as with Docker), and
//! the shim holds at most one output packet per channel.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use berth_shim::control::{self, FromShim, ToShim, MAX_MESSAGE, MAX_PAYLOAD};
use nix::errno::Errno;

use crate::shimlog::ShimLog;

/// An engine's connection.
pub struct Channel {
    /// Stable for the channel's life, unlike its index.
    pub id: u64,
    fd: OwnedFd,
    pub subscribed: bool,
    outbox: VecDeque<(Vec<u8>, Vec<OwnedFd>)>,
    pub closed: bool,
}

impl Channel {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether packets wait to be sent.
    pub fn has_outbox(&self) -> bool {
        !self.outbox.is_empty()
    }

    fn send(&mut self, packet: Vec<u8>, fds: Vec<OwnedFd>) {
        if self.closed {
            return;
        }
        if self.outbox.is_empty() {
            let raw: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
            match control::send(self.fd.as_fd(), &packet, &raw) {
                Ok(()) => return,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
        self.outbox.push_back((packet, fds));
    }

    /// Sends what waits, as far as the socket takes it.
    pub fn flush(&mut self) {
        while let Some((packet, fds)) = self.outbox.front() {
            let raw: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
            match control::send(self.fd.as_fd(), packet, &raw) {
                Ok(()) => {
                    self.outbox.pop_front();
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => return,
                Err(_) => {
                    self.closed = true;
                    self.outbox.clear();
                    return;
                }
            }
        }
    }
}

/// A request read from a channel, with the descriptors that came along.
pub struct Request {
    pub channel: u64,
    pub message: ToShim,
    pub fds: Vec<OwnedFd>,
}

/// Every channel, and the socket new ones arrive on.
pub struct Channels {
    pub list: Vec<Channel>,
    pub listener: Option<OwnedFd>,
    next_id: u64,
    buf: Vec<u8>,
}

impl Channels {
    pub fn new() -> Self {
        Self {
            list: Vec::new(),
            listener: None,
            next_id: 1,
            buf: vec![0; MAX_MESSAGE],
        }
    }

    /// Listens at `path` for more channels.
    pub fn listen(&mut self, path: &Path) -> nix::Result<()> {
        self.listener = Some(control::listen(path)?);
        Ok(())
    }

    /// Adds a connected channel.
    pub fn add(&mut self, fd: OwnedFd) {
        let id = self.next_id;
        self.next_id += 1;
        self.list.push(Channel {
            id,
            fd,
            subscribed: false,
            outbox: VecDeque::new(),
            closed: false,
        });
    }

    /// Accepts every pending connection on the listener.
    pub fn accept(&mut self, log: &ShimLog) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match control::accept(listener.as_fd()) {
                Ok(fd) => self.add(fd),
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) | Err(Errno::ECONNABORTED) => continue,
                Err(e) => {
                    log.warn(format!("Cannot accept on the attach socket: {e}"));
                    return;
                }
            }
        }
    }

    /// Reads every packet waiting on channel `index`.
    pub fn read(&mut self, index: usize, log: &ShimLog) -> Vec<Request> {
        let mut out = Vec::new();
        let channel = &mut self.list[index];
        loop {
            match control::recv(channel.fd.as_fd(), &mut self.buf) {
                Ok(Some(got)) => match ToShim::decode(&self.buf[..got.len]) {
                    Ok(ToShim::Subscribe) => channel.subscribed = true,
                    Ok(ToShim::Unsubscribe) => channel.subscribed = false,
                    Ok(message) => out.push(Request {
                        channel: channel.id,
                        message,
                        fds: got.fds,
                    }),
                    Err(e) => {
                        log.warn(format!("Closing a control channel: {e}"));
                        channel.closed = true;
                        return out;
                    }
                },
                Ok(None) => {
                    channel.closed = true;
                    return out;
                }
                Err(Errno::EAGAIN) => return out,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log.warn(format!("Closing a control channel: {e}"));
                    channel.closed = true;
                    return out;
                }
            }
        }
    }

    /// Reads every packet already waiting on every channel.
    pub fn read_all(&mut self, log: &ShimLog) -> Vec<Request> {
        let mut out = Vec::new();
        for i in 0..self.list.len() {
            out.extend(self.read(i, log));
        }
        out
    }

    /// Drops closed channels.
    pub fn prune(&mut self) {
        self.list.retain(|c| !c.closed);
    }

    /// Whether output must wait: a subscriber has not taken the last piece yet.
    pub fn output_blocked(&self) -> bool {
        self.list
            .iter()
            .any(|c| c.subscribed && !c.closed && c.has_outbox())
    }

    /// Sends output to every subscriber.
    pub fn broadcast(&mut self, stdout: bool, bytes: &[u8]) {
        if !self.list.iter().any(|c| c.subscribed) {
            return;
        }
        for piece in bytes.chunks(MAX_PAYLOAD) {
            let msg = if stdout {
                FromShim::Stdout(piece.to_vec())
            } else {
                FromShim::Stderr(piece.to_vec())
            };
            let packet = msg.encode();
            for c in self.list.iter_mut().filter(|c| c.subscribed) {
                c.send(packet.clone(), Vec::new());
            }
        }
    }

    /// Sends `msg` (and `fds`) on channel `id`, if it is still there.
    pub fn send_to(&mut self, id: u64, msg: &FromShim, fds: Vec<OwnedFd>) {
        if let Some(c) = self.list.iter_mut().find(|c| c.id == id) {
            c.send(msg.encode(), fds);
        }
    }

    /// Sends what waits on every channel.
    pub fn flush(&mut self) {
        for c in &mut self.list {
            c.flush();
        }
    }
}
