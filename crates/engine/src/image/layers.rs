//! The layer store: every layer unpacked once, keyed by its diff ID (the sha256 of its
//! uncompressed tar), in `<root>/layers/<short>/`:
//!
//! ```text
//! layers/<short>/diff/        the unpacked layer, an overlayfs lowerdir
//! layers/<short>/layer.json   {"diff_id": "sha256:…", "size": N}
//! layers/<short>/tar-split.gz  how the layer's tar was laid out (see `tarsplit`)
//! layers/<short>/blob         a pulled layer's compressed blob, as the registry served it
//! layers/<short>/distribution.json  that blob's digest and the repositories that have it
//! ```
//!
//! `save` and `push` must send exactly the tar the diff ID was taken of: the tar-split
//! layout rebuilds it from `diff/` (as dockerd's tar-split does). A pulled layer also keeps
//! its blob, so a push of it sends the very bytes the registry had (no recompression, the
//! same digest everywhere).
//!
//! `<short>` is the first 12 hex digits of the diff ID, longer only if another layer already
//! holds that prefix, so that a `lowerdir=` option with many layers stays within the page
//! the kernel allows for mount options. A layer is unpacked into a scratch directory and
//! renamed into place only once complete and synced, so a crash never leaves half a layer
//! under a final name.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::blob::{decompressed, sha256_hex, DigestReader, ScratchDir};
use super::error::ImageError;
use super::tarsplit::{SplitLayout, SplitRecorder, SPLIT_FILE};
use super::unpack::unpack_layer;
use crate::fsutil::{read_json, write_json_atomic};

/// Lengths of the directory name tried in turn, the first free one wins.
const NAME_LENGTHS: [usize; 6] = [12, 16, 24, 32, 48, 64];
const META_FILE: &str = "layer.json";
/// The compressed blob of a pulled (or pushed) layer.
pub(crate) const BLOB_FILE: &str = "blob";

/// What of a new layer's original bytes to keep besides its tar-split layout.
pub(crate) enum Keep<'a> {
    /// Nothing: the layout rebuilds the tar (loaded, imported, committed layers).
    Layout,
    /// A downloaded blob file, moved in with its distribution metadata.
    Blob {
        file: &'a Path,
        meta: &'a super::distmeta::DistMeta,
    },
}

/// An unpacked layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layer {
    pub diff_id: String,
    /// Bytes of files and symlink targets in the layer.
    pub size: i64,
    /// `layers/<short>`; the content is in its `diff/`.
    pub path: PathBuf,
}

impl Layer {
    /// The unpacked content, to be stacked as an overlay lowerdir.
    pub(crate) fn diff_dir(&self) -> PathBuf {
        self.path.join("diff")
    }

    /// The layer's tar stream as it came (`save`, push), whose sha256 is its diff ID.
    pub(crate) fn layout(&self) -> Result<SplitLayout, ImageError> {
        let layout = SplitLayout::of(&self.path);
        if !layout.exists() {
            return Err(ImageError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "layer {} was stored without its tar layout; remove the image and load it again",
                    self.diff_id
                ),
            });
        }
        Ok(layout)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerMeta {
    diff_id: String,
    size: i64,
}

/// Layers on disk; see the module documentation.
pub(crate) struct LayerStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl LayerStore {
    pub(crate) fn new(dir: PathBuf, tmp: PathBuf) -> Self {
        Self { dir, tmp }
    }

    /// The layer with this diff ID, if it is unpacked.
    pub(crate) fn get(&self, diff_id: &str) -> Result<Option<Layer>, ImageError> {
        let hex = self.hex(diff_id)?;
        for len in NAME_LENGTHS {
            let path = self.dir.join(&hex[..len]);
            if let Some(layer) = self.read(&path)? {
                if layer.diff_id == diff_id {
                    return Ok(Some(layer));
                }
            }
        }
        Ok(None)
    }

