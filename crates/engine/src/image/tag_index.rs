//! The tag index: which image each tag names, in one JSON file written atomically
//! (`<root>/repositories.json`).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::now_rfc3339_nano;
use super::error::ImageError;
use super::reference::Reference;
use crate::fsutil::{read_json, write_json_atomic};

/// Tags and when each image was last tagged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct TagIndex {
    /// Fully qualified reference (`docker.io/library/busybox:latest`) → image ID.
    pub tags: BTreeMap<String, String>,
    /// Image ID → when a tag was last added to it (RFC 3339), for inspect's `LastTagTime`.
    pub last_tag_time: BTreeMap<String, String>,
    /// Repository digest (`127.0.0.1:5000/app@sha256:…`, the manifest a pull or push used)
    /// → image ID, for `RepoDigests` and pulls by digest.
    pub digests: BTreeMap<String, String>,
}

impl TagIndex {
    /// Reads the index; a missing file is an empty index.
    pub(crate) fn load(path: &Path) -> Result<Self, ImageError> {
        match read_json(path) {
            Ok(index) => Ok(index),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(ImageError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
            Err(e) => Err(ImageError::io(format!("cannot read {}", path.display()), e)),
        }
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), ImageError> {
        write_json_atomic(path, self)
            .map_err(|e| ImageError::io(format!("cannot write {}", path.display()), e))
    }

    /// The image a reference (with its tag, or a repository digest) names.
    pub(crate) fn get(&self, reference: &Reference) -> Option<&str> {
        if reference.digest().is_some() && reference.tag().is_none() {
            return self.digests.get(&reference.to_string()).map(String::as_str);
        }
        self.tags.get(&reference.to_string()).map(String::as_str)
    }

    /// Records that `name@digest` is image `id`.
    pub(crate) fn set_digest(&mut self, digest_reference: &Reference, id: &str) {
        self.digests
            .insert(digest_reference.to_string(), id.to_string());
    }

    /// The repository digests of `id`, familiar form, sorted.
    pub(crate) fn digests_of(&self, id: &str) -> Vec<String> {
        self.digests
            .iter()
            .filter(|(_, target)| *target == id)
            .filter_map(|(name, _)| Reference::parse_normalized(name).ok())
            .map(|r| r.familiar_string())
            .collect()
    }

    /// Points `reference` at `id`, moving it from any image it named before.
    pub(crate) fn set(&mut self, reference: &Reference, id: &str) {
        self.tags.insert(reference.to_string(), id.to_string());
        self.last_tag_time
            .insert(id.to_string(), now_rfc3339_nano());
    }

    /// Removes a tag; whether it was there.
    pub(crate) fn remove(&mut self, reference: &Reference) -> bool {
        if reference.digest().is_some() && reference.tag().is_none() {
            return self.digests.remove(&reference.to_string()).is_some();
        }
        self.tags.remove(&reference.to_string()).is_some()
    }

    /// The references naming `id`, in lexical order of their full form (as dockerd sorts).
    pub(crate) fn references_of(&self, id: &str) -> Vec<Reference> {
        self.tags
            .iter()
            .filter(|(_, target)| *target == id)
            .filter_map(|(name, _)| Reference::parse_normalized(name).ok())
            .collect()
    }

    /// Forgets an image entirely: its tags and its tag time.
    pub(crate) fn forget(&mut self, id: &str) {
        self.tags.retain(|_, target| target != id);
        self.digests.retain(|_, target| target != id);
        self.last_tag_time.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_move_and_persist() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repositories.json");
        let mut index = TagIndex::load(&path).unwrap();
        assert_eq!(index, TagIndex::default());
        let bb = Reference::parse_normalized("busybox")
            .unwrap()
            .with_default_tag();
        let v1 = Reference::parse_normalized("docker.io/library/ck-bb:v1").unwrap();
        index.set(&bb, "sha256:a");
        index.set(&v1, "sha256:a");
        assert_eq!(
            index.references_of("sha256:a"),
            vec![bb.clone(), v1.clone()]
        );
        index.set(&bb, "sha256:b");
        assert_eq!(index.get(&bb), Some("sha256:b"));
        assert_eq!(index.references_of("sha256:a"), vec![v1.clone()]);
        index.save(&path).unwrap();
        let reread = TagIndex::load(&path).unwrap();
        assert_eq!(reread, index);
        assert!(reread.tags.contains_key("docker.io/library/busybox:latest"));
        index.forget("sha256:a");
        assert!(index.references_of("sha256:a").is_empty());
        assert!(!index.last_tag_time.contains_key("sha256:a"));
        assert!(index.remove(&bb));
        assert!(!index.remove(&bb));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            TagIndex::load(&path),
            Err(ImageError::Corrupt { .. })
        ));
    }
}
