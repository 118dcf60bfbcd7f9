//! The control channel between the engine and a running shim: the container's stdin, its
//! live output, terminal resizes, and `exec`.
//!
//! A channel is a `SOCK_SEQPACKET` Unix socket: every message is one packet (so no
//! framing), and file descriptors travel with the packet they belong to. The engine hands
//! the shim the first channel when it starts it (fd [`CONTROL_FD`], so that nothing the
//! container writes can come before the engine subscribed to it); later ones (after an
//! engine restart, or from another process) connect to the shim's [`ATTACH_SOCKET`] in
//! the bundle directory.
//!
//! A message is one kind byte and a payload: raw bytes for output, a short JSON object for
//! exec. The engine writes the container's stdin itself, to a descriptor the shim hands
//! over, so input never queues in the shim.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use serde::{Deserialize, Serialize};

/// The file descriptor on which a shim finds the engine's first control channel.
pub const CONTROL_FD: i32 = 4;

/// The name of the socket, in the bundle directory, on which a shim accepts channels.
pub const ATTACH_SOCKET: &str = "attach.sock";

/// The largest payload of one message; stdin and output are cut into pieces this big.
pub const MAX_PAYLOAD: usize = 32 * 1024;

/// Room for a message: the kind byte and the largest payload.
pub const MAX_MESSAGE: usize = MAX_PAYLOAD + 1;

/// At most this many descriptors travel with one message.
pub const MAX_FDS: usize = 3;

/// What the engine asks of a shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToShim {
    /// Send the container's output on this channel from now on.
    Subscribe,
    /// Stop sending output on this channel.
    Unsubscribe,
    /// Send a descriptor writing to the container's stdin (its pipe, or its terminal's
    /// master): the engine writes stdin itself. Answered once the container runs.
    GetStdin,
    /// Close the shim's own stdin writer (no terminal): once the engine has closed its
    /// copies too, the container reads end of file.
    CloseStdin,
    /// Set the container's terminal size.
    Resize { height: u16, width: u16 },
    /// Run a process in the container; its stdio (per [`ExecRequest::fds`]) travels along.
    Exec(ExecRequest),
}

/// What a shim tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromShim {
    /// Bytes the container wrote on stdout (or its terminal).
    Stdout(Vec<u8>),
    /// Bytes the container wrote on stderr.
    Stderr(Vec<u8>),
    /// A descriptor writing to the container's stdin travels along; `tty` when it is the
    /// terminal's master.
    Stdin { tty: bool },
    /// The container has no stdin (any more).
    NoStdin,
    /// An exec's terminal master; the descriptor travels along.
    ExecConsole { id: String },
    /// An exec's process runs, with this pid (host's view).
    ExecStarted { id: String, pid: i32 },
    /// An exec's process could not be started; the runtime's explanation.
    ExecFailed { id: String, message: String },
    /// An exec's process ended: its status, or 128 + the signal.
    ExecExited { id: String, exit_code: i32 },
}

/// A process to run in the container, as `runtime exec --process`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The exec's id (names its files in the bundle directory).
    pub id: String,
    /// The OCI `process` JSON file the runtime reads.
    pub process: PathBuf,
    /// Whether the process gets a terminal (its master comes back in
    /// [`FromShim::ExecConsole`]).
    pub tty: bool,
    /// Which of stdin, stdout and stderr travel with the message, in that order; the
    /// others are /dev/null.
    pub fds: [bool; 3],
}

#[derive(Serialize, Deserialize)]
struct ExecId {
    id: String,
}

#[derive(Serialize, Deserialize)]
struct ExecStartedBody {
    id: String,
    pid: i32,
}

#[derive(Serialize, Deserialize)]
struct ExecFailedBody {
    id: String,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct ExecExitedBody {
    id: String,
    exit_code: i32,
}

/// A message that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("bad control message: {0}")]
pub struct DecodeError(String);

fn json<T: Serialize>(kind: u8, body: &T) -> Vec<u8> {
    let mut out = vec![kind];
    // Serializing these plain structs cannot fail.
    out.extend(serde_json::to_vec(body).unwrap_or_default());
    out
}

fn from_json<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|e| DecodeError(e.to_string()))
}

