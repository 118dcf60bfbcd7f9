//! The container store: every container of a data root, found by id, name or unique id
//! prefix, with its record on disk, the same for berthd and for daemonless commands.
//!
//! [`Sharing::Owned`] (berthd): every record is read once when the store opens and the
//! containers live in memory from then on; a change is written through to the record file
//! ([`Container::update`]). [`Sharing::Shared`] (daemonless): the disk is the truth, read
//! again for every operation, and three kinds of lock keep the processes apart:
//!
//! - the **names lock** (`<data-root>/names.lock`, exclusive, held for milliseconds) covers
//!   creating, renaming and removing containers, that is changing the set of names;
//! - a **container lock** (`flock` on `<data-root>/containers/<id>`, the directory itself)
//!   is held across every operation that writes the container's record, together with the
//!   in-process `op` mutex (see [`Engine::lock_op`]), and the record is read again once it
//!   is held, so no write is ever based on a stale record;
//! - reading needs no lock: records are replaced by rename, so a reader sees a whole old
//!   version or a whole new one, and a [`Stamp`] says whether the copy in memory is current.
//!
//! Names are reserved as links `<data-root>/names/<name>` → `<id>` ([`NameLinks`]). A link
//! is only valid while the container it names has a record with that name: one left by a
//! create or rename that crashed half-way is stale, and is replaced under the names lock.
//! berthd keeps the links too (so daemonless commands find the containers it made by name)
//! and repairs them from its records when it opens the store.
//!
//! The differences between the two ways live in this type and nowhere else: the verbs
//! find, add, rename, lock and remove containers through it.

mod listing;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{Container, ContainerError, ContainerRecord, Status, RECORD_FILE};
use crate::kernel::Kernel;
use crate::lock::{FileLock, LockMode};
use crate::store::{read_stamped, NameLinks, Sharing, Stamp};

const NAMES_DIR: &str = "names";
const NAMES_LOCK: &str = "names.lock";

/// The containers of one data root.
pub(crate) struct ContainerStore {
    sharing: Sharing,
    data_root: PathBuf,
    exec_root: PathBuf,
    /// Owned: every container. Shared: those this process has looked at (one object per
    /// container, so its in-process lock and waiters are shared by the tasks using it).
    index: RwLock<Index>,
    names: NameLinks,
    /// For the clean-up of creates that never finished.
    kernel: Arc<dyn Kernel>,
}

/// Containers by id, and names (with their leading `/`) to ids.
#[derive(Default)]
struct Index {
    by_id: HashMap<String, Arc<Container>>,
    names: HashMap<String, String>,
}

impl Index {
    /// By full id, name (with or without `/`) or unique id prefix, in Docker's order.
    fn find(&self, key: &str) -> Result<Arc<Container>, ContainerError> {
        if key.is_empty() {
            return Err(ContainerError::NotFound { id: key.into() });
        }
        if let Some(c) = self.by_id.get(key) {
            return Ok(c.clone());
        }
        if let Some(c) = self
            .names
            .get(&slashed(key))
            .and_then(|id| self.by_id.get(id))
        {
            return Ok(c.clone());
        }
        if key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = self.by_id.iter().filter(|(id, _)| id.starts_with(key));
            if let Some((_, c)) = found.next() {
                if found.next().is_some() {
                    return Err(ContainerError::Ambiguous { prefix: key.into() });
                }
                return Ok(c.clone());
            }
        }
        Err(ContainerError::NotFound { id: key.into() })
    }

    fn insert(&mut self, c: Arc<Container>) {
        self.names.retain(|_, id| *id != c.id);
        self.names.insert(c.name(), c.id.clone());
        self.by_id.insert(c.id.clone(), c);
    }

    fn remove(&mut self, c: &Arc<Container>) {
        if self
            .by_id
            .get(&c.id)
            .is_some_and(|known| Arc::ptr_eq(known, c))
        {
            self.by_id.remove(&c.id);
        }
        self.names.retain(|_, id| *id != c.id);
    }
}

