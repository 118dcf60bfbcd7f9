//! Containers on disk, shared by several processes (daemonless mode), and the name links
//! every mode keeps.
//!
//! berthd owns its data root and keeps every container in memory. Daemonless commands are
//! many short processes on one data root, so for them the disk is the truth, read again for
//! every operation, and three kinds of lock keep them apart:
//!
//! - the **names lock** (`<data-root>/names.lock`, exclusive, held for milliseconds) covers
//!   creating, renaming and removing containers, that is changing the set of names;
//! - a **container lock** (`flock` on `<data-root>/containers/<id>`, the directory itself)
//!   is held across every operation that writes the container's record (start, stop, rm,
//!   pause, rename, recording an exit), together with the in-process `op` mutex, and the
//!   record is read again once it is held, so no write is ever based on a stale record;
//! - reading needs no lock: records are replaced by rename, so a reader sees a whole old
//!   version or a whole new one, and a cheap stat (inode, mtime, size) says whether the copy
//!   in memory is current.
//!
//! Names are reserved as symbolic links `<data-root>/names/<name>` → `<id>`: `symlink(2)`
//! fails if the name exists, so a check and a reservation are one atomic step, and a lookup
//! by name is one `readlink`. A link is only valid while the container it names has a record
//! with that name: a link left by a create or rename that crashed half-way is stale, and is
//! replaced under the names lock. berthd keeps the links too (so daemonless commands find the
//! containers it made by name) and repairs them from its records when it starts.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Container, ContainerError, ContainerRecord, Status, RECORD_FILE};
use crate::engine::Engine;
use crate::lock::{FileLock, LockMode};
use crate::rootfs;

const NAMES_DIR: &str = "names";
const NAMES_LOCK: &str = "names.lock";

/// Which version of a record file: records are replaced by rename, so a new inode (or mtime,
/// or size) means another version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    size: u64,
}

impl Stamp {
    fn of_metadata(m: &std::fs::Metadata) -> Self {
        Self {
            ino: m.ino(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            size: m.len(),
        }
    }

    /// The stamp of the file now; `None` if it is not there.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of_metadata(&m))
    }

    /// The stamp of `path` under the directory `dir` (a shorter lookup than a full path).
    fn at(dir: &std::fs::File, path: &str) -> Option<Self> {
        let st = rustix::fs::statat(dir, path, rustix::fs::AtFlags::empty()).ok()?;
        Some(Self {
            ino: st.st_ino as u64,
            mtime: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as i64,
            size: st.st_size as u64,
        })
    }
}

/// The listing cache, `<data-root>/list-cache.json`: what listings show of every record as
/// a listing last read it, with the stamp of the file it came from. `ps` with many
/// containers then reads one small file and stats each record instead of opening and
/// parsing each one. An entry is only used while its record file still has that stamp, so
/// the cache can never be wrong, only stale: any listing that finds it stale writes a fresh
/// one (whole, by rename; two listings writing at once leave either one, both valid).
const LIST_CACHE: &str = "list-cache.json";

#[derive(Serialize, Deserialize)]
struct Listed {
    stamp: Stamp,
    record: ListedRecord,
}

/// The parts of a record that listings (`ps`, its filters, `info`) and their refresh read:
/// the configuration is left out, which is most of a record. `listed_records_list_as_their_
/// records_do` checks a listing of these shows what one of the whole records would.
#[derive(Clone, Serialize, Deserialize)]
struct ListedRecord {
    id: String,
    name: String,
    created: String,
    image_id: String,
    image_name: String,
    path: String,
    args: Vec<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    network_mode: String,
    auto_remove: bool,
    state: super::RunState,
}

impl From<&ContainerRecord> for ListedRecord {
    fn from(r: &ContainerRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            created: r.created.clone(),
            image_id: r.image_id.clone(),
            image_name: r.image_name.clone(),
            path: r.path.clone(),
            args: r.args.clone(),
            labels: r.config.labels.clone(),
            network_mode: r.host_config.network_mode.clone(),
            auto_remove: r.host_config.auto_remove,
            state: r.state.clone(),
        }
    }
}

