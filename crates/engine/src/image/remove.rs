//! `docker rmi`: untagging and deleting, with dockerd's refusals.

use api_types::ImageDeleteItem;

use super::blob::{sha256_digest, short_id};
use super::error::ImageError;
use super::reference::Reference;
use super::ImageStore;

impl ImageStore {
    /// Removes the image `name`, as `DELETE /images/{name}` does:
    ///
    /// - by name, when the image has other tags: only that tag goes (`Untagged`);
    /// - a running container using the image: refused, even with `force`;
    /// - by name, the last tag, a stopped container using the image: refused without
    ///   `force`; with it the tag goes but the image stays (dangling) so the container
    ///   keeps working;
    /// - by ID, several tags, no `force`: refused; a stopped user without `force`: refused;
    ///   with `force` and a stopped user the tags go and the image stays;
    /// - otherwise the tags go, then the config and every layer no other image lists
    ///   (`Deleted`: the image ID, then the chain IDs of the deleted layers, top first).
    ///
    /// `users(image_id)` lists the containers made from the image: (container ID, running?).
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        users: &dyn Fn(&str) -> Vec<(String, bool)>,
    ) -> Result<Vec<ImageDeleteItem>, ImageError> {
        self.remove_with(name, force, true, users)
    }

    /// [`ImageStore::remove`], and with `prune` (dockerd's default, `noprune=0`) the untagged
    /// parents (from `commit` and build steps) that nothing else needs go as well. An image
    /// other images were made from is never deleted: by ID that is refused, by its last tag
    /// only the tag goes.
    pub fn remove_with(
        &self,
        name: &str,
        force: bool,
        prune: bool,
        users: &dyn Fn(&str) -> Vec<(String, bool)>,
    ) -> Result<Vec<ImageDeleteItem>, ImageError> {
        let _gc = self.gc_exclusive()?;
        let id = self.lookup(name)?;
        let image = short_id(&id).to_string();
        let users_of = users;
        let users = users_of(&id);
        let running = users
            .iter()
            .find(|(_, running)| *running)
            .map(|(c, _)| short_id(c).to_string());
        let stopped = users
            .iter()
            .find(|(_, running)| !*running)
            .map(|(c, _)| short_id(c).to_string());
        let running_conflict = |container: String| ImageError::DeleteConflict {
            image: image.clone(),
            hard: true,
            reason: format!("image is being used by running container {container}"),
        };

        let has_children = !self.children_of(&id).is_empty();
        let mut index = self.lock_index()?;
        let references = index.references_of(&id);
        let mut next = index.clone();
        let mut records = Vec::new();
        let untag =
            |next: &mut super::TagIndex, records: &mut Vec<ImageDeleteItem>, r: &Reference| {
                if next.remove(r) {
                    records.push(ImageDeleteItem::Untagged(r.familiar_string()));
                }
            };

        let keep_image = if !is_id_prefix(&id, name) {
            let reference = Reference::parse_normalized(name)?.with_default_tag();
            if references.len() > 1 {
                untag(&mut next, &mut records, &reference);
                true
            } else if let Some(container) = running {
                return Err(running_conflict(container));
            } else if let Some(container) = stopped {
                if !force {
                    return Err(ImageError::ReferenceInUse {
                        reference: name.to_string(),
                        container,
                        image,
                    });
                }
                untag(&mut next, &mut records, &reference);
                true
            } else {
                untag(&mut next, &mut records, &reference);
                has_children
            }
        } else {
            if let Some(container) = running {
                return Err(running_conflict(container));
            }
            if has_children {
                return Err(ImageError::DeleteConflict {
                    image,
                    hard: true,
                    reason: "image has dependent child images".into(),
                });
            }
            if references.len() > 1 && !force {
                return Err(ImageError::DeleteConflict {
                    image,
                    hard: false,
                    reason: "image is referenced in multiple repositories".into(),
                });
            }
            if let Some(container) = &stopped {
                // Deleting the data would break the container: at most the tags can go.
                if !force || references.is_empty() {
                    return Err(ImageError::DeleteConflict {
                        image,
                        hard: force,
                        reason: format!("image is being used by stopped container {container}"),
                    });
                }
            }
            for reference in &references {
                untag(&mut next, &mut records, reference);
            }
            stopped.is_some()
        };

        if keep_image {
            next.save(&self.index_path())?;
            *index = next;
            return Ok(records);
        }

        next.save(&self.index_path())?;
        *index = next;
        drop(index);
        let mut parent = self.meta(&id).parent;
        self.delete_unused(&id, &mut records)?;
        if prune {
            while let Some(p) = parent.take() {
                let unused = self.config_path(&p).exists()
                    && self.lock_index()?.references_of(&p).is_empty()
                    && self.children_of(&p).is_empty()
                    && users_of(&p).is_empty();
                if !unused {
                    break;
                }
                parent = self.meta(&p).parent;
                self.delete_unused(&p, &mut records)?;
            }
        }
        Ok(records)
    }

    /// Deletes an image nothing names or uses any more: its config, its facts and every
    /// layer no other image lists (recorded as `Deleted`: the image ID, then the chain IDs
    /// of the deleted layers, top first). The gc lock must be held exclusively.
    pub(crate) fn delete_unused(
        &self,
        id: &str,
        records: &mut Vec<ImageDeleteItem>,
    ) -> Result<(), ImageError> {
        let config = self.read_config(id)?;
        {
            let mut index = self.lock_index()?;
            let mut next = index.clone();
            next.forget(id);
            if next != *index {
                next.save(&self.index_path())?;
                *index = next;
            }
            let path = self.config_path(id);
            std::fs::remove_file(&path)
                .map_err(|e| ImageError::io(format!("cannot remove {}", path.display()), e))?;
        }
        records.push(ImageDeleteItem::Deleted(id.to_string()));
        self.remove_meta(id);

        // The image is gone; a layer that cannot be deleted now is collected at the next open.
        let Some(mut in_use) = self.layers_in_use() else {
            return Ok(());
        };
        let chain = chain_ids(&config.rootfs.diff_ids);
        for (diff_id, chain_id) in config.rootfs.diff_ids.iter().zip(chain).rev() {
            if !in_use.insert(diff_id.clone()) {
                continue;
            }
            match self.layers.get(diff_id) {
                Ok(Some(layer)) => match self.layers.remove(&layer) {
                    Ok(()) => records.push(ImageDeleteItem::Deleted(chain_id)),
                    Err(e) => {
                        tracing::warn!(layer = %diff_id, error = %crate::error::Chain(&e), "cannot delete layer")
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(layer = %diff_id, error = %crate::error::Chain(&e), "cannot find layer")
                }
            }
        }
        Ok(())
    }
}

