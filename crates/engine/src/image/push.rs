//! `docker push`: an image's blobs and manifest to a registry.
//!
//! Each layer goes as the blob berth keeps of it (the one it was pulled as, or its loaded
//! tar gzip-compressed once and kept, so the same layer is always the same blob). Before
//! uploading, the registry is asked whether the repository has the blob (`HEAD`: `Layer
//! already exists`), then, if another repository of the same registry is known to have it,
//! to mount it from there (`Mounted from …`); only then are its bytes streamed (`Pushing`).
//! Layers go at most [`RegistrySettings::concurrent_uploads`] at once. The config follows,
//! then a manifest (Docker's v2 schema 2, or OCI when the layers are OCI blobs) under the
//! tag, and the repository digest is recorded for `RepoDigests`.

use std::io::{self, Write};
use std::path::PathBuf;

use api_types::AuthConfig;
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use super::blob::{sha256_digest, short_id};
use super::distmeta::{DistMeta, KeptBlob};
use super::error::ImageError;
use super::layers::{Layer, BLOB_FILE};
use super::progress::{Progress, Throttle};
use super::reference::Reference;
use super::registry::manifest::{self, Descriptor, ImageManifest};
use super::registry::{Registry, RegistryError, RegistrySettings, UploadStart};
use super::ImageStore;

/// What to push.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The repository, fully qualified, with a tag, or without one for every tag of it.
    pub reference: Reference,
    /// Credentials for the registry.
    pub auth: AuthConfig,
}

impl PushRequest {
    /// A push as clients ask for one (`POST /images/{name}/push?tag=`, `docker push`).
    pub fn parse(name: &str, tag: &str, auth: AuthConfig) -> Result<Self, crate::EngineError> {
        let bad = |e: super::ReferenceError| crate::EngineError::from(ImageError::from(e));
        let mut reference = Reference::parse_normalized(name).map_err(bad)?;
        if !tag.is_empty() {
            reference = reference.with_tag(tag).map_err(bad)?;
        }
        Ok(Self { reference, auth })
    }
}

/// One tag pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub tag: String,
    pub digest: String,
    pub size: usize,
}

/// One image to push under one tag.
struct Target {
    tag: Reference,
    id: String,
    config: Vec<u8>,
    layers: Vec<Layer>,
}

