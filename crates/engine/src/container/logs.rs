//! `logs`: reading the shim's `json-file` log, once or following it. (`attach` takes the
//! live output from the shim instead: see `attach.rs`.)

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api_types::stdcopy::{frame, StreamKind};
use shim::LogEntry;
use tokio::sync::mpsc;

use super::{Container, ContainerError};
use crate::engine::{Engine, EngineError};
use crate::timestamp::parse_nanos;
use crate::Caller;

/// Which stream a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One piece of output: normally one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stream: LogStream,
    pub bytes: Vec<u8>,
    /// When the shim read it, RFC 3339 with nanoseconds.
    pub time: String,
}

impl LogChunk {
    /// The chunk as the API puts it on the wire: a stdcopy frame, or the raw bytes for a
    /// container with a terminal; with `timestamps`, after its time and a space.
    pub fn encode(&self, tty: bool, timestamps: bool) -> Vec<u8> {
        let mut payload = Vec::with_capacity(self.bytes.len() + 32);
        if timestamps {
            payload.extend_from_slice(self.time.as_bytes());
            payload.push(b' ');
        }
        payload.extend_from_slice(&self.bytes);
        if tty {
            return payload;
        }
        let kind = match self.stream {
            LogStream::Stdout => StreamKind::Stdout,
            LogStream::Stderr => StreamKind::Stderr,
        };
        frame(kind, &payload)
    }
}

/// A `logs` request as clients send it: the query's values, read by [`LogsRequest::options`].
#[derive(Debug, Clone, Default)]
pub struct LogsRequest {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// Unix seconds (maybe fractional) or RFC 3339; `0` or empty is none.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Each line after its time (applied by [`LogChunk::encode`]).
    pub timestamps: bool,
    /// Docker's log-driver details; berth's json-file log has none.
    pub details: bool,
    /// A line count or `all` (empty, or a negative count, is all).
    pub tail: String,
}

impl LogsRequest {
    /// What the request asks for, or Docker's refusal of it.
    pub fn options(&self) -> Result<LogOptions, ContainerError> {
        if !self.stdout && !self.stderr {
            return Err(ContainerError::NoLogStream);
        }
        let tail = match self.tail.as_str() {
            "all" | "" => None,
            n => match n.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n as usize),
                Ok(_) => None,
                Err(_) => return Err(ContainerError::InvalidTail { tail: n.into() }),
            },
        };
        let positive = |t: Option<i64>| t.filter(|&t| t > 0);
        Ok(LogOptions {
            stdout: self.stdout,
            stderr: self.stderr,
            follow: self.follow,
            tail,
            since: positive(parse_nanos("since", self.since.as_deref())?),
            until: positive(parse_nanos("until", self.until.as_deref())?),
        })
    }
}

/// What `logs` returns.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Only lines at or after this time (Unix nanoseconds).
    pub since: Option<i64>,
    /// Only lines before this time (Unix nanoseconds).
    pub until: Option<i64>,
}

/// How many chunks may wait for a slow reader before the reader of the log file pauses:
/// back-pressure instead of an unbounded buffer.
const CHANNEL_DEPTH: usize = 64;
/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(20);

impl Engine {
    /// The container's logs (`GET /containers/{id}/logs`). Returns whether the container has
    /// a terminal (raw output) and a channel of output chunks that closes at the end.
    pub async fn container_logs(
        &self,
        _caller: &Caller,
        name: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<LogChunk>), EngineError> {
        let container = self.find(name)?;
        self.refresh(&container).await;
        let tty = container.snapshot().config.tty;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let engine = self.self_arc();
        tokio::spawn(async move {
            let path = container.log_path();
            let (mut lines, follower) = read_all(&path).await;
            lines.retain(|e| wanted(e, &opts));
            if let Some(n) = opts.tail {
                let skip = lines.len().saturating_sub(n);
                lines.drain(..skip);
            }
            for e in lines {
                if tx.send(to_chunk(e)).await.is_err() {
                    return;
                }
            }
            if opts.follow && opts.until.is_none_or(|u| u > crate::events::now_nanos()) {
                follow(
                    engine,
                    container,
                    follower,
                    tx,
                    opts,
                    FollowUntil::NotRunning,
                )
                .await;
            }
        });
        Ok((tty, rx))
    }
}