/// A name with Docker's leading `/`.
fn slashed(name: &str) -> String {
    format!("/{}", name.trim_start_matches('/'))
}

/// Whether a directory entry of `containers/` can be a container id.
fn is_container_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads a container's record; `None` if it has none (removed, or a create in progress).
fn read_record(dir: &Path) -> Result<Option<(ContainerRecord, Stamp)>, ContainerError> {
    let path = dir.join(RECORD_FILE);
    read_stamped(&path).map_err(|e| {
        let context = if e.kind() == io::ErrorKind::InvalidData {
            format!(
                "The state file {} of container {} is corrupt (move the directory away to drop the container)",
                path.display(),
                dir.file_name().unwrap_or_default().to_string_lossy()
            )
        } else {
            format!("Failed to read {}", path.display())
        };
        ContainerError::io(context, e)
    })
}

/// An exited container that asked to be removed when it exits but was not yet (an exit
/// noticed late): whoever next looks at it removes it.
pub(crate) fn is_garbage(rec: &ContainerRecord) -> bool {
    rec.host_config.auto_remove && rec.state.status == Status::Exited
}

/// What taking a container's cross-process lock found.
pub(crate) enum Locked {
    /// Held (`None` where the store owns its root and needs no file lock).
    Held(Option<FileLock>),
    /// Somebody else holds it (only when not waiting).
    Busy,
    /// The container's directory is gone.
    Gone,
}

impl ContainerStore {
    /// Opens the containers of a data root. An owned store reads every record now (a
    /// directory without one was left by a create that never finished, and is removed)
    /// and repairs the name links; a shared one creates the links if the root has none.
    pub(crate) async fn open(
        sharing: Sharing,
        data_root: &Path,
        exec_root: &Path,
        kernel: Arc<dyn Kernel>,
    ) -> Result<Self, ContainerError> {
        let store = Self {
            sharing,
            data_root: data_root.to_path_buf(),
            exec_root: exec_root.to_path_buf(),
            index: RwLock::new(Index::default()),
            names: NameLinks::new(data_root.join(NAMES_DIR), data_root.join(NAMES_LOCK)),
            kernel,
        };
        match sharing {
            Sharing::Owned => store.load_all()?,
            Sharing::Shared => store.ensure_names().await?,
        }
        Ok(store)
    }

    /// `<data-root>/containers`.
    pub(crate) fn dir(&self) -> PathBuf {
        self.data_root.join("containers")
    }

    fn new_container(&self, record: ContainerRecord, stamp: Option<Stamp>) -> Arc<Container> {
        let c = Container::new(record, &self.data_root, &self.exec_root);
        *c.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
        Arc::new(c)
    }

