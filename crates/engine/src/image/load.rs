//! `docker load`: images from a `docker save` archive.
//!
//! Reads both layouts: the legacy one (`manifest.json`, `repositories`, `<dir>/layer.tar`,
//! as Docker ≤ 24 writes) and the OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`, as Docker ≥ 25 writes, with a `manifest.json` beside it; pure OCI
//! archives without one are read through `index.json`, following nested indexes). The
//! archive, plain or gzip-compressed, is streamed into a scratch directory first (its
//! `manifest.json` may come last), never held in memory.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use api_types::container::null_default;
use serde::Deserialize;

use super::blob::{decompressed, sha256_digest, sha256_hex, ScratchDir};
use super::config::{host_architecture, ImageConfig};
use super::error::ImageError;
use super::reference::Reference;
use super::{ImageStore, LoadedImage};

const MANIFEST_JSON: &str = "manifest.json";
const OCI_INDEX: &str = "index.json";
/// The largest JSON document (manifest, index, config) read from an archive.
const MAX_METADATA: u64 = 32 << 20;
/// How deep indexes may nest.
const MAX_INDEX_DEPTH: usize = 8;

const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One image found in an archive: where its config and layers are, and its tags.
struct ArchiveImage {
    config: String,
    /// The digest the config must have (OCI descriptors say; legacy manifests do not).
    config_digest: Option<String>,
    layers: Vec<String>,
    tags: Vec<Reference>,
}

impl ImageStore {
    /// Loads every image of a `docker save` archive; tags in it move to the loaded images.
    /// Layers already in the store are not unpacked again.
    pub fn load(&self, archive: &mut dyn Read) -> Result<Vec<LoadedImage>, ImageError> {
        let _gc = self.gc_shared()?;
        let spool = Spool::fill(&self.tmp_dir(), archive)?;
        let images = if spool.has(MANIFEST_JSON) {
            docker_manifest(&spool)?
        } else if spool.has(OCI_INDEX) {
            oci_images(&spool)?
        } else {
            return Err(ImageError::archive(
                "it has neither manifest.json nor index.json",
            ));
        };

        let mut loaded: Vec<LoadedImage> = Vec::new();
        for image in images {
            let config = spool.read_small(&image.config)?;
            let id = sha256_digest(&config);
            if let Some(expected) = &image.config_digest {
                if *expected != id {
                    return Err(ImageError::archive(format!(
                        "config {} does not match its digest",
                        image.config
                    )));
                }
            }
            let parsed = parse_config(&id, &config)?;
            if parsed.rootfs.diff_ids.len() != image.layers.len() {
                return Err(ImageError::InvalidConfig {
                    id,
                    reason: format!(
                        "it lists {} layers but the archive has {}",
                        parsed.rootfs.diff_ids.len(),
                        image.layers.len()
                    ),
                });
            }
            for (path, diff_id) in image.layers.iter().zip(&parsed.rootfs.diff_ids) {
                if self.layers.get(diff_id)?.is_none() {
                    tracing::debug!(layer = %diff_id, "loading layer");
                    self.layers.create(&mut spool.open(path)?, Some(diff_id))?;
                }
            }
            self.publish(&config, &image.tags)?;
            let tags = image.tags.iter().map(Reference::familiar_string);
            match loaded.iter_mut().find(|l| l.id == id) {
                Some(known) => {
                    for tag in tags {
                        if !known.tags.contains(&tag) {
                            known.tags.push(tag);
                        }
                    }
                }
                None => loaded.push(LoadedImage {
                    id,
                    tags: tags.collect(),
                }),
            }
        }
        Ok(loaded)
    }
}

