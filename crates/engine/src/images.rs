//! The engine's image operations: the image store plus callers, events and the
//! containers that use an image.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;

use api_types::filters::Filters;
use api_types::{
    BuildCachePruneResponse, BuildCacheRecord, DiskUsage, ImageDeleteItem, ImageHistoryItem,
    ImageInspect, ImageSummary, ImagesPruneResponse,
};

use crate::container::tarwrite::ChannelWriter;
use crate::container::TarStream;
use crate::engine::{Engine, EngineError};
use crate::image::{ImageError, ImportOptions, LoadedImage, SaveFormat};
use crate::Caller;

impl Engine {
    /// Loads a `docker save` archive (`POST /images/load`), read from the client's stream
    /// on a blocking thread.
    pub async fn load_images(
        self: &Arc<Self>,
        caller: &Caller,
        mut archive: Box<dyn Read + Send>,
    ) -> Result<Vec<LoadedImage>, EngineError> {
        let engine = self.clone();
        let caller = *caller;
        blocking("load", move || {
            engine.load_images_blocking(&caller, &mut archive)
        })
        .await
    }

    fn load_images_blocking(
        &self,
        caller: &Caller,
        archive: &mut dyn Read,
    ) -> Result<Vec<LoadedImage>, EngineError> {
        let loaded = self.images.load(archive)?;
        for img in &loaded {
            let mut attrs = BTreeMap::new();
            attrs.insert(
                "name".to_string(),
                img.tags.first().cloned().unwrap_or_else(|| img.id.clone()),
            );
            self.events.emit(caller, "image", "load", &img.id, attrs);
        }
        Ok(loaded)
    }

    /// Makes an image of a root file system tarball (`POST /images/create?fromSrc=-`), read
    /// from the client's stream on a blocking thread.
    pub async fn import_image(
        self: &Arc<Self>,
        caller: &Caller,
        mut rootfs: Box<dyn Read + Send>,
        opts: ImportOptions,
    ) -> Result<String, EngineError> {
        let engine = self.clone();
        let caller = *caller;
        blocking("import", move || {
            engine.import_image_blocking(&caller, &mut rootfs, &opts)
        })
        .await
    }

    fn import_image_blocking(
        &self,
        caller: &Caller,
        rootfs: &mut dyn Read,
        opts: &ImportOptions,
    ) -> Result<String, EngineError> {
        let id = self.images.import(rootfs, opts)?;
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "name".to_string(),
            opts.repo_tag.clone().unwrap_or_else(|| id.clone()),
        );
        self.events.emit(caller, "image", "import", &id, attrs);
        Ok(id)
    }

    /// Adds a tag to an image (`POST /images/{name}/tag`).
    pub fn tag_image(
        &self,
        caller: &Caller,
        source: &str,
        repo: &str,
        tag: Option<&str>,
    ) -> Result<(), EngineError> {
        if repo.is_empty() {
            return Err(ImageError::EmptyRepository.into());
        }
        self.images.tag(source, repo, tag)?;
        let image = self.images.resolve(source)?;
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "name".to_string(),
            format!(
                "{repo}:{}",
                tag.filter(|t| !t.is_empty()).unwrap_or("latest")
            ),
        );
        self.events.emit(caller, "image", "tag", &image.id, attrs);
        Ok(())
    }

    /// Lists images (`GET /images/json`).
    pub fn list_images(
        &self,
        _caller: &Caller,
        all: bool,
        filters: &Filters,
    ) -> Result<Vec<ImageSummary>, EngineError> {
        Ok(self.images.list(all, filters)?)
    }

    /// Inspects an image (`GET /images/{name}/json`).
    pub fn inspect_image(&self, _caller: &Caller, name: &str) -> Result<ImageInspect, EngineError> {
        self.images.inspect(name).map_err(|e| match e {
            ImageError::NotFound { .. } => ImageError::InspectNotFound {
                name: name.to_string(),
                source: Box::new(e),
            }
            .into(),
            e => e.into(),
        })
    }

    /// Removes or untags an image (`DELETE /images/{name}`), refusing while containers use it
    /// as Docker does.
    pub fn remove_image(
        &self,
        caller: &Caller,
        name: &str,
        force: bool,
    ) -> Result<Vec<ImageDeleteItem>, EngineError> {
        let users = |image_id: &str| -> Vec<(String, bool)> {
            self.all_containers()
                .iter()
                .map(|c| c.snapshot())
                .filter(|r| r.image_id == image_id)
                .map(|r| (r.id, r.state.status.is_running()))
                .collect()
        };
        let items = self.images.remove(name, force, &users)?;
        for item in &items {
            let (action, id) = match item {
                ImageDeleteItem::Untagged(t) => ("untag", t),
                ImageDeleteItem::Deleted(d) => ("delete", d),
            };
            let mut attrs = BTreeMap::new();
            attrs.insert("name".to_string(), name.to_string());
            self.events.emit(caller, "image", action, id, attrs);
        }
        Ok(items)
    }
}

impl Engine {
    /// The containers made from image `image_id`: (container ID, running?).
    fn image_users(&self, image_id: &str) -> Vec<(String, bool)> {
        self.all_containers()
            .iter()
            .map(|c| c.snapshot())
            .filter(|r| r.image_id == image_id)
            .map(|r| (r.id, r.state.status.is_running()))
            .collect()
    }

