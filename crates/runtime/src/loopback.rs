//! Bringing up `lo` in a network namespace the runtime created, as runc does.
//! libcontainer leaves it down, so `127.0.0.1` would not work in the container.

use std::fs::File;
use std::os::fd::AsRawFd;

use anyhow::Context;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;

/// Enters the network namespace of `pid`, sets `lo` up, and comes back.
pub fn bring_up(pid: Pid) -> anyhow::Result<()> {
    let ours = File::open("/proc/self/ns/net").context("Cannot open our network namespace")?;
    let theirs = File::open(format!("/proc/{pid}/ns/net"))
        .with_context(|| format!("Cannot open the network namespace of pid {pid}"))?;
    setns(&theirs, CloneFlags::CLONE_NEWNET)
        .context("Cannot enter the container's network namespace")?;
    let result = set_lo_up();
    setns(&ours, CloneFlags::CLONE_NEWNET).context("Cannot return to our network namespace")?;
    result
}

#[allow(unsafe_code)]
fn set_lo_up() -> anyhow::Result<()> {
    // A socket belongs to the network namespace it was created in: this one talks to the
    // container's interfaces.
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("Cannot open a socket in the container's network namespace")?;
    // SAFETY: ifreq is a plain C struct (a name array and a union of integers and
    // addresses) for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes ifru_flags inside `req`, which lives
    // for the whole call; `sock` is an open socket.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    nix::errno::Errno::result(rc).context("Cannot read the flags of lo")?;
    // SAFETY: SIOCGIFFLAGS just filled the ifru_flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    nix::errno::Errno::result(rc).context("Cannot set lo up")?;
    Ok(())
}
