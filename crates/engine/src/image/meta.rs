//! What the store knows of an image beyond its config: the image it was made from (`commit`
//! and every build step record one, as dockerd's `imagedb/metadata/<id>/parent`) and, for
//! build steps, the step that made it, which is the build cache's key.
//!
//! One small JSON file per image, `<root>/meta/<hex>.json`, written before the image's config
//! is published and removed with it; images loaded or imported have none.

use std::collections::HashMap;
use std::io;

use serde::{Deserialize, Serialize};

use super::error::ImageError;
use super::ImageStore;
use crate::fsutil::{read_json, write_json_atomic};

/// The facts kept per image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageMeta {
    /// The image this one was made from (`sha256:…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// For an image a build step made: the step, as the cache matches it (parent aside).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_key: Option<String>,
    /// When the build cache last gave this image out (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
}

impl ImageStore {
    fn meta_path(&self, id: &str) -> std::path::PathBuf {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        self.root.join("meta").join(format!("{hex}.json"))
    }

    /// The facts kept about image `id` (empty for images that have none).
    pub fn meta(&self, id: &str) -> ImageMeta {
        read_json(&self.meta_path(id)).unwrap_or_default()
    }

    pub(crate) fn write_meta(&self, id: &str, meta: &ImageMeta) -> Result<(), ImageError> {
        let path = self.meta_path(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ImageError::io(format!("cannot create {}", dir.display()), e))?;
        }
        write_json_atomic(&path, meta)
            .map_err(|e| ImageError::io(format!("cannot write {}", path.display()), e))
    }

    pub(crate) fn remove_meta(&self, id: &str) {
        if let Err(e) = std::fs::remove_file(self.meta_path(id)) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(image = id, error = %crate::error::Chain(&e), "cannot remove image metadata");
            }
        }
    }

    /// The facts of every image that has some, by image ID.
    pub(crate) fn all_meta(&self) -> HashMap<String, ImageMeta> {
        let dir = self.root.join("meta");
        let mut all = HashMap::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return all;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Ok(meta) = read_json::<ImageMeta>(&entry.path()) {
                all.insert(format!("sha256:{hex}"), meta);
            }
        }
        all
    }

    /// The images made from `id` (its children).
    pub fn children_of(&self, id: &str) -> Vec<String> {
        let mut children: Vec<String> = self
            .all_meta()
            .into_iter()
            .filter(|(child, m)| {
                m.parent.as_deref() == Some(id) && self.config_path(child).exists()
            })
            .map(|(child, _)| child)
            .collect();
        children.sort();
        children
    }

    /// Drops the facts of images that are gone.
    pub(crate) fn reconcile_meta(&self) {
        for id in self.all_meta().into_keys() {
            if !self.config_path(&id).exists() {
                self.remove_meta(&id);
            }
        }
    }
}