impl ImageStore {
    /// Pushes the image(s) `request` names. Blocking: call it on a blocking thread; the
    /// network part runs on `runtime`. The store is pinned (no layer deleted) meanwhile.
    pub(crate) fn push(
        &self,
        request: &PushRequest,
        settings: &RegistrySettings,
        progress: &Progress,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Vec<Pushed>, ImageError> {
        let _gc = self.gc_shared()?;
        let targets = self.push_targets(&request.reference)?;
        let repository = request.reference.name();
        progress.line(format!("The push refers to repository [{repository}]"));
        runtime.block_on(async {
            let registry = Registry::connect(
                settings,
                request.reference.domain(),
                request.reference.path(),
                request.auth.clone(),
                "pull,push",
            )
            .await?;
            let mut pushed = Vec::new();
            for target in &targets {
                pushed.push(self.push_one(&registry, target, settings, progress).await?);
            }
            Ok(pushed)
        })
    }

    /// The tags to push: the one named, or every tag of the repository.
    fn push_targets(&self, reference: &Reference) -> Result<Vec<Target>, ImageError> {
        let tags: Vec<(Reference, String)> = {
            let index = self.lock_index()?;
            match reference.tag() {
                Some(_) => match index.get(reference) {
                    Some(id) => vec![(reference.clone(), id.to_string())],
                    None => Vec::new(),
                },
                None => index
                    .tags
                    .iter()
                    .filter_map(|(name, id)| {
                        let r = Reference::parse_normalized(name).ok()?;
                        (r.name() == reference.name()).then(|| (r, id.clone()))
                    })
                    .collect(),
            }
        };
        if tags.is_empty() {
            return Err(RegistryError::NoLocalTag {
                name: reference.familiar_string(),
            }
            .into());
        }
        tags.into_iter()
            .map(|(tag, id)| {
                let path = self.config_path(&id);
                let config = std::fs::read(&path)
                    .map_err(|e| ImageError::io(format!("cannot read {}", path.display()), e))?;
                let parsed = self.read_config(&id)?;
                let layers = self.layers_of(&id, &parsed)?;
                Ok(Target {
                    tag,
                    id,
                    config,
                    layers,
                })
            })
            .collect()
    }

    async fn push_one(
        &self,
        registry: &Registry,
        target: &Target,
        settings: &RegistrySettings,
        progress: &Progress,
    ) -> Result<Pushed, ImageError> {
        let repository = format!("{}/{}", target.tag.domain(), target.tag.path());
        // Top layer first, as dockerd lists them.
        let order: Vec<&Layer> = target.layers.iter().rev().collect();
        for (n, layer) in order.iter().enumerate() {
            progress.layer(short_id(&layer.diff_id), "Preparing");
            if n >= settings.concurrent_uploads.max(1) {
                progress.layer(short_id(&layer.diff_id), "Waiting");
            }
        }
        let limit = Semaphore::new(settings.concurrent_uploads.max(1));
        let uploads = order.iter().map(|layer| {
            let limit = &limit;
            let repository = &repository;
            async move {
                let _permit = limit
                    .acquire()
                    .await
                    .map_err(|_| ImageError::io("push cancelled", io::Error::other("cancelled")))?;
                push_layer(registry, layer, repository, progress).await
            }
        });
        let descriptors: Vec<Descriptor> = futures_util::future::join_all(uploads)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .rev()
            .collect();

        let config_digest = sha256_digest(&target.config);
        registry
            .put_small_blob(target.config.clone(), &config_digest)
            .await?;
        let oci = !descriptors.is_empty()
            && descriptors
                .iter()
                .all(|d| d.media_type.starts_with("application/vnd.oci."));
        let (manifest_type, config_type) = if oci {
            (manifest::OCI_MANIFEST, manifest::OCI_CONFIG)
        } else {
            (manifest::DOCKER_MANIFEST, manifest::DOCKER_CONFIG)
        };
        let doc = ImageManifest {
            schema_version: 2,
            media_type: manifest_type.to_string(),
            config: Descriptor {
                media_type: config_type.to_string(),
                digest: config_digest,
                size: target.config.len() as i64,
                ..Default::default()
            },
            layers: descriptors,
        };
        let bytes = serde_json::to_vec_pretty(&doc)
            .map_err(|e| ImageError::io("cannot encode the manifest", io::Error::other(e)))?;
        let digest = sha256_digest(&bytes);
        let size = bytes.len();
        let tag = target
            .tag
            .tag()
            .unwrap_or(super::reference::DEFAULT_TAG)
            .to_string();
        registry.put_manifest(&tag, manifest_type, bytes).await?;
        progress.line(format!("{tag}: digest: {digest} size: {size}"));
        progress.send(api_types::ProgressMessage {
            progress_detail: Some(Default::default()),
            aux: Some(serde_json::json!({"Tag": tag, "Digest": digest, "Size": size})),
            ..Default::default()
        });
        let digest_ref = target.tag.with_digest(&digest);
        let mut index = self.lock_index()?;
        if index.get(&digest_ref) != Some(target.id.as_str()) {
            let mut next = index.clone();
            next.set_digest(&digest_ref, &target.id);
            next.save(&self.index_path())?;
            *index = next;
        }
        Ok(Pushed { tag, digest, size })
    }
}

/// Pushes one layer unless the repository has it or can mount it; its descriptor.
async fn push_layer(
    registry: &Registry,
    layer: &Layer,
    repository: &str,
    progress: &Progress,
) -> Result<Descriptor, ImageError> {
    let id = short_id(&layer.diff_id).to_string();
    let dir = layer.path.clone();
    let mut meta = DistMeta::load(&dir);
    let blob = match meta.blob.clone() {
        Some(b) if dir.join(BLOB_FILE).is_file() => b,
        _ => {
            let layer = layer.clone();
            let kept = tokio::task::spawn_blocking(move || compress_tar(&layer))
                .await
                .map_err(|e| ImageError::io("layer compression failed", io::Error::other(e)))??;
            meta.blob = Some(kept.clone());
            kept
        }
    };
    let descriptor = Descriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.clone(),
        size: blob.size as i64,
        ..Default::default()
    };
    let domain = repository.split('/').next().unwrap_or("");
    if registry.has_blob(&blob.digest).await? {
        progress.layer(&id, "Layer already exists");
    } else {
        // A repository of the same registry known to have the blob: mount it from there.
        let source = meta
            .repositories
            .iter()
            .rev()
            .filter(|r| *r != repository)
            .find_map(|r| r.strip_prefix(&format!("{domain}/")))
            .map(str::to_string);
        let mut session = None;
        if let Some(from) = &source {
            registry
                .add_scope(format!("repository:{from}:pull"))
                .await?;
            match registry.start_upload(Some((&blob.digest, from))).await? {
                UploadStart::Mounted => progress.layer(&id, &format!("Mounted from {from}")),
                UploadStart::Session(loc) => session = Some(loc),
            }
        } else {
            match registry.start_upload(None).await? {
                UploadStart::Session(loc) => session = Some(loc),
                UploadStart::Mounted => {}
            }
        }
        if let Some(location) = session {
            let path = dir.join(BLOB_FILE);
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| ImageError::io(format!("cannot open {}", path.display()), e))?;
            let mut throttle = Throttle::new(blob.size);
            let bar = progress.clone();
            let bar_id = id.clone();
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect(
                move |chunk| {
                    if let Ok(c) = chunk {
                        if throttle.advance(c.len() as u64) {
                            bar.bar(&bar_id, "Pushing", throttle.done, throttle.total);
                        }
                    }
                },
            );
            registry
                .upload(
                    &location,
                    reqwest::Body::wrap_stream(stream),
                    blob.size,
                    &blob.digest,
                )
                .await?;
            progress.layer(&id, "Pushed");
        }
    }
    meta.remember(repository);
    meta.save(&dir)?;
    Ok(descriptor)
}

