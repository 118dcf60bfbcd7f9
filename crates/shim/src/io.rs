//! The container's stdio as the shim holds it.
//!
//! Without a terminal, stdout and stderr are pipes: the runtime gets the write ends as its
//! own stdout/stderr (a runc-style runtime hands its stdio to the container's first
//! process) and the shim reads the read ends. stdin is /dev/null, or with `OpenStdin` a
//! pipe whose write end the shim keeps (so the container's stdin outlives an engine
//! restart) and hands to the engine, which writes to it directly.
//!
//! With a terminal, the runtime gets `--console-socket` and sends the pty master there;
//! the master then is the one output (a terminal has one stream) and stdin's destination.

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
    /// These many bytes were read (0: nothing was there yet).
    Data(usize),
    /// The stream ended; its partial last line was handed to the sink.
    Eof,
}

pub fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

impl Output {
    fn new(fd: OwnedFd, stream: Stream) -> nix::Result<Self> {
        set_nonblocking(fd.as_fd())?;
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

    /// Reads once into `buf` and hands each finished log entry to `sink`; the raw bytes
    /// read are `buf[..n]` of [`ReadOutcome::Data`].
    pub fn read(
        &mut self,
        buf: &mut [u8],
        sink: &mut impl FnMut(Stream, &[u8]),
    ) -> nix::Result<ReadOutcome> {
        let stream = self.stream;
        match nix::unistd::read(self.fd.as_raw_fd(), buf) {
            // A terminal master reads EIO once every slave is closed: its end of file.
            Ok(0) | Err(Errno::EIO) => {
                self.close(sink);
                Ok(ReadOutcome::Eof)
            }
            Ok(n) => {
                self.splitter.push(&buf[..n], |entry| sink(stream, entry));
                Ok(ReadOutcome::Data(n))
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(ReadOutcome::Data(0)),
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
    /// Where the container's stdin is written: the stdin pipe's write end, or the
    /// terminal's master. `None` without stdin, or once closed.
    stdin: Option<OwnedFd>,
    /// The terminal's master, once received.
    console: Option<OwnedFd>,
}

impl ContainerIo {
    /// stdout and stderr through pipes; stdin through a pipe with `open_stdin` (and no
    /// terminal), /dev/null otherwise.
    pub fn new(open_stdin: bool, tty: bool) -> std::io::Result<Self> {
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (stdin, writer) = if open_stdin && !tty {
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            (Stdio::from(r), Some(w))
        } else {
            (Stdio::null(), None)
        };
        Ok(Self {
            runtime_stdio: Some(RuntimeStdio {
                stdin,
                stdout: Stdio::from(out_w),
                stderr: Stdio::from(err_w),
            }),
            outputs: vec![
                Output::new(out_r, Stream::Stdout)?,
                Output::new(err_r, Stream::Stderr)?,
            ],
            stdin: writer,
            console: None,
        })
    }

    /// The runtime's stdio; taken once, when the runtime is started. The shim keeps no
    /// write end, so the outputs see EOF once the container's processes are gone.
    pub fn take_runtime_stdio(&mut self) -> Option<RuntimeStdio> {
        self.runtime_stdio.take()
    }

    /// Switches to the terminal: its master becomes the one output and stdin's
    /// destination. The runtime's pipes are dropped (the container does not have them).
    pub fn use_console(&mut self, master: OwnedFd, open_stdin: bool) -> std::io::Result<()> {
        let reader = master.try_clone()?;
        self.outputs = vec![Output::new(reader, Stream::Stdout)?];
        if open_stdin {
            self.stdin = Some(master.try_clone()?);
        }
        self.console = Some(master);
        Ok(())
    }

    /// The terminal's master, if the container has one.
    pub fn console(&self) -> Option<BorrowedFd<'_>> {
        self.console.as_ref().map(|c| c.as_fd())
    }

    /// A new descriptor writing to the container's stdin, for the engine; `None` when
    /// there is no stdin (any more).
    pub fn stdin_writer(&self) -> Option<OwnedFd> {
        self.stdin.as_ref().and_then(|w| w.try_clone().ok())
    }

    /// Closes the shim's stdin writer; the container sees end of file once the engine's
    /// copies are closed too. A terminal's input is never closed this way.
    pub fn close_stdin(&mut self) {
        if self.console.is_none() {
            self.stdin = None;
        }
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
