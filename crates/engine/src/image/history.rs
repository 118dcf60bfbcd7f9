//! `docker history`: an image's steps, newest first, as dockerd lists them.
//!
//! Each `history` entry of the config is a step; those that made a layer are paired with the
//! config's layers in order and show that layer's size. The newest step shows the image's
//! ID and tags, the one before it its parent's, and so on up the parent chain (images made
//! here by `commit` or a build); steps whose image is not in the store show `<missing>`.

use api_types::ImageHistoryItem;
use chrono::DateTime;

use super::error::ImageError;
use super::reference::Reference;
use super::ImageStore;

impl ImageStore {
    /// The history of image `name` (`GET /images/{name}/history`).
    pub fn history(&self, name: &str) -> Result<Vec<ImageHistoryItem>, ImageError> {
        let id = self.lookup(name)?;
        let config = self.read_config(&id)?;
        let layers = self.layers_of(&id, &config)?;
        let mut items = Vec::new();
        // Layers the history does not account for (configs made by hand) come first, one
        // step each.
        let with_layer = config
            .history
            .iter()
            .filter(|h| !h.empty_layer.unwrap_or(false))
            .count();
        let mut next_layer = layers.len().saturating_sub(with_layer);
        for layer in &layers[..next_layer] {
            items.push(ImageHistoryItem {
                id: "<missing>".into(),
                created: config.created_unix(),
                size: layer.size,
                ..ImageHistoryItem::default()
            });
        }
        for h in &config.history {
            let empty = h.empty_layer.unwrap_or(false);
            let size = if empty {
                0
            } else {
                let size = layers.get(next_layer).map_or(0, |l| l.size);
                next_layer += 1;
                size
            };
            items.push(ImageHistoryItem {
                id: "<missing>".to_string(),
                created: h
                    .created
                    .as_deref()
                    .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                    .map_or(0, |t| t.timestamp()),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: None,
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        items.reverse();
        let mut current = Some(id);
        for item in &mut items {
            let Some(image) = current.take() else { break };
            if !self.config_path(&image).exists() {
                break;
            }
            let tags: Vec<String> = self
                .lock_index()?
                .references_of(&image)
                .iter()
                .filter(|r| r.tag().is_some())
                .map(Reference::familiar_string)
                .collect();
            item.tags = (!tags.is_empty()).then_some(tags);
            current = self.meta(&image).parent;
            item.id = image;
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use crate::image::blob::sha256_digest;
    use crate::image::testutil::{legacy_archive, store, SavedImage, TarMaker};

    #[test]
    fn steps_pair_with_layers_newest_first() {
        let (_tmp, store) = store();
        let layer = TarMaker::default().file("bin/sh", b"12345").finish();
        let cfg = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-02T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]},
            "history": [
                {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
                {"created": "2024-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true},
            ],
        }))
        .unwrap();
        let id = sha256_digest(&cfg);
        let archive = legacy_archive(&[SavedImage {
            config: cfg,
            layers: vec![&layer],
            tags: vec!["box:1"],
        }]);
        store.load(&mut &archive[..]).unwrap();
        let h = store.history("box:1").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].id, id);
        assert_eq!(h[0].tags, Some(vec!["box:1".to_string()]));
        assert_eq!(h[0].size, 0);
        assert_eq!(h[0].created_by, "/bin/sh -c #(nop)  CMD [\"sh\"]");
        assert_eq!(h[1].id, "<missing>");
        assert_eq!(h[1].size, 5);
        assert_eq!(h[1].created, 1_704_067_200);
        assert_eq!(
            store.history("nope").unwrap_err().to_string(),
            "No such image: nope:latest"
        );
    }
}
