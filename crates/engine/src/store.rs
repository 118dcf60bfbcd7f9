//! What the engine's object stores have in common: how a data root is shared, one JSON
//! record per object with the version stamp of its file, and names reserved as links.
//!
//! A data root is used in one of two ways ([`Sharing`]). berthd owns it: a store reads its
//! records once, holds them in memory and writes every change through to disk. Daemonless
//! commands are many short processes on one data root: the disk is the truth, read again
//! for every operation, and `flock(2)` locks keep writers apart (see [`crate::lock`]). The
//! difference lives in the stores ([`crate::container::ContainerStore`], the image store),
//! never in the verbs; a new kind of object (a volume, a network) is one more store built
//! from the pieces here:
//!
//! - [`Sharing`] takes a cross-process lock only where other processes may share the root;
//! - [`Stamp`] and [`read_stamped`] read a record with the version of its file, so a copy in
//!   memory is known current by one `stat` (records are replaced by rename: a new version is
//!   a new inode);
//! - [`NameLinks`] reserves unique names as symbolic links `<dir>/<name>` → `<id>`:
//!   `symlink(2)` fails if the name exists, so checking and reserving are one atomic step,
//!   and finding by name is one `readlink`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::lock::{FileLock, LockError, LockMode};

/// Who uses a data root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One long-lived process (berthd) owns it: what it holds in memory is the truth, and
    /// every change is written through to disk.
    Owned,
    /// Any number of short processes (daemonless commands) use it at once: the disk is the
    /// truth, and writers lock what they change.
    Shared,
}

impl Sharing {
    /// Takes `path`'s cross-process lock, waiting up to [`crate::lock::wait_limit`];
    /// `None` (and no wait) for the sole owner of the root.
    pub fn lock(self, path: &Path, mode: LockMode) -> Result<Option<FileLock>, LockError> {
        match self {
            Sharing::Owned => Ok(None),
            Sharing::Shared => FileLock::acquire(path, mode, crate::lock::wait_limit()).map(Some),
        }
    }

    /// [`Sharing::lock`] without blocking the async runtime's thread.
    pub async fn lock_async(
        self,
        path: &Path,
        mode: LockMode,
    ) -> Result<Option<FileLock>, LockError> {
        match self {
            Sharing::Owned => Ok(None),
            Sharing::Shared => FileLock::acquire_async(path, mode, crate::lock::wait_limit())
                .await
                .map(Some),
        }
    }
}

/// Which version of a record file: records are replaced by rename, so a new inode (or
/// mtime, or size) means another version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    size: u64,
}

impl Stamp {
    /// The stamp of a file from its metadata.
    pub fn of_metadata(m: &std::fs::Metadata) -> Self {
        Self {
            ino: m.ino(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            size: m.len(),
        }
    }

    /// The stamp of the file now; `None` if it is not there.
    pub fn of(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of_metadata(&m))
    }

    /// The stamp of `path` relative to the open directory `dir` (a shorter lookup than a
    /// full path, for listings that stat many records).
    pub fn at(dir: &std::fs::File, path: &str) -> Option<Self> {
        let st = rustix::fs::statat(dir, path, rustix::fs::AtFlags::empty()).ok()?;
        Some(Self {
            ino: st.st_ino as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as i64,
            size: st.st_size as u64,
        })
    }
}

/// Reads a JSON record with the stamp of the file it came from; `None` if there is no file.
/// A file that does not parse is an `InvalidData` error.
pub fn read_stamped<T: DeserializeOwned>(path: &Path) -> io::Result<Option<(T, Stamp)>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    io::Read::read_to_end(&mut &file, &mut bytes)?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((value, Stamp::of_metadata(&meta))))
}

/// Unique names, reserved as symbolic links `<dir>/<name>` → `<id>`, with a lock file that
/// covers changing the set of names (held for milliseconds by daemonless commands).
#[derive(Debug, Clone)]
pub struct NameLinks {
    dir: PathBuf,
    lock: PathBuf,
}

impl NameLinks {
    /// Names in `dir`, whose changes are covered by the lock file `lock`.
    pub fn new(dir: PathBuf, lock: PathBuf) -> Self {
        Self { dir, lock }
    }