impl ListedRecord {
    /// A record with what listings read, and defaults for the rest.
    fn into_record(self) -> ContainerRecord {
        ContainerRecord {
            id: self.id,
            name: self.name,
            created: self.created,
            image_id: self.image_id,
            image_name: self.image_name,
            config: api_types::ContainerConfig {
                labels: self.labels,
                ..Default::default()
            },
            host_config: api_types::HostConfig {
                network_mode: self.network_mode,
                auto_remove: self.auto_remove,
                ..Default::default()
            },
            path: self.path,
            args: self.args,
            layers: Vec::new(),
            state: self.state,
            restart_count: 0,
            created_by_uid: 0,
            manually_stopped: false,
        }
    }
}

/// What a listing found of one container.
enum Seen {
    /// Its cache entry (by index) is current and needs nothing.
    Cached(usize),
    /// Its record, read again (new or changed) and needing nothing.
    Read(Box<Listed>),
    /// It needs its lock: an exit nobody recorded, an auto-remove, a half-done removal.
    NeedsLock(Stamp),
    /// A directory without a record.
    NoRecord,
    Unreadable(ContainerError),
}

/// Looks at one container for a listing (no locks, no async: run on any thread).
fn check_listed(
    dir: &std::fs::File,
    root: &Path,
    id: &str,
    cached: Option<(usize, &Listed)>,
) -> Seen {
    let Some(stamp) = Stamp::at(dir, &format!("{id}/{RECORD_FILE}")) else {
        return Seen::NoRecord;
    };
    let (seen, rec) = match cached {
        Some((n, l)) if l.stamp == stamp => (Seen::Cached(n), &l.record),
        _ => match read_record(&root.join(id)) {
            Ok(Some((record, stamp))) => {
                let l = Box::new(Listed {
                    stamp,
                    record: ListedRecord::from(&record),
                });
                return settle(Seen::Read(l));
            }
            Ok(None) => return Seen::NoRecord,
            Err(e) => return Seen::Unreadable(e),
        },
    };
    if needs_lock(rec) {
        return Seen::NeedsLock(stamp);
    }
    seen
}

/// A freshly read record that needs its lock says so.
fn settle(seen: Seen) -> Seen {
    match seen {
        Seen::Read(l) if needs_lock(&l.record) => Seen::NeedsLock(l.stamp),
        other => other,
    }
}

/// Whether a listing must take a container's lock to show it truly (see
/// [`Engine::refresh`]).
fn needs_lock(rec: &ListedRecord) -> bool {
    let exited = rec
        .state
        .processes
        .as_ref()
        .filter(|_| rec.state.status.is_running())
        .is_some_and(|p| !p.shim_alive());
    exited
        || matches!(rec.state.status, Status::Removing | Status::Dead)
        || (rec.auto_remove && rec.state.status == Status::Exited)
}

/// A hold on a container's lifecycle: the in-process mutex and, in daemonless mode, the
/// lock other processes respect.
pub(crate) struct OpGuard<'a> {
    // Dropped first: other processes may go on once this process is done.
    _file: Option<FileLock>,
    _op: tokio::sync::MutexGuard<'a, ()>,
}

