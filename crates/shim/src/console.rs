//! Terminals: the socket a runtime sends a pty master to (`--console-socket`), and the
//! master's window size.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::socket::{
    self, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// The longest `sockaddr_un` path, less its NUL.
const SUN_PATH_MAX: usize = 107;

/// A listening stream socket a runtime connects to with the master of a new terminal.
pub struct ConsoleSocket {
    listener: OwnedFd,
    path: PathBuf,
    /// What to give the runtime: `path`, or a shorter `/proc/<shim>/fd/<dir>/<name>`.
    arg: PathBuf,
    /// Keeps the directory of a long path reachable through `/proc`.
    _dir: Option<OwnedFd>,
}

impl ConsoleSocket {
    /// Listens at `path` (any length: runtimes connect to what [`Self::arg`] names).
    #[allow(unsafe_code)]
    pub fn bind(path: &Path) -> nix::Result<Self> {
        let listener = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        let _ = std::fs::remove_file(path);
        let (arg, dir) = if path.as_os_str().as_bytes().len() <= SUN_PATH_MAX {
            (path.to_path_buf(), None)
        } else {
            let parent = path.parent().ok_or(Errno::EINVAL)?;
            let name = path.file_name().ok_or(Errno::EINVAL)?;
            let fd = nix::fcntl::open(
                parent,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?;
            // SAFETY: `open` just returned this descriptor and nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // The runtime is another process: it reaches our descriptor through our pid.
            let arg = PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                fd.as_raw_fd()
            ))
            .join(name);
            (arg, Some(fd))
        };
        socket::bind(listener.as_raw_fd(), &UnixAddr::new(&arg)?)?;
        socket::listen(&listener, socket::Backlog::new(4)?)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            arg,
            _dir: dir,
        })
    }

    /// The path to pass as `--console-socket`.
    pub fn arg(&self) -> &Path {
        &self.arg
    }

    /// Takes the master the runtime sent. The runtime has exited successfully by now, so
    /// its connection and message are queued: nothing here waits.
    #[allow(unsafe_code)]
    pub fn receive(&self) -> std::io::Result<OwnedFd> {
        let conn = socket::accept4(
            self.listener.as_raw_fd(),
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )
        .map_err(|e| {
            std::io::Error::other(format!("no runtime connected to the console socket ({e})"))
        })?;
        // SAFETY: accept4 just returned this descriptor and nothing else owns it.
        let conn = unsafe { OwnedFd::from_raw_fd(conn) };
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        )
        .map_err(|e| std::io::Error::other(format!("cannot read the console socket ({e})")))?;
        let mut master = None;
        for c in msg.cmsgs().map_err(std::io::Error::other)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just installed this descriptor for us.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    master.get_or_insert(fd);
                }
            }
        }
        master.ok_or_else(|| {
            std::io::Error::other("the runtime sent no terminal on the console socket")
        })
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

/// Sets a terminal's size; the kernel sends SIGWINCH to its foreground process group.
#[allow(unsafe_code)]
pub fn resize(master: impl AsFd, height: u16, width: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the
    // call; a descriptor that is not a terminal makes the ioctl fail, nothing worse.
    unsafe { set_winsize(master.as_fd().as_raw_fd(), &ws) }.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_sent_on_the_socket_is_received() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("x".repeat(100));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("console.sock");
        let sock = ConsoleSocket::bind(&path).unwrap();
        assert!(sock.arg().as_os_str().len() <= SUN_PATH_MAX);
        let pty = nix::pty::openpty(None, None).unwrap();
        // Connect as a runtime would, by the argument's path.
        let client = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::connect(client.as_raw_fd(), &UnixAddr::new(sock.arg()).unwrap()).unwrap();
        let fds = [pty.master.as_raw_fd()];
        socket::sendmsg::<()>(
            client.as_raw_fd(),
            &[std::io::IoSlice::new(b"/dev/ptmx")],
            &[socket::ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let master = sock.receive().unwrap();
        resize(&master, 33, 101).unwrap();
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);
        #[allow(unsafe_code)]
        // SAFETY: TIOCGWINSZ writes one winsize into a valid, live struct.
        unsafe { get_winsize(pty.slave.as_raw_fd(), &mut ws) }.unwrap();
        assert_eq!((ws.ws_row, ws.ws_col), (33, 101));
        drop(sock);
        assert!(!path.exists(), "the socket file is removed");
    }
}
