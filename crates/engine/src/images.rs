//! The engine's image operations: the image store plus callers, events and the
//! containers that use an image.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use api_types::filters::Filters;
use api_types::{ImageDeleteItem, ImageInspect, ImageSummary};

use crate::engine::{Engine, EngineError};
use crate::image::{ImageError, ImportOptions, LoadedImage};
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
