//! The event journal: the events of every process using a data root, on disk, and the one
//! source `/events` and `berth events` read (see [`crate::events::Events`]).
//!
//! berthd and daemonless commands append their events to
//! `<data-root>/events/events.jsonl`, one JSON object per line. A line is written with a single `write(2)` on a file opened with
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

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::lock::{FileLock, LockMode};
use crate::Caller;

/// The size at which the journal is rotated.
pub const MAX_BYTES: u64 = 1 << 20;
const CURRENT: &str = "events.jsonl";
const ROTATED: &str = "events.jsonl.1";
const ROTATE_LOCK: &str = "rotate.lock";

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
        let (past, follower) = self.cut(since_nano);
        (past.read(), follower)
    }

    /// [`Journal::subscribe`] in two steps: the cut between past and future is made now
    /// (a few `open`s), the past is read when [`Past::read`] is called (it may be up to
    /// the journal's bound: call it where blocking is fine).
    pub fn cut(&self, since_nano: Option<i64>) -> (Past, JournalFollower) {
        use std::io::Seek;
        let mut f = JournalFollower {
            path: self.current(),
            rotated: self.rotated(),
            reader: None,
            inode: 0,
            partial: Vec::new(),
        };
        let mut past = Past {
            files: Vec::new(),
            since: since_nano.unwrap_or(i64::MAX),
        };
        // Where the follower starts is where the past ends.
        let mut head = None;
        if let Ok(mut file) = File::open(&f.path) {
            let end = file.seek(io::SeekFrom::End(0)).unwrap_or(0);
            f.inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
            if since_nano.is_some() {
                head = File::open(&f.path).ok().map(|again| (again, end));
            }
            f.reader = Some(BufReader::new(file));
        }
        if since_nano.is_none() {
            return (past, f);
        }
        // The rotated file, unless it is the file just opened (rotated meanwhile).
        if let Ok(file) = File::open(self.rotated()) {
            if file.metadata().map(|m| m.ino()).ok() != Some(f.inode) {
                past.files.push((file, u64::MAX));
            }
        }
        past.files.extend(head);
        (past, f)
    }
}

/// The part of a journal before a subscription's cut (see [`Journal::cut`]).
pub struct Past {
    /// Open files, oldest first, each with how much of it is before the cut.
    files: Vec<(File, u64)>,
    since: i64,
}

impl Past {
    /// The events before the cut that happened at or after the subscription's `since`.
    pub fn read(self) -> Vec<Event> {
        use std::io::Read;
        let mut past = Vec::new();
        for (file, limit) in self.files {
            read_lines(BufReader::new(file.take(limit)), &mut Vec::new(), &mut past);
        }
        past.retain(|e| e.time_nano >= self.since);
        past
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
    rotated: PathBuf,
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
            self.partial.clear();
            self.reader = None;
            // Rotated twice since we last read (a subscriber far behind): the `.1` is the
            // file after ours, whole and unread.
            if let Ok(file) = File::open(&self.rotated) {
                let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
                if ino != self.inode && ino != current {
                    read_lines(BufReader::new(file), &mut Vec::new(), &mut out);
                }
            }
        }
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
    fn a_follower_two_rotations_behind_reads_every_file_it_missed() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::in_dir(dir.path(), 2000).unwrap();
        j.append(&event("first", 0)).unwrap();
        let (_, mut f) = j.subscribe(None);
        let mut rotations = 0;
        let mut n = 1;
        while rotations < 2 {
            let before = std::fs::metadata(j.current()).map(|m| m.ino()).ok();
            j.append(&event(&format!("a{n}"), n)).unwrap();
            if std::fs::metadata(j.current()).map(|m| m.ino()).ok() != before {
                rotations += 1;
            }
            n += 1;
        }
        j.append(&event("last", n)).unwrap();
        let got: Vec<String> = f.read_new().into_iter().map(|e| e.action).collect();
        let want: Vec<String> = (1..n)
            .map(|k| format!("a{k}"))
            .chain(["last".to_string()])
            .collect();
        assert_eq!(got, want);
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
