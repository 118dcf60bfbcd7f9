//! `docker save`: images as an archive `docker load` (berth's, dockerd's) reads back.
//!
//! Two layouts. [`SaveFormat::Docker`] is the docker-archive dockerd ≤ 24 writes and every
//! loader reads: `manifest.json`, `repositories`, `<config hex>.json` and a directory per
//! layer with `VERSION`, `json` and `layer.tar`. [`SaveFormat::Oci`] is the OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) with dockerd ≥ 25's `manifest.json` beside
//! it. Either way a layer's tar is the very stream the layer came as (see `tarsplit`), so
//! its digest is the diff ID the config lists and a load gives back the same image ID.
//! Everything that can be refused (a name that is not there) is refused before a byte is
//! written; a failure part-way fails the stream rather than ending it as if it were whole.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use sha2::{Digest, Sha256};

use super::blob::sha256_digest;
use super::error::ImageError;
use super::layers::Layer;
use super::reference::{is_full_hex, Reference};
use super::ImageStore;

/// Which archive layout `save` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SaveFormat {
    /// docker-archive (`manifest.json`, `<dir>/layer.tar`), as dockerd ≤ 24 writes it.
    #[default]
    Docker,
    /// The OCI image layout, with a `manifest.json` as dockerd ≥ 25 writes it.
    Oci,
}

impl SaveFormat {
    /// Reads the names `berth save --format` takes (empty: docker's archive).
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        match s {
            "" | "docker" | "docker-archive" => Ok(Self::Docker),
            "oci" | "oci-archive" => Ok(Self::Oci),
            _ => Err(ImageError::UnknownSaveFormat { format: s.into() }),
        }
    }
}

/// One image to write, with the tags to write it under.
#[derive(Debug, Clone)]
pub struct SaveItem {
    pub id: String,
    pub tags: Vec<Reference>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

impl ImageStore {
    /// The images `names` stand for, in order, each once, with the tags the archive gives
    /// them: the tag named, every tag of a repository named without one, none for an ID.
    pub fn resolve_for_save(&self, names: &[String]) -> Result<Vec<SaveItem>, ImageError> {
        let mut items: Vec<SaveItem> = Vec::new();
        let mut add = |id: String, tag: Option<Reference>| {
            let pos = match items.iter().position(|i| i.id == id) {
                Some(p) => p,
                None => {
                    items.push(SaveItem {
                        id,
                        tags: Vec::new(),
                    });
                    items.len() - 1
                }
            };
            if let Some(tag) = tag {
                if !items[pos].tags.contains(&tag) {
                    items[pos].tags.push(tag);
                }
            }
        };
        for name in names {
            let bare = name.strip_prefix("sha256:").unwrap_or(name);
            let reference = if is_full_hex(bare) {
                None
            } else {
                Reference::parse_normalized(name).ok()
            };
            if let Some(r) = reference
                .as_ref()
                .filter(|r| r.tag().is_none() && r.digest().is_none())
            {
                // A repository without a tag: every tag it has, as dockerd saves it.
                let repo = r.name();
                let tagged: Vec<(Reference, String)> = self
                    .lock_index()?
                    .tags
                    .iter()
                    .filter_map(|(t, id)| {
                        let t = Reference::parse_normalized(t).ok()?;
                        (t.name() == repo && t.tag().is_some()).then(|| (t, id.clone()))
                    })
                    .collect();
                if !tagged.is_empty() {
                    for (t, id) in tagged {
                        add(id, Some(t));
                    }
                    continue;
                }
            }
            let id = self.lookup(name)?;
            let tag = reference.map(Reference::with_default_tag).filter(|r| {
                self.lock_index()
                    .ok()
                    .and_then(|i| i.get(r).map(|x| x == id))
                    == Some(true)
            });
            add(id, tag);
        }
        Ok(items)
    }

