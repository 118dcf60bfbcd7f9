//! `docker image inspect`, and resolving a name to what a container is made from.

use std::collections::BTreeMap;

use api_types::{GraphDriver, ImageInspect, ImageMetadata, RootFs};

use super::config::ZERO_TIME;
use super::error::ImageError;
use super::reference::Reference;
use super::{Image, ImageStore};

impl ImageStore {
    /// The bytes of the image `id`'s layers, as `Size` in its inspect.
    pub fn size_of(&self, id: &str) -> Result<i64, ImageError> {
        let config = self.read_config(id)?;
        Ok(self.layers_of(id, &config)?.iter().map(|l| l.size).sum())
    }

    /// Each layer of image `id` with its size, bottom first.
    pub fn layer_sizes(&self, id: &str) -> Result<Vec<(String, i64)>, ImageError> {
        let config = self.read_config(id)?;
        Ok(self
            .layers_of(id, &config)?
            .into_iter()
            .map(|l| (l.diff_id, l.size))
            .collect())
    }

    /// The image `name` (tag, ID or ID prefix) as `GET /images/{name}/json` shows it.
    pub fn inspect(&self, name: &str) -> Result<ImageInspect, ImageError> {
        let id = self.lookup(name)?;
        let config = self.read_config(&id)?;
        let layers = self.layers_of(&id, &config)?;
        let (repo_tags, repo_digests, last_tag_time) = {
            let index = self.lock_index()?;
            let tags = index
                .references_of(&id)
                .iter()
                .map(Reference::familiar_string)
                .collect();
            (
                tags,
                index.digests_of(&id),
                index.last_tag_time.get(&id).cloned(),
            )
        };
        let size: i64 = layers.iter().map(|l| l.size).sum();
        let parent = self.meta(&id).parent.unwrap_or_default();
        let mut data = BTreeMap::new();
        if !layers.is_empty() {
            // The image's `lowerdir=`: every layer, topmost first.
            let lower: Vec<String> = layers
                .iter()
                .rev()
                .map(|l| l.diff_dir().display().to_string())
                .collect();
            data.insert("LowerDir".to_string(), lower.join(":"));
        }
        Ok(ImageInspect {
            id,
            repo_tags,
            repo_digests,
            parent,
            comment: config.comment.clone(),
            created: config.created_string(),
            container: config.container.clone(),
            container_config: config.container_config.clone().unwrap_or_default(),
            docker_version: config.docker_version.clone(),
            author: config.author.clone(),
            config: config.config.clone().unwrap_or_default(),
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            size,
            virtual_size: size,
            graph_driver: GraphDriver {
                data,
                name: "overlay2".to_string(),
            },
            root_fs: RootFs {
                kind: "layers".to_string(),
                layers: config.rootfs.diff_ids,
            },
            metadata: ImageMetadata {
                last_tag_time: last_tag_time.unwrap_or_else(|| ZERO_TIME.to_string()),
            },
        })
    }