/// Reads an image config and checks berth can run it.
pub(crate) fn parse_config(id: &str, bytes: &[u8]) -> Result<ImageConfig, ImageError> {
    let invalid = |reason: String| ImageError::InvalidConfig {
        id: id.to_string(),
        reason,
    };
    let config: ImageConfig = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if config.rootfs.kind != "layers" {
        return Err(invalid(format!(
            "rootfs type {:?} is not \"layers\"",
            config.rootfs.kind
        )));
    }
    if !config.os.is_empty() && config.os != "linux" {
        return Err(invalid(format!(
            "image operating system {:?} cannot be used on this platform",
            config.os
        )));
    }
    if let Some(bad) = config
        .rootfs
        .diff_ids
        .iter()
        .find(|d| sha256_hex(d).is_none())
    {
        return Err(invalid(format!(
            "diff ID {bad:?} is not sha256:<64 hex digits>"
        )));
    }
    Ok(config)
}

/// `manifest.json`: `[{"Config": …, "RepoTags": […], "Layers": […]}]`.
fn docker_manifest(spool: &Spool) -> Result<Vec<ArchiveImage>, ImageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Item {
        config: String,
        #[serde(default, deserialize_with = "null_default::deserialize")]
        repo_tags: Vec<String>,
        #[serde(default, deserialize_with = "null_default::deserialize")]
        layers: Vec<String>,
    }
    let items: Vec<Item> = serde_json::from_slice(&spool.read_small(MANIFEST_JSON)?)
        .map_err(|e| ImageError::archive(format!("{MANIFEST_JSON}: {e}")))?;
    items
        .into_iter()
        .map(|item| {
            let tags = item
                .repo_tags
                .iter()
                .map(|t| match Reference::parse_normalized(t) {
                    Ok(r) if r.tag().is_some() && r.digest().is_none() => Ok(r),
                    _ => Err(ImageError::archive(format!(
                        "invalid tag {t:?} in {MANIFEST_JSON}"
                    ))),
                })
                .collect::<Result<_, _>>()?;
            Ok(ArchiveImage {
                config: item.config,
                config_digest: None,
                layers: item.layers,
                tags,
            })
        })
        .collect()
}

/// An OCI content descriptor.
#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default, deserialize_with = "null_default::deserialize")]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default, deserialize_with = "null_default::deserialize")]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default, deserialize_with = "null_default::deserialize")]
    layers: Vec<Descriptor>,
}

enum BlobKind {
    Index,
    Manifest,
    Other,
}

fn blob_kind(media_type: &str, blob: &serde_json::Value) -> BlobKind {
    match media_type {
        "application/vnd.oci.image.index.v1+json"
        | "application/vnd.docker.distribution.manifest.list.v2+json" => BlobKind::Index,
        "application/vnd.oci.image.manifest.v1+json"
        | "application/vnd.docker.distribution.manifest.v2+json" => BlobKind::Manifest,
        // The media type is optional; the content tells.
        "" if blob.get("manifests").is_some() => BlobKind::Index,
        "" if blob.get("config").is_some() => BlobKind::Manifest,
        _ => BlobKind::Other,
    }
}

/// The images of an OCI layout, from `index.json` down.
fn oci_images(spool: &Spool) -> Result<Vec<ArchiveImage>, ImageError> {
    let index: Index = serde_json::from_slice(&spool.read_small(OCI_INDEX)?)
        .map_err(|e| ImageError::archive(format!("{OCI_INDEX}: {e}")))?;
    let mut images = Vec::new();
    // The top-level index lists images, each for whatever platform it is; only nested
    // indexes (multi-platform images) are narrowed down to the host's platform.
    for descriptor in &index.manifests {
        let tags = descriptor_names(descriptor)?;
        walk(spool, descriptor, tags, 0, &mut images)?;
    }
    Ok(images)
}

