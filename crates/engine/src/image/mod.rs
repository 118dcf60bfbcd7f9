//! The image store: image configs, the layers they are made of, and the tags that name them.
//!
//! Content-addressed as dockerd's: an image ID is `sha256:` + the sha256 of its config JSON,
//! a layer is keyed by its diff ID (the sha256 of its uncompressed tar, checked against the
//! config's `rootfs.diff_ids`), unpacked once and shared by every image that lists it.
//!
//! On disk, under `<data-root>/image`:
//!
//! ```text
//! repositories.json        the tag index (one JSON file, written atomically)
//! configs/<hex>.json       image configs, byte for byte; sha256(file) = <hex> = the image ID
//! layers/<short>/diff/     an unpacked layer, an overlayfs lowerdir (see `layers`)
//! layers/<short>/layer.json  its diff ID and size; its original bytes beside (see `layers`)
//! locks/<hex>.lock         held while a pull unpacks that layer, so it is unpacked once
//! tmp/                     spooled archives and layers being unpacked; emptied on open
//! ```
//!
//! Locking: the `index` lock guards the tag index *and* the set of configs (a config is
//! written or deleted only under it, so a tag never names a missing config); the `gc` lock
//! is held shared by `load` and `import` while they unpack and publish, and exclusively by
//! `remove` while it deletes layers, so a layer is never deleted under an image being made
//! of it. Within one process these are a mutex and a read-write lock. A store opened with
//! [`ImageStore::open_shared`] ([`Sharing::Shared`]: daemonless commands, several processes
//! on one store) also takes them across processes, as `flock`s on `index.lock` and
//! `gc.lock`, and re-reads the tag index whenever another process has replaced it. Its crash clean-up (scratch space,
//! unpublished layers) runs only when scratch space shows a crash and no other process is
//! loading or removing images.

mod blob;
#[cfg(test)]
mod busybox_tests;
mod changes;
mod commit;
mod config;
mod distmeta;
mod error;
mod history;
mod import;
mod inspect;
mod layers;
mod list;
mod load;
mod meta;
pub mod progress;
mod prune;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
mod remove;
mod save;
mod tag;
mod tag_index;
mod tarsplit;
pub mod unpack;
mod upper_tar;

use std::collections::HashSet;
use std::io;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) use blob::{decompressed, ScratchDir};
pub(crate) use changes::{
    apply as apply_changes, apply_with as apply_changes_with, words as change_words,
};
pub use commit::{ChildImage, BERTH_DOCKER_VERSION, EMPTY_TAR_DIGEST};
pub(crate) use config::host_architecture as host_arch;
pub use error::ImageError;
pub use meta::ImageMeta;
pub use progress::Progress;
pub use prune::{parse_until, CacheEntry};
pub use pull::{PullOutcome, PullRequest};
pub use push::{PushRequest, Pushed};
pub use reference::{Reference, ReferenceError};
pub use save::{SaveFormat, SaveItem};
pub use unpack::{unpack_layer, UnpackError, UnpackStats};

use blob::{sha256_digest, sha256_hex};
use config::ImageConfig;
use layers::{Layer, LayerStore};
use reference::{is_full_hex, is_lower_hex};
use tag_index::TagIndex;

use crate::lock::{FileLock, LockMode};
use crate::store::{Sharing, Stamp};

/// One image `load` brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// `sha256:<hex>`.
    pub id: String,
    /// Its tags from the archive, in familiar form (`busybox:latest`); empty if untagged.
    pub tags: Vec<String>,
}

impl LoadedImage {
    /// What `docker load` prints for the image, as dockerd's progress messages: a line per
    /// tag (`Loaded image: busybox:latest`), or its ID when it has none.
    pub fn progress(&self) -> Vec<api_types::ProgressMessage> {
        let lines = if self.tags.is_empty() {
            vec![format!("Loaded image ID: {}\n", self.id)]
        } else {
            self.tags
                .iter()
                .map(|t| format!("Loaded image: {t}\n"))
                .collect()
        };
        lines
            .into_iter()
            .map(|line| api_types::ProgressMessage {
                stream: Some(line),
                ..Default::default()
            })
            .collect()
    }
}

/// Checks where an import's root file system comes from: `-` (the client's stream) is the
/// only source berth imports from.
pub fn check_import_source(source: &str) -> Result<(), ImageError> {
    if source == "-" {
        Ok(())
    } else {
        Err(ImageError::ImportFromUrl {
            url: source.to_string(),
        })
    }
}

