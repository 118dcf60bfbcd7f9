//! `berth-shim <config.json>`: the per-container monitor (see the library's docs for the
//! contract with the engine).
//!
//! Started by the engine with fd 3 = the write end of a pipe, it forks once (the first
//! process exits 0 at once, so the engine can reap it), and the child becomes a session
//! leader and child subreaper with stdio on /dev/null. That child starts the container
//! through the runtime, reports [`berth_shim::Ready`] on fd 3, copies the container's
//! output into the json-file log, reaps it, records its [`berth_shim::ExitStatus`] and
//! deletes it from the runtime.
//!
//! With fd 4 the engine may hand over its first control channel (see
//! [`berth_shim::control`]).
//!
//! It links neither tokio nor libcontainer: one thread, one `poll` loop, a few KiB of
//! buffers.

mod cgroup;
mod channels;
mod console;
mod exec;
mod io;
mod monitor;
mod runtime;
mod shimlog;

use std::fs::File;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::PathBuf;

use berth_shim::control::CONTROL_FD;
use berth_shim::READY_FD;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(config_path), None) = (args.next(), args.next()) else {
        eprintln!("usage: berth-shim <shim config JSON>");
        std::process::exit(2);
    };
    let ready = take_ready_pipe();
    let control = take_control_channel();
    if let Err(err) = detach() {
        monitor::report(
            ready,
            berth_shim::Ready::Failed {
                message: format!("berth-shim cannot detach from the engine: {err}"),
            },
        );
        std::process::exit(1);
    }
    std::process::exit(monitor::run(&PathBuf::from(config_path), ready, control));
}

/// The engine's ready pipe on fd 3, if it is open, made close-on-exec so that neither
/// the runtime nor the container inherits it (the engine waits for its EOF).
#[allow(unsafe_code)]
fn take_ready_pipe() -> Option<File> {
    fcntl(READY_FD, FcntlArg::F_GETFD).ok()?;
    fcntl(READY_FD, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).ok()?;
    // SAFETY: fd 3 is open (F_GETFD succeeded) and nothing else in this process refers
    // to it: it was inherited from the engine for exactly this use.
    Some(unsafe { File::from_raw_fd(READY_FD) })
}

/// The engine's first control channel on fd 4, if it is open and a socket, made
/// close-on-exec (neither the runtime nor the container may inherit it).
#[allow(unsafe_code)]
fn take_control_channel() -> Option<std::os::fd::OwnedFd> {
    fcntl(CONTROL_FD, FcntlArg::F_GETFD).ok()?;
    fcntl(CONTROL_FD, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).ok()?;
    // SAFETY: fd 4 is open (F_GETFD succeeded) and nothing else in this process refers
    // to it: it was inherited from the engine for exactly this use.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(CONTROL_FD) };
    let is_socket = nix::sys::stat::fstat(CONTROL_FD)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
        .unwrap_or(false);
    is_socket.then_some(fd)
}

/// Forks; the parent exits 0 at once. The child leads a new session (no controlling
/// terminal, so no SIGHUP when the engine's terminal goes), is a child subreaper (the
/// container's processes are reparented to it when the runtime exits) and has its stdio
/// on /dev/null.
#[allow(unsafe_code)]
fn detach() -> std::io::Result<()> {
    use nix::unistd::{dup2, fork, setsid, ForkResult};
    // SAFETY: no thread has been started, so the child is a full copy of a
    // single-threaded process and may run any code.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    setsid()?;
    nix::sys::prctl::set_child_subreaper(true)?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into_raw_fd();
    for fd in 0..3 {
        if fd != null {
            dup2(null, fd)?;
        }
    }
    // If stdio was closed, /dev/null itself landed on 0, 1 or 2: keep it.
    if null > 2 {
        nix::unistd::close(null)?;
    }
    Ok(())
}