fn bytes(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

impl ToShim {
    /// The packet for this message.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Subscribe => vec![1],
            Self::Unsubscribe => vec![2],
            Self::GetStdin => vec![3],
            Self::CloseStdin => vec![4],
            Self::Resize { height, width } => {
                let mut out = vec![5];
                out.extend(height.to_be_bytes());
                out.extend(width.to_be_bytes());
                out
            }
            Self::Exec(req) => json(6, req),
        }
    }

    /// Reads a packet.
    pub fn decode(packet: &[u8]) -> Result<Self, DecodeError> {
        let (&kind, payload) = packet
            .split_first()
            .ok_or_else(|| DecodeError("empty packet".into()))?;
        Ok(match kind {
            1 => Self::Subscribe,
            2 => Self::Unsubscribe,
            3 => Self::GetStdin,
            4 => Self::CloseStdin,
            5 if payload.len() == 4 => Self::Resize {
                height: u16::from_be_bytes([payload[0], payload[1]]),
                width: u16::from_be_bytes([payload[2], payload[3]]),
            },
            6 => Self::Exec(from_json(payload)?),
            k => return Err(DecodeError(format!("unknown kind {k}"))),
        })
    }
}

impl FromShim {
    /// The packet for this message.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Stdout(b) => bytes(1, b),
            Self::Stderr(b) => bytes(2, b),
            Self::Stdin { tty } => vec![7, u8::from(*tty)],
            Self::NoStdin => vec![8],
            Self::ExecConsole { id } => json(3, &ExecId { id: id.clone() }),
            Self::ExecStarted { id, pid } => json(
                4,
                &ExecStartedBody {
                    id: id.clone(),
                    pid: *pid,
                },
            ),
            Self::ExecFailed { id, message } => json(
                5,
                &ExecFailedBody {
                    id: id.clone(),
                    message: message.clone(),
                },
            ),
            Self::ExecExited { id, exit_code } => json(
                6,
                &ExecExitedBody {
                    id: id.clone(),
                    exit_code: *exit_code,
                },
            ),
        }
    }

    /// Reads a packet.
    pub fn decode(packet: &[u8]) -> Result<Self, DecodeError> {
        let (&kind, payload) = packet
            .split_first()
            .ok_or_else(|| DecodeError("empty packet".into()))?;
        Ok(match kind {
            1 => Self::Stdout(payload.to_vec()),
            2 => Self::Stderr(payload.to_vec()),
            3 => Self::ExecConsole {
                id: from_json::<ExecId>(payload)?.id,
            },
            4 => {
                let b: ExecStartedBody = from_json(payload)?;
                Self::ExecStarted {
                    id: b.id,
                    pid: b.pid,
                }
            }
            5 => {
                let b: ExecFailedBody = from_json(payload)?;
                Self::ExecFailed {
                    id: b.id,
                    message: b.message,
                }
            }
            6 => {
                let b: ExecExitedBody = from_json(payload)?;
                Self::ExecExited {
                    id: b.id,
                    exit_code: b.exit_code,
                }
            }
            7 => Self::Stdin {
                tty: payload.first() == Some(&1),
            },
            8 => Self::NoStdin,
            k => return Err(DecodeError(format!("unknown kind {k}"))),
        })
    }
}

/// A connected pair of non-blocking, close-on-exec control sockets.
pub fn pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
}

/// Sends one packet with `fds` attached. Never raises SIGPIPE.
pub fn send(sock: BorrowedFd<'_>, packet: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    let iov = [IoSlice::new(packet)];
    let cmsgs = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsgs };
    let n = socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    if n != packet.len() {
        // A seqpacket send is all or nothing; anything else is a broken socket.
        return Err(Errno::EMSGSIZE);
    }
    Ok(())
}

/// One received packet and the descriptors that came with it.
#[derive(Debug)]
pub struct Received {
    pub len: usize,
    pub fds: Vec<OwnedFd>,
}

/// Receives one packet into `buf` (at least [`MAX_MESSAGE`] bytes). `Ok(None)` is the end
/// of the channel. Descriptors arrive close-on-exec.
#[allow(unsafe_code)]
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<Option<Received>> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel just installed these descriptors in this process for
                // this message; nothing else refers to them.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_TRUNC) || msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(Errno::EMSGSIZE);
    }
    if msg.bytes == 0 {
        // Every message has a kind byte: zero bytes is the peer's close.
        return Ok(None);
    }
    Ok(Some(Received {
        len: msg.bytes,
        fds,
    }))
}