    /// The directory of the links.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn link_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Takes the names lock (only where other processes share the root).
    pub async fn lock(&self, sharing: Sharing) -> Result<Option<FileLock>, LockError> {
        sharing.lock_async(&self.lock, LockMode::Exclusive).await
    }

    /// Takes the names lock if nobody holds it; `None` if somebody does.
    pub fn try_lock(&self) -> Result<Option<FileLock>, LockError> {
        FileLock::try_acquire(&self.lock, LockMode::Exclusive)
    }

    /// The id `name` points at, if there is a link (valid or stale: the caller checks that
    /// the object it names still has that name).
    pub fn target(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return None;
        }
        std::fs::read_link(self.link_path(name))
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    }

    /// Points `name` at `id`, replacing a stale link. The caller holds the names lock (or
    /// owns the root) and has checked the name is free.
    pub fn link(&self, name: &str, id: &str) -> io::Result<()> {
        let link = self.link_path(name);
        match std::os::unix::fs::symlink(id, &link) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let tmp = self.dir.join(format!(".{}.{}", id, std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(id, &tmp)?;
                std::fs::rename(&tmp, &link)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes `name` if it still points at `id`.
    pub fn unlink(&self, name: &str, id: &str) {
        if self.target(name).as_deref() == Some(id) {
            let _ = std::fs::remove_file(self.link_path(name));
        }
    }

    /// Makes the links exactly `names` (name, id): the sole owner of a root, at start-up.
    pub fn repair(&self, names: &[(String, String)]) {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %crate::error::Chain(&e), "cannot create the name links");
            return;
        }
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let wanted = names.iter().find(|(n, _)| *n == name).map(|(_, id)| id);
                if self.target(&name).as_ref() != wanted {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for (name, id) in names {
            if self.target(name).is_none() {
                if let Err(e) = self.link(name, id) {
                    tracing::warn!(name, error = %crate::error::Chain(&e), "cannot link a name");
                }
            }
        }
    }

    /// Creates the links directory of a root that has none yet, from `names`, whole (made
    /// aside and renamed into place). The caller holds the names lock.
    pub fn create(&self, names: &[(String, String)]) -> io::Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let parent = self.dir.parent().unwrap_or(Path::new("/"));
        let tmp = parent.join(format!(
            ".{}.{}",
            self.dir.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let _ = crate::fsutil::remove_tree(&tmp);
        std::fs::create_dir_all(&tmp)?;
        for (name, id) in names {
            let _ = std::os::unix::fs::symlink(id, tmp.join(name));
        }
        std::fs::rename(&tmp, &self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_with_their_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        assert!(read_stamped::<serde_json::Value>(&path).unwrap().is_none());
        crate::fsutil::write_json_atomic(&path, &serde_json::json!({"a": 1})).unwrap();
        let (v, stamp) = read_stamped::<serde_json::Value>(&path).unwrap().unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(Some(stamp), Stamp::of(&path));
        crate::fsutil::write_json_atomic(&path, &serde_json::json!({"a": 2})).unwrap();
        assert_ne!(Some(stamp), Stamp::of(&path), "a rewrite is a new version");
        std::fs::write(&path, b"{\"a\":").unwrap();
        let e = read_stamped::<serde_json::Value>(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn names_are_reserved_replaced_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let names = NameLinks::new(dir.path().join("names"), dir.path().join("names.lock"));
        names.create(&[("web".into(), "a1".into())]).unwrap();
        assert_eq!(names.target("web").as_deref(), Some("a1"));
        assert_eq!(names.target("../web"), None);
        // A stale link is replaced; unlinking someone else's name does nothing.
        names.link("web", "b2").unwrap();
        names.unlink("web", "a1");
        assert_eq!(names.target("web").as_deref(), Some("b2"));
        names.unlink("web", "b2");
        assert_eq!(names.target("web"), None);
        names.link("old", "c3").unwrap();
        names.repair(&[("db".into(), "d4".into())]);
        assert_eq!(names.target("old"), None);
        assert_eq!(names.target("db").as_deref(), Some("d4"));
    }
}
