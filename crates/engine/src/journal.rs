//! The event journal: the events of every process using a data root, on disk.
//!
//! berthd serves `/events` from memory, but daemonless commands come and go, so each one
//! (and berthd too) also appends its events to `<data-root>/events/events.jsonl`, one JSON
//! object per line. A line is written with a single `write(2)` on a file opened with
//! `O_APPEND`, so lines of concurrent writers never interleave. The journal is bounded: when
//! the file passes [`MAX_BYTES`] it is renamed to `events.jsonl.1` (replacing the previous
//! one) under a lock, so at most twice that is kept. Readers skip lines they cannot parse
//! (a writer killed mid-line), and follow the file across rotations.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api_types::filters::Filters;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::events::Event;
use crate::lock::{FileLock, LockMode};
use crate::Caller;

/// The size at which the journal is rotated.
pub const MAX_BYTES: u64 = 1 << 20;
const CURRENT: &str = "events.jsonl";
const ROTATED: &str = "events.jsonl.1";
const ROTATE_LOCK: &str = "rotate.lock";
/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    action: String,
    id: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    time_nano: i64,
    caller: Caller,
}

impl Line {
    fn into_event(self) -> Event {
        Event {
            kind: static_kind(&self.kind),
            action: self.action,
            id: self.id,
            attributes: self.attributes,
            time_nano: self.time_nano,
            caller: self.caller,
        }
    }
}

/// Event types as Docker names them (the journal stores strings; events carry statics).
fn static_kind(kind: &str) -> &'static str {
    match kind {
        "container" => "container",
        "image" => "image",
        "volume" => "volume",
        "network" => "network",
        "daemon" => "daemon",
        "plugin" => "plugin",
        _ => "unknown",
    }
}

/// The journal of one data root.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    max_bytes: u64,
}

impl Journal {
    /// The journal in `<data-root>/events`, created if needed.
    pub fn open(data_root: &Path) -> io::Result<Self> {
        Self::in_dir(&data_root.join("events"), MAX_BYTES)
    }

