//! Moving container streams to and from this terminal: stdcopy demultiplexing, stdin
//! forwarding with half-close, raw terminal mode, terminal size and signal forwarding.

use std::io::IsTerminal;

use api_types::detach::{parse_detach_keys, DetachDetector, DEFAULT_DETACH_KEYS};
use api_types::stdcopy::{Decoder, StreamKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::backend::ByteWriter;

/// Copies a container's output to `out`/`err`: raw when it has a tty, otherwise split by
/// stdcopy frame. A system-error frame becomes an error, as in docker.
pub async fn copy_output<R, O, E>(
    mut reader: R,
    out: &mut O,
    err: &mut E,
    tty: bool,
) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 32 * 1024];
    let mut decoder = Decoder::default();
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if tty {
            out.write_all(&buf[..n]).await?;
            out.flush().await?;
            continue;
        }
        decoder.push(&buf[..n]);
        while let Some((kind, payload)) = decoder.next_frame().map_err(|e| anyhow::anyhow!(e))? {
            match kind {
                StreamKind::Stdout | StreamKind::Stdin => {
                    out.write_all(&payload).await?;
                    out.flush().await?;
                }
                StreamKind::Stderr => {
                    err.write_all(&payload).await?;
                    err.flush().await?;
                }
                StreamKind::System => {
                    anyhow::bail!("{}", String::from_utf8_lossy(&payload).trim_end());
                }
            }
        }
    }
}

/// Copies the container output to this process's stdout and stderr.
pub async fn copy_to_stdio<R: AsyncRead + Unpin>(reader: R, tty: bool) -> anyhow::Result<()> {
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    copy_output(reader, &mut out, &mut err, tty).await
}

/// Forwards this process's stdin to the container and half-closes at EOF, so the
/// container's stdin ends while its output keeps coming. With `detach_keys` (a terminal
/// session) the sequence is held back, as docker's escape proxy does, and typing it ends
/// the forwarding without a half-close: the returned receiver then fires.
pub fn spawn_stdin_forwarder(
    input: ByteWriter,
    detach_keys: Option<Vec<u8>>,
) -> oneshot::Receiver<()> {
    let (detached_tx, detached_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut input = input;
        if forward_input(tokio::io::stdin(), &mut input, detach_keys).await {
            // Said before anything can close the stream, and the input stays open: the
            // session ends with this process, and closing stdin now would tell the engine
            // that input ended (for a `StdinOnce` container, that the container's stdin
            // did), which a detach must not.
            let _ = detached_tx.send(());
            std::future::pending::<()>().await;
        }
    });
    detached_rx
}

/// Copies `from` to `input`: `true` when the detach keys ended it, `false` at the end of
/// input (which is then half-closed) or a failed write.
pub async fn forward_input<R: AsyncRead + Unpin>(
    mut from: R,
    input: &mut ByteWriter,
    detach_keys: Option<Vec<u8>>,
) -> bool {
    let mut detector = detach_keys.map(DetachDetector::new);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (pass, detached) = match &mut detector {
            Some(d) => d.feed(&buf[..n]),
            None => (buf[..n].to_vec(), false),
        };
        if !pass.is_empty()
            && (input.write_all(&pass).await.is_err() || input.flush().await.is_err())
        {
            return false;
        }
        if detached {
            return true;
        }
    }
    let _ = input.shutdown().await;
    false
}

/// The detach keys of a session, as the docker CLI settles them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    /// What the engine is told: `--detach-keys`, else the config file's `detachKeys`. The
    /// engine refuses keys that do not parse, in Docker's words.
    pub value: Option<String>,
    /// The sequence this process watches its terminal for (ctrl-p,ctrl-q unless the value
    /// says otherwise).
    pub sequence: Vec<u8>,
}

/// The detach keys of a `--detach-keys` value, else (absent or empty, as with docker) of the
/// docker config file.
pub fn detach_keys(flag: Option<&str>) -> DetachKeys {
    let value = flag
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .or_else(crate::config::detach_keys);
    // Keys that do not parse never get this far: the engine refuses the session first.
    let sequence = parse_detach_keys(value.as_deref().unwrap_or(""))
        .unwrap_or_else(|_| DEFAULT_DETACH_KEYS.to_vec());
    DetachKeys { value, sequence }
}

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// The terminal's `(rows, columns)` when stdout is one.
#[allow(unsafe_code)]
pub fn terminal_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct we pass, which is valid,
    // aligned and lives across the call; a bad descriptor just makes ioctl return -1.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Puts the terminal on stdin in raw mode until dropped.
pub struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    /// Switches stdin to raw mode when it is a terminal.
    pub fn enable() -> Option<Self> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Delivers the names (`INT`, `TERM`, ...) of the signals this process receives, for
/// forwarding to a container. Once called, these signals no longer end berth itself.
pub fn proxied_signals() -> mpsc::UnboundedReceiver<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::unbounded_channel();
    for (kind, name) in [
        (SignalKind::interrupt(), "INT"),
        (SignalKind::terminate(), "TERM"),
        (SignalKind::hangup(), "HUP"),
        (SignalKind::quit(), "QUIT"),
        (SignalKind::user_defined1(), "USR1"),
        (SignalKind::user_defined2(), "USR2"),
    ] {
        if let Ok(mut s) = signal(kind) {
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(name).is_err() {
                        break;
                    }
                }
            });
        }
    }
    rx
}

/// Delivers a tick for every terminal resize (SIGWINCH).
pub fn window_changes() -> mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::unbounded_channel();
    if let Ok(mut s) = signal(SignalKind::window_change()) {
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::stdcopy::frame;

    #[tokio::test]
    async fn frames_go_to_their_streams() {
        let mut input = frame(StreamKind::Stdout, b"out\n");
        input.extend(frame(StreamKind::Stderr, b"err\n"));
        input.extend(frame(StreamKind::Stdout, b"more"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        copy_output(&input[..], &mut out, &mut err, false)
            .await
            .unwrap();
        assert_eq!(out, b"out\nmore");
        assert_eq!(err, b"err\n");
    }

    #[tokio::test]
    async fn detach_keys_end_input_without_a_half_close() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let typed: &[u8] = b"ls\n\x10x\x10\x11after";
        let mut input: ByteWriter = Box::pin(ours);
        let detached = forward_input(typed, &mut input, Some(vec![16, 17])).await;
        assert!(detached);
        let mut got = vec![0u8; 64];
        let n = theirs.read(&mut got).await.unwrap();
        assert_eq!(
            &got[..n],
            b"ls\n\x10x",
            "the sequence and what follows are held back"
        );
        let more =
            tokio::time::timeout(std::time::Duration::from_millis(50), theirs.read(&mut got)).await;
        assert!(more.is_err(), "no half-close after a detach: {more:?}");

        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut input: ByteWriter = Box::pin(ours);
        assert!(!forward_input(&b"piped\n"[..], &mut input, None).await);
        let mut all = Vec::new();
        theirs.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"piped\n", "end of input is a half-close");
        let keys = detach_keys(Some("ctrl-a,d"));
        assert_eq!(keys.value.as_deref(), Some("ctrl-a,d"));
        assert_eq!(keys.sequence, [1, b'd']);
    }

    #[tokio::test]
    async fn tty_output_is_copied_raw_and_system_frames_fail() {
        let raw = b"\x01\x00raw bytes\r\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        copy_output(&raw[..], &mut out, &mut err, true)
            .await
            .unwrap();
        assert_eq!(out, raw);
        let sys = frame(StreamKind::System, b"exec failed\n");
        let e = copy_output(&sys[..], &mut out, &mut err, false)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "exec failed");
    }
}