    /// The image `name` (tag, ID or ID prefix) with its config and layer directories.
    pub fn resolve(&self, name: &str) -> Result<Image, ImageError> {
        let id = self.lookup(name)?;
        let config = self.read_config(&id)?;
        let layer_dirs = self
            .layers_of(&id, &config)?
            .iter()
            .map(|l| l.diff_dir())
            .collect();
        Ok(Image {
            created: config.created_string(),
            config: config.config.unwrap_or_default(),
            layer_dirs,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::blob::sha256_digest;
    use crate::image::testutil::{config, legacy_archive, store, SavedImage, TarMaker};
    use crate::ErrorKind;

    fn loaded() -> (tempfile::TempDir, ImageStore, String, String) {
        let (tmp, store) = store();
        let base = TarMaker::default().file("bin/sh", b"12345").finish();
        let top = TarMaker::default()
            .file("etc/motd", b"hi")
            .symlink("link", "bin/sh")
            .finish();
        let one = config(&[&base], "sh", "2024-01-01T00:00:00.5Z", &[]);
        let two = config(&[&base, &top], "cat", "2024-01-02T00:00:00Z", &[("k", "v")]);
        let archive = legacy_archive(&[
            SavedImage {
                config: one.clone(),
                layers: vec![&base],
                tags: vec!["busybox:latest", "alpine:3.10"],
            },
            SavedImage {
                config: two.clone(),
                layers: vec![&base, &top],
                tags: vec![],
            },
        ]);
        store.load(&mut &archive[..]).unwrap();
        (tmp, store, sha256_digest(&one), sha256_digest(&two))
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn inspect_looks_like_dockerd() {
        let (_tmp, store, one, two) = loaded();
        let i = store.inspect("busybox").unwrap();
        assert_eq!(i.id, one);
        assert_eq!(i.repo_tags, ["alpine:3.10", "busybox:latest"]);
        assert!(i.repo_digests.is_empty());
        assert_eq!(i.created, "2024-01-01T00:00:00.5Z");
        assert_eq!(i.config.cmd, Some(vec!["sh".to_string()]));
        assert_eq!((i.os.as_str(), i.architecture.as_str()), ("linux", "amd64"));
        assert_eq!((i.size, i.virtual_size), (5, 5));
        assert_eq!(i.graph_driver.name, "overlay2");
        assert_eq!(i.root_fs.kind, "layers");
        assert!(
            i.metadata.last_tag_time.starts_with("20"),
            "{}",
            i.metadata.last_tag_time
        );
        let json = serde_json::to_value(&i).unwrap();
        for key in [
            "Id",
            "RepoTags",
            "RepoDigests",
            "Parent",
            "Comment",
            "Created",
            "Container",
            "ContainerConfig",
            "DockerVersion",
            "Author",
            "Config",
            "Architecture",
            "Os",
            "Size",
            "VirtualSize",
            "GraphDriver",
            "RootFS",
            "Metadata",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }

        let i = store.inspect(&two).unwrap();
        assert!(i.repo_tags.is_empty());
        assert_eq!(i.metadata.last_tag_time, ZERO_TIME);
        assert_eq!(i.size, 5 + 2 + 6);
        let lower = &i.graph_driver.data["LowerDir"];
        let image = store.resolve(&two).unwrap();
        let expected: Vec<String> = image
            .layer_dirs
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(lower, &expected.join(":"));
        assert_eq!(image.config.labels.unwrap()["k"], "v");
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn names_ids_and_prefixes_resolve() {
        let (_tmp, store, one, two) = loaded();
        for name in [
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
            "alpine:3.10",
            &one,
            &one[7..],
            &one[..19],
            &one[7..11],
        ] {
            assert_eq!(store.resolve(name).unwrap().id, one, "{name}");
        }
        assert_eq!(store.resolve(&two[7..20]).unwrap().id, two);
        let image = store.resolve("busybox").unwrap();
        assert_eq!(image.layer_dirs.len(), 1);
        assert_eq!(
            std::fs::read(image.layer_dirs[0].join("bin/sh")).unwrap(),
            b"12345"
        );
        assert_eq!(image.created, "2024-01-01T00:00:00.5Z");
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn missing_and_bad_names() {
        let (_tmp, store, _, _) = loaded();
        let e = store.inspect("nosuch").unwrap_err();
        assert_eq!(e.to_string(), "No such image: nosuch:latest");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            store.resolve("ck-nosuch:v1").unwrap_err().to_string(),
            "No such image: ck-nosuch:v1"
        );
        assert_eq!(
            store.resolve("localhost:5000/x").unwrap_err().to_string(),
            "No such image: localhost:5000/x:latest"
        );
        let missing = format!("sha256:{}", "f".repeat(64));
        assert_eq!(
            store.resolve(&missing).unwrap_err().to_string(),
            format!("No such image: {missing}")
        );
        assert_eq!(
            store.resolve(&"f".repeat(64)).unwrap_err().to_string(),
            format!("No such image: {missing}")
        );
        assert_eq!(
            store.resolve("BusyBox").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            store.resolve("a b").unwrap_err().to_string(),
            "invalid reference format"
        );
    }

    #[test]
    fn ambiguous_prefixes_are_refused() {
        let (_tmp, store) = store();
        let layer = TarMaker::default().finish();
        // 17 images: two of them share a first hex digit.
        let images: Vec<SavedImage<'_>> = (0..17)
            .map(|n| SavedImage {
                config: config(&[&layer], &n.to_string(), "2024-01-01T00:00:00Z", &[]),
                layers: vec![&layer],
                tags: vec![],
            })
            .collect();
        store.load(&mut &legacy_archive(&images)[..]).unwrap();
        let ids: Vec<String> = images.iter().map(|i| sha256_digest(&i.config)).collect();
        let first = |id: &String| id[7..8].to_string();
        let shared = ids
            .iter()
            .map(first)
            .find(|c| ids.iter().filter(|id| first(id) == *c).count() > 1)
            .unwrap();
        let e = store.resolve(&shared).unwrap_err();
        assert!(matches!(e, ImageError::AmbiguousId { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            format!("multiple IDs found with provided prefix: {shared}")
        );
        // Tagging the prefix makes it a name, which wins.
        store.tag(&ids[0], &shared, None).unwrap();
        assert_eq!(store.resolve(&shared).unwrap().id, ids[0]);
    }
}