fn walk(
    spool: &Spool,
    descriptor: &Descriptor,
    tags: Vec<Reference>,
    depth: usize,
    images: &mut Vec<ArchiveImage>,
) -> Result<(), ImageError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(ImageError::archive("image indexes nest too deeply"));
    }
    let bytes = spool.read_blob(&descriptor.digest)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::archive(format!("blob {}: {e}", descriptor.digest)))?;
    let bad =
        |e: serde_json::Error| ImageError::archive(format!("blob {}: {e}", descriptor.digest));
    match blob_kind(&descriptor.media_type, &value) {
        BlobKind::Index => {
            let index: Index = serde_json::from_value(value).map_err(bad)?;
            for child in choose_platform(&index.manifests)? {
                let own = descriptor_names(child)?;
                let child_tags = if own.is_empty() { tags.clone() } else { own };
                walk(spool, child, child_tags, depth + 1, images)?;
            }
        }
        BlobKind::Manifest => {
            let manifest: Manifest = serde_json::from_value(value).map_err(bad)?;
            images.push(ArchiveImage {
                config: blob_path(&manifest.config.digest)?,
                config_digest: Some(manifest.config.digest.clone()),
                layers: manifest
                    .layers
                    .iter()
                    .map(|l| blob_path(&l.digest))
                    .collect::<Result<_, _>>()?,
                tags,
            });
        }
        BlobKind::Other => {
            tracing::debug!(media_type = %descriptor.media_type, "skipping an index entry that is not an image");
        }
    }
    Ok(())
}

/// Of a multi-platform index's entries, the one for this host (attestations left out).
fn choose_platform(entries: &[Descriptor]) -> Result<Vec<&Descriptor>, ImageError> {
    let candidates: Vec<&Descriptor> = entries
        .iter()
        .filter(|d| {
            let attestation = d
                .annotations
                .get("vnd.docker.reference.type")
                .is_some_and(|t| t == "attestation-manifest");
            let unknown = d.platform.as_ref().is_some_and(|p| p.os == "unknown");
            !attestation && !unknown
        })
        .collect();
    if candidates.iter().all(|d| d.platform.is_none()) {
        return Ok(candidates);
    }
    let arch = host_architecture();
    let matching = candidates.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    });
    match matching {
        Some(d) => Ok(vec![*d]),
        None if candidates.len() == 1 => Ok(candidates),
        None => Err(ImageError::archive(format!(
            "no matching manifest for linux/{arch} in the manifest list entries"
        ))),
    }
}

/// Tags an index entry carries: `io.containerd.image.name` (a full reference), else
/// `org.opencontainers.image.ref.name` when it is a reference and not just a tag.
fn descriptor_names(descriptor: &Descriptor) -> Result<Vec<Reference>, ImageError> {
    if let Some(name) = descriptor.annotations.get(ANNOTATION_IMAGE_NAME) {
        let reference = Reference::parse_normalized(name)
            .map_err(|e| ImageError::archive(format!("invalid image name {name:?}: {e}")))?;
        if reference.digest().is_some() {
            return Ok(Vec::new());
        }
        return Ok(vec![reference.with_default_tag()]);
    }
    if let Some(name) = descriptor.annotations.get(ANNOTATION_REF_NAME) {
        if name.contains(['/', ':']) {
            if let Ok(reference) = Reference::parse_normalized(name) {
                if reference.digest().is_none() {
                    return Ok(vec![reference.with_default_tag()]);
                }
            }
        }
    }
    Ok(Vec::new())
}

/// `blobs/<algorithm>/<hex>` for a digest.
fn blob_path(digest: &str) -> Result<String, ImageError> {
    match digest.split_once(':') {
        Some((alg, hex))
            if !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && super::reference::is_lower_hex(hex) =>
        {
            Ok(format!("blobs/{alg}/{hex}"))
        }
        _ => Err(ImageError::archive(format!("invalid digest {digest:?}"))),
    }
}

/// A file of the archive: spooled content, or a link to another member.
enum Spooled {
    File(PathBuf),
    Link(String),
}

/// The archive's members, spooled into a scratch directory under generated names (never
/// under names from the archive), and found by their cleaned archive paths.
struct Spool {
    dir: ScratchDir,
    members: HashMap<String, Spooled>,
}