/// How `import` makes an image of a root file system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// `repo[:tag]` to tag the image with (`latest` if no tag).
    pub repo_tag: Option<String>,
    /// Dockerfile instructions applied to the config (`CMD ["sh"]`, `ENV A=b`, …).
    pub changes: Vec<String>,
    /// The image's comment; `Imported from -` when empty, as dockerd writes.
    pub message: String,
}

/// A resolved image, what a container is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:<hex>`.
    pub id: String,
    /// The image's container config (Cmd, Entrypoint, Env, WorkingDir, User, …).
    pub config: api_types::ContainerConfig,
    /// Unpacked layer directories, bottom layer first (reverse them for `lowerdir=`).
    pub layer_dirs: Vec<PathBuf>,
    /// When the image was made, RFC 3339 as dockerd shows it.
    pub created: String,
}

/// Images on disk; see the module documentation for the layout and the locking.
pub struct ImageStore {
    root: PathBuf,
    layers: LayerStore,
    index: Mutex<IndexState>,
    gc: RwLock<()>,
    /// Other processes use the store too: lock across processes, re-read the tag index.
    sharing: Sharing,
}

/// The tag index in memory, and which version of its file it was read from.
#[derive(Default)]
struct IndexState {
    tags: TagIndex,
    stamp: Option<Stamp>,
}

/// Which version of a file (replaced by rename on every write): inode, mtime, size.
/// The tag index, locked (across processes too when the store is shared).
pub(crate) struct IndexGuard<'a> {
    state: MutexGuard<'a, IndexState>,
    /// Set when shared: the index file's stamp is taken again on release.
    file: Option<(PathBuf, FileLock)>,
}

impl Deref for IndexGuard<'_> {
    type Target = TagIndex;
    fn deref(&self) -> &TagIndex {
        &self.state.tags
    }
}

impl DerefMut for IndexGuard<'_> {
    fn deref_mut(&mut self) -> &mut TagIndex {
        &mut self.state.tags
    }
}

impl Drop for IndexGuard<'_> {
    fn drop(&mut self) {
        // Still under the lock: whatever is on disk now is what memory holds.
        if let Some((path, _lock)) = &self.file {
            self.state.stamp = Stamp::of(path);
        }
    }
}

/// A hold on the gc lock (see the module documentation), shared or exclusive.
pub(crate) struct GcGuard<'a> {
    // Fields drop in order: the other processes' lock is let go first.
    _file: Option<FileLock>,
    _read: Option<RwLockReadGuard<'a, ()>>,
    _write: Option<RwLockWriteGuard<'a, ()>>,
}

impl ImageStore {
    /// Opens the store in `root` for its data root's [`Sharing`]: [`ImageStore::open`] for
    /// the owner, [`ImageStore::open_shared`] for processes that share it.
    pub fn open_as(root: &Path, sharing: Sharing) -> Result<Self, ImageError> {
        match sharing {
            Sharing::Owned => Self::open(root),
            Sharing::Shared => Self::open_shared(root),
        }
    }