#[derive(Debug, Clone, Copy)]
enum FollowUntil {
    /// Stop once the container is not running.
    NotRunning,
}

/// A position in the current log file.
struct Follower {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    inode: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// A reader of the current log file from its first line.
    fn at_start(path: &Path) -> Self {
        let mut f = Self {
            path: path.to_path_buf(),
            reader: None,
            inode: 0,
            partial: Vec::new(),
        };
        if let Ok(file) = File::open(path) {
            f.inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
            f.reader = Some(BufReader::new(file));
        }
        f
    }

    /// A reader of the lines written to the log from now on.
    fn at_end(path: &Path) -> Self {
        let mut f = Self::at_start(path);
        if let Some(reader) = f.reader.as_mut() {
            use std::io::Seek;
            let _ = reader.seek(std::io::SeekFrom::End(0));
        }
        f
    }

    /// Reads the complete lines that arrived since the last call.
    fn read_new(&mut self) -> Vec<LogEntry> {
        let mut out = Vec::new();
        loop {
            if self.reader.is_none() {
                match File::open(&self.path) {
                    Ok(file) => {
                        self.inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
                        self.reader = Some(BufReader::new(file));
                    }
                    Err(_) => return out,
                }
            }
            let Some(reader) = self.reader.as_mut() else {
                return out;
            };
            loop {
                match reader.read_until(b'\n', &mut self.partial) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if self.partial.ends_with(b"\n") => {
                        if let Ok(e) = serde_json::from_slice::<LogEntry>(&self.partial) {
                            out.push(e);
                        }
                        self.partial.clear();
                    }
                    Ok(_) => {}
                }
            }
            // Rotated? The shim renamed the file and started a new one.
            let current = std::fs::metadata(&self.path)
                .map(|m| m.ino())
                .unwrap_or(self.inode);
            if current == self.inode {
                return out;
            }
            self.reader = None;
            self.partial.clear();
        }
    }
}

async fn follow(
    engine: Option<Arc<Engine>>,
    container: Arc<Container>,
    mut follower: Follower,
    tx: mpsc::Sender<LogChunk>,
    opts: LogOptions,
    until: FollowUntil,
) {
    let mut rx = container.lifecycle.subscribe();
    loop {
        let life = *rx.borrow_and_update();
        let finished = life.removed
            || match until {
                FollowUntil::NotRunning => !life.status.is_running(),
            };
        let (f, batch) = tokio::task::spawn_blocking(move || {
            let batch = follower.read_new();
            (follower, batch)
        })
        .await
        .unwrap_or_else(|_| (Follower::at_end(&container.log_path()), Vec::new()));
        follower = f;
        for e in batch.into_iter().filter(|e| wanted(e, &opts)) {
            if tx.send(to_chunk(e)).await.is_err() {
                return;
            }
        }
        if finished || tx.is_closed() {
            return;
        }
        if let Some(until) = opts.until {
            if crate::events::now_nanos() >= until {
                return;
            }
        }
        let _ = tokio::time::timeout(POLL, rx.changed()).await;
        if let Some(engine) = &engine {
            engine.refresh(&container).await;
        }
    }
}

fn wanted(e: &LogEntry, opts: &LogOptions) -> bool {
    let stream_ok = match e.stream.as_str() {
        "stdout" => opts.stdout,
        "stderr" => opts.stderr,
        _ => false,
    };
    if !stream_ok {
        return false;
    }
    if opts.since.is_none() && opts.until.is_none() {
        return true;
    }
    let t = chrono::DateTime::parse_from_rfc3339(&e.time)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0);
    opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t < u)
}

fn to_chunk(e: LogEntry) -> LogChunk {
    LogChunk {
        stream: if e.stream == "stderr" {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        },
        bytes: e.log.into_bytes(),
        time: e.time,
    }
}

