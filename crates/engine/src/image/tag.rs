//! `docker tag`.

use super::error::ImageError;
use super::reference::{Reference, ReferenceError};
use super::ImageStore;

impl ImageStore {
    /// Tags the image `source` (tag, ID or ID prefix) as `repo` (which may carry its own tag)
    /// with `tag` (`latest` if neither gives one). A tag naming another image moves.
    pub fn tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<(), ImageError> {
        let mut reference = Reference::parse_normalized(repo)?;
        if reference.digest().is_some() {
            return Err(ReferenceError::DigestTag.into());
        }
        if let Some(tag) = tag.filter(|t| !t.is_empty()) {
            reference = reference.with_tag(tag)?;
        }
        let reference = reference.with_default_tag();
        let id = self.lookup(source)?;
        let mut index = self.lock_index()?;
        if !self.config_path(&id).exists() {
            return Err(ImageError::NotFound { name: id });
        }
        let mut next = index.clone();
        next.set(&reference, &id);
        next.save(&self.index_path())?;
        *index = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::image::blob::sha256_digest;
    use crate::image::testutil::{config, legacy_archive, store, SavedImage, TarMaker};
    use crate::ErrorKind;

    #[test]
    fn tags_as_the_cli_sends_them() {
        let (_tmp, store) = store();
        let layer = TarMaker::default().finish();
        let cfg = config(&[&layer], "sh", "2024-01-01T00:00:00Z", &[]);
        let other = config(&[&layer], "other", "2024-01-01T00:00:00Z", &[]);
        let archive = legacy_archive(&[
            SavedImage {
                config: cfg.clone(),
                layers: vec![&layer],
                tags: vec!["busybox:latest"],
            },
            SavedImage {
                config: other.clone(),
                layers: vec![&layer],
                tags: vec!["other:1"],
            },
        ]);
        store.load(&mut &archive[..]).unwrap();
        let id = sha256_digest(&cfg);

        store
            .tag("busybox", "docker.io/library/ck-bb", Some("v1"))
            .unwrap();
        store.tag(&id, "localhost:5000/x:v2", None).unwrap();
        store.tag(&id[7..14], "plain", Some("")).unwrap();
        let tags = store.inspect(&id).unwrap().repo_tags;
        assert_eq!(
            tags,
            [
                "busybox:latest",
                "ck-bb:v1",
                "plain:latest",
                "localhost:5000/x:v2"
            ]
        );
        assert!(store
            .inspect(&id)
            .unwrap()
            .metadata
            .last_tag_time
            .starts_with("20"));

        // Moving a tag from another image.
        store.tag("busybox", "other", Some("1")).unwrap();
        assert_eq!(store.resolve("other:1").unwrap().id, id);
        assert!(store
            .inspect(&sha256_digest(&other))
            .unwrap()
            .repo_tags
            .is_empty());

        let e = store.tag("nosuch", "x", None).unwrap_err();
        assert_eq!(e.to_string(), "No such image: nosuch:latest");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = store.tag("busybox", "Upper", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name must be lowercase"
        );
        let e = store.tag("busybox", "x", Some("bad tag")).unwrap_err();
        assert_eq!(e.to_string(), "invalid tag format");
        let e = store
            .tag("busybox", &format!("x@sha256:{}", "a".repeat(64)), None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "refusing to create a tag with a digest reference"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