impl Spool {
    fn fill(tmp: &Path, archive: &mut dyn Read) -> Result<Self, ImageError> {
        let dir = ScratchDir::new(tmp, "load")?;
        let mut stream = decompressed(archive)?;
        let mut tar = tar::Archive::new(&mut stream);
        let bad = |e: io::Error| ImageError::archive(e.to_string());
        let mut members = HashMap::new();
        let mut spooled = 0usize;
        let mut buf = vec![0u8; 128 * 1024];
        for entry in tar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path_bytes().into_owned();
            let Some(path) = clean_member(&raw) else {
                continue; // climbs out of the archive: nothing can refer to it
            };
            let kind = entry.header().entry_type();
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default()
            };
            if kind.is_file() || kind == tar::EntryType::Continuous || kind.is_gnu_sparse() {
                let file = dir.path().join(spooled.to_string());
                spooled += 1;
                let mut out = File::create(&file)
                    .map_err(|e| ImageError::io(format!("cannot create {}", file.display()), e))?;
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(bad(e)),
                    };
                    out.write_all(&buf[..n]).map_err(|e| {
                        ImageError::io(format!("cannot write {}", file.display()), e)
                    })?;
                }
                members.insert(path, Spooled::File(file));
            } else if kind.is_symlink() {
                let target = link();
                let joined = if target.starts_with(b"/") {
                    target
                } else {
                    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                    [parent.as_bytes(), b"/", &target].concat()
                };
                if let Some(target) = clean_member(&joined) {
                    members.insert(path, Spooled::Link(target));
                }
            } else if kind.is_hard_link() {
                if let Some(target) = clean_member(&link()) {
                    members.insert(path, Spooled::Link(target));
                }
            }
        }
        // The rest of the stream (padding after the end marker) is not needed.
        Ok(Self { dir, members })
    }

    fn resolve(&self, path: &str) -> Option<&Path> {
        let mut path = clean_member(path.as_bytes())?;
        for _ in 0..32 {
            match self.members.get(&path)? {
                Spooled::File(file) => return Some(file),
                Spooled::Link(target) => path = target.clone(),
            }
        }
        None
    }

    fn has(&self, path: &str) -> bool {
        self.resolve(path).is_some()
    }

    fn open(&self, path: &str) -> Result<File, ImageError> {
        let file = self
            .resolve(path)
            .ok_or_else(|| ImageError::archive(format!("{path} is missing from the archive")))?;
        File::open(file).map_err(|e| ImageError::io(format!("cannot open {}", file.display()), e))
    }

    /// A metadata member (JSON), refusing absurd sizes.
    fn read_small(&self, path: &str) -> Result<Vec<u8>, ImageError> {
        let file = self.open(path)?;
        let mut bytes = Vec::new();
        file.take(MAX_METADATA + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ImageError::io(format!("cannot read {}", self.dir.path().display()), e))?;
        if bytes.len() as u64 > MAX_METADATA {
            return Err(ImageError::archive(format!("{path} is too large")));
        }
        Ok(bytes)
    }

    /// A small blob by digest, checked against it.
    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let bytes = self.read_small(&blob_path(digest)?)?;
        if digest.starts_with("sha256:") && sha256_digest(&bytes) != digest {
            return Err(ImageError::archive(format!(
                "blob {digest} does not match its digest"
            )));
        }
        Ok(bytes)
    }
}