/// Every entry of a log and its rotated files, oldest first.
/// Everything logged so far (rotated files first), and a follower of the current file
/// positioned right after it: a line written while the past is read or sent is in one of
/// the two, never in neither.
async fn read_all(path: &Path) -> (Vec<LogEntry>, Follower) {
    let path = path.to_path_buf();
    let again = path.clone();
    tokio::task::spawn_blocking(move || {
        let mut current = Follower::at_start(&path);
        let mut out = Vec::new();
        for n in (1..100).rev() {
            let Ok(f) = File::open(format!("{}.{n}", path.display())) else {
                continue;
            };
            // Rotated since we opened the current file: it is read below.
            if f.metadata().map(|m| m.ino()).ok() == Some(current.inode) {
                continue;
            }
            for line in BufReader::new(f).split(b'\n').map_while(Result::ok) {
                if let Ok(e) = serde_json::from_slice::<LogEntry>(&line) {
                    out.push(e);
                }
            }
        }
        out.extend(current.read_new());
        (out, current)
    })
    .await
    .unwrap_or_else(|_| (Vec::new(), Follower::at_end(&again)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_framed_unless_tty() {
        let c = LogChunk {
            stream: LogStream::Stderr,
            bytes: b"hi\n".to_vec(),
            time: "2026-01-01T00:00:00.000000001Z".into(),
        };
        assert_eq!(c.encode(false, false), b"\x02\0\0\0\0\0\0\x03hi\n");
        assert_eq!(c.encode(true, false), b"hi\n");
        assert_eq!(c.encode(true, true), b"2026-01-01T00:00:00.000000001Z hi\n");
    }

    #[test]
    fn requests_are_read_as_dockerd_reads_them() {
        let req = |tail: &str, since: Option<&str>| LogsRequest {
            stdout: true,
            tail: tail.into(),
            since: since.map(str::to_string),
            ..Default::default()
        };
        let o = req("5", Some("1795790184.5")).options().unwrap();
        assert_eq!(
            (o.tail, o.since),
            (Some(5), Some(1_795_790_184_500_000_000))
        );
        assert_eq!(req("all", Some("0")).options().unwrap().since, None);
        assert_eq!(req("-1", None).options().unwrap().tail, None);
        let e = |r: LogsRequest| r.options().unwrap_err().to_string();
        assert_eq!(e(req("x", None)), "invalid value for tail: \"x\"");
        assert_eq!(
            e(req("", Some("soon"))),
            "invalid value for since: \"soon\" is not a time"
        );
        assert_eq!(
            e(LogsRequest::default()),
            "Bad parameters: you must choose at least one stream"
        );
    }

    fn entry(stream: &str, log: &str, time: &str) -> LogEntry {
        LogEntry {
            log: log.into(),
            stream: stream.into(),
            time: time.into(),
        }
    }

    #[test]
    fn filters_by_stream_and_time() {
        let e = entry("stderr", "x\n", "2026-01-01T00:00:01Z");
        let mut o = LogOptions {
            stdout: true,
            ..Default::default()
        };
        assert!(!wanted(&e, &o));
        o.stderr = true;
        assert!(wanted(&e, &o));
        o.since = Some(2_000_000_000 + 1_767_225_600_000_000_000);
        assert!(!wanted(&e, &o));
    }

    #[tokio::test]
    async fn follower_reads_whole_lines_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        let line = |s: &str| {
            serde_json::to_string(&entry("stdout", s, "2026-01-01T00:00:00Z")).unwrap() + "\n"
        };
        std::fs::write(&log, line("old\n")).unwrap();
        let mut f = Follower::at_end(&log);
        assert!(f.read_new().is_empty());
        let whole = line("a\n");
        let (first, second) = whole.split_at(10);
        std::fs::write(&log, format!("{}{}", line("old\n"), first)).unwrap();
        assert!(f.read_new().is_empty(), "half a line is not a line");
        let mut content = std::fs::read_to_string(&log).unwrap();
        content.push_str(second);
        std::fs::write(&log, content).unwrap();
        assert_eq!(f.read_new().len(), 1);
        std::fs::rename(&log, dir.path().join("c-json.log.1")).unwrap();
        std::fs::write(&log, line("b\n")).unwrap();
        let got = f.read_new();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].log, "b\n");
        let (all, mut after) = read_all(&log).await;
        assert_eq!(all.len(), 3);
        // What is written once the past was read is the follower's, and only its.
        std::fs::write(&log, format!("{}{}", line("b\n"), line("c\n"))).unwrap();
        let got = after.read_new();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].log, "c\n");
    }
}