    /// Writes images as one archive (`GET /images/{name}/get`, `GET /images/get`). Names
    /// are checked before anything is written; the archive is streamed in chunks, and a
    /// failure part-way ends the stream with an error.
    pub async fn save_images(
        &self,
        caller: &Caller,
        names: &[String],
        format: &str,
    ) -> Result<TarStream, EngineError> {
        let format = SaveFormat::parse(format)?;
        if names.is_empty() {
            return Err(ImageError::NothingToSave.into());
        }
        let items = self.images.resolve_for_save(names)?;
        for item in &items {
            let mut attrs = BTreeMap::new();
            attrs.insert(
                "name".to_string(),
                item.tags
                    .first()
                    .map(|t| t.familiar_string())
                    .unwrap_or_else(|| item.id.clone()),
            );
            self.events.emit(caller, "image", "save", &item.id, attrs);
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let engine = self.self_arc();
        tokio::task::spawn_blocking(move || {
            let Some(engine) = engine else { return };
            let failed = tx.clone();
            let mut out = ChannelWriter::new(tx);
            let written = engine.images.save(&items, format, &mut out).and_then(|()| {
                out.flush().map_err(|e| crate::image::ImageError::Io {
                    context: "cannot write the archive".into(),
                    source: e,
                })
            });
            if let Err(e) = written {
                tracing::warn!(error = %crate::error::Chain(&e), "save failed part-way");
                let _ = failed.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        Ok(rx)
    }

    /// An image's history (`GET /images/{name}/history`).
    pub fn image_history(
        &self,
        _caller: &Caller,
        name: &str,
    ) -> Result<Vec<ImageHistoryItem>, EngineError> {
        Ok(self.images.history(name)?)
    }

    /// Deletes unused images (`POST /images/prune`). Blocking.
    pub fn prune_images(
        &self,
        caller: &Caller,
        filters: &Filters,
    ) -> Result<ImagesPruneResponse, EngineError> {
        let users = |id: &str| self.image_users(id);
        let report = self.images.prune(filters, &users)?;
        for item in report.images_deleted.iter().flatten() {
            let (action, id) = match item {
                ImageDeleteItem::Untagged(t) => ("untag", t),
                ImageDeleteItem::Deleted(d) => ("delete", d),
            };
            self.events
                .emit(caller, "image", action, id, Default::default());
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("reclaimed".into(), report.space_reclaimed.to_string());
        self.events.emit(caller, "image", "prune", "", attrs);
        Ok(report)
    }

    /// Deletes the build cache nothing needs (`POST /build/prune`). Blocking.
    pub fn prune_build_cache(
        &self,
        caller: &Caller,
        filters: &Filters,
    ) -> Result<BuildCachePruneResponse, EngineError> {
        let used: std::collections::HashSet<String> = self
            .all_containers()
            .iter()
            .map(|c| c.snapshot().image_id)
            .collect();
        let in_use = |id: &str| used.contains(id);
        let users = |id: &str| self.image_users(id);
        let report = self.images.prune_build_cache(filters, &in_use, &users)?;
        let mut attrs = BTreeMap::new();
        attrs.insert("reclaimed".into(), report.space_reclaimed.to_string());
        self.events.emit(caller, "builder", "prune", "", attrs);
        Ok(report)
    }

    /// What images, containers and the build cache take on disk (`GET /system/df`).
    pub async fn disk_usage(&self, caller: &Caller) -> Result<DiskUsage, EngineError> {
        let containers = self
            .list_containers(
                caller,
                &crate::container::ListOptions {
                    all: true,
                    size: true,
                    ..Default::default()
                },
            )
            .await?;
        let mut images = self.images.list(true, &Filters::default())?;
        // Layers shared between images count once in LayersSize and as SharedSize.
        let mut layer_users: HashMap<String, usize> = HashMap::new();
        let mut image_layers: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for image in &images {
            let layers = self.images.layer_sizes(&image.id)?;
            for (d, _) in &layers {
                *layer_users.entry(d.clone()).or_default() += 1;
            }
            image_layers.insert(image.id.clone(), layers);
        }
        let used: HashMap<String, i64> = containers.iter().fold(HashMap::new(), |mut m, c| {
            *m.entry(c.image_id.clone()).or_default() += 1;
            m
        });
        let mut layers_size = 0;
        let mut seen = std::collections::HashSet::new();
        for image in &mut images {
            let layers = &image_layers[&image.id];
            image.shared_size = layers
                .iter()
                .filter(|(d, _)| layer_users[d] > 1)
                .map(|(_, s)| s)
                .sum();
            for (d, s) in layers {
                if seen.insert(d.clone()) {
                    layers_size += s;
                }
            }
            image.containers = used.get(&image.id).copied().unwrap_or(0);
        }
        let in_use = |id: &str| used.contains_key(id);
        let cache: Vec<BuildCacheRecord> = self
            .images
            .build_cache(&in_use)?
            .into_iter()
            .map(|e| BuildCacheRecord {
                id: e.id[7..].to_string(),
                parents: e.parent.map(|p| vec![p[7..].to_string()]),
                kind: "regular".into(),
                description: e.description,
                in_use: e.in_use,
                shared: false,
                size: e.size,
                created_at: e.created.clone(),
                last_used_at: e.last_used.or(Some(e.created)),
                usage_count: 1,
            })
            .collect();
        let builder_size = cache.iter().map(|c| c.size).sum();
        Ok(DiskUsage {
            layers_size,
            images,
            containers,
            volumes: Vec::new(),
            build_cache: Some(cache),
            builder_size,
        })
    }
}

/// Runs an image operation that reads a client's stream on a blocking thread.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ImageError::io(
            format!("the image {what} stopped"),
            std::io::Error::other(e.to_string()),
        )
    })?
}
