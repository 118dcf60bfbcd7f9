//! The container's stdio as the shim holds it.
//!
//! Today stdin is /dev/null and stdout/stderr are pipes: the runtime gets the write ends
//! as its own stdout/stderr (a runc-style runtime hands its stdio to the container's first
//! process) and the shim reads the read ends. The seams for later features:
//! - a tty: the runtime gets `--console-socket` ([`ContainerIo::runtime_args`]); once it
//!   exits, the shim receives the pty master on that socket and adds it as an [`Output`]
//!   (a tty has one stream) and as stdin's destination;
//! - stdin through a FIFO or socket, attach sockets: more pollable sources and sinks
//!   beside the outputs, in the same `poll` loop.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::Stdio;

use berth_shim::jsonfile::{LineSplitter, Stream};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// What the runtime process gets as fds 0, 1 and 2.
pub struct RuntimeStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// One output stream of the container the shim reads: a non-blocking fd, and the line
/// splitter holding its partial last line.
pub struct Output {
    fd: OwnedFd,
    pub stream: Stream,
    splitter: LineSplitter,
    open: bool,
}

/// What one read from an [`Output`] found.
pub enum ReadOutcome {
    /// Entries were handed to the sink (or nothing was there yet).
    Data,
    /// The stream ended; its partial last line was handed to the sink.
    Eof,
}

impl Output {
    fn new(fd: OwnedFd, stream: Stream) -> nix::Result<Self> {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Self {
            fd,
            stream,
            splitter: LineSplitter::default(),
            open: true,
        })
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads once into `buf` and hands each finished entry to `sink`.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        sink: &mut impl FnMut(Stream, &[u8]),
    ) -> nix::Result<ReadOutcome> {
        let stream = self.stream;
        match nix::unistd::read(self.fd.as_raw_fd(), buf) {
            Ok(0) => {
                self.close(sink);
                Ok(ReadOutcome::Eof)
            }
            Ok(n) => {
                self.splitter.push(&buf[..n], |entry| sink(stream, entry));
                Ok(ReadOutcome::Data)
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(ReadOutcome::Data),
            Err(err) => {
                self.close(sink);
                Err(err)
            }
        }
    }

    /// Stops reading: hands over the partial last line; the fd stays until drop.
    pub fn close(&mut self, sink: &mut impl FnMut(Stream, &[u8])) {
        let stream = self.stream;
        self.splitter.finish(|entry| sink(stream, entry));
        self.open = false;
    }

    /// Whatever can be read right now without blocking, at most `limit` bytes; for the
    /// error text of a runtime that failed before the container ran.
    pub fn read_available(&mut self, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while out.len() < limit {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out.truncate(limit);
        out
    }
}

/// The container's stdio, shim side.
pub struct ContainerIo {
    runtime_stdio: Option<RuntimeStdio>,
    pub outputs: Vec<Output>,
}

impl ContainerIo {
    /// stdin /dev/null, stdout and stderr through pipes.
    pub fn pipes() -> std::io::Result<Self> {
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        Ok(Self {
            runtime_stdio: Some(RuntimeStdio {
                stdin: Stdio::null(),
                stdout: Stdio::from(out_w),
                stderr: Stdio::from(err_w),
            }),
            outputs: vec![
                Output::new(out_r, Stream::Stdout)?,
                Output::new(err_r, Stream::Stderr)?,
            ],
        })
    }

    /// The runtime's stdio; taken once, when the runtime is started. The shim keeps no
    /// write end, so the outputs see EOF once the container's processes are gone.
    pub fn take_runtime_stdio(&mut self) -> Option<RuntimeStdio> {
        self.runtime_stdio.take()
    }

    /// Flags the runtime's `create`/`run` needs for this kind of stdio.
    pub fn runtime_args(&self) -> Vec<OsString> {
        Vec::new()
    }

    /// Whether every output has ended.
    pub fn all_closed(&self) -> bool {
        self.outputs.iter().all(|o| !o.is_open())
    }

    /// The output carrying `stream`.
    pub fn output_mut(&mut self, stream: Stream) -> Option<&mut Output> {
        self.outputs.iter_mut().find(|o| o.stream == stream)
    }
}