    /// Every layer on disk.
    pub(crate) fn all(&self) -> Result<Vec<Layer>, ImageError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| ImageError::io(format!("cannot list {}", self.dir.display()), e))?;
        let mut layers = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| ImageError::io(format!("cannot list {}", self.dir.display()), e))?;
            if let Some(layer) = self.read(&entry.path())? {
                layers.push(layer);
            }
        }
        Ok(layers)
    }

    /// Unpacks a layer blob (plain or gzip tar) and moves it into place. With `expected`,
    /// the content must hash to that diff ID. If the layer is already there (another load won
    /// the race), the existing one is returned.
    pub(crate) fn create(
        &self,
        blob: &mut dyn Read,
        expected: Option<&str>,
    ) -> Result<Layer, ImageError> {
        self.create_keeping(blob, expected, Keep::Layout)
    }

    /// [`LayerStore::create`], keeping the original bytes as `keep` says.
    pub(crate) fn create_keeping(
        &self,
        blob: &mut dyn Read,
        expected: Option<&str>,
        keep: Keep<'_>,
    ) -> Result<Layer, ImageError> {
        if let Some(expected) = expected {
            self.hex(expected)?;
        }
        let work = ScratchDir::new(&self.tmp, "layer")?;
        let diff = work.path().join("diff");
        std::fs::create_dir(&diff)
            .map_err(|e| ImageError::io(format!("cannot create {}", diff.display()), e))?;

        let split_path = work.path().join(SPLIT_FILE);
        let split = std::fs::File::create(&split_path)
            .map_err(|e| ImageError::io(format!("cannot create {}", split_path.display()), e))?;
        let mut recorder = SplitRecorder::new(decompressed(blob)?, split);
        let mut tar = DigestReader::new(&mut recorder);
        let stats = unpack_layer(&mut tar, &diff)?;
        let diff_id = tar
            .finish()
            .map_err(|e| ImageError::archive(format!("cannot read the layer: {e}")))?;
        recorder
            .finish()
            .map_err(|e| ImageError::archive(format!("cannot record the layer's layout: {e}")))?;
        if let Some(expected) = expected {
            if diff_id != expected {
                return Err(ImageError::LayerDigest {
                    expected: expected.to_string(),
                    actual: diff_id,
                });
            }
        }
        let size = i64::try_from(stats.size).unwrap_or(i64::MAX);
        let meta = LayerMeta {
            diff_id: diff_id.clone(),
            size,
        };
        let meta_path = work.path().join(META_FILE);
        write_json_atomic(&meta_path, &meta)
            .map_err(|e| ImageError::io(format!("cannot write {}", meta_path.display()), e))?;
        if let Keep::Blob { file, meta } = keep {
            let kept = work.path().join(BLOB_FILE);
            std::fs::rename(file, &kept)
                .map_err(|e| ImageError::io(format!("cannot keep {}", file.display()), e))?;
            meta.save(work.path())?;
        }
        sync_filesystem(work.path())?;

        let hex = self.hex(&diff_id)?.to_string();
        for len in NAME_LENGTHS {
            let target = self.dir.join(&hex[..len]);
            match rename_noreplace(work.path(), &target) {
                Ok(()) => {
                    work.keep();
                    return Ok(Layer {
                        diff_id,
                        size,
                        path: target,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if let Some(existing) = self.read(&target)? {
                        if existing.diff_id == diff_id {
                            return Ok(existing);
                        }
                    }
                }
                Err(e) => {
                    return Err(ImageError::io(
                        format!("cannot move a layer to {}", target.display()),
                        e,
                    ))
                }
            }
        }
        Err(ImageError::Corrupt {
            path: self.dir.clone(),
            reason: format!("every directory name for layer {diff_id} is taken"),
        })
    }

    /// Deletes a layer: out of its place first (a rename), then its content.
    pub(crate) fn remove(&self, layer: &Layer) -> Result<(), ImageError> {
        let trash = ScratchDir::new(&self.tmp, "rm")?;
        let target = trash.path().join("layer");
        std::fs::rename(&layer.path, &target).map_err(|e| {
            ImageError::io(format!("cannot remove layer {}", layer.path.display()), e)
        })?;
        drop(trash);
        Ok(())
    }

    fn read(&self, path: &Path) -> Result<Option<Layer>, ImageError> {
        match read_json::<LayerMeta>(&path.join(META_FILE)) {
            Ok(meta) => Ok(Some(Layer {
                diff_id: meta.diff_id,
                size: meta.size,
                path: path.to_path_buf(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(ImageError::Corrupt {
                path: path.join(META_FILE),
                reason: e.to_string(),
            }),
            Err(e) => Err(ImageError::io(format!("cannot read {}", path.display()), e)),
        }
    }

    fn hex<'a>(&self, diff_id: &'a str) -> Result<&'a str, ImageError> {
        sha256_hex(diff_id).ok_or_else(|| ImageError::InvalidConfig {
            id: diff_id.to_string(),
            reason: "a layer diff ID must be sha256:<64 hex digits>".to_string(),
        })
    }
}

/// `renameat2(RENAME_NOREPLACE)`: fails with `AlreadyExists` rather than replace anything.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => {
            Err(io::Error::from(io::ErrorKind::AlreadyExists))
        }
        Err(e) => Err(e.into()),
    }
}

