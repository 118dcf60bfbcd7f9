//! Making an image from another one plus a layer: what `commit` and every build step do,
//! as dockerd's `image.NewChildImage` does it.
//!
//! The child has its parent's layers and history and one more history entry; the new layer
//! (a container's changes) is added unless it is empty, in which case the entry is marked
//! `empty_layer`. The parent is recorded in the image's facts (see `meta`) so that `history`
//! shows the chain and `rmi` can prune it.

use std::io::Read;

use api_types::ContainerConfig;

use super::config::{host_architecture, now_rfc3339_nano, ConfigRootFs, History, ImageConfig};
use super::error::ImageError;
use super::meta::ImageMeta;
use super::reference::Reference;
use super::ImageStore;

/// The version string berth writes into the configs it makes (`DockerVersion`).
pub const BERTH_DOCKER_VERSION: &str = concat!("berth-", env!("CARGO_PKG_VERSION"));

/// What a new image is made of.
#[derive(Default)]
pub struct ChildImage<'a> {
    /// The image it is made from; `None` for `FROM scratch`.
    pub parent: Option<String>,
    /// The new layer as a tar, `None` when the step changed no file.
    pub layer: Option<&'a mut (dyn Read + Send)>,
    /// The new image's config.
    pub config: ContainerConfig,
    /// The config of the container that made it (`container_config`), if one did.
    pub container_config: Option<ContainerConfig>,
    /// The ID of that container.
    pub container: String,
    pub author: String,
    pub comment: String,
    /// The history entry's `created_by`.
    pub created_by: String,
    /// For a build step: its cache key.
    pub build_key: Option<String>,
    /// Tags to give the image.
    pub tags: Vec<Reference>,
}

impl ImageStore {
    /// Makes and stores the image; returns its ID.
    pub fn create_child(&self, child: ChildImage<'_>) -> Result<String, ImageError> {
        let _gc = self.gc_shared()?;
        let parent = match &child.parent {
            Some(p) => Some((p.clone(), self.read_config(p)?)),
            None => None,
        };
        let layer = match child.layer {
            Some(tar) => Some(self.layers.create(tar, None)?),
            None => None,
        };
        let created = now_rfc3339_nano();
        let (mut rootfs, mut history, architecture, os, variant) = match &parent {
            Some((_, p)) => (
                p.rootfs.clone(),
                p.history.clone(),
                p.architecture.clone(),
                p.os.clone(),
                p.variant.clone(),
            ),
            None => (
                ConfigRootFs::default(),
                Vec::new(),
                host_architecture().to_string(),
                "linux".to_string(),
                String::new(),
            ),
        };
        rootfs.kind = "layers".to_string();
        let empty = match &layer {
            Some(l) if l.diff_id != EMPTY_TAR_DIGEST => {
                rootfs.diff_ids.push(l.diff_id.clone());
                false
            }
            _ => true,
        };
        history.push(History {
            created: Some(created.clone()),
            created_by: (!child.created_by.is_empty()).then(|| child.created_by.clone()),
            comment: (!child.comment.is_empty()).then(|| child.comment.clone()),
            empty_layer: empty.then_some(true),
            author: (!child.author.is_empty()).then(|| child.author.clone()),
        });
        let config = ImageConfig {
            architecture,
            author: child.author,
            comment: child.comment,
            config: Some(child.config),
            container: child.container,
            container_config: child.container_config,
            created: Some(created),
            docker_version: BERTH_DOCKER_VERSION.to_string(),
            history,
            os,
            variant,
            rootfs,
        };
        let bytes = serde_json::to_vec(&config)
            .map_err(|e| ImageError::io("cannot encode an image config", e.into()))?;
        let id = super::blob::sha256_digest(&bytes);
        let meta = ImageMeta {
            parent: parent.map(|(id, _)| id),
            build_key: child.build_key,
            last_used: None,
        };
        if meta != ImageMeta::default() {
            self.write_meta(&id, &meta)?;
        }
        self.publish(&bytes, &child.tags)
    }
}

