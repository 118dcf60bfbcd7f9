//! Distribution metadata of a layer: the compressed blob berth keeps of it and the
//! repositories known to have that blob, so a push can skip or mount it (dockerd's
//! `distribution/metadata` v2 metadata service, one small file per layer here).

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ImageError;
use crate::fsutil::{read_json, write_json_atomic};

const FILE: &str = "distribution.json";

/// What is known of a layer's blob (`layers/<short>/distribution.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct DistMeta {
    /// The kept compressed blob (`layers/<short>/blob`), if any.
    pub blob: Option<KeptBlob>,
    /// `registry/repository` names known to have the blob, most recent last.
    pub repositories: Vec<String>,
}

/// A compressed blob's descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct KeptBlob {
    pub digest: String,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// At most this many repositories are remembered per layer.
const MAX_REPOSITORIES: usize = 16;

impl DistMeta {
    /// The metadata in a layer directory; empty if there is none.
    pub(crate) fn load(layer_dir: &Path) -> Self {
        match read_json(&layer_dir.join(FILE)) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                tracing::warn!(dir = %layer_dir.display(), error = %e, "ignoring unreadable distribution metadata");
                Self::default()
            }
        }
    }

    /// Writes the metadata into a layer directory, atomically.
    pub(crate) fn save(&self, layer_dir: &Path) -> Result<(), ImageError> {
        let path = layer_dir.join(FILE);
        write_json_atomic(&path, self)
            .map_err(|e| ImageError::io(format!("cannot write {}", path.display()), e))
    }

    /// Notes that `repository` has the blob.
    pub(crate) fn remember(&mut self, repository: &str) {
        self.repositories.retain(|r| r != repository);
        self.repositories.push(repository.to_string());
        let excess = self.repositories.len().saturating_sub(MAX_REPOSITORIES);
        self.repositories.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_remembers_recent_repositories() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(DistMeta::load(tmp.path()), DistMeta::default());
        let mut m = DistMeta {
            blob: Some(KeptBlob {
                digest: "sha256:a".into(),
                size: 3,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }),
            repositories: vec![],
        };
        for n in 0..20 {
            m.remember(&format!("r/{n}"));
        }
        m.remember("r/5");
        assert_eq!(m.repositories.len(), MAX_REPOSITORIES);
        assert_eq!(m.repositories.last().unwrap(), "r/5");
        m.save(tmp.path()).unwrap();
        assert_eq!(DistMeta::load(tmp.path()), m);
    }
}
