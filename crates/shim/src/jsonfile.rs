//! The `json-file` log driver as the shim writes it: output split into lines (long lines
//! into 16 KiB pieces, as dockerd's copier does), one [`LogEntry`](crate::LogEntry)-shaped
//! JSON object per line, rotated at a size keeping a number of files (`<log>.1`,
//! `<log>.2`, …) exactly like dockerd's `json-file` driver.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The longest line dockerd puts in one log entry; longer lines become several entries,
/// only the last of which ends with `\n`.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;

/// Which of the container's output streams bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's fd 1.
    Stdout,
    /// The container's fd 2.
    Stderr,
}

impl Stream {
    /// The name in a log entry's `stream` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Splits a byte stream into log entries: whole lines with their `\n`, and pieces of at
/// most `max` bytes of a longer line. Holds at most `max` bytes between calls.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new(MAX_ENTRY_BYTES)
    }
}

impl LineSplitter {
    /// A splitter emitting entries of at most `max` bytes plus the line's `\n`.
    pub fn new(max: usize) -> Self {
        assert!(max > 0, "entries need room for at least one byte");
        Self {
            buf: Vec::new(),
            max,
        }
    }

    /// Feeds bytes read from the stream; `emit` gets each finished entry.
    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = self.max - self.buf.len();
            // A line of exactly `max` bytes still ends in the same entry as its `\n`.
            let window = &data[..data.len().min(room + 1)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                if self.buf.is_empty() {
                    emit(&data[..=i]);
                } else {
                    self.buf.extend_from_slice(&data[..=i]);
                    emit(&self.buf);
                    self.buf.clear();
                }
                data = &data[i + 1..];
            } else if data.len() > room {
                if self.buf.is_empty() {
                    emit(&data[..room]);
                } else {
                    self.buf.extend_from_slice(&data[..room]);
                    emit(&self.buf);
                    self.buf.clear();
                }
                data = &data[room..];
            } else {
                self.buf.extend_from_slice(data);
                return;
            }
        }
    }

    /// The stream ended: emits the partial last line, if any.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            emit(&self.buf);
            self.buf.clear();
        }
    }
}

/// An open `json-file` log with dockerd's rotation.
#[derive(Debug)]
pub struct JsonFileLog {
    path: PathBuf,
    max_size: Option<u64>,
    max_files: u32,
    file: Option<File>,
    size: u64,
    line: Vec<u8>,
}

#[derive(Serialize)]
struct EntryRef<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

impl JsonFileLog {
    /// Opens (appending to) the log at `path`; rotates when it reaches `max_size` bytes,
    /// keeping `max_files` files in all (values below 1 count as 1: truncate in place).
    pub fn open(path: &Path, max_size: Option<u64>, max_files: u32) -> io::Result<Self> {
        let file = open_log(path, false)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            max_size,
            max_files: max_files.max(1),
            file: Some(file),
            size,
            line: Vec::with_capacity(512),
        })
    }

    /// Appends one entry. `bytes` that are not UTF-8 are stored with U+FFFD replacements,
    /// as Go's JSON encoder does. An error leaves the log usable for the next entry (the
    /// file is reopened if needed); the entry is lost, never queued.
    pub fn write(&mut self, stream: Stream, bytes: &[u8], time: &str) -> io::Result<()> {
        self.line.clear();
        let log = String::from_utf8_lossy(bytes);
        serde_json::to_writer(
            &mut self.line,
            &EntryRef {
                log: &log,
                stream: stream.as_str(),
                time,
            },
        )
        .map_err(io::Error::other)?;
        self.line.push(b'\n');
        if self.max_size.is_some_and(|max| self.size >= max) {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = open_log(&self.path, false)?;
                self.size = f.metadata()?.len();
                self.file.insert(f)
            }
        };
        match file.write_all(&self.line) {
            Ok(()) => {
                self.size += self.line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // The file may be gone or broken; start afresh with the next entry.
                self.file = None;
                Err(e)
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.max_files >= 2 {
            for i in (2..self.max_files).rev() {
                rename_if_exists(&numbered(&self.path, i - 1), &numbered(&self.path, i))?;
            }
            rename_if_exists(&self.path, &numbered(&self.path, 1))?;
        }
        self.file = Some(open_log(&self.path, true)?);
        self.size = 0;
        Ok(())
    }
}