/// Compresses a layer's tar, rebuilt from its layout, into its `blob` (gzip, no name, no
/// time: the same tar always gives the same blob), once.
fn compress_tar(layer: &Layer) -> Result<KeptBlob, ImageError> {
    let dir = &layer.path;
    let tar = dir.join("diff");
    let layout = layer.layout().map_err(|_| {
        ImageError::from(RegistryError::LayerNotPushable {
            diff_id: layer.diff_id.clone(),
            reason: "it was stored without its tar layout: remove the image and load it again"
                .into(),
        })
    })?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp: PathBuf = dir.join(format!("{BLOB_FILE}.tmp-{}-{n}", std::process::id()));
    let out = std::fs::File::create(&tmp)
        .map_err(|e| ImageError::io(format!("cannot create {}", tmp.display()), e))?;
    let result = (|| -> io::Result<KeptBlob> {
        let mut hashing = HashingWriter {
            inner: io::BufWriter::with_capacity(256 * 1024, out),
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            size: 0,
        };
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(&mut hashing, flate2::Compression::fast());
        layout.write_tar(&mut gz)?;
        gz.finish()?;
        hashing.inner.flush()?;
        hashing.inner.get_ref().sync_all()?;
        let digest = format!(
            "sha256:{}",
            hex::encode(sha2::Digest::finalize(hashing.hasher))
        );
        Ok(KeptBlob {
            digest,
            size: hashing.size,
            media_type: manifest::DOCKER_LAYER_GZIP.to_string(),
        })
    })();
    match result {
        Ok(kept) => {
            std::fs::rename(&tmp, dir.join(BLOB_FILE))
                .map_err(|e| ImageError::io(format!("cannot keep {}", tmp.display()), e))?;
            Ok(kept)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(ImageError::io(
                format!("cannot compress {}", tar.display()),
                e,
            ))
        }
    }
}

/// A writer that hashes and counts what goes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