    /// Writes `items` as one archive. Blocking.
    pub fn save(
        &self,
        items: &[SaveItem],
        format: SaveFormat,
        out: &mut dyn Write,
    ) -> Result<(), ImageError> {
        let _gc = self.gc_shared()?;
        let mut w = TarOut { out, mtime: 0 };
        let mut written: HashSet<String> = HashSet::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut index_manifests = Vec::new();
        for item in items {
            let config_bytes = std::fs::read(self.config_path(&item.id))
                .map_err(|e| ImageError::io(format!("cannot read the config of {}", item.id), e))?;
            let config = self.read_config(&item.id)?;
            w.mtime = config
                .created_time()
                .map(|t| t.timestamp().max(0) as u64)
                .unwrap_or(0);
            let layers = self.layers_of(&item.id, &config)?;
            let hex = &item.id[7..];
            let repo_tags: Vec<String> = item.tags.iter().map(Reference::familiar_string).collect();
            match format {
                SaveFormat::Docker => {
                    let mut layer_paths = Vec::new();
                    let mut parent = String::new();
                    for (i, layer) in layers.iter().enumerate() {
                        let v1 = v1_id(&parent, &layer.diff_id);
                        if written.insert(v1.clone()) {
                            w.dir(&format!("{v1}/"))?;
                            w.file(&format!("{v1}/VERSION"), b"1.0")?;
                            let top = i + 1 == layers.len();
                            let json = v1_json(&v1, &parent, top.then_some(&config_bytes[..]));
                            w.file(&format!("{v1}/json"), &json)?;
                            w.layer(&format!("{v1}/layer.tar"), layer)?;
                        }
                        layer_paths.push(format!("{v1}/layer.tar"));
                        parent = v1;
                    }
                    let config_name = format!("{hex}.json");
                    if written.insert(config_name.clone()) {
                        w.file(&config_name, &config_bytes)?;
                    }
                    for t in &item.tags {
                        repositories
                            .entry(t.familiar_name())
                            .or_default()
                            .insert(t.tag().unwrap_or("latest").to_string(), parent.clone());
                    }
                    manifest.push(serde_json::json!({
                        "Config": config_name,
                        "RepoTags": if repo_tags.is_empty() { serde_json::Value::Null } else { repo_tags.clone().into() },
                        "Layers": layer_paths,
                    }));
                }
                SaveFormat::Oci => {
                    if written.is_empty() {
                        w.dir("blobs/")?;
                        w.dir("blobs/sha256/")?;
                    }
                    let mut descriptors = Vec::new();
                    let mut layer_paths = Vec::new();
                    for layer in &layers {
                        let path = format!("blobs/sha256/{}", &layer.diff_id[7..]);
                        let size = layer.layout()?.tar_size().map_err(|e| {
                            ImageError::io(format!("cannot read layer {}", layer.diff_id), e)
                        })?;
                        if written.insert(path.clone()) {
                            w.layer(&path, layer)?;
                        }
                        descriptors.push(serde_json::json!({"mediaType": OCI_LAYER, "digest": layer.diff_id, "size": size}));
                        layer_paths.push(path);
                    }
                    let config_path = format!("blobs/sha256/{hex}");
                    if written.insert(config_path.clone()) {
                        w.file(&config_path, &config_bytes)?;
                    }
                    let image_manifest = serde_json::to_vec(&serde_json::json!({
                        "schemaVersion": 2,
                        "mediaType": OCI_MANIFEST,
                        "config": {"mediaType": OCI_CONFIG, "digest": item.id, "size": config_bytes.len()},
                        "layers": descriptors,
                    }))
                    .map_err(|e| ImageError::io("cannot encode a manifest", e.into()))?;
                    let digest = sha256_digest(&image_manifest);
                    let manifest_path = format!("blobs/sha256/{}", &digest[7..]);
                    if written.insert(manifest_path.clone()) {
                        w.file(&manifest_path, &image_manifest)?;
                    }
                    let descriptor = |annotations: serde_json::Value| {
                        serde_json::json!({
                            "mediaType": OCI_MANIFEST,
                            "digest": digest,
                            "size": image_manifest.len(),
                            "annotations": annotations,
                        })
                    };
                    if item.tags.is_empty() {
                        index_manifests.push(descriptor(serde_json::json!({})));
                    }
                    for t in &item.tags {
                        index_manifests.push(descriptor(serde_json::json!({
                            "io.containerd.image.name": t.to_string(),
                            "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
                        })));
                    }
                    manifest.push(serde_json::json!({
                        "Config": config_path,
                        "RepoTags": if repo_tags.is_empty() { serde_json::Value::Null } else { repo_tags.into() },
                        "Layers": layer_paths,
                    }));
                }
            }
        }
        let json = |v: &serde_json::Value| {
            serde_json::to_vec(v).map_err(|e| ImageError::io("cannot encode the archive", e.into()))
        };
        if format == SaveFormat::Oci {
            w.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            w.file(
                "index.json",
                &json(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": index_manifests,
                }))?,
            )?;
        }
        w.file("manifest.json", &json(&serde_json::Value::from(manifest))?)?;
        if format == SaveFormat::Docker || !repositories.is_empty() {
            w.file(
                "repositories",
                &json(&serde_json::to_value(&repositories).unwrap_or_default())?,
            )?;
        }
        w.finish()
    }
}