/// One `syncfs` instead of an fsync per unpacked file: what is renamed into place is on disk.
fn sync_filesystem(path: &Path) -> Result<(), ImageError> {
    let dir = std::fs::File::open(path)
        .map_err(|e| ImageError::io(format!("cannot open {}", path.display()), e))?;
    rustix::fs::syncfs(&dir)
        .map_err(|e| ImageError::io(format!("cannot sync {}", path.display()), e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::blob::sha256_digest;
    use crate::image::testutil::{gzip, TarMaker};

    fn store() -> (tempfile::TempDir, LayerStore) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("layers")).unwrap();
        std::fs::create_dir(tmp.path().join("tmp")).unwrap();
        let s = LayerStore::new(tmp.path().join("layers"), tmp.path().join("tmp"));
        (tmp, s)
    }

    #[test]
    fn layers_are_stored_once_by_diff_id() {
        let (tmp, s) = store();
        let tar = TarMaker::default()
            .file("etc/hostname", b"berth\n")
            .finish();
        let diff_id = sha256_digest(&tar);
        let a = s.create(&mut &tar[..], Some(&diff_id)).unwrap();
        assert_eq!(a.diff_id, diff_id);
        assert_eq!(a.size, 6);
        assert_eq!(a.path, tmp.path().join("layers").join(&diff_id[7..19]));
        assert_eq!(
            std::fs::read(a.diff_dir().join("etc/hostname")).unwrap(),
            b"berth\n"
        );
        // The same content, gzip-compressed, is the same layer.
        let b = s.create(&mut &gzip(&tar)[..], Some(&diff_id)).unwrap();
        assert_eq!(a, b);
        assert_eq!(s.get(&diff_id).unwrap(), Some(a.clone()));
        assert_eq!(s.all().unwrap(), vec![a.clone()]);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("tmp")).unwrap().count(),
            0,
            "scratch cleaned"
        );
        s.remove(&a).unwrap();
        assert_eq!(s.get(&diff_id).unwrap(), None);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_wrong_diff_id_leaves_nothing_behind() {
        let (tmp, s) = store();
        let tar = TarMaker::default().file("x", b"1").finish();
        let wrong = sha256_digest(b"something else");
        let err = s.create(&mut &tar[..], Some(&wrong)).unwrap_err();
        assert!(matches!(err, ImageError::LayerDigest { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(tmp.path().join("layers"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(tmp.path().join("tmp")).unwrap().count(),
            0
        );
        let err = s
            .create(
                &mut &TarMaker::default().file("../x", b"").finish()[..],
                None,
            )
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_taken_short_name_gets_a_longer_one() {
        let (tmp, s) = store();
        let tar = TarMaker::default().file("x", b"1").finish();
        let diff_id = sha256_digest(&tar);
        // Another layer that happens to share the first 12 hex digits.
        let squatter = tmp.path().join("layers").join(&diff_id[7..19]);
        std::fs::create_dir(&squatter).unwrap();
        let other = format!("sha256:{}{}", &diff_id[7..19], "0".repeat(52));
        write_json_atomic(
            &squatter.join(META_FILE),
            &LayerMeta {
                diff_id: other.clone(),
                size: 0,
            },
        )
        .unwrap();
        let layer = s.create(&mut &tar[..], None).unwrap();
        assert_eq!(layer.path, tmp.path().join("layers").join(&diff_id[7..23]));
        assert_eq!(s.get(&diff_id).unwrap().unwrap().path, layer.path);
        assert_eq!(s.get(&other).unwrap().unwrap().path, squatter);
    }
}