    /// Opens (creating if needed) the store in `root` (`<data-root>/image`), empties its
    /// scratch space and removes what a crash may have left unowned: tags of missing images
    /// and layers no image lists.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let store = Self::new(root, Sharing::Owned)?;
        store.empty_tmp()?;
        *store.lock_index()? = TagIndex::load(&store.index_path())?;
        store.reconcile()?;
        Ok(store)
    }

    /// Opens the store for a process that shares it with others (daemonless commands):
    /// every operation locks across processes, and the crash clean-up of [`ImageStore::open`]
    /// runs only if scratch space shows a crash and no other process is using the store.
    pub fn open_shared(root: &Path) -> Result<Self, ImageError> {
        let store = Self::new(root, Sharing::Shared)?;
        let leftovers = std::fs::read_dir(store.tmp_dir())
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if leftovers {
            let alone = FileLock::try_acquire(&store.gc_lock_path(), LockMode::Exclusive)
                .map_err(|e| ImageError::io("cannot lock the image store", io::Error::other(e)))?;
            if let Some(_alone) = alone {
                store.empty_tmp()?;
                store.reconcile()?;
            }
        }
        Ok(store)
    }

    fn new(root: &Path, sharing: Sharing) -> Result<Self, ImageError> {
        let store = Self {
            root: root.to_path_buf(),
            layers: LayerStore::new(root.join("layers"), root.join("tmp")),
            index: Mutex::new(IndexState::default()),
            gc: RwLock::new(()),
            sharing,
        };
        for dir in [
            root.to_path_buf(),
            store.configs_dir(),
            root.join("layers"),
            store.tmp_dir(),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| ImageError::io(format!("cannot create {}", dir.display()), e))?;
        }
        Ok(store)
    }

    /// The number of images, tagged or not.
    pub fn count(&self) -> usize {
        self.image_ids().map(|ids| ids.len()).unwrap_or(0)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn configs_dir(&self) -> PathBuf {
        self.root.join("configs")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("repositories.json")
    }

    fn config_path(&self, id: &str) -> PathBuf {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        self.configs_dir().join(format!("{hex}.json"))
    }

    fn gc_lock_path(&self) -> PathBuf {
        self.root.join("gc.lock")
    }

    /// Locks the tag index; in a shared store, across processes too, re-reading it if another
    /// process replaced it since.
    fn lock_index(&self) -> Result<IndexGuard<'_>, ImageError> {
        // The index in memory is only replaced after it was saved, so it is whole even if a
        // thread panicked while holding the lock.
        let mut state = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(lock) = self
            .sharing
            .lock(&self.root.join("index.lock"), LockMode::Exclusive)
            .map_err(|e| ImageError::io("cannot lock the tag index", io::Error::other(e)))?
        else {
            return Ok(IndexGuard { state, file: None });
        };
        let path = self.index_path();
        let stamp = Stamp::of(&path);
        if stamp.is_none() || stamp != state.stamp {
            state.tags = TagIndex::load(&path)?;
            state.stamp = stamp;
        }
        Ok(IndexGuard {
            state,
            file: Some((path, lock)),
        })
    }

    fn gc_file_lock(&self, mode: LockMode) -> Result<Option<FileLock>, ImageError> {
        self.sharing
            .lock(&self.gc_lock_path(), mode)
            .map_err(|e| ImageError::io("cannot lock the image store", io::Error::other(e)))
    }

    fn gc_shared(&self) -> Result<GcGuard<'_>, ImageError> {
        let read = self.gc.read().unwrap_or_else(PoisonError::into_inner);
        Ok(GcGuard {
            _file: self.gc_file_lock(LockMode::Shared)?,
            _read: Some(read),
            _write: None,
        })
    }

    fn gc_exclusive(&self) -> Result<GcGuard<'_>, ImageError> {
        let write = self.gc.write().unwrap_or_else(PoisonError::into_inner);
        Ok(GcGuard {
            _file: self.gc_file_lock(LockMode::Exclusive)?,
            _read: None,
            _write: Some(write),
        })
    }

    /// Holds the images as they are (no layer is deleted) until the guard is dropped: for
    /// making a container of an image without `rmi` deleting it half-way.
    pub(crate) fn pin(&self) -> Result<GcGuard<'_>, ImageError> {
        self.gc_shared()
    }

    /// Every image ID (`sha256:<hex>`) in the store.
    fn image_ids(&self) -> Result<Vec<String>, ImageError> {
        let dir = self.configs_dir();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| ImageError::io(format!("cannot list {}", dir.display()), e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| ImageError::io(format!("cannot list {}", dir.display()), e))?;
            let name = entry.file_name();
            if let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                if is_full_hex(hex) {
                    ids.push(format!("sha256:{hex}"));
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The config of image `id`; `None` if the image is not (or no longer) there.
    fn try_read_config(&self, id: &str) -> Result<Option<ImageConfig>, ImageError> {
        let path = self.config_path(id);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io(format!("cannot read {}", path.display()), e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ImageError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    fn read_config(&self, id: &str) -> Result<ImageConfig, ImageError> {
        self.try_read_config(id)?
            .ok_or_else(|| ImageError::NotFound {
                name: id.to_string(),
            })
    }

    /// The unpacked layers of an image, bottom first.
    fn layers_of(&self, id: &str, config: &ImageConfig) -> Result<Vec<Layer>, ImageError> {
        config
            .rootfs
            .diff_ids
            .iter()
            .map(|diff_id| {
                self.layers
                    .get(diff_id)?
                    .ok_or_else(|| ImageError::Corrupt {
                        path: self.root.join("layers"),
                        reason: format!("layer {diff_id} of image {id} is missing"),
                    })
            })
            .collect()
    }

    /// The image ID `name` stands for: a tag (`busybox`, `docker.io/library/busybox:1`), a
    /// full ID (`sha256:<hex>` or bare 64 hex) or an unambiguous ID prefix (`c9a2`,
    /// `sha256:c9a2`), tried in dockerd's order.
    fn lookup(&self, name: &str) -> Result<String, ImageError> {
        let full = sha256_hex(name).or_else(|| is_full_hex(name).then_some(name));
        if let Some(hex) = full {
            let id = format!("sha256:{hex}");
            return match self.config_path(&id).exists() {
                true => Ok(id),
                false => Err(ImageError::NotFound { name: id }),
            };
        }
        let reference = Reference::parse_normalized(name)?.with_default_tag();
        if let Some(id) = self.lock_index()?.get(&reference) {
            return Ok(id.to_string());
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if reference.digest().is_none() && is_lower_hex(prefix) {
            let mut found = self
                .image_ids()?
                .into_iter()
                .filter(|id| id[7..].starts_with(prefix));
            match (found.next(), found.next()) {
                (Some(id), None) => return Ok(id),
                (Some(_), Some(_)) => {
                    return Err(ImageError::AmbiguousId {
                        prefix: name.to_string(),
                    })
                }
                _ => {}
            }
        }
        Err(ImageError::NotFound {
            name: reference.familiar_string(),
        })
    }

    /// Stores a config (if new) and points `tags` at it; the image's layers must be in place.
    fn publish(&self, config: &[u8], tags: &[Reference]) -> Result<String, ImageError> {
        let id = sha256_digest(config);
        let mut index = self.lock_index()?;
        let path = self.config_path(&id);
        if !path.exists() {
            crate::fsutil::write_atomic(&path, config)
                .map_err(|e| ImageError::io(format!("cannot write {}", path.display()), e))?;
        }
        if !tags.is_empty() {
            let mut next = index.clone();
            for tag in tags {
                if let Some(previous) = next.get(tag) {
                    if previous != id {
                        tracing::info!(tag = %tag.familiar_string(), from = previous, to = %id, "moving tag");
                    }
                }
                next.set(tag, &id);
            }
            next.save(&self.index_path())?;
            *index = next;
        }
        Ok(id)
    }

    fn empty_tmp(&self) -> Result<(), ImageError> {
        let tmp = self.tmp_dir();
        // A build that died leaves its overlays mounted in scratch space: unmount them
        // first, and leave what cannot be unmounted, so nothing walks across a mount point.
        let mut stuck = Vec::new();
        for target in crate::rootfs::mounts_under(&tmp) {
            if let Err(e) = crate::rootfs::unmount(&target) {
                tracing::warn!(target = %target.display(), error = %crate::error::Chain(&e), "cannot unmount leftover build scratch");
                stuck.push(target);
            }
        }
        let entries = std::fs::read_dir(&tmp)
            .map_err(|e| ImageError::io(format!("cannot list {}", tmp.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if stuck.iter().any(|m| m.starts_with(&path)) {
                continue;
            }
            let r = match entry.file_type() {
                Ok(t) if t.is_dir() => crate::fsutil::remove_tree(&path),
                _ => std::fs::remove_file(&path),
            };
            if let Err(e) = r {
                tracing::warn!(path = %path.display(), error = %crate::error::Chain(&e), "cannot remove leftover scratch data");
            }
        }
        Ok(())
    }

    /// The diff IDs the store's images list; `None` (after a warning) if a config cannot be
    /// read, in which case the caller must keep every layer.
    fn layers_in_use(&self) -> Option<HashSet<String>> {
        let ids = self
            .image_ids()
            .map_err(|e| tracing::warn!(error = %crate::error::Chain(&e), "cannot list images; keeping every layer"))
            .ok()?;
        let mut used = HashSet::new();
        for id in ids {
            match self.try_read_config(&id) {
                Ok(Some(config)) => used.extend(config.rootfs.diff_ids),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(image = %id, error = %crate::error::Chain(&e), "unreadable image config; keeping every layer");
                    return None;
                }
            }
        }
        Some(used)
    }

    /// Drops tags of missing images and deletes layers no image lists (a load that crashed
    /// between unpacking and publishing). Leaves layers alone if any config is unreadable.
    fn reconcile(&self) -> Result<(), ImageError> {
        let ids: HashSet<String> = self.image_ids()?.into_iter().collect();
        {
            let mut index = self.lock_index()?;
            let mut next = index.clone();
            next.tags.retain(|_, id| ids.contains(id));
            next.last_tag_time.retain(|id, _| ids.contains(id));
            if next != *index {
                tracing::warn!("dropping tags of images that are gone");
                next.save(&self.index_path())?;
                *index = next;
            }
        }
        self.reconcile_meta();
        let Some(used) = self.layers_in_use() else {
            return Ok(());
        };
        for layer in self.layers.all()? {
            if !used.contains(&layer.diff_id) {
                tracing::info!(layer = %layer.diff_id, "removing a layer no image uses");
                self.layers.remove(&layer)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Images made by hand: configs and `docker save` archives around `TarMaker` layers.

    use super::blob::sha256_digest;
    pub(crate) use super::unpack::tests::TarMaker;
    use super::ImageStore;

    /// An empty store in a temporary directory.
    pub(crate) fn store() -> (tempfile::TempDir, ImageStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&tmp.path().join("image")).unwrap();
        (tmp, store)
    }

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A minimal config listing `layers` (uncompressed tars), with `Cmd` and labels.
    pub(crate) fn config(
        layers: &[&[u8]],
        cmd: &str,
        created: &str,
        labels: &[(&str, &str)],
    ) -> Vec<u8> {
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {"Cmd": [cmd], "Env": ["PATH=/bin"], "Labels": if labels.is_empty() { serde_json::Value::Null } else { labels.into() }},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    /// One image of a legacy `docker save` archive.
    pub(crate) struct SavedImage<'a> {
        pub config: Vec<u8>,
        pub layers: Vec<&'a [u8]>,
        pub tags: Vec<&'a str>,
    }

    /// A `docker save` archive as Docker ≤ 24 writes it.
    pub(crate) fn legacy_archive(images: &[SavedImage<'_>]) -> Vec<u8> {
        let mut t = TarMaker::default();
        let mut manifest = Vec::new();
        for image in images {
            let config_name = format!("{}.json", &sha256_digest(&image.config)[7..]);
            t.file(&config_name, &image.config);
            let mut layer_names = Vec::new();
            for layer in &image.layers {
                let dir = &sha256_digest(layer)[7..];
                t.file(&format!("{dir}/VERSION"), b"1.0");
                t.file(&format!("{dir}/layer.tar"), layer);
                layer_names.push(format!("{dir}/layer.tar"));
            }
            manifest.push(serde_json::json!({"Config": config_name, "RepoTags": image.tags, "Layers": layer_names}));
        }
        t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
        t.file("repositories", b"{}");
        t.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{config, legacy_archive, store, SavedImage, TarMaker};
    use super::*;

    fn archive(tag: &str) -> (Vec<u8>, String) {
        let layer = TarMaker::default().file("bin/sh", b"sh").finish();
        let cfg = config(&[&layer], "sh", "2024-01-01T00:00:00Z", &[]);
        let id = sha256_digest(&cfg);
        let archive = legacy_archive(&[SavedImage {
            config: cfg,
            layers: vec![&layer],
            tags: vec![tag],
        }]);
        (archive, id)
    }

    fn entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn opening_cleans_what_a_crash_left() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("image");
        let (saved, id) = archive("busybox:latest");
        {
            let store = ImageStore::open(&root).unwrap();
            store.load(&mut &saved[..]).unwrap();
            // A load that died after unpacking a layer, before publishing its image.
            let orphan = TarMaker::default().file("orphan", b"x").finish();
            store.layers.create(&mut &orphan[..], None).unwrap();
            // Half-written scratch data, and a tag naming an image that is gone.
            std::fs::create_dir_all(root.join("tmp/layer-1-1/diff")).unwrap();
            let mut index = store.lock_index().unwrap().clone();
            let gone = Reference::parse_normalized("gone")
                .unwrap()
                .with_default_tag();
            index.set(&gone, &format!("sha256:{}", "e".repeat(64)));
            index.save(&store.index_path()).unwrap();
        }
        assert_eq!(entries(&root.join("layers")), 2);
        let store = ImageStore::open(&root).unwrap();
        assert_eq!(entries(&root.join("tmp")), 0);
        assert_eq!(entries(&root.join("layers")), 1);
        assert_eq!(store.resolve("busybox").unwrap().id, id);
        assert_eq!(
            store.resolve("gone").unwrap_err().to_string(),
            "No such image: gone:latest"
        );
        let saved: TagIndex = crate::fsutil::read_json(&store.index_path()).unwrap();
        assert_eq!(saved.tags.len(), 1);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn concurrent_loads_share_one_layer() {
        let (_tmp, store) = store();
        let archives: Vec<_> = (0..4).map(|n| archive(&format!("img:{n}")).0).collect();
        std::thread::scope(|s| {
            for a in &archives {
                let store = &store;
                s.spawn(move || store.load(&mut &a[..]).unwrap());
            }
        });
        assert_eq!(store.count(), 1);
        assert_eq!(entries(&store.root().join("layers")), 1);
        assert_eq!(entries(&store.root().join("tmp")), 0);
        let tags = store.inspect("img:0").unwrap().repo_tags;
        assert_eq!(tags, ["img:0", "img:1", "img:2", "img:3"]);
    }
}