/// Whether `name` is the image's ID or a prefix of it (with or without `sha256:`), which
/// makes `rmi` act on the image rather than on a tag.
fn is_id_prefix(id: &str, name: &str) -> bool {
    id.starts_with(name)
        || id
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.starts_with(name))
}

/// Layer chain IDs, as dockerd reports deleted layers: the first is the first diff ID, each
/// next is `sha256(previous + " " + diff ID)`.
fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
        };
        chain.push(next);
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testutil::{config, legacy_archive, store, SavedImage, TarMaker};
    use crate::ErrorKind;

    const CONTAINER: &str = "03ed8a5ead50aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    struct Fixture {
        _tmp: tempfile::TempDir,
        store: ImageStore,
        base: Vec<u8>,
        top: Vec<u8>,
        one: String,
        two: String,
    }

    /// `one` (tags busybox:latest, ck-bb:v1; layer base) and `two` (tag app; base + top).
    fn fixture() -> Fixture {
        let (tmp, store) = store();
        let base = TarMaker::default().file("bin/sh", b"1").finish();
        let top = TarMaker::default().file("x", b"2").finish();
        let one = config(&[&base], "one", "2024-01-01T00:00:00Z", &[]);
        let two = config(&[&base, &top], "two", "2024-01-01T00:00:00Z", &[]);
        let archive = legacy_archive(&[
            SavedImage {
                config: one.clone(),
                layers: vec![&base],
                tags: vec!["busybox:latest", "ck-bb:v1"],
            },
            SavedImage {
                config: two.clone(),
                layers: vec![&base, &top],
                tags: vec!["app:latest"],
            },
        ]);
        store.load(&mut &archive[..]).unwrap();
        Fixture {
            _tmp: tmp,
            store,
            one: sha256_digest(&one),
            two: sha256_digest(&two),
            base,
            top,
        }
    }

    fn nobody(_: &str) -> Vec<(String, bool)> {
        Vec::new()
    }

    fn running(_: &str) -> Vec<(String, bool)> {
        vec![(CONTAINER.to_string(), true)]
    }

    fn stopped(_: &str) -> Vec<(String, bool)> {
        vec![(CONTAINER.to_string(), false)]
    }

    fn untagged(s: &str) -> ImageDeleteItem {
        ImageDeleteItem::Untagged(s.to_string())
    }

    fn deleted(s: &str) -> ImageDeleteItem {
        ImageDeleteItem::Deleted(s.to_string())
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn a_name_with_other_tags_is_only_untagged() {
        let f = fixture();
        // Even a running container does not stop an untag that leaves the image tagged.
        let items = f
            .store
            .remove("docker.io/library/ck-bb:v1", false, &running)
            .unwrap();
        assert_eq!(items, [untagged("ck-bb:v1")]);
        assert_eq!(
            f.store.inspect(&f.one).unwrap().repo_tags,
            ["busybox:latest"]
        );
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn the_last_tag_deletes_the_image_and_its_own_layers() {
        let f = fixture();
        let items = f.store.remove("app", false, &nobody).unwrap();
        let top_chain = sha256_digest(
            format!("{} {}", sha256_digest(&f.base), sha256_digest(&f.top)).as_bytes(),
        );
        assert_eq!(
            items,
            [untagged("app:latest"), deleted(&f.two), deleted(&top_chain)]
        );
        assert_eq!(f.store.count(), 1);
        // The shared base layer stays for `one`.
        let one = f.store.resolve("busybox").unwrap();
        assert!(one.layer_dirs[0].join("bin/sh").exists());
        assert_eq!(
            std::fs::read_dir(f.store.root().join("layers"))
                .unwrap()
                .count(),
            1
        );
        let e = f.store.remove("app", false, &nobody).unwrap_err();
        assert_eq!(e.to_string(), "No such image: app:latest");
        assert_eq!(e.kind(), ErrorKind::NotFound);

        let items = f.store.remove(&f.one, true, &nobody).unwrap();
        assert_eq!(
            items,
            [
                untagged("busybox:latest"),
                untagged("ck-bb:v1"),
                deleted(&f.one),
                deleted(&sha256_digest(&f.base))
            ]
        );
        assert_eq!(f.store.count(), 0);
        assert_eq!(
            std::fs::read_dir(f.store.root().join("layers"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(f.store.root().join("tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn an_id_with_several_tags_must_be_forced() {
        let f = fixture();
        let e = f.store.remove(&f.one[7..19], false, &nobody).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                &f.one[7..19]
            )
        );
        assert_eq!(e.kind(), ErrorKind::Conflict);
        // An ID with a single tag untags it and deletes.
        let items = f.store.remove(&f.two, false, &nobody).unwrap();
        assert_eq!(items[..2], [untagged("app:latest"), deleted(&f.two)]);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn running_containers_block_even_forced_removal() {
        let f = fixture();
        let expected = format!(
            "conflict: unable to delete {} (cannot be forced) - image is being used by running container 03ed8a5ead50",
            &f.two[7..19]
        );
        for (name, force) in [
            ("app", false),
            ("app", true),
            (f.two.as_str(), true),
            (&f.two[7..15], false),
        ] {
            let e = f.store.remove(name, force, &running).unwrap_err();
            assert_eq!(e.to_string(), expected, "{name} force={force}");
            assert_eq!(e.kind(), ErrorKind::Conflict);
        }
        assert_eq!(f.store.inspect("app").unwrap().id, f.two);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn stopped_containers_keep_the_image_data() {
        let f = fixture();
        let e = f.store.remove("app", false, &stopped).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "conflict: unable to remove repository reference \"app\" (must force) - container 03ed8a5ead50 is using its referenced image {}",
                &f.two[7..19]
            )
        );
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e = f.store.remove(&f.two, false, &stopped).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "(must be forced) - image is being used by stopped container 03ed8a5ead50"
            ),
            "{e}"
        );

        let dirs = f.store.resolve("app").unwrap().layer_dirs;
        let items = f.store.remove("app", true, &stopped).unwrap();
        assert_eq!(items, [untagged("app:latest")]);
        // Dangling, but whole: the container can still start from it.
        let image = f.store.resolve(&f.two).unwrap();
        assert_eq!(image.layer_dirs, dirs);
        assert!(dirs.iter().all(|d| d.exists()));
        assert!(f.store.inspect(&f.two).unwrap().repo_tags.is_empty());
        // Nothing left to untag: forcing cannot delete what the container needs.
        let e = f.store.remove(&f.two, true, &stopped).unwrap_err();
        assert!(
            e.to_string()
                .contains("(cannot be forced) - image is being used by stopped container"),
            "{e}"
        );
        // By ID with force: the tags go, the image stays.
        let items = f.store.remove(&f.one, true, &stopped).unwrap();
        assert_eq!(items, [untagged("busybox:latest"), untagged("ck-bb:v1")]);
        assert_eq!(f.store.count(), 2);
        // Once the container is gone, the dangling image is deleted.
        let items = f.store.remove(&f.two, false, &nobody).unwrap();
        assert_eq!(items[0], deleted(&f.two));
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn the_users_callback_gets_the_full_id() {
        let f = fixture();
        let seen = std::cell::RefCell::new(Vec::new());
        let users = |id: &str| {
            seen.borrow_mut().push(id.to_string());
            Vec::new()
        };
        f.store.remove("app", false, &users).unwrap();
        assert_eq!(*seen.borrow(), std::slice::from_ref(&f.two));
    }

    #[test]
    fn chain_ids_follow_docker() {
        let d = |s: &str| sha256_digest(s.as_bytes());
        let ids = chain_ids(&[d("a"), d("b"), d("c")]);
        assert_eq!(ids[0], d("a"));
        assert_eq!(
            ids[1],
            sha256_digest(format!("{} {}", d("a"), d("b")).as_bytes())
        );
        assert_eq!(
            ids[2],
            sha256_digest(format!("{} {}", ids[1], d("c")).as_bytes())
        );
        assert!(is_id_prefix("sha256:abcdef", "abc"));
        assert!(is_id_prefix("sha256:abcdef", "sha256:abc"));
        assert!(!is_id_prefix("sha256:abcdef", "busybox"));
    }
}
