//! Processes the engine does not parent: containers and shims, watched and signalled
//! through pidfds so a recycled pid is never mistaken for them.

use std::os::fd::{AsRawFd, OwnedFd};

use std::str::FromStr;

use nix::sys::signal::Signal;

/// Opens a pidfd for `pid`.
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Waits until `pid` exits, through a pidfd (which becomes readable at exit).
#[allow(unsafe_code)]
pub async fn pidfd_exited(pid: i32) -> std::io::Result<()> {
    let fd = pidfd_open(pid)?;
    // SAFETY: the AsyncFd owns `fd`, an open pidfd that stays open and unchanged until the
    // AsyncFd is dropped.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)?;
    let _guard = afd.readable().await?;
    Ok(())
}

/// Sends `signal` to the process behind `pidfd`.
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: Signal) -> std::io::Result<()> {
    let signal = rustix::process::Signal::from_named_raw(signal as i32)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_send_signal(pidfd, signal)?)
}

/// The start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`), which
/// together with the pid identifies a process across pid reuse.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that started at `started` (not a zombie either).
pub fn is_alive(pid: i32, started: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    // A listing asks this of every running container: one open and one read into a buffer
    // on the stack (the line is a few hundred bytes), nothing else.
    let mut buf = [0u8; 1024];
    let n = match std::fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| std::io::Read::read(&mut f, &mut buf))
    {
        Ok(n) if n < buf.len() => n,
        Ok(_) => return start_time(pid) == Some(started),
        Err(_) => return false,
    };
    // The command name may hold anything, even non-UTF-8: skip past the last ')'.
    let Some(close) = buf[..n].iter().rposition(|&b| b == b')') else {
        return false;
    };
    let Ok(rest) = std::str::from_utf8(buf.get(close + 2..n).unwrap_or_default()) else {
        return false;
    };
    // The state (field 3, not a zombie) and the start time (field 22).
    let mut fields = rest.split(' ');
    if fields.next() == Some("Z") {
        return false;
    }
    fields.nth(18).and_then(|t| t.parse::<u64>().ok()) == Some(started)
}

/// The inode number of `pid` on pidfs (Linux 6.9 and later): a number the kernel gives
/// each process once and never again until reboot, so it identifies a process across pid
/// reuse, and checking it costs no `/proc` file. `None` where pidfds are not on pidfs.
pub fn pidfs_ino(pid: i32) -> Option<u64> {
    let fd = pidfd_open(pid).ok()?;
    pidfs_ino_of(&fd)
}

fn pidfs_ino_of(fd: &OwnedFd) -> Option<u64> {
    const PID_FS_MAGIC: i64 = 0x5049_4446;
    let fs = nix::sys::statfs::fstatfs(fd).ok()?;
    if fs.filesystem_type().0 != PID_FS_MAGIC {
        return None;
    }
    nix::sys::stat::fstat(fd.as_raw_fd())
        .ok()
        .map(|st| st.st_ino)
}

/// Whether `pid` is still the process whose pidfs inode is `ino` and has not exited
/// (a pidfd is readable once its process has exited, zombie or not).
pub fn is_alive_ino(pid: i32, ino: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(fd) = pidfd_open(pid) else {
        return false;
    };
    match nix::sys::stat::fstat(fd.as_raw_fd()) {
        Ok(st) if st.st_ino == ino => {}
        _ => return false,
    }
    let mut poll = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&fd),
        nix::poll::PollFlags::POLLIN,
    )];
    !matches!(nix::poll::poll(&mut poll, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
}

/// A signal's number as Docker accepts it: `TERM`, `SIGTERM`, `sigterm`, `15`, or a
/// real-time signal (`SIGRTMIN+3`, `RTMAX-1`).
pub fn signal_number(text: &str) -> Option<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    }
    let up = t.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let realtime = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let n = match rest {
            "" => base,
            _ => base + sign * rest.get(1..)?.parse::<i32>().ok()?,
        };
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .contains(&n)
            .then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return realtime(libc::SIGRTMIN(), rest, 1)
            .filter(|_| rest.is_empty() || rest.starts_with('+'));
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return realtime(libc::SIGRTMAX(), rest, -1)
            .filter(|_| rest.is_empty() || rest.starts_with('-'));
    }
    Signal::from_str(&format!("SIG{name}"))
        .ok()
        .map(|s| s as i32)
}

/// Parses a signal berth can send, as Docker accepts it (see [`signal_number`]).
pub fn parse_signal(text: &str) -> Option<Signal> {
    signal_number(text).and_then(|n| Signal::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_every_docker_form() {
        assert_eq!(parse_signal("TERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("10"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("FOO"), None);
        assert_eq!(parse_signal("999"), None);
        assert_eq!(
            parse_signal("SIGRTMIN+3"),
            None,
            "nothing sends real-time signals"
        );
        assert_eq!(signal_number("SIGRTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(signal_number("rtmax-1"), Some(libc::SIGRTMAX() - 1));
        assert_eq!(signal_number("64"), Some(64));
        for bad in [
            "SIGRTMIN-1",
            "RTMAX+1",
            "SIGRTMINx",
            "0",
            "65",
            "SIGNOPE",
            "",
        ] {
            assert_eq!(signal_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn this_process_is_alive_and_identified() {
        let me = std::process::id() as i32;
        let st = start_time(me).unwrap();
        assert!(is_alive(me, st));
        assert!(!is_alive(me, st + 1));
        if let Some(ino) = pidfs_ino(me) {
            assert!(is_alive_ino(me, ino));
            assert!(!is_alive_ino(me, ino + 1));
            assert_eq!(pidfs_ino(me), Some(ino));
        }
        // A child that exited (and, unreaped, is a zombie) is not alive.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let ino = pidfs_ino(pid);
        std::thread::sleep(std::time::Duration::from_millis(100));
        if let Some(ino) = ino {
            assert!(!is_alive_ino(pid, ino));
        }
        child.wait().unwrap();
        let fd = pidfd_open(me).unwrap();
        pidfd_send_signal(&fd, Signal::SIGCONT).unwrap();
    }
}