/// Reads a container's record; `None` if it has none (removed, or a create in progress).
fn read_record(dir: &Path) -> Result<Option<(ContainerRecord, Stamp)>, ContainerError> {
    let path = dir.join(RECORD_FILE);
    let bytes = match std::fs::File::open(&path) {
        Ok(f) => {
            let meta = f
                .metadata()
                .map_err(|e| ContainerError::io(format!("Failed to read {}", path.display()), e))?;
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            io::Read::read_to_end(&mut &f, &mut bytes)
                .map_err(|e| ContainerError::io(format!("Failed to read {}", path.display()), e))?;
            (bytes, Stamp::of_metadata(&meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ContainerError::io(
                format!("Failed to read {}", path.display()),
                e,
            ))
        }
    };
    match serde_json::from_slice::<ContainerRecord>(&bytes.0) {
        Ok(rec) => Ok(Some((rec, bytes.1))),
        Err(e) => Err(ContainerError::io(
            format!(
                "The state file {} of container {} is corrupt (move the directory away to drop the container)",
                path.display(),
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
            io::Error::new(io::ErrorKind::InvalidData, e),
        )),
    }
}

/// Whether a directory entry of `containers/` can be a container id.
fn is_container_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An exited container that asked to be removed when it exits, but was not yet (daemonless
/// mode notices exits late): whoever next looks at it removes it.
pub(crate) fn is_garbage(rec: &ContainerRecord) -> bool {
    rec.host_config.auto_remove && rec.state.status == Status::Exited
}

impl Engine {
    /// Whether other processes share the data root (daemonless mode): the disk is the truth.
    pub(crate) fn shared(&self) -> bool {
        !self.watching
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.config.data_root.join("containers")
    }

    fn names_dir(&self) -> PathBuf {
        self.config.data_root.join(NAMES_DIR)
    }

    /// `names/<name>` for a name with its leading `/`.
    fn name_link(&self, name: &str) -> PathBuf {
        self.names_dir().join(name.trim_start_matches('/'))
    }

    /// Brings a container in memory up to date with its record on disk. Returns false (and
    /// forgets the container) if it is gone.
    pub(crate) fn sync_container(&self, c: &Arc<Container>) -> Result<bool, ContainerError> {
        let path = c.dir.join(RECORD_FILE);
        let now = Stamp::of(&path);
        if now.is_none() {
            self.forget(c);
            return Ok(false);
        }
        if now == *c.stamp.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(true);
        }
        let Some((record, stamp)) = read_record(&c.dir)? else {
            self.forget(c);
            return Ok(false);
        };
        let (status, code, finished) = (
            record.state.status,
            record.state.exit_code,
            record.state.finished_at.clone(),
        );
        let exited_since = {
            let mut rec = c.record.lock().unwrap_or_else(|e| e.into_inner());
            let exited = rec.state.finished_at != finished && !status.is_running();
            *rec = record;
            exited
        };
        *c.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
        c.lifecycle.send_modify(|l| {
            l.status = status;
            l.exit_code = code;
            if exited_since {
                l.exits += 1;
            }
        });
        Ok(true)
    }

    /// Drops a container that is gone from disk from memory, telling its waiters.
    fn forget(&self, c: &Arc<Container>) {
        {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            if index
                .by_id
                .get(&c.id)
                .is_some_and(|known| Arc::ptr_eq(known, c))
            {
                index.by_id.remove(&c.id);
            }
            index.names.retain(|_, id| *id != c.id);
        }
        c.lifecycle.send_modify(|l| l.removed = true);
    }

    /// The container with this id, from memory if known (brought up to date) or from disk.
    fn load_on_disk(&self, id: &str) -> Result<Option<Arc<Container>>, ContainerError> {
        let known = self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .get(id)
            .cloned();
        if let Some(c) = known {
            return Ok(self.sync_container(&c)?.then_some(c));
        }
        let dir = self.containers_dir().join(id);
        let Some((record, stamp)) = read_record(&dir)? else {
            return Ok(None);
        };
        let c = Arc::new(Container::new(
            record,
            &self.config.data_root,
            &self.config.exec_root,
        ));
        *c.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        // Another task may have loaded it meanwhile: keep one object per container.
        let c = index.by_id.entry(id.to_string()).or_insert(c).clone();
        index.names.retain(|_, v| v != id);
        index.names.insert(c.name(), id.to_string());
        Ok(Some(c))
    }

    /// Finds a container on disk by full id, name (with or without `/`) or unique id prefix,
    /// in Docker's order.
    pub(crate) fn find_on_disk(&self, key: &str) -> Result<Arc<Container>, ContainerError> {
        let not_found = || ContainerError::NotFound { id: key.into() };
        if key.is_empty() || key.contains("..") {
            return Err(not_found());
        }
        if is_container_id(key) {
            if let Some(c) = self.load_on_disk(key)? {
                return Ok(c);
            }
        }
        let name = format!("/{}", key.trim_start_matches('/'));
        if !key.trim_start_matches('/').contains('/') {
            if let Ok(target) = std::fs::read_link(self.name_link(&name)) {
                let id = target.to_string_lossy().into_owned();
                if is_container_id(&id) {
                    if let Some(c) = self.load_on_disk(&id)? {
                        if c.name() == name {
                            return Ok(c);
                        }
                    }
                }
            }
        }
        if key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = Vec::new();
            if let Ok(rd) = std::fs::read_dir(self.containers_dir()) {
                for e in rd.flatten() {
                    let id = e.file_name().to_string_lossy().into_owned();
                    if is_container_id(&id) && id.starts_with(key) {
                        found.push(id);
                    }
                }
            }
            let mut loaded = Vec::new();
            for id in found {
                if let Some(c) = self.load_on_disk(&id)? {
                    loaded.push(c);
                }
            }
            match loaded.len() {
                0 => {}
                1 => return Ok(loaded.remove(0)),
                _ => return Err(ContainerError::Ambiguous { prefix: key.into() }),
            }
        }
        Err(not_found())
    }

    /// Every container on disk, up to date. What cannot be read is skipped with a warning
    /// (and left alone: it may be data someone wants back).
    pub(crate) fn all_on_disk(&self) -> Vec<Arc<Container>> {
        let Ok(rd) = std::fs::read_dir(self.containers_dir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut without_record = Vec::new();
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !is_container_id(&id) {
                continue;
            }
            match self.load_on_disk(&id) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => without_record.push(id),
                Err(e) => {
                    tracing::warn!(id, error = %e, "skipping a container whose state cannot be read")
                }
            }
        }
        if !without_record.is_empty() {
            self.remove_unfinished_creates(&without_record);
        }
        out
    }

    /// Every container's record, up to date (daemonless listings: `ps`, `info`), newest
    /// first. Records come from the listing cache when their file has not changed since; a
    /// running container whose shim is gone, an auto-remove container that exited and a
    /// half-done removal are dealt with as [`Engine::refresh`] does (so they may be gone).
    pub(crate) async fn list_records(&self) -> Vec<ContainerRecord> {
        let root = self.containers_dir();
        let cache_path = self.config.data_root.join(LIST_CACHE);
        let mut cached: Vec<Option<Listed>> = std::fs::read(&cache_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Listed>>(&b).ok())
            .unwrap_or_default()
            .into_iter()
            .map(Some)
            .collect();
        let by_id: HashMap<String, usize> = cached
            .iter()
            .enumerate()
            .filter_map(|(n, l)| l.as_ref().map(|l| (l.record.id.clone(), n)))
            .collect();
        let (Ok(dir), Ok(rd)) = (std::fs::File::open(&root), std::fs::read_dir(&root)) else {
            return Vec::new();
        };
        let ids: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|id| is_container_id(id))
            .collect();
        // What each container needs: a stat of its record and, running, a look at its shim.
        // Independent system calls, so spread over the CPUs.
        let seen: Vec<Seen> = {
            let check = |id: &String| {
                check_listed(
                    &dir,
                    &root,
                    id,
                    by_id
                        .get(id)
                        .and_then(|&n| cached[n].as_ref())
                        .map(|l| (by_id[id], l)),
                )
            };
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4);
            let chunk = ids.len().div_ceil(threads).max(64);
            if ids.len() <= chunk {
                ids.iter().map(check).collect()
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = ids
                        .chunks(chunk)
                        .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
                        .collect();
                    handles
                        .into_iter()
                        .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                        .collect()
                })
            }
        };
        let mut fresh: Vec<Listed> = Vec::with_capacity(ids.len());
        let mut stale = cached.len() != ids.len();
        let mut without_record = Vec::new();
        for (id, seen) in ids.iter().zip(seen) {
            match seen {
                Seen::Cached(n) => {
                    if let Some(l) = cached[n].take() {
                        fresh.push(l);
                    }
                }
                Seen::Read(l) => {
                    stale = true;
                    fresh.push(*l);
                }
                Seen::NoRecord => without_record.push(id.clone()),
                Seen::Unreadable(e) => {
                    stale = true;
                    tracing::warn!(id, error = %e, "skipping a container whose state cannot be read");
                }
                Seen::NeedsLock(stamp) => {
                    // The full way, under its lock, then whatever it became.
                    stale = true;
                    let Ok(Some(c)) = self.load_on_disk(id) else {
                        continue;
                    };
                    self.refresh(&c).await;
                    if c.lifecycle.borrow().removed {
                        continue;
                    }
                    let stamp = c
                        .stamp
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .unwrap_or(stamp);
                    fresh.push(Listed {
                        stamp,
                        record: ListedRecord::from(&c.snapshot()),
                    });
                }
            }
        }
        if !without_record.is_empty() {
            self.remove_unfinished_creates(&without_record);
        }
        // Newest first, as listings show them, moving each record once.
        let mut order: Vec<usize> = (0..fresh.len()).collect();
        order.sort_by(|&a, &b| fresh[b].record.created.cmp(&fresh[a].record.created));
        let mut slots: Vec<Option<Listed>> = fresh.into_iter().map(Some).collect();
        let fresh: Vec<Listed> = order.iter().filter_map(|&i| slots[i].take()).collect();
        if stale {
            // Best effort: a listing that cannot write the cache is only slower next time.
            if let Ok(bytes) = serde_json::to_vec(&fresh) {
                let tmp = self
                    .config
                    .data_root
                    .join(format!(".{LIST_CACHE}.{}", std::process::id()));
                if std::fs::write(&tmp, bytes).is_ok()
                    && std::fs::rename(&tmp, &cache_path).is_err()
                {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
        }
        fresh.into_iter().map(|l| l.record.into_record()).collect()
    }

    /// Removes container directories that have no record: a create holds the names lock
    /// from making the directory to writing the record, so one found without a record while
    /// that lock is free was left by a create that died. Never waits for the lock.
    fn remove_unfinished_creates(&self, ids: &[String]) {
        let Ok(Some(_names)) =
            FileLock::try_acquire(&self.config.data_root.join(NAMES_LOCK), LockMode::Exclusive)
        else {
            return;
        };
        for id in ids {
            let dir = self.containers_dir().join(id);
            if dir.join(RECORD_FILE).exists() {
                continue;
            }
            tracing::warn!(dir = %dir.display(), "removing a container directory without state (a create that never finished)");
            for m in rootfs::mounts_under(&dir) {
                let _ = rootfs::unmount(&m);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Takes a container for a lifecycle operation: the in-process mutex, then (daemonless)
    /// the lock other processes respect, reading the record again under it. Any exit that
    /// happened meanwhile is recorded before the guard is handed out, and a removal whose
    /// process died half-way is finished (the container is then not found).
    pub(crate) async fn lock_op<'a>(
        &self,
        c: &'a Arc<Container>,
    ) -> Result<OpGuard<'a>, ContainerError> {
        let op = c.op.lock().await;
        match self.lock_op_with(c, op, true).await {
            Some(r) => r,
            None => Err(ContainerError::NotFound { id: c.id.clone() }),
        }
    }

    /// [`Engine::lock_op`] if nobody holds the container right now; `None` if a task of this
    /// process (maybe the caller) or another process does. Never waits.
    pub(crate) async fn try_lock_op<'a>(
        &self,
        c: &'a Arc<Container>,
    ) -> Option<Result<OpGuard<'a>, ContainerError>> {
        let op = c.op.try_lock().ok()?;
        self.lock_op_with(c, op, false).await
    }

    /// Takes the other processes' lock (waiting for it, or `None` if busy and not `wait`),
    /// then reads the record again and deals with what happened meanwhile.
    async fn lock_op_with<'a>(
        &self,
        c: &'a Arc<Container>,
        op: tokio::sync::MutexGuard<'a, ()>,
        wait: bool,
    ) -> Option<Result<OpGuard<'a>, ContainerError>> {
        if !self.shared() {
            self.refresh_locked(c).await;
            return Some(Ok(OpGuard {
                _file: None,
                _op: op,
            }));
        }
        let not_found = || ContainerError::NotFound { id: c.id.clone() };
        let taken = if wait {
            FileLock::acquire_async(&c.dir, LockMode::Exclusive, crate::lock::wait_limit())
                .await
                .map(Some)
        } else {
            FileLock::try_acquire(&c.dir, LockMode::Exclusive)
        };
        let file = match taken {
            Ok(Some(l)) => l,
            Ok(None) => return None,
            Err(e) if e.is_not_found() => {
                self.forget(c);
                return Some(Err(not_found()));
            }
            Err(e) => {
                return Some(Err(ContainerError::io(
                    format!("Cannot lock container {}", c.id),
                    io::Error::other(e),
                )))
            }
        };
        Some(self.settle_locked(c, op, file).await)
    }

    async fn settle_locked<'a>(
        &self,
        c: &'a Arc<Container>,
        op: tokio::sync::MutexGuard<'a, ()>,
        file: FileLock,
    ) -> Result<OpGuard<'a>, ContainerError> {
        let not_found = || ContainerError::NotFound { id: c.id.clone() };
        if !self.sync_container(c)? {
            return Err(not_found());
        }
        let guard = OpGuard {
            _file: Some(file),
            _op: op,
        };
        if matches!(c.snapshot().state.status, Status::Removing | Status::Dead) {
            // Its remover held this lock and died: finish the removal.
            tracing::warn!(id = %c.id, "finishing the removal of a container whose remover died");
            Box::pin(self.remove_locked(&crate::Caller::engine(), c, true)).await?;
            return Err(not_found());
        }
        self.refresh_locked(c).await;
        Ok(guard)
    }

    /// Takes the names lock (daemonless mode; `None` for berthd, which owns its root).
    pub(crate) async fn lock_names(&self) -> Result<Option<FileLock>, ContainerError> {
        if !self.shared() {
            return Ok(None);
        }
        FileLock::acquire_async(
            &self.config.data_root.join(NAMES_LOCK),
            LockMode::Exclusive,
            crate::lock::wait_limit(),
        )
        .await
        .map(Some)
        .map_err(|e| ContainerError::io("Cannot lock the container names", io::Error::other(e)))
    }

    /// The id of the container that holds `name` on disk, if its link is valid.
    pub(crate) fn name_holder_on_disk(&self, name: &str) -> Option<String> {
        let id = std::fs::read_link(self.name_link(name))
            .ok()?
            .to_string_lossy()
            .into_owned();
        if !is_container_id(&id) {
            return None;
        }
        match read_record(&self.containers_dir().join(&id)) {
            Ok(Some((rec, _))) if rec.name == name => Some(id),
            Ok(_) => None,
            // Unreadable: keep the name, rather than hand out one that may be in use.
            Err(_) => Some(id),
        }
    }

    /// Points `names/<name>` at `id`, replacing a stale link. Daemonless callers hold the
    /// names lock and have checked the name is free.
    pub(crate) fn link_name(&self, name: &str, id: &str) -> Result<(), ContainerError> {
        let link = self.name_link(name);
        let fail =
            |e: io::Error| ContainerError::io(format!("Failed to reserve the name {name}"), e);
        match std::os::unix::fs::symlink(id, &link) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let tmp = self
                    .names_dir()
                    .join(format!(".{}.{}", id, std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(id, &tmp).map_err(fail)?;
                std::fs::rename(&tmp, &link).map_err(fail)
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// Removes `names/<name>` if it still points at `id`.
    pub(crate) fn unlink_name(&self, name: &str, id: &str) {
        let link = self.name_link(name);
        if std::fs::read_link(&link).is_ok_and(|t| t.as_os_str() == id) {
            let _ = std::fs::remove_file(&link);
        }
    }

    /// Makes the name links match the records in memory (berthd at start-up: it owns the
    /// root and has read every record).
    pub(crate) fn repair_names(&self) {
        let dir = self.names_dir();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the name links");
            return;
        }
        let names: Vec<(String, String)> = self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .names
            .iter()
            .map(|(n, id)| (n.clone(), id.clone()))
            .collect();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = format!("/{}", e.file_name().to_string_lossy());
                let target = std::fs::read_link(e.path()).ok();
                let wanted = names.iter().find(|(n, _)| *n == name).map(|(_, id)| id);
                if target.as_deref().map(Path::as_os_str) != wanted.map(|w| w.as_ref()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for (name, id) in names {
            if std::fs::read_link(self.name_link(&name)).is_err() {
                if let Err(e) = self.link_name(&name, &id) {
                    tracing::warn!(name, error = %e, "cannot link a container name");
                }
            }
        }
    }

    /// Creates the name links of a data root that has none yet (one berth used before
    /// they existed), under the names lock, from every record on disk.
    pub(crate) async fn ensure_names(&self) -> Result<(), ContainerError> {
        if self.names_dir().is_dir() {
            return Ok(());
        }
        let _names = self.lock_names().await?;
        if self.names_dir().is_dir() {
            return Ok(());
        }
        let tmp = self
            .config
            .data_root
            .join(format!(".names.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| ContainerError::io(format!("Failed to create {}", tmp.display()), e))?;
        if let Ok(rd) = std::fs::read_dir(self.containers_dir()) {
            for e in rd.flatten() {
                if let Ok(Some((rec, _))) = read_record(&e.path()) {
                    let _ = std::os::unix::fs::symlink(
                        &rec.id,
                        tmp.join(rec.name.trim_start_matches('/')),
                    );
                }
            }
        }
        std::fs::rename(&tmp, self.names_dir()).map_err(|e| {
            ContainerError::io(
                format!("Failed to create {}", self.names_dir().display()),
                e,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_hex_entries_are_containers() {
        assert!(is_container_id(&"a".repeat(64)));
        assert!(!is_container_id(&"a".repeat(63)));
        assert!(!is_container_id(&format!("{}g", "a".repeat(63))));
        assert!(!is_container_id("names"));
    }

    fn record(id: &str, name: &str, created: &str, status: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "name": name, "created": created,
            "image_id": "sha256:1", "image_name": "busybox",
            "config": {}, "host_config": {},
            "path": "true", "args": [], "layers": [],
            "state": {
                "status": status,
                "processes": if status == "running" {
                    serde_json::json!({"pid": 1, "shim_pid": i32::MAX, "shim_start_time": 1})
                } else {
                    serde_json::Value::Null
                },
                "exit_code": 0, "oom_killed": false, "error": "",
                "started_at": "2026-01-01T00:00:00Z", "finished_at": super::super::ZERO_TIME,
            },
            "restart_count": 0, "created_by_uid": 0,
        })
    }

    fn put(root: &Path, rec: &serde_json::Value) {
        let dir = root.join("containers").join(rec["id"].as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        crate::fsutil::write_json_atomic(&dir.join(RECORD_FILE), rec).unwrap();
    }

    #[tokio::test]
    async fn listings_trust_the_cache_only_while_records_are_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config = crate::EngineConfig::new(&data, &tmp.path().join("exec"));
        let engine = Engine::open(config, false).await.unwrap();
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        put(
            &data,
            &record(&a, "/first", "2026-01-01T00:00:01Z", "exited"),
        );
        put(
            &data,
            &record(&b, "/second", "2026-01-01T00:00:02Z", "created"),
        );
        put(
            &data,
            &record(&c, "/third", "2026-01-01T00:00:03Z", "exited"),
        );
        let names = |recs: Vec<ContainerRecord>| -> Vec<String> {
            recs.into_iter().map(|r| r.name).collect()
        };
        assert_eq!(
            names(engine.list_records().await),
            ["/third", "/second", "/first"]
        );
        let cache = data.join(LIST_CACHE);
        let written = std::fs::metadata(&cache).unwrap().modified().unwrap();
        // Nothing changed: the cache is used, not written again.
        assert_eq!(names(engine.list_records().await).len(), 3);
        assert_eq!(
            std::fs::metadata(&cache).unwrap().modified().unwrap(),
            written
        );
        // A record another process replaced is read again.
        put(
            &data,
            &record(&b, "/renamed", "2026-01-01T00:00:02Z", "created"),
        );
        assert_eq!(
            names(engine.list_records().await),
            ["/third", "/renamed", "/first"]
        );
        // A cache that does not parse is ignored (and replaced); a container that is gone
        // leaves the listing.
        std::fs::write(&cache, b"[{\"stamp\": ").unwrap();
        std::fs::remove_dir_all(data.join("containers").join(&c)).unwrap();
        assert_eq!(names(engine.list_records().await), ["/renamed", "/first"]);
        let kept: Vec<Listed> = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
        assert_eq!(kept.len(), 2);
        // A record that does not parse is left out (and left alone).
        std::fs::write(data.join("containers").join(&a).join(RECORD_FILE), b"{").unwrap();
        assert_eq!(names(engine.list_records().await), ["/renamed"]);
        // A running container whose shim is gone has exited: recorded on the way.
        let d = "d".repeat(64);
        put(
            &data,
            &record(&d, "/gone", "2026-01-01T00:00:04Z", "running"),
        );
        let recs = engine.list_records().await;
        assert_eq!(recs[0].name, "/gone");
        assert_eq!(recs[0].state.status, Status::Exited);
        assert_eq!(recs[0].state.exit_code, 255);
        let on_disk: ContainerRecord =
            crate::fsutil::read_json(&data.join("containers").join(&d).join(RECORD_FILE)).unwrap();
        assert_eq!(on_disk.state.status, Status::Exited);
    }

    /// berthd lists whole records, daemonless commands [`ListedRecord`]s: a listing must
    /// not tell them apart, whatever the records hold and whatever the filters.
    #[tokio::test]
    async fn listed_records_list_as_their_records_do() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config = crate::EngineConfig::new(&data, &tmp.path().join("exec"));
        let me = std::process::id() as i32;
        let mut rich = record(&"e".repeat(64), "/rich", "2026-01-01T00:00:05Z", "running");
        rich["state"]["processes"] = serde_json::json!({
            "pid": me, "shim_pid": me, "shim_start_time": crate::process::start_time(me).unwrap()
        });
        rich["state"]["health"] =
            serde_json::json!({"Status": "healthy", "FailingStreak": 0, "Log": []});
        rich["config"] = serde_json::json!({
            "Hostname": "rich", "Image": "busybox:1", "Cmd": ["sh", "-c", "sleep 1"],
            "Env": ["A=1"], "Labels": {"tier": "web", "x": ""},
            "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
            "Healthcheck": {"Test": ["CMD", "true"]}, "StopSignal": "SIGINT",
        });
        rich["host_config"] = serde_json::json!({
            "NetworkMode": "none", "Binds": ["/srv:/data:ro"], "Memory": 67108864,
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "Init": true,
            "LogConfig": {"Type": "json-file", "Config": {}},
        });
        rich["image_name"] = "busybox:1".into();
        rich["path"] = "sh".into();
        rich["args"] = serde_json::json!(["-c", "sleep 1"]);
        put(&data, &rich);
        let mut done = record(&"f".repeat(64), "/done", "2026-01-01T00:00:04Z", "exited");
        done["state"]["exit_code"] = 3.into();
        done["state"]["finished_at"] = "2026-01-01T00:01:00Z".into();
        put(&data, &done);
        put(
            &data,
            &record(&"a".repeat(64), "/fresh", "2026-01-01T00:00:03Z", "created"),
        );
        let shared = Engine::open(config.clone(), false).await.unwrap();
        let owner = Engine::open(config, true).await.unwrap();
        let caller = crate::Caller::current();
        for filters in [
            "",
            r#"{"label":{"tier=web":true}}"#,
            r#"{"label":{"x":true}}"#,
            r#"{"status":{"running":true}}"#,
            r#"{"exited":{"3":true}}"#,
            r#"{"ancestor":{"busybox:1":true}}"#,
            r#"{"health":{"healthy":true}}"#,
            r#"{"name":{"ric":true}}"#,
        ] {
            for all in [false, true] {
                let opts = super::super::ListOptions {
                    all,
                    limit: None,
                    filters: api_types::filters::Filters::parse(filters).unwrap(),
                    size: false,
                };
                let a = shared.list_containers(&caller, &opts).await.unwrap();
                let b = owner.list_containers(&caller, &opts).await.unwrap();
                assert_eq!(
                    serde_json::to_value(&a).unwrap(),
                    serde_json::to_value(&b).unwrap(),
                    "filters {filters} all {all}"
                );
            }
        }
        let info = |i: api_types::Info| (i.containers, i.containers_running, i.containers_stopped);
        assert_eq!(
            info(shared.info(&caller).await),
            info(owner.info(&caller).await)
        );
        assert_eq!(info(shared.info(&caller).await), (3, 1, 2));
    }

    #[test]
    fn records_are_read_with_their_stamp_and_corruption_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_record(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join(RECORD_FILE), b"{\"id\": \"x\", \"na").unwrap();
        let e = read_record(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is corrupt"), "{e}");
        assert!(e.contains(RECORD_FILE), "{e}");
    }
}