/// An archive member's path, cleaned (`./a//b` is `a/b`); `None` if it climbs out or is empty.
fn clean_member(raw: &[u8]) -> Option<String> {
    let parts = crate::tarfs::clean(raw)?;
    if parts.is_empty() {
        return None;
    }
    String::from_utf8(parts.join(&b'/')).ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::image::testutil::{config, gzip, legacy_archive, store, SavedImage, TarMaker};
    use crate::ErrorKind;

    /// An OCI layout archive: blobs, index.json with the given entries, optionally a
    /// manifest.json.
    fn oci_archive(blobs: &[&[u8]], index: serde_json::Value) -> Vec<u8> {
        let mut t = TarMaker::default();
        t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        for blob in blobs {
            t.file(&format!("blobs/sha256/{}", &sha256_digest(blob)[7..]), blob);
        }
        t.file("index.json", &serde_json::to_vec(&index).unwrap());
        t.finish()
    }

    fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
        serde_json::json!({"mediaType": media_type, "digest": sha256_digest(blob), "size": blob.len()})
    }

    fn manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": layers.iter().map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn loads_a_legacy_archive_and_shares_layers() {
        let (_tmp, store) = store();
        let base = TarMaker::default()
            .file("bin/sh", b"#!")
            .dir("etc")
            .finish();
        let top = TarMaker::default().file("etc/motd", b"hi").finish();
        let one = config(&[&base], "sh", "2024-01-01T00:00:00Z", &[]);
        let two = config(&[&base, &top], "cat", "2024-01-02T00:00:00Z", &[]);
        let archive = legacy_archive(&[
            SavedImage {
                config: one.clone(),
                layers: vec![&base],
                tags: vec!["busybox:latest"],
            },
            SavedImage {
                config: two.clone(),
                layers: vec![&base, &top],
                tags: vec!["localhost:5000/x:v1", "x:1"],
            },
        ]);
        let loaded = store.load(&mut &archive[..]).unwrap();
        assert_eq!(
            loaded,
            vec![
                LoadedImage {
                    id: sha256_digest(&one),
                    tags: vec!["busybox:latest".into()]
                },
                LoadedImage {
                    id: sha256_digest(&two),
                    tags: vec!["localhost:5000/x:v1".into(), "x:1".into()]
                },
            ]
        );
        assert_eq!(store.count(), 2);
        let a = store.resolve("busybox").unwrap();
        let b = store.resolve("docker.io/library/x:1").unwrap();
        assert_eq!(a.layer_dirs.len(), 1);
        assert_eq!(b.layer_dirs.len(), 2);
        assert_eq!(
            a.layer_dirs[0], b.layer_dirs[0],
            "the shared layer is unpacked once"
        );
        assert_eq!(
            std::fs::read_dir(store.root().join("layers"))
                .unwrap()
                .count(),
            2
        );
        assert_eq!(
            std::fs::read(b.layer_dirs[1].join("etc/motd")).unwrap(),
            b"hi"
        );
        assert_eq!(
            std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
            0,
            "spool removed"
        );

        // Loading again changes nothing and unpacks nothing.
        let ino = std::fs::metadata(&a.layer_dirs[0]).unwrap().ino();
        assert_eq!(store.load(&mut &archive[..]).unwrap(), loaded);
        assert_eq!(std::fs::metadata(&a.layer_dirs[0]).unwrap().ino(), ino);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn loading_moves_tags_and_reads_gzip() {
        let (_tmp, store) = store();
        let layer = TarMaker::default().file("a", b"1").finish();
        let old = config(&[&layer], "old", "2024-01-01T00:00:00Z", &[]);
        let new = config(&[&layer], "new", "2024-01-01T00:00:00Z", &[]);
        let save = |cfg: &Vec<u8>| {
            legacy_archive(&[SavedImage {
                config: cfg.clone(),
                layers: vec![&layer],
                tags: vec!["app:v1"],
            }])
        };
        store.load(&mut &gzip(&save(&old))[..]).unwrap();
        store.load(&mut &save(&new)[..]).unwrap();
        assert_eq!(store.resolve("app:v1").unwrap().id, sha256_digest(&new));
        // The old image stays, dangling.
        assert_eq!(store.count(), 2);
        assert!(store
            .inspect(&sha256_digest(&old))
            .unwrap()
            .repo_tags
            .is_empty());
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn layers_may_be_gzip_and_are_verified() {
        let (_tmp, store) = store();
        let layer = TarMaker::default().file("a", b"1").finish();
        let cfg = config(&[&layer], "sh", "2024-01-01T00:00:00Z", &[]);
        let gz = gzip(&layer);
        let archive = legacy_archive(&[SavedImage {
            config: cfg.clone(),
            layers: vec![&gz],
            tags: vec!["gz:1"],
        }]);
        store.load(&mut &archive[..]).unwrap();
        assert_eq!(store.resolve("gz:1").unwrap().id, sha256_digest(&cfg));

        let other = TarMaker::default().file("a", b"2").finish();
        let archive = legacy_archive(&[SavedImage {
            config: config(&[&layer], "x", "2024-01-01T00:00:00Z", &[]),
            layers: vec![&other],
            tags: vec!["bad:1"],
        }]);
        let (_tmp2, fresh) = crate::image::testutil::store();
        let err = fresh.load(&mut &archive[..]).unwrap_err();
        assert!(matches!(err, ImageError::LayerDigest { .. }), "{err}");
        assert_eq!(fresh.count(), 0);
        assert_eq!(
            std::fs::read_dir(fresh.root().join("layers"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn loads_pure_oci_layouts_with_nested_indexes() {
        let (_tmp, store) = store();
        let layer = TarMaker::default().file("hello", b"oci").finish();
        let gz = gzip(&layer);
        let cfg = config(&[&layer], "hello", "2024-01-01T00:00:00Z", &[]);
        let mine = manifest(&cfg, &[&gz]);
        let foreign_cfg =
            br#"{"os":"linux","architecture":"s390x","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let foreign = manifest(foreign_cfg, &[]);
        let attestation = manifest(b"{}", &[]);
        let mut mine_desc = descriptor("application/vnd.oci.image.manifest.v1+json", &mine);
        mine_desc["platform"] =
            serde_json::json!({"os": "linux", "architecture": host_architecture()});
        let mut foreign_desc = descriptor("application/vnd.oci.image.manifest.v1+json", &foreign);
        foreign_desc["platform"] = serde_json::json!({"os": "linux", "architecture": "s390x"});
        let mut att_desc = descriptor("application/vnd.oci.image.manifest.v1+json", &attestation);
        att_desc["platform"] = serde_json::json!({"os": "unknown", "architecture": "unknown"});
        att_desc["annotations"] =
            serde_json::json!({"vnd.docker.reference.type": "attestation-manifest"});
        // Only the host's blobs are in the archive, as with a partial multi-platform save.
        let nested = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [foreign_desc, mine_desc, att_desc],
        }))
        .unwrap();
        let mut top = descriptor("application/vnd.oci.image.index.v1+json", &nested);
        top["annotations"] = serde_json::json!({
            "io.containerd.image.name": "docker.io/library/hello:2",
            "org.opencontainers.image.ref.name": "2",
        });
        let mut by_ref_name = descriptor("", &mine);
        by_ref_name["annotations"] =
            serde_json::json!({"org.opencontainers.image.ref.name": "localhost:5000/hello:3"});
        let mut bare_tag = descriptor("application/vnd.oci.image.manifest.v1+json", &mine);
        bare_tag["annotations"] =
            serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
        let archive = oci_archive(
            &[&gz, &cfg, &mine, &nested],
            serde_json::json!({"schemaVersion": 2, "manifests": [top, by_ref_name, bare_tag]}),
        );
        let loaded = store.load(&mut &archive[..]).unwrap();
        assert_eq!(
            loaded,
            vec![LoadedImage {
                id: sha256_digest(&cfg),
                tags: vec!["hello:2".into(), "localhost:5000/hello:3".into()],
            }]
        );
        let image = store.resolve("hello:2").unwrap();
        assert_eq!(
            std::fs::read(image.layer_dirs[0].join("hello")).unwrap(),
            b"oci"
        );
    }

    #[test]
    fn tampered_oci_blobs_are_refused() {
        let (_tmp, store) = store();
        let layer = TarMaker::default().file("a", b"1").finish();
        let cfg = config(&[&layer], "sh", "2024-01-01T00:00:00Z", &[]);
        let m = manifest(&cfg, &[&layer]);
        let mut t = TarMaker::default();
        t.file(
            &format!("blobs/sha256/{}", &sha256_digest(&layer)[7..]),
            &layer,
        );
        t.file(
            &format!("blobs/sha256/{}", &sha256_digest(&cfg)[7..]),
            b"{\"tampered\":1}",
        );
        t.file(&format!("blobs/sha256/{}", &sha256_digest(&m)[7..]), &m);
        let index = serde_json::json!({"manifests": [descriptor("application/vnd.oci.image.manifest.v1+json", &m)]});
        t.file("index.json", &serde_json::to_vec(&index).unwrap());
        let err = store.load(&mut &t.finish()[..]).unwrap_err();
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn symlinked_members_are_followed_inside_the_archive_only() {
        let (_tmp, store) = store();
        let layer = TarMaker::default().file("a", b"1").finish();
        let cfg = config(&[&layer], "sh", "2024-01-01T00:00:00Z", &[]);
        let hex = &sha256_digest(&layer)[7..];
        let mut t = TarMaker::default();
        t.file(&format!("blobs/sha256/{hex}"), &layer);
        t.symlink("dir/layer.tar", &format!("../blobs/sha256/{hex}"));
        t.symlink("evil.json", "/etc/passwd");
        t.file("c.json", &cfg);
        t.hardlink("cfg.json", "c.json");
        let manifest = serde_json::json!([{"Config": "cfg.json", "RepoTags": ["linked:1"], "Layers": ["dir/layer.tar"]}]);
        t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
        store.load(&mut &t.finish()[..]).unwrap();
        assert_eq!(store.resolve("linked:1").unwrap().id, sha256_digest(&cfg));

        let manifest = serde_json::json!([{"Config": "evil.json", "RepoTags": [], "Layers": []}]);
        let mut t = TarMaker::default();
        t.symlink("evil.json", "/etc/passwd");
        t.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
        let err = store.load(&mut &t.finish()[..]).unwrap_err();
        assert!(err.to_string().contains("evil.json is missing"), "{err}");
    }

    #[test]
    fn bad_archives_are_invalid_arguments() {
        let (_tmp, store) = store();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                TarMaker::default().file("hello", b"x").finish(),
                "neither manifest.json nor index.json",
            ),
            (
                TarMaker::default().file("manifest.json", b"{").finish(),
                "manifest.json",
            ),
            (
                TarMaker::default()
                    .file(
                        "manifest.json",
                        br#"[{"Config":"c.json","RepoTags":["Bad Tag"],"Layers":[]}]"#,
                    )
                    .finish(),
                "invalid tag",
            ),
            (
                TarMaker::default()
                    .file(
                        "manifest.json",
                        br#"[{"Config":"c.json","RepoTags":[],"Layers":[]}]"#,
                    )
                    .file(
                        "c.json",
                        br#"{"os":"windows","rootfs":{"type":"layers","diff_ids":[]}}"#,
                    )
                    .finish(),
                "cannot be used on this platform",
            ),
            (
                TarMaker::default()
                    .file(
                        "manifest.json",
                        br#"[{"Config":"c.json","RepoTags":[],"Layers":["l.tar"]}]"#,
                    )
                    .file(
                        "c.json",
                        br#"{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
                    )
                    .finish(),
                "lists 0 layers but the archive has 1",
            ),
            (vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3], "zstd"),
            (vec![9u8; 2048], "invalid image archive"),
        ];
        for (archive, needle) in cases {
            let err = store.load(&mut &archive[..]).unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        }
        assert_eq!(store.count(), 0);
    }

    #[test]
    fn member_paths_are_cleaned() {
        assert_eq!(clean_member(b"./a//b/"), Some("a/b".into()));
        assert_eq!(
            clean_member(b"/manifest.json"),
            Some("manifest.json".into())
        );
        assert_eq!(clean_member(b"a/../b"), Some("b".into()));
        assert_eq!(clean_member(b"../x"), None);
        assert_eq!(clean_member(b"./"), None);
        assert!(blob_path("sha256:../../x").is_err());
        assert_eq!(blob_path("sha256:ab").unwrap(), "blobs/sha256/ab");
    }
}
