//! What can go wrong in the image store, worded as dockerd words it where clients match on it.

use std::path::PathBuf;

use super::reference::ReferenceError;
use super::unpack::UnpackError;
use crate::ErrorKind;

/// An image store failure. The transports show the message as it is and map
/// [`ImageError::kind`] to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image has that name, tag or ID (`name` is in familiar form, with its tag).
    #[error("No such image: {name}")]
    NotFound { name: String },

    /// The name is not a valid reference.
    #[error(transparent)]
    Reference {
        #[from]
        source: ReferenceError,
    },

    /// An ID prefix matches more than one image.
    #[error("multiple IDs found with provided prefix: {prefix}")]
    AmbiguousId { prefix: String },

    /// `rmi` refused: a container uses the image, or it has several tags.
    #[error("conflict: unable to delete {image} ({}) - {reason}", force_hint(*.hard))]
    DeleteConflict {
        /// Short image ID.
        image: String,
        /// A hard conflict cannot be forced.
        hard: bool,
        reason: String,
    },

    /// `rmi <name>` refused: removing the last tag would leave a container's image dangling.
    #[error(
        "conflict: unable to remove repository reference \"{reference}\" (must force) - container {container} is using its referenced image {image}"
    )]
    ReferenceInUse {
        reference: String,
        container: String,
        image: String,
    },

    /// A `docker save` archive that cannot be loaded.
    #[error("invalid image archive: {reason}")]
    InvalidArchive { reason: String },

    /// An image config that berth cannot use.
    #[error("invalid image config {id}: {reason}")]
    InvalidConfig { id: String, reason: String },

    /// A layer whose content does not hash to the diff ID its image config names.
    #[error("layer content does not match its digest: expected {expected}, got {actual}")]
    LayerDigest { expected: String, actual: String },

    /// A layer or archive compressed in a format berth does not read.
    #[error(
        "unsupported compression ({format}): berth reads plain, gzip- and zstd-compressed tar"
    )]
    UnsupportedCompression { format: &'static str },

    /// A layer tarball that is malformed or tries to write outside its directory.
    #[error(transparent)]
    Unpack {
        #[from]
        source: UnpackError,
    },

    /// Talking to a registry failed (pull, push, login).
    #[error(transparent)]
    Registry {
        #[from]
        source: super::registry::RegistryError,
    },

    /// An `import --change` instruction that is not valid.
    #[error("dockerfile parse error line {line}: {message}")]
    Change { line: usize, message: String },

    /// A `filters` value `docker images` does not accept.
    #[error("Invalid filter '{filter}'")]
    InvalidFilter { filter: String },

    /// `GET /images/{name}/json` for an image that is not there: dockerd names the request
    /// and then the store's "No such image".
    #[error("no such image: {name}")]
    InspectNotFound {
        name: String,
        #[source]
        source: Box<ImageError>,
    },

    /// `tag` without a repository.
    #[error("repository name must have at least one component")]
    EmptyRepository,

    /// `import` of a URL: berth imports only what the client sends.
    #[error(
        "importing from a URL ({url}) is not supported: import a file, or - for standard input"
    )]
    ImportFromUrl { url: String },

    /// `save --format` with a format berth does not write.
    #[error("unknown archive format {format:?}: berth saves docker-archive or oci")]
    UnknownSaveFormat { format: String },

    /// `save` of no image at all.
    #[error("no image names given")]
    NothingToSave,

    /// Store data on disk that does not parse.
    #[error("image store data in {path:?} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    /// A file-system operation of the store failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn force_hint(hard: bool) -> &'static str {
    if hard {
        "cannot be forced"
    } else {
        "must be forced"
    }
}

impl ImageError {
    /// What kind of failure this is, for status and exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Reference { .. }
            | Self::AmbiguousId { .. }
            | Self::InvalidArchive { .. }
            | Self::InvalidConfig { .. }
            | Self::LayerDigest { .. }
            | Self::UnsupportedCompression { .. }
            | Self::Change { .. }
            | Self::InvalidFilter { .. }
            | Self::EmptyRepository
            | Self::ImportFromUrl { .. }
            | Self::UnknownSaveFormat { .. }
            | Self::NothingToSave => ErrorKind::InvalidArgument,
            Self::InspectNotFound { source, .. } => source.kind(),
            Self::DeleteConflict { .. } | Self::ReferenceInUse { .. } => ErrorKind::Conflict,
            Self::Unpack { source } => source.kind(),
            Self::Registry { source } => source.kind(),
            Self::Corrupt { .. } | Self::Io { .. } => ErrorKind::Internal,
        }
    }

    /// An [`ImageError::Io`] naming what the store was doing.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn archive(reason: impl Into<String>) -> Self {
        Self::InvalidArchive {
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_messages_are_dockers() {
        let e = ImageError::DeleteConflict {
            image: "f87059d7cfa0".into(),
            hard: true,
            reason: "image is being used by running container 03ed8a5ead50".into(),
        };
        assert_eq!(
            e.to_string(),
            "conflict: unable to delete f87059d7cfa0 (cannot be forced) - image is being used by running container 03ed8a5ead50"
        );
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e = ImageError::ReferenceInUse {
            reference: "busybox".into(),
            container: "03ed8a5ead50".into(),
            image: "f87059d7cfa0".into(),
        };
        assert_eq!(
            e.to_string(),
            "conflict: unable to remove repository reference \"busybox\" (must force) - container 03ed8a5ead50 is using its referenced image f87059d7cfa0"
        );
        let e: ImageError = ReferenceError::Uppercase.into();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name must be lowercase"
        );
    }
}
