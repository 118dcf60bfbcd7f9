//! A terminal for tests: runs a command (the docker CLI, berth) on the slave side of a new
//! pseudo-terminal, as its controlling terminal, so it sees what an interactive user's
//! shell gives it; the test types on the master, reads what comes back, and resizes it
//! (the kernel then sends SIGWINCH to the command, as a terminal emulator's resize does).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

/// A command running on a terminal the test holds.
pub struct Pty {
    master: File,
    child: Option<Child>,
    /// Everything read from the terminal so far.
    output: Vec<u8>,
    /// How much of `output` [`Pty::expect`] has consumed.
    seen: usize,
}

#[allow(unsafe_code)]
fn resize_fd(fd: &impl AsFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a pointer valid for the call.
    unsafe { set_winsize(fd.as_fd().as_raw_fd(), &ws) }.expect("TIOCSWINSZ");
}

impl Pty {
    /// Starts `cmd` with a `rows`×`cols` terminal as stdin, stdout, stderr and controlling
    /// terminal (in a session of its own).
    #[allow(unsafe_code)]
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Self {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        resize_fd(&pty.master, rows, cols);
        let slave: OwnedFd = pty.slave;
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the terminal"));
        cmd.stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: between fork and exec the closure only calls setsid(2) and ioctl(2),
        // which are async-signal-safe; it allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        drop(slave);
        Self {
            master: File::from(pty.master),
            child: Some(child),
            output: Vec::new(),
            seen: 0,
        }
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the terminal");
    }

    /// Resizes the terminal; the command gets SIGWINCH.
    pub fn resize(&self, rows: u16, cols: u16) {
        resize_fd(&self.master, rows, cols);
    }

    /// Reads what is there within `timeout`; `false` once the terminal has no writer left.
    fn read_some(&mut self, timeout: Duration) -> bool {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        let t = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        if !matches!(poll(&mut fds, t), Ok(n) if n > 0) {
            return true;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.output.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Waits until `pattern` appears in output not yet consumed, and consumes up to its
    /// end. Panics with what was read after `timeout`.
    pub fn expect(&mut self, pattern: &str, timeout: Duration) {
        if !self.try_expect(pattern, timeout) {
            panic!(
                "{pattern:?} did not appear within {timeout:?}; the terminal showed: {:?}",
                String::from_utf8_lossy(&self.output[self.seen..])
            );
        }
    }

    /// Like [`Pty::expect`], but `false` instead of a panic when `pattern` does not appear
    /// within `timeout` (or the command exits without printing it).
    pub fn try_expect(&mut self, pattern: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = find(&self.output[self.seen..], pattern.as_bytes()) {
                self.seen += pos + pattern.len();
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.read_some(left.min(Duration::from_millis(100))) {
                if let Some(pos) = find(&self.output[self.seen..], pattern.as_bytes()) {
                    self.seen += pos + pattern.len();
                    return true;
                }
                if left.is_zero() || self.exited() {
                    return false;
                }
            }
        }
    }

    /// Asks the shell on this terminal for its size (`stty size`) until it reports
    /// `rows` × `cols`, at most `timeout`: a resize reaches the process only after the CLI
    /// has noticed SIGWINCH and told the engine, so one early question may see the old size.
    pub fn expect_size(&mut self, rows: u16, cols: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let wanted = format!("{rows} {cols}");
        loop {
            self.send(b"stty size\r");
            if self.try_expect(&wanted, Duration::from_millis(500)) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the terminal never reported {wanted}; it showed: {:?}",
                    String::from_utf8_lossy(&self.output)
                );
            }
        }
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits for the command to exit (reading its output meanwhile), at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self
                .child
                .as_mut()
                .expect("the command was waited for already");
            if let Some(status) = child.try_wait().expect("wait") {
                // What it wrote last is still in the terminal.
                while self.read_some(Duration::from_millis(50)) {}
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "the command did not exit within {timeout:?}; the terminal showed: {:?}\n{}",
                    String::from_utf8_lossy(&self.output),
                    where_stuck(child.id())
                );
            }
            self.read_some(Duration::from_millis(50));
        }
    }

    /// Everything the terminal showed.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // A test that failed half-way: end the command we started (by its own pid).
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the threads of `pid` are blocked in, for a failure message.
fn where_stuck(pid: u32) -> String {
    let mut report = format!("pid {pid}:\n");
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return report;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        report.push_str(&format!(
            "  thread {} {} in {}\n{}",
            task.file_name().to_string_lossy(),
            read("comm").trim(),
            read("wchan"),
            read("stack")
        ));
    }
    report
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