    /// A journal in `dir`, rotated at `max_bytes`.
    pub fn in_dir(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
        })
    }

    fn current(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    fn rotated(&self) -> PathBuf {
        self.dir.join(ROTATED)
    }

    /// Appends one event as one line.
    pub fn append(&self, event: &Event) -> io::Result<()> {
        let line = Line {
            kind: event.kind.to_string(),
            action: event.action.clone(),
            id: event.id.clone(),
            attributes: event.attributes.clone(),
            time_nano: event.time_nano,
            caller: event.caller,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.current())?;
        // One write call: O_APPEND places it whole at the end, after anyone else's line.
        let n = file.write(&bytes)?;
        if n != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the journal took only part of a line",
            ));
        }
        if file.metadata()?.len() > self.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Moves a full journal aside; under a lock so two writers do not both rotate.
    fn rotate(&self) -> io::Result<()> {
        let _lock = FileLock::acquire(
            &self.dir.join(ROTATE_LOCK),
            LockMode::Exclusive,
            Duration::from_secs(5),
        )
        .map_err(io::Error::other)?;
        match std::fs::metadata(self.current()) {
            Ok(m) if m.len() > self.max_bytes => std::fs::rename(self.current(), self.rotated()),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every event recorded at or after `since_nano`, in the order they were recorded.
    pub fn read_since(&self, since_nano: i64) -> Vec<Event> {
        let mut events = Vec::new();
        for path in [self.rotated(), self.current()] {
            if let Ok(f) = File::open(&path) {
                read_lines(BufReader::new(f), &mut Vec::new(), &mut events);
            }
        }
        // In the order they were appended, which is the order things happened in (an exit
        // noticed late is dated when it happened, but comes after what preceded it).
        events.retain(|e| e.time_nano >= since_nano);
        events
    }

    /// A reader of the events appended from now on.
    pub fn follow(&self) -> JournalFollower {
        self.subscribe(None).1
    }

    /// The events recorded since `since_nano` (none without it), in order, and a reader
    /// of those appended after them: each event is in exactly one of the two.
    pub fn subscribe(&self, since_nano: Option<i64>) -> (Vec<Event>, JournalFollower) {
        use std::io::{Read, Seek};
        let mut f = JournalFollower {
            path: self.current(),
            reader: None,
            inode: 0,
            partial: Vec::new(),
        };
        let mut past = Vec::new();
        // Where the follower starts is where the past ends.
        let mut head = Vec::new();
        if let Ok(mut file) = File::open(&f.path) {
            let end = file.seek(io::SeekFrom::End(0)).unwrap_or(0);
            f.inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
            if since_nano.is_some() {
                if let Ok(mut again) = File::open(&f.path) {
                    let _ = (&mut again).take(end).read_to_end(&mut head);
                }
            }
            f.reader = Some(BufReader::new(file));
        }
        let Some(since) = since_nano else {
            return (past, f);
        };
        // The rotated file, unless it is the file just opened (rotated meanwhile).
        if let Ok(file) = File::open(self.rotated()) {
            if file.metadata().map(|m| m.ino()).ok() != Some(f.inode) {
                read_lines(BufReader::new(file), &mut Vec::new(), &mut past);
            }
        }
        read_lines(&head[..], &mut Vec::new(), &mut past);
        past.retain(|e| e.time_nano >= since);
        (past, f)
    }
}

/// Parses complete lines into events; a trailing partial line stays in `partial`.
fn read_lines<R: BufRead>(mut reader: R, partial: &mut Vec<u8>, out: &mut Vec<Event>) {
    loop {
        match reader.read_until(b'\n', partial) {
            Ok(0) | Err(_) => return,
            Ok(_) if partial.ends_with(b"\n") => {
                if let Ok(line) = serde_json::from_slice::<Line>(partial) {
                    out.push(line.into_event());
                }
                partial.clear();
            }
            Ok(_) => {}
        }
    }
}

/// Reads what is appended to the journal, across rotations.
pub struct JournalFollower {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    inode: u64,
    partial: Vec<u8>,
}

impl JournalFollower {
    /// The events appended since the last call.
    pub fn read_new(&mut self) -> Vec<Event> {
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
            if let Some(reader) = self.reader.as_mut() {
                read_lines(reader, &mut self.partial, &mut out);
            }
            // Rotated? Our file (read to its end) is now the `.1`; go on with the new one.
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

impl Engine {
    /// Events from the journal of the data root, which every process using it appends to
    /// (daemonless `events`): those since `since_nano` if given, then the ones appended
    /// from now on, until `until_nano` (or until the receiver is dropped); only those
    /// `filters` let through.
    pub fn journal_events(
        &self,
        _caller: &Caller,
        since_nano: Option<i64>,
        until_nano: Option<i64>,
        filters: Filters,
    ) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(64);
        let Some(journal) = self.events.journal().cloned() else {
            return rx;
        };
        tokio::spawn(async move {
            let wanted =
                |e: &Event| e.matches(&filters) && until_nano.is_none_or(|u| e.time_nano <= u);
            let (past, mut follower) =
                match tokio::task::spawn_blocking(move || journal.subscribe(since_nano)).await {
                    Ok(x) => x,
                    Err(_) => return,
                };
            for e in past.into_iter().filter(|e| wanted(e)) {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            loop {
                let now = crate::events::now_nanos();
                if until_nano.is_some_and(|u| now > u) {
                    return;
                }
                let (f, batch) = match tokio::task::spawn_blocking(move || {
                    let batch = follower.read_new();
                    (follower, batch)
                })
                .await
                {
                    Ok(x) => x,
                    Err(_) => return,
                };
                follower = f;
                for e in batch.into_iter().filter(|e| wanted(e)) {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                let step = until_nano
                    .map(|u| Duration::from_nanos((u - now).max(0) as u64))
                    .unwrap_or(FOLLOW_POLL)
                    .min(FOLLOW_POLL);
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(step) => {}
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, time_nano: i64) -> Event {
        let mut attributes = BTreeMap::new();
        attributes.insert("name".to_string(), "web".to_string());
        Event {
            kind: "container",
            action: action.into(),
            id: "abc".into(),
            attributes,
            time_nano,
            caller: Caller::current(),
        }
    }

    #[test]
    fn events_round_trip_and_filter_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path(), MAX_BYTES).unwrap();
        j.append(&event("create", 10)).unwrap();
        j.append(&event("start", 30)).unwrap();
        j.append(&event("die", 20)).unwrap();
        let all = j.read_since(0);
        let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create", "start", "die"]);
        assert_eq!(all[0], event("create", 10));
        assert_eq!(j.read_since(20).len(), 2);
    }

    #[test]
    fn torn_lines_are_skipped_and_followers_see_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path(), MAX_BYTES).unwrap();
        j.append(&event("create", 1)).unwrap();
        let mut f = j.follow();
        assert!(f.read_new().is_empty());
        // A writer killed half-way through a line, then a good line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.current())
            .unwrap()
            .write_all(b"{\"type\":\"cont")
            .unwrap();
        assert!(f.read_new().is_empty());
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.current())
            .unwrap()
            .write_all(b"\n")
            .unwrap();
        j.append(&event("start", 2)).unwrap();
        let got = f.read_new();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].action, "start");
        assert_eq!(j.read_since(0).len(), 2);
    }

    #[test]
    fn a_subscription_sees_each_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path(), MAX_BYTES).unwrap();
        j.append(&event("old", 1)).unwrap();
        j.append(&event("create", 10)).unwrap();
        let (past, mut f) = j.subscribe(Some(5));
        j.append(&event("start", 11)).unwrap();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].action, "create");
        let new = f.read_new();
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].action, "start");
        let (past, _) = j.subscribe(None);
        assert!(past.is_empty());
    }

    #[test]
    fn the_journal_is_bounded_and_followed_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path(), 2000).unwrap();
        let mut f = j.follow();
        let mut seen = 0;
        for n in 0..200 {
            j.append(&event(&format!("a{n}"), n)).unwrap();
            seen += f.read_new().len();
        }
        assert_eq!(seen, 200, "the follower missed events across rotations");
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(j.current()) <= 2000 + 300);
        assert!(size(j.rotated()) <= 2000 + 300);
        let kept = j.read_since(0);
        assert!(kept.len() < 200 && kept.len() > 5);
        assert_eq!(kept.last().unwrap().action, "a199");
    }

    #[test]
    fn concurrent_writers_never_interleave_lines() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path(), MAX_BYTES).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let j = &j;
                s.spawn(move || {
                    for n in 0..100 {
                        j.append(&event(&format!("t{t}-{n}"), n)).unwrap();
                    }
                });
            }
        });
        assert_eq!(j.read_since(0).len(), 800);
    }
}