/// The longest path a `sockaddr_un` takes, less its terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// An address for `path` that fits in a `sockaddr_un`: the path itself when short enough,
/// otherwise `/proc/self/fd/<dir>/<name>` through the returned directory descriptor
/// (which must stay open while the address is used).
fn address_of(path: &Path) -> nix::Result<(UnixAddr, Option<OwnedFd>)> {
    if path.as_os_str().as_bytes().len() <= SUN_PATH_MAX {
        return Ok((UnixAddr::new(path)?, None));
    }
    let dir = path.parent().ok_or(Errno::EINVAL)?;
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    let dirfd = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    #[allow(unsafe_code)]
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let dirfd = unsafe { OwnedFd::from_raw_fd(dirfd) };
    let short = PathBuf::from(format!("/proc/self/fd/{}", dirfd.as_raw_fd())).join(name);
    Ok((UnixAddr::new(&short)?, Some(dirfd)))
}

/// Binds a listening, non-blocking, close-on-exec control socket at `path` (any length),
/// replacing a stale socket file.
pub fn listen(path: &Path) -> nix::Result<OwnedFd> {
    let sock = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    }
    let (addr, _dir) = address_of(path)?;
    socket::bind(sock.as_raw_fd(), &addr)?;
    socket::listen(&sock, socket::Backlog::new(16)?)?;
    Ok(sock)
}

/// Connects a non-blocking, close-on-exec control channel to the socket at `path` (any
/// length).
pub fn connect(path: &Path) -> nix::Result<OwnedFd> {
    let sock = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let (addr, _dir) = address_of(path)?;
    socket::connect(sock.as_raw_fd(), &addr)?;
    let flags = nix::fcntl::fcntl(sock.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    nix::fcntl::fcntl(
        sock.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )?;
    Ok(sock)
}

/// Accepts one channel on a listening socket, non-blocking and close-on-exec.
#[allow(unsafe_code)]
pub fn accept(listener: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    let fd = socket::accept4(
        listener.as_raw_fd(),
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )?;
    // SAFETY: accept4 just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            ToShim::Subscribe,
            ToShim::Unsubscribe,
            ToShim::GetStdin,
            ToShim::CloseStdin,
            ToShim::Resize {
                height: 65535,
                width: 0,
            },
            ToShim::Exec(ExecRequest {
                id: "e1".into(),
                process: "/run/x/exec-e1.json".into(),
                tty: true,
                fds: [false, true, true],
            }),
        ] {
            assert_eq!(ToShim::decode(&m.encode()).unwrap(), m);
        }
        for m in [
            FromShim::Stdout(b"out".to_vec()),
            FromShim::Stderr(b"err".to_vec()),
            FromShim::Stdin { tty: true },
            FromShim::Stdin { tty: false },
            FromShim::NoStdin,
            FromShim::ExecConsole { id: "e".into() },
            FromShim::ExecStarted {
                id: "e".into(),
                pid: 42,
            },
            FromShim::ExecFailed {
                id: "e".into(),
                message: "no".into(),
            },
            FromShim::ExecExited {
                id: "e".into(),
                exit_code: 137,
            },
        ] {
            assert_eq!(FromShim::decode(&m.encode()).unwrap(), m);
        }
        assert!(ToShim::decode(&[]).is_err());
        assert!(ToShim::decode(&[99]).is_err());
        assert!(ToShim::decode(&[5, 1]).is_err());
        assert!(FromShim::decode(&[4, b'{']).is_err());
    }

    #[test]
    fn packets_carry_descriptors_and_end_with_the_peer() {
        let (a, b) = pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), &ToShim::CloseStdin.encode(), &[w.as_raw_fd()]).unwrap();
        drop(w);
        let mut buf = vec![0u8; MAX_MESSAGE];
        let got = recv(b.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(ToShim::decode(&buf[..got.len]).unwrap(), ToShim::CloseStdin);
        assert_eq!(got.fds.len(), 1);
        nix::unistd::write(&got.fds[0], b"x").unwrap();
        let mut one = [0u8; 1];
        assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut one).unwrap(), 1);
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap_err(), Errno::EAGAIN);
        drop(a);
        assert!(recv(b.as_fd(), &mut buf).unwrap().is_none());
    }

    #[test]
    fn long_socket_paths_work() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join(ATTACH_SOCKET);
        assert!(path.as_os_str().len() > SUN_PATH_MAX);
        let l = listen(&path).unwrap();
        let c = connect(&path).unwrap();
        let s = accept(l.as_fd()).unwrap();
        send(c.as_fd(), &ToShim::Subscribe.encode(), &[]).unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        let got = recv(s.as_fd(), &mut buf).unwrap().unwrap();
        assert_eq!(ToShim::decode(&buf[..got.len]).unwrap(), ToShim::Subscribe);
        // A second listen replaces the stale socket file.
        drop(l);
        listen(&path).unwrap();
    }
}