    /// Reads every record into memory (owned stores).
    fn load_all(&self) -> Result<(), ContainerError> {
        let dir = self.dir();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| ContainerError::io(format!("Failed to list {}", dir.display()), e))?;
        let mut unfinished = Vec::new();
        {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if !is_container_id(&id) {
                    continue;
                }
                match read_record(&entry.path()) {
                    Ok(Some((record, stamp))) => {
                        index.insert(self.new_container(record, Some(stamp)))
                    }
                    Ok(None) => unfinished.push(id),
                    // Kept for inspection: never delete what might be data.
                    Err(e) => {
                        tracing::error!(id, error = %crate::error::Chain(&e), "skipping a container whose state cannot be read")
                    }
                }
            }
        }
        self.remove_unfinished_creates(&unfinished);
        let names: Vec<(String, String)> = self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .names
            .iter()
            .map(|(n, id)| (n.trim_start_matches('/').to_string(), id.clone()))
            .collect();
        self.names.repair(&names);
        Ok(())
    }

    /// Creates the name links of a data root that has none yet (one berth used before they
    /// existed), under the names lock, from every record on disk.
    async fn ensure_names(&self) -> Result<(), ContainerError> {
        if self.names.dir().is_dir() {
            return Ok(());
        }
        let _names = self.lock_names().await?;
        let mut names = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.dir()) {
            for e in rd.flatten() {
                if let Ok(Some((rec, _))) = read_record(&e.path()) {
                    names.push((rec.name.trim_start_matches('/').to_string(), rec.id));
                }
            }
        }
        let dir = self.names.dir().to_path_buf();
        self.names
            .create(&names)
            .map_err(|e| ContainerError::io(format!("Failed to create {}", dir.display()), e))
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub(crate) fn find(&self, key: &str) -> Result<Arc<Container>, ContainerError> {
        match self.sharing {
            Sharing::Owned => self
                .index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .find(key),
            Sharing::Shared => self.find_on_disk(key),
        }
    }

    /// Every container (shared stores: every one on disk, each brought up to date). What
    /// cannot be read is skipped with a warning and left alone: it may be data someone
    /// wants back.
    pub(crate) fn all(&self) -> Vec<Arc<Container>> {
        match self.sharing {
            Sharing::Owned => self
                .index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .by_id
                .values()
                .cloned()
                .collect(),
            Sharing::Shared => self.all_on_disk(),
        }
    }

    /// Takes the names lock for a change to the set of names (shared stores; an owned
    /// store changes names under its index lock and needs none).
    pub(crate) async fn lock_names(&self) -> Result<Option<FileLock>, ContainerError> {
        self.names
            .lock(self.sharing)
            .await
            .map_err(|e| ContainerError::io("Cannot lock the container names", io::Error::other(e)))
    }

    /// The id of the container holding `name` (with its `/`), if any. Shared stores read
    /// the link and check the record it points at still has that name.
    fn name_holder(&self, index: &Index, name: &str) -> Option<String> {
        match self.sharing {
            Sharing::Owned => index.names.get(name).cloned(),
            Sharing::Shared => {
                let id = self.names.target(name.trim_start_matches('/'))?;
                if !is_container_id(&id) {
                    return None;
                }
                match read_record(&self.dir().join(&id)) {
                    Ok(Some((rec, _))) if rec.name == name => Some(id),
                    Ok(_) => None,
                    // Unreadable: keep the name, rather than hand out one that may be in use.
                    Err(_) => Some(id),
                }
            }
        }
    }

    /// Adds a new container: its name is `wanted`, or the first of `candidates` nobody
    /// holds; `make` builds its record with that name. The name and id are reserved before
    /// the record is written, so a concurrent create cannot take them; if writing fails,
    /// nothing of the container is left. Shared stores: the caller holds the names lock.
    pub(crate) fn add(
        &self,
        wanted: Option<String>,
        candidates: impl Iterator<Item = String>,
        make: impl FnOnce(String) -> ContainerRecord,
    ) -> Result<Arc<Container>, ContainerError> {
        let container = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            let name = match wanted {
                Some(n) => {
                    if let Some(other) = self.name_holder(&index, &n) {
                        return Err(ContainerError::NameInUse { name: n, id: other });
                    }
                    n
                }
                None => {
                    let mut candidates = candidates;
                    candidates
                        .find(|n| self.name_holder(&index, n).is_none())
                        .ok_or_else(|| ContainerError::InvalidConfig {
                            message: "Error when allocating new name: no free name".into(),
                        })?
                }
            };
            let container = self.new_container(make(name), None);
            index.insert(container.clone());
            container
        };
        let name = container.name();
        let persisted = self
            .names
            .link(name.trim_start_matches('/'), &container.id)
            .map_err(|e| ContainerError::io(format!("Failed to reserve the name {name}"), e))
            .and_then(|()| persist_new(&container));
        if let Err(e) = persisted {
            self.index
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&container);
            self.names
                .unlink(name.trim_start_matches('/'), &container.id);
            if let Err(e) = crate::fsutil::remove_tree(&container.dir) {
                tracing::warn!(id = %container.id, error = %crate::error::Chain(&e), "cannot remove an unfinished container");
            }
            return Err(e);
        }
        Ok(container)
    }

    /// Gives a container a new name (with its `/`); returns the old one. The caller holds
    /// the container and (shared stores) the names lock.
    pub(crate) fn rename(
        &self,
        container: &Arc<Container>,
        new_name: &str,
    ) -> Result<String, ContainerError> {
        let old_name = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            let old = container.name();
            if old == new_name {
                return Err(ContainerError::InvalidConfig {
                    message: "Renaming a container with the same name as its current name".into(),
                });
            }
            if let Some(other) = self.name_holder(&index, new_name) {
                return Err(ContainerError::Rename {
                    source: Box::new(ContainerError::NameInUse {
                        name: new_name.into(),
                        id: other,
                    }),
                });
            }
            index.names.remove(&old);
            index.names.insert(new_name.into(), container.id.clone());
            old
        };
        let result = self
            .names
            .link(new_name.trim_start_matches('/'), &container.id)
            .map_err(|e| ContainerError::io(format!("Failed to reserve the name {new_name}"), e))
            .and_then(|()| container.update(|r| r.name = new_name.to_string()));
        if let Err(e) = result {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            index.names.remove(new_name);
            index.names.insert(old_name, container.id.clone());
            self.names
                .unlink(new_name.trim_start_matches('/'), &container.id);
            return Err(e);
        }
        self.names
            .unlink(old_name.trim_start_matches('/'), &container.id);
        Ok(old_name)
    }

    /// Forgets a removed container and frees its name.
    pub(crate) async fn remove(&self, container: &Arc<Container>) -> Result<(), ContainerError> {
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(container);
        let _names = self.lock_names().await?;
        self.names
            .unlink(container.name().trim_start_matches('/'), &container.id);
        Ok(())
    }

    /// Takes the container's cross-process lock (shared stores), waiting for it or not.
    pub(crate) async fn lock(
        &self,
        container: &Container,
        wait: bool,
    ) -> Result<Locked, ContainerError> {
        if self.sharing == Sharing::Owned {
            return Ok(Locked::Held(None));
        }
        let taken = if wait {
            FileLock::acquire_async(
                &container.dir,
                LockMode::Exclusive,
                crate::lock::wait_limit(),
            )
            .await
            .map(Some)
        } else {
            FileLock::try_acquire(&container.dir, LockMode::Exclusive)
        };
        match taken {
            Ok(Some(l)) => Ok(Locked::Held(Some(l))),
            Ok(None) => Ok(Locked::Busy),
            Err(e) if e.is_not_found() => Ok(Locked::Gone),
            Err(e) => Err(ContainerError::io(
                format!("Cannot lock container {}", container.id),
                io::Error::other(e),
            )),
        }
    }

    /// Brings a container in memory up to date with its record (shared stores: another
    /// process may have changed it). Returns false, and forgets the container, if it is
    /// gone.
    pub(crate) fn sync(&self, c: &Arc<Container>) -> Result<bool, ContainerError> {
        if self.sharing == Sharing::Owned {
            return Ok(!c.lifecycle.borrow().removed);
        }
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
        let (exited_since, renamed) = {
            let mut rec = c.record.lock().unwrap_or_else(|e| e.into_inner());
            let exited = rec.state.finished_at != finished && !status.is_running();
            let renamed = rec.name != record.name;
            *rec = record;
            (exited, renamed)
        };
        *c.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
        if renamed {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            if index.by_id.contains_key(&c.id) {
                index.insert(c.clone());
            }
        }
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
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(c);
        c.lifecycle.send_modify(|l| l.removed = true);
    }

    /// The container with this id: from memory if known (brought up to date) or from disk.
    fn load(&self, id: &str) -> Result<Option<Arc<Container>>, ContainerError> {
        let known = self
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .get(id)
            .cloned();
        if let Some(c) = known {
            return Ok(self.sync(&c)?.then_some(c));
        }
        let Some((record, stamp)) = read_record(&self.dir().join(id))? else {
            return Ok(None);
        };
        let c = self.new_container(record, Some(stamp));
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        // Another task may have loaded it meanwhile: keep one object per container.
        let c = index.by_id.get(id).cloned().unwrap_or(c);
        index.insert(c.clone());
        Ok(Some(c))
    }

    /// Finds a container on disk, in Docker's order: full id, name, unique id prefix.
    fn find_on_disk(&self, key: &str) -> Result<Arc<Container>, ContainerError> {
        let not_found = || ContainerError::NotFound { id: key.into() };
        if key.is_empty() || key.contains("..") {
            return Err(not_found());
        }
        if is_container_id(key) {
            if let Some(c) = self.load(key)? {
                return Ok(c);
            }
        }
        let name = slashed(key);
        if let Some(id) = self
            .names
            .target(name.trim_start_matches('/'))
            .filter(|id| is_container_id(id))
        {
            if let Some(c) = self.load(&id)? {
                if c.name() == name {
                    return Ok(c);
                }
            }
        }
        if key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = Vec::new();
            if let Ok(rd) = std::fs::read_dir(self.dir()) {
                for e in rd.flatten() {
                    let id = e.file_name().to_string_lossy().into_owned();
                    if is_container_id(&id) && id.starts_with(key) {
                        found.push(id);
                    }
                }
            }
            let mut loaded = Vec::new();
            for id in found {
                if let Some(c) = self.load(&id)? {
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

    /// Every container on disk, up to date.
    fn all_on_disk(&self) -> Vec<Arc<Container>> {
        let Ok(rd) = std::fs::read_dir(self.dir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut without_record = Vec::new();
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !is_container_id(&id) {
                continue;
            }
            match self.load(&id) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => without_record.push(id),
                Err(e) => {
                    tracing::warn!(id, error = %crate::error::Chain(&e), "skipping a container whose state cannot be read")
                }
            }
        }
        self.remove_unfinished_creates(&without_record);
        out
    }

    /// Removes container directories that have no record: a create holds the names lock
    /// from making the directory to writing the record, so one found without a record while
    /// that lock is free was left by a create that died. Never waits for the lock. A
    /// directory with something still mounted below it is left where it is.
    fn remove_unfinished_creates(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let _names = match self.sharing {
            Sharing::Owned => None,
            Sharing::Shared => match self.names.try_lock() {
                Ok(Some(l)) => Some(l),
                _ => return,
            },
        };
        for id in ids {
            let dir = self.dir().join(id);
            if dir.join(RECORD_FILE).exists() {
                continue;
            }
            tracing::warn!(dir = %dir.display(), "removing a container directory without state (a create that never finished)");
            let unmounted = self
                .kernel
                .mounts_under(&dir)
                .iter()
                .try_for_each(|m| self.kernel.unmount(m))
                .map_err(|e| io::Error::other(e.to_string()));
            if let Err(e) = unmounted.and_then(|()| crate::fsutil::remove_tree(&dir)) {
                tracing::warn!(dir = %dir.display(), error = %crate::error::Chain(&e), "left an unfinished container's directory in place");
            }
        }
    }
}

/// Writes a new container's record (and makes its directory).
fn persist_new(container: &Container) -> Result<(), ContainerError> {
    std::fs::create_dir_all(&container.dir).map_err(|e| {
        ContainerError::io(format!("Failed to create {}", container.dir.display()), e)
    })?;
    let path = container.dir.join(RECORD_FILE);
    crate::fsutil::write_json_atomic(&path, &container.snapshot()).map_err(|source| {
        ContainerError::WriteState {
            path: path.clone(),
            source,
        }
    })?;
    *container.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Stamp::of(&path);
    Ok(())
}

#[cfg(test)]
mod tests;