/// A legacy layer directory name: stable for a layer on a given parent.
fn v1_id(parent: &str, diff_id: &str) -> String {
    hex::encode(Sha256::digest(format!("{parent}\n{diff_id}").as_bytes()))
}

/// The legacy `json` of a layer directory (what dockerd ≤ 24 writes; loaders ignore it).
fn v1_json(id: &str, parent: &str, config: Option<&[u8]>) -> Vec<u8> {
    let mut v = match config.and_then(|c| serde_json::from_slice::<serde_json::Value>(c).ok()) {
        Some(serde_json::Value::Object(mut m)) => {
            m.remove("history");
            m.remove("rootfs");
            serde_json::Value::Object(m)
        }
        _ => serde_json::json!({
            "created": "1970-01-01T00:00:00Z",
            "container_config": {"Cmd": null},
        }),
    };
    v["id"] = id.into();
    if !parent.is_empty() {
        v["parent"] = parent.into();
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// A tar stream written entry by entry; every name fits a header.
struct TarOut<'a> {
    out: &'a mut dyn Write,
    mtime: u64,
}

impl TarOut<'_> {
    fn header(
        &self,
        name: &str,
        kind: tar::EntryType,
        size: u64,
    ) -> Result<tar::Header, ImageError> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .map_err(|e| ImageError::io(format!("cannot name {name} in the archive"), e))?;
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        Ok(h)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        self.out
            .write_all(bytes)
            .map_err(|e| ImageError::io("cannot write the archive", e))
    }

    fn dir(&mut self, name: &str) -> Result<(), ImageError> {
        let h = self.header(name, tar::EntryType::Directory, 0)?;
        self.write(h.as_bytes())
    }

    fn file(&mut self, name: &str, content: &[u8]) -> Result<(), ImageError> {
        let h = self.header(name, tar::EntryType::Regular, content.len() as u64)?;
        self.write(h.as_bytes())?;
        self.write(content)?;
        self.pad(content.len() as u64)
    }

    fn pad(&mut self, size: u64) -> Result<(), ImageError> {
        let rest = ((512 - size % 512) % 512) as usize;
        self.write(&[0u8; 512][..rest])
    }

    /// A layer's tar as an entry, checked against its diff ID as it goes.
    fn layer(&mut self, name: &str, layer: &Layer) -> Result<(), ImageError> {
        let layout = layer.layout()?;
        let fail =
            |e: io::Error| ImageError::io(format!("cannot write layer {}", layer.diff_id), e);
        let size = layout.tar_size().map_err(fail)?;
        let h = self.header(name, tar::EntryType::Regular, size)?;
        self.write(h.as_bytes())?;
        let mut hashing = HashingWriter {
            inner: &mut *self.out,
            hasher: Sha256::new(),
            written: 0,
        };
        layout.write_tar(&mut hashing).map_err(fail)?;
        let digest = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
        if digest != layer.diff_id || hashing.written != size {
            return Err(ImageError::LayerDigest {
                expected: layer.diff_id.clone(),
                actual: digest,
            });
        }
        self.pad(size)
    }

    fn finish(&mut self) -> Result<(), ImageError> {
        self.write(&[0u8; 1024])?;
        self.out
            .flush()
            .map_err(|e| ImageError::io("cannot write the archive", e))
    }
}

struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: Sha256,
    written: u64,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testutil::{config, legacy_archive, store, SavedImage, TarMaker};

    fn two_images() -> (tempfile::TempDir, ImageStore, Vec<u8>) {
        let (tmp, store) = store();
        let base = TarMaker::default().file("bin/sh", b"sh").finish();
        let top = TarMaker::default()
            .dir("etc")
            .file("etc/motd", b"hi\n")
            .file(".wh.gone", b"")
            .finish();
        let a = config(&[&base], "sh", "2024-01-01T00:00:00Z", &[]);
        let b = config(&[&base, &top], "sh", "2024-02-01T00:00:00Z", &[("k", "v")]);
        let archive = legacy_archive(&[
            SavedImage {
                config: a,
                layers: vec![&base],
                tags: vec!["one:latest"],
            },
            SavedImage {
                config: b,
                layers: vec![&base, &top],
                tags: vec!["two:latest", "two:v2"],
            },
        ]);
        store.load(&mut &archive[..]).unwrap();
        (tmp, store, archive)
    }

    fn reload(format: SaveFormat, names: &[&str]) -> (Vec<crate::image::LoadedImage>, Vec<String>) {
        let (_tmp, store, _) = two_images();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let items = store.resolve_for_save(&names).unwrap();
        let mut out = Vec::new();
        store.save(&items, format, &mut out).unwrap();
        let ids = items.iter().map(|i| i.id.clone()).collect();
        let (_tmp2, fresh) = store_fresh();
        (fresh.load(&mut &out[..]).unwrap(), ids)
    }

    fn store_fresh() -> (tempfile::TempDir, ImageStore) {
        store()
    }

    #[test]
    fn saved_images_load_back_with_the_same_ids_in_both_layouts() {
        for format in [SaveFormat::Docker, SaveFormat::Oci] {
            let (loaded, ids) = reload(format, &["one", "two"]);
            assert_eq!(loaded.len(), 2, "{format:?}");
            assert_eq!(loaded[0].id, ids[0]);
            assert_eq!(loaded[1].id, ids[1]);
            assert_eq!(loaded[0].tags, ["one:latest"]);
            let mut tags = loaded[1].tags.clone();
            tags.sort();
            assert_eq!(tags, ["two:latest", "two:v2"], "{format:?}");
        }
    }

    #[test]
    fn names_choose_tags_and_ids_save_untagged() {
        let (_tmp, store, _) = two_images();
        let items = store.resolve_for_save(&["two:v2".to_string()]).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].tags.len(), 1);
        assert_eq!(items[0].tags[0].familiar_string(), "two:v2");
        let id = items[0].id.clone();
        let by_id = store
            .resolve_for_save(&[id[7..19].to_string(), id.clone()])
            .unwrap();
        assert_eq!(by_id.len(), 1);
        assert!(by_id[0].tags.is_empty());
        let err = store.resolve_for_save(&["nope".to_string()]).unwrap_err();
        assert_eq!(err.to_string(), "No such image: nope:latest");
    }

    #[test]
    fn the_docker_layout_has_dockers_files() {
        let (_tmp, store, _) = two_images();
        let items = store.resolve_for_save(&["two:latest".to_string()]).unwrap();
        let mut out = Vec::new();
        store.save(&items, SaveFormat::Docker, &mut out).unwrap();
        let mut names = Vec::new();
        let mut manifest = None;
        for entry in tar::Archive::new(&out[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            if name == "manifest.json" {
                let mut s = String::new();
                io::Read::read_to_string(&mut entry, &mut s).unwrap();
                manifest = Some(s);
            }
            names.push(name);
        }
        assert!(names.contains(&"repositories".to_string()));
        assert!(names.contains(&format!("{}.json", &items[0].id[7..])));
        assert_eq!(
            names.iter().filter(|n| n.ends_with("/layer.tar")).count(),
            2
        );
        let manifest: serde_json::Value = serde_json::from_str(&manifest.unwrap()).unwrap();
        assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["two:latest"]));
    }
}