impl ImageStore {
    /// Makes the image of a container: its overlay upper directory `upper` (over `lowers`,
    /// bottom first) becomes the new layer, leaving out the runtime's mount points `skip`.
    /// `child.layer` is ignored.
    pub fn create_from_upper(
        &self,
        upper: &std::path::Path,
        lowers: &[std::path::PathBuf],
        skip: &[&str],
        child: ChildImage<'_>,
    ) -> Result<String, ImageError> {
        let scratch = super::blob::ScratchDir::new(&self.tmp_dir(), "commit")?;
        let path = scratch.path().join("layer.tar");
        let mut file = std::fs::File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::io(format!("cannot create {}", path.display()), e))?;
        let topmost_first: Vec<std::path::PathBuf> = lowers.iter().rev().cloned().collect();
        let any = super::upper_tar::write_upper_tar(upper, &topmost_first, skip, &mut file)
            .map_err(|e| {
                ImageError::io(format!("cannot read the changes in {}", upper.display()), e)
            })?;
        use std::io::Seek;
        file.rewind()
            .map_err(|e| ImageError::io(format!("cannot read {}", path.display()), e))?;
        let mut reader = std::io::BufReader::new(file);
        self.create_child(ChildImage {
            layer: if any { Some(&mut reader) } else { None },
            ..child
        })
    }
}

/// The diff ID of a tar with no entries (1024 zero bytes): an empty layer.
pub const EMPTY_TAR_DIGEST: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testutil::{config, legacy_archive, store, SavedImage, TarMaker};

    #[test]
    fn a_child_adds_a_layer_and_a_step_and_records_its_parent() {
        let (_tmp, store) = store();
        let base = TarMaker::default().file("bin/sh", b"sh").finish();
        let cfg = config(&[&base], "sh", "2024-01-01T00:00:00Z", &[]);
        let archive = legacy_archive(&[SavedImage {
            config: cfg,
            layers: vec![&base],
            tags: vec!["base:1"],
        }]);
        let parent = store.load(&mut &archive[..]).unwrap()[0].id.clone();
        let top = TarMaker::default().file("hello", b"world").finish();
        let id = store
            .create_child(ChildImage {
                parent: Some(parent.clone()),
                layer: Some(&mut &top[..]),
                config: ContainerConfig {
                    cmd: Some(vec!["cat".into(), "/hello".into()]),
                    ..Default::default()
                },
                created_by: "sh -c echo world > /hello".into(),
                comment: "a message".into(),
                author: "me".into(),
                tags: vec![Reference::parse_normalized("child:1").unwrap()],
                ..Default::default()
            })
            .unwrap();
        let inspect = store.inspect("child:1").unwrap();
        assert_eq!(inspect.id, id);
        assert_eq!(inspect.root_fs.layers.len(), 2);
        assert_eq!(inspect.author, "me");
        assert_eq!(inspect.comment, "a message");
        assert_eq!(store.meta(&id).parent.as_deref(), Some(parent.as_str()));
        assert_eq!(store.children_of(&parent), vec![id.clone()]);
        let h = store.history("child:1").unwrap();
        assert_eq!(h[0].id, id);
        assert_eq!(h[0].created_by, "sh -c echo world > /hello");
        assert_eq!(h[0].size, 5);
        assert_eq!(h[1].id, parent);

        // No change: no layer, an empty step.
        let empty = TarMaker::default().finish();
        let same = store
            .create_child(ChildImage {
                parent: Some(id.clone()),
                layer: Some(&mut &empty[..]),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(store.inspect(&same).unwrap().root_fs.layers.len(), 2);
        assert_eq!(store.history(&same).unwrap()[0].size, 0);

        // The parent cannot go while children need it; removing the child prunes it.
        let err = store
            .remove(&parent, false, &|_: &str| Vec::new())
            .unwrap_err();
        assert!(
            err.to_string().contains("image has dependent child images"),
            "{err}"
        );
        store.remove(&same, false, &|_: &str| Vec::new()).unwrap();
        let gone = store
            .remove("child:1", false, &|_: &str| Vec::new())
            .unwrap();
        // The child and its layer; the parent is tagged, so it stays.
        assert!(gone.contains(&api_types::ImageDeleteItem::Deleted(id.clone())));
        assert!(store.inspect("base:1").is_ok());
    }
}