fn open_log(path: &Path, truncate: bool) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    if truncate {
        file.set_len(0)?;
    }
    Ok(file)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogEntry;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |e| out.push(e.to_vec()));
        }
        s.finish(|e| out.push(e.to_vec()));
        out
    }

    #[test]
    fn lines_are_split_on_newlines_across_reads() {
        assert_eq!(
            split(16, &[b"hel", b"lo\nwor", b"ld\n\n", b"tail"]),
            vec![
                b"hello\n".to_vec(),
                b"world\n".to_vec(),
                b"\n".to_vec(),
                b"tail".to_vec()
            ]
        );
    }

    #[test]
    fn long_lines_become_pieces_without_newlines_until_the_last() {
        assert_eq!(
            split(4, &[b"abcdefghij\n"]),
            vec![b"abcd".to_vec(), b"efgh".to_vec(), b"ij\n".to_vec()]
        );
        // A line of exactly `max` bytes keeps its newline in the same entry.
        assert_eq!(
            split(4, &[b"abcd", b"\nxy"]),
            vec![b"abcd\n".to_vec(), b"xy".to_vec()]
        );
        assert_eq!(
            split(4, &[b"ab", b"cdef"]),
            vec![b"abcd".to_vec(), b"ef".to_vec()]
        );
        let long = vec![b'x'; MAX_ENTRY_BYTES * 2 + 10];
        let out = split(MAX_ENTRY_BYTES, &[&long, b"\n"]);
        assert_eq!(
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_ENTRY_BYTES, MAX_ENTRY_BYTES, 11]
        );
    }

    fn entries(path: &Path) -> Vec<LogEntry> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn entries_are_dockers_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonFileLog::open(&path, None, 1).unwrap();
        log.write(
            Stream::Stdout,
            b"hi \"there\"\n",
            "2026-11-27T14:35:55.252009639Z",
        )
        .unwrap();
        log.write(Stream::Stderr, b"\xff\n", "2026-11-27T14:35:56.000000000Z")
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"log":"hi \"there\"\n","stream":"stdout","time":"2026-11-27T14:35:55.252009639Z"}"#
        );
        assert_eq!(entries(&path)[1].log, "\u{fffd}\n");
    }

    #[test]
    fn rotation_keeps_max_files_like_dockerd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonFileLog::open(&path, Some(100), 3).unwrap();
        for i in 0..20 {
            log.write(Stream::Stdout, format!("line {i:02}\n").as_bytes(), "t")
                .unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["c-json.log", "c-json.log.1", "c-json.log.2"]);
        // Newest in the current file, older ones shifted up, each file near the limit.
        let current = entries(&path);
        assert_eq!(current.last().unwrap().log, "line 19\n");
        let older = entries(&numbered(&path, 1));
        let oldest = entries(&numbered(&path, 2));
        assert!(older.last().unwrap().log < current[0].log);
        assert!(oldest.last().unwrap().log < older[0].log);
        for p in [numbered(&path, 1), numbered(&path, 2)] {
            let len = std::fs::metadata(&p).unwrap().len();
            assert!((100..150).contains(&len), "{p:?} is {len} bytes");
        }
    }

    #[test]
    fn one_file_means_truncate_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut log = JsonFileLog::open(&path, Some(50), 1).unwrap();
        for i in 0..10 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes(), "t")
                .unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(entries(&path).last().unwrap().log, "line 9\n");
        assert!(std::fs::metadata(&path).unwrap().len() < 100);
    }

    #[test]
    fn an_existing_log_is_appended_to_and_counts_towards_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        std::fs::write(&path, vec![b' '; 200]).unwrap();
        let mut log = JsonFileLog::open(&path, Some(100), 2).unwrap();
        log.write(Stream::Stdout, b"new\n", "t").unwrap();
        assert_eq!(std::fs::metadata(numbered(&path, 1)).unwrap().len(), 200);
        assert_eq!(entries(&path).len(), 1);
    }
}
