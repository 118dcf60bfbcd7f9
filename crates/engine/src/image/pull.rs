//! `docker pull`: an image from a registry into the store.
//!
//! First the asynchronous half ([`resolve`]): the manifest (through an index to the entry
//! for the platform), the config, and the layers' descriptors. Then the store's half
//! ([`ImageStore::store_pulled`], on a blocking thread, holding the gc lock shared as `load`
//! does): layers the store has are `Already exists`; the others download in parallel (at
//! most [`RegistrySettings::concurrent_downloads`] at once) into a scratch directory, each
//! streamed to disk and hashed as it comes, resumed with a `Range` request when the
//! connection drops or goes silent, verified against its digest, and then unpacked in order
//! under a per-layer lock, so that two pulls of the same layer (two berthd requests, two
//! daemonless commands) unpack it once. The image is published (config, tag, repository
//! digest) only when every layer is in place; a failure leaves no layer, tag or scratch
//! file behind. Progress goes out as dockerd words it, message for message.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api_types::AuthConfig;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{oneshot, Semaphore};

use super::blob::{sha256_hex, short_id, ScratchDir};
use super::distmeta::{DistMeta, KeptBlob};
use super::error::ImageError;
use super::layers::Keep;
use super::load::parse_config;
use super::progress::{Progress, Throttle};
use super::reference::Reference;
use super::registry::error::transport_reason;
use super::registry::manifest::{self, Descriptor, Fetched, PlatformSpec};
use super::registry::{Registry, RegistryError, RegistrySettings};
use super::ImageStore;
use crate::lock::{FileLock, LockMode};

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// The image, fully qualified, with a tag or a digest.
    pub reference: Reference,
    /// `--platform`; the host's when `None`.
    pub platform: Option<PlatformSpec>,
    /// Credentials for the registry.
    pub auth: AuthConfig,
}

impl PullRequest {
    /// A pull as clients ask for one (`POST /images/create?fromImage=&tag=&platform=`,
    /// `docker pull`): `tag` may be a tag or a digest, `platform` empty for the host's.
    pub fn parse(
        image: &str,
        tag: &str,
        platform: &str,
        auth: AuthConfig,
    ) -> Result<Self, crate::EngineError> {
        let bad = |e: super::ReferenceError| crate::EngineError::from(ImageError::from(e));
        let mut reference = Reference::parse_normalized(image).map_err(bad)?;
        if !tag.is_empty() {
            reference = if tag.starts_with("sha256:") {
                Reference::parse_normalized(&format!("{}@{tag}", reference.name())).map_err(bad)?
            } else {
                reference.with_tag(tag).map_err(bad)?
            };
        }
        let platform = match platform {
            "" => None,
            p => Some(PlatformSpec::parse(p)?),
        };
        Ok(Self {
            reference: reference.with_default_tag(),
            platform,
            auth,
        })
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// The image ID.
    pub id: String,
    /// The digest of the manifest (or index) the reference named.
    pub digest: String,
    /// Whether the reference now names another image than before.
    pub updated: bool,
}

/// An image found in a registry, ready to be fetched into the store.
pub(crate) struct Resolved {
    pub registry: Arc<Registry>,
    pub reference: Reference,
    /// The digest of what the tag names (an index or a manifest): the repository digest.
    pub digest: String,
    pub config: Vec<u8>,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
}

/// Layer media types a pull unpacks.
const LAYER_TYPES: &[&str] = &[
    manifest::DOCKER_LAYER_GZIP,
    manifest::OCI_LAYER,
    manifest::OCI_LAYER_GZIP,
    manifest::OCI_LAYER_ZSTD,
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// Finds the image `request` names in its registry: manifest, config and layers.
pub(crate) async fn resolve(
    settings: &RegistrySettings,
    request: &PullRequest,
    progress: &Progress,
) -> Result<Resolved, ImageError> {
    let reference = &request.reference;
    let registry = Registry::connect(
        settings,
        reference.domain(),
        reference.path(),
        request.auth.clone(),
        "pull",
    )
    .await?;
    let wanted = reference
        .digest()
        .or(reference.tag())
        .unwrap_or(super::reference::DEFAULT_TAG)
        .to_string();
    let shown = reference.familiar_string();
    let (bytes, content_type, digest) = registry.get_manifest(&wanted, &shown).await?;
    if let Some(d) = reference.digest() {
        if d != digest {
            return Err(RegistryError::InvalidManifest {
                reference: shown,
                reason: format!("the registry served content with digest {digest}"),
            }
            .into());
        }
    }
    progress.with_id(&wanted, &format!("Pulling from {}", reference.path()));
    let platform = request.platform.clone().unwrap_or_else(PlatformSpec::host);
    let manifest = match manifest::parse(&shown, &content_type, &bytes)? {
        Fetched::Manifest(m) => *m,
        Fetched::Index(index) => {
            let entry = manifest::choose(&index, &platform)?;
            let (bytes, content_type, child) = registry.get_manifest(&entry.digest, &shown).await?;
            if child != entry.digest {
                return Err(RegistryError::InvalidManifest {
                    reference: shown,
                    reason: format!("manifest {} has digest {child}", entry.digest),
                }
                .into());
            }
            match manifest::parse(&shown, &content_type, &bytes)? {
                Fetched::Manifest(m) => *m,
                Fetched::Index(_) => {
                    return Err(RegistryError::InvalidManifest {
                        reference: shown,
                        reason: "an index entry is an index again".into(),
                    }
                    .into())
                }
            }
        }
    };
    for layer in &manifest.layers {
        if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
            return Err(RegistryError::UnsupportedManifest {
                media_type: format!("layer media type {}", layer.media_type),
            }
            .into());
        }
        if sha256_hex(&layer.digest).is_none() {
            return Err(RegistryError::InvalidManifest {
                reference: shown,
                reason: format!(
                    "layer digest {:?} is not sha256:<64 hex digits>",
                    layer.digest
                ),
            }
            .into());
        }
    }
    let config = registry.get_small_blob(&manifest.config.digest).await?;
    let id = super::blob::sha256_digest(&config);
    let parsed = parse_config(&id, &config)?;
    if request.platform.is_some() {
        let actual = api_types::OciPlatform {
            os: parsed.os.clone(),
            architecture: parsed.architecture.clone(),
            ..Default::default()
        };
        if !platform.matches(&actual) {
            return Err(RegistryError::NoMatchingPlatform {
                platform: platform.render(),
            }
            .into());
        }
    }
    if parsed.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(RegistryError::InvalidManifest {
            reference: shown,
            reason: format!(
                "the config lists {} layers, the manifest {}",
                parsed.rootfs.diff_ids.len(),
                manifest.layers.len()
            ),
        }
        .into());
    }
    Ok(Resolved {
        registry: Arc::new(registry),
        reference: reference.clone(),
        digest,
        config,
        layers: manifest.layers,
        diff_ids: parsed.rootfs.diff_ids,
    })
}

impl ImageStore {
    /// The store's half of a pull (see the module documentation). Blocking: runs on a
    /// blocking thread, driving the downloads on `runtime`.
    pub(crate) fn store_pulled(
        &self,
        image: &Resolved,
        settings: &RegistrySettings,
        progress: &Progress,
        runtime: &tokio::runtime::Handle,
    ) -> Result<PullOutcome, ImageError> {
        let gc = self.gc_shared()?;
        let work = ScratchDir::new(&self.tmp_dir(), "pull")?;
        let repository = format!("{}/{}", image.reference.domain(), image.reference.path());

        // An image the store has whole: nothing to say about its layers (as dockerd).
        let id = super::blob::sha256_digest(&image.config);
        let mut whole = self.config_path(&id).exists();
        for diff_id in &image.diff_ids {
            whole = whole && self.layers.get(diff_id)?.is_some();
        }
        if whole {
            return self.publish_pulled(image);
        }

        // What the store has; what must be fetched (each blob once).
        let mut needed: Vec<usize> = Vec::new();
        for (i, (desc, diff_id)) in image.layers.iter().zip(&image.diff_ids).enumerate() {
            let id = short_id(&desc.digest);
            let duplicate = needed
                .iter()
                .any(|&j| image.diff_ids[j] == *diff_id || image.layers[j].digest == desc.digest);
            if duplicate || self.layers.get(diff_id)?.is_some() {
                progress.layer(id, "Already exists");
            } else {
                progress.layer(id, "Pulling fs layer");
                needed.push(i);
            }
        }

        // The downloads, in parallel, bounded; results in layer order.
        let limit = Arc::new(Semaphore::new(settings.concurrent_downloads.max(1)));
        let mut tasks = Vec::new();
        let mut results = Vec::new();
        for (n, &i) in needed.iter().enumerate() {
            let desc = image.layers[i].clone();
            if n >= settings.concurrent_downloads.max(1) {
                progress.layer(short_id(&desc.digest), "Waiting");
            }
            let (tx, rx) = oneshot::channel();
            let path = work.path().join(i.to_string());
            let registry = image.registry.clone();
            let progress = progress.clone();
            let limit = limit.clone();
            let settings = settings.clone();
            tasks.push(runtime.spawn(async move {
                let Ok(_permit) = limit.acquire_owned().await else {
                    return;
                };
                let r = download(&registry, &desc, path, &progress, &settings).await;
                let _ = tx.send(r);
            }));
            results.push((i, rx));
        }

        let mut created = Vec::new();
        let outcome = (|| {
            for (i, rx) in results {
                let path = rx.blocking_recv().map_err(|_| {
                    ImageError::io("a layer download stopped", io::Error::other("cancelled"))
                })??;
                let desc = &image.layers[i];
                if let Some(layer) =
                    self.unpack_pulled(desc, &image.diff_ids[i], &path, &repository, progress)?
                {
                    created.push(layer);
                }
            }
            self.publish_pulled(image)
        })();
        if outcome.is_err() {
            for t in &tasks {
                t.abort();
            }
            runtime.block_on(async {
                for t in tasks {
                    let _ = t.await;
                }
            });
            drop(work);
            drop(gc);
            self.forget_unused(created);
        }
        outcome
    }

    /// Deletes layers a failed pull unpacked, unless an image uses them by now (another pull
    /// of the same layer that finished). Waits for pulls in flight (the gc lock).
    fn forget_unused(&self, layers: Vec<super::layers::Layer>) {
        if layers.is_empty() {
            return;
        }
        let Ok(_gc) = self.gc_exclusive() else {
            tracing::warn!("cannot lock the image store; unused layers stay until the next start");
            return;
        };
        let Some(used) = self.layers_in_use() else {
            return;
        };
        for layer in layers {
            if !used.contains(&layer.diff_id) {
                if let Err(e) = self.layers.remove(&layer) {
                    tracing::warn!(layer = %layer.diff_id, error = %e, "cannot remove the layer of a failed pull");
                }
            }
        }
    }

    /// Unpacks one downloaded layer (unless another pull got there first), keeping its blob.
    fn unpack_pulled(
        &self,
        desc: &Descriptor,
        diff_id: &str,
        blob: &Path,
        repository: &str,
        progress: &Progress,
    ) -> Result<Option<super::layers::Layer>, ImageError> {
        let id = short_id(&desc.digest);
        let locks = self.root.join("locks");
        std::fs::create_dir_all(&locks)
            .map_err(|e| ImageError::io(format!("cannot create {}", locks.display()), e))?;
        let hex = sha256_hex(diff_id).ok_or_else(|| ImageError::InvalidConfig {
            id: diff_id.to_string(),
            reason: "a layer diff ID must be sha256:<64 hex digits>".into(),
        })?;
        let _lock = FileLock::acquire(
            &locks.join(format!("{hex}.lock")),
            LockMode::Exclusive,
            crate::lock::wait_limit(),
        )
        .map_err(|e| ImageError::io("cannot lock a layer", io::Error::other(e)))?;
        let mut created = None;
        if self.layers.get(diff_id)?.is_none() {
            let file = std::fs::File::open(blob)
                .map_err(|e| ImageError::io(format!("cannot open {}", blob.display()), e))?;
            let total = file.metadata().map(|m| m.len()).unwrap_or(0);
            let mut reader = Extracting {
                inner: io::BufReader::with_capacity(256 * 1024, file),
                throttle: Throttle::new(total),
                id,
                progress,
            };
            let meta = DistMeta {
                blob: Some(KeptBlob {
                    digest: desc.digest.clone(),
                    size: total,
                    media_type: desc.media_type.clone(),
                }),
                repositories: vec![repository.to_string()],
            };
            created = Some(self.layers.create_keeping(
                &mut reader,
                Some(diff_id),
                Keep::Blob {
                    file: blob,
                    meta: &meta,
                },
            )?);
        }
        progress.layer(id, "Pull complete");
        Ok(created)
    }

    /// Publishes a pulled image: its config, its tag (for a pull by tag) and its repository
    /// digest.
    fn publish_pulled(&self, image: &Resolved) -> Result<PullOutcome, ImageError> {
        let id = super::blob::sha256_digest(&image.config);
        let digest_ref = image.reference.with_digest(&image.digest);
        let tags: Vec<Reference> = match image.reference.digest() {
            Some(_) => Vec::new(),
            None => vec![image.reference.clone().with_default_tag()],
        };
        let before = {
            let index = self.lock_index()?;
            match tags.first() {
                Some(tag) => index.get(tag).map(str::to_string),
                None => index.get(&digest_ref).map(str::to_string),
            }
        };
        self.publish(&image.config, &tags)?;
        let mut index = self.lock_index()?;
        if index.get(&digest_ref) != Some(id.as_str()) {
            let mut next = index.clone();
            next.set_digest(&digest_ref, &id);
            next.save(&self.index_path())?;
            *index = next;
        }
        Ok(PullOutcome {
            updated: before.as_deref() != Some(id.as_str()),
            id,
            digest: image.digest.clone(),
        })
    }
}

/// A layer blob being unpacked, drawing `Extracting` as it is read.
struct Extracting<'a, R> {
    inner: R,
    throttle: Throttle,
    id: &'a str,
    progress: &'a Progress,
}

impl<R: Read> Read for Extracting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.throttle.advance(n as u64) {
            self.progress.bar(
                self.id,
                "Extracting",
                self.throttle.done,
                self.throttle.total,
            );
        }
        Ok(n)
    }
}

/// Downloads one layer blob to `path`: streamed, hashed as it comes, resumed after a drop,
/// then verified.
async fn download(
    registry: &Registry,
    desc: &Descriptor,
    path: PathBuf,
    progress: &Progress,
    settings: &RegistrySettings,
) -> Result<PathBuf, ImageError> {
    let id = short_id(&desc.digest);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ImageError::io(format!("cannot create {}", path.display()), e))?;
    let mut state = Fetch {
        hasher: Sha256::new(),
        have: 0,
        throttle: Throttle::new(desc.size.max(0) as u64),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match fetch_once(registry, desc, &mut file, &mut state, id, progress).await {
            Ok(()) => break,
            Err(e) if e.is_transient() && attempt < settings.attempts => {
                tracing::warn!(layer = %desc.digest, attempt, offset = state.have, error = %e, "layer download interrupted; resuming");
                // dockerd waits 5, 10, 15 s; a resumed download loses less, so less.
                let wait = u64::from(attempt);
                let unit = if wait == 1 { "second" } else { "seconds" };
                progress.layer(id, &format!("Retrying in {wait} {unit}"));
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            Err(e) if e.is_transient() => {
                return Err(RegistryError::LayerDownload {
                    digest: desc.digest.clone(),
                    attempts: attempt,
                    reason: e.to_string(),
                }
                .into())
            }
            Err(e) => return Err(e.into()),
        }
    }
    file.flush()
        .await
        .map_err(|e| ImageError::io(format!("cannot write {}", path.display()), e))?;
    progress.layer(id, "Verifying Checksum");
    let digest = format!("sha256:{}", hex::encode(state.hasher.finalize()));
    if digest != desc.digest {
        return Err(RegistryError::LayerVerification {
            digest: desc.digest.clone(),
        }
        .into());
    }
    progress.layer(id, "Download complete");
    Ok(path)
}

/// A download's progress across its attempts.
struct Fetch {
    hasher: Sha256,
    have: u64,
    throttle: Throttle,
}

/// One attempt: from byte `state.have` on to the end, appended to `file`.
async fn fetch_once(
    registry: &Registry,
    desc: &Descriptor,
    file: &mut tokio::fs::File,
    state: &mut Fetch,
    id: &str,
    progress: &Progress,
) -> Result<(), RegistryError> {
    let resp = registry.get_blob(&desc.digest, state.have).await?;
    let url = resp.url().to_string();
    let io_err = |e: io::Error| RegistryError::io("cannot write a layer download", e);
    if state.have > 0 && resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
        // The registry sent the whole blob again: start over.
        tracing::debug!(layer = %desc.digest, "registry ignored the range request; starting over");
        file.set_len(0).await.map_err(io_err)?;
        file.seek(io::SeekFrom::Start(0)).await.map_err(io_err)?;
        state.hasher = Sha256::new();
        state.have = 0;
        state.throttle.done = 0;
    }
    let total = state.throttle.total;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Transport {
            method: "Get",
            url: url.clone(),
            reason: transport_reason(&e),
        })?;
        if total > 0 && state.have + chunk.len() as u64 > total {
            return Err(RegistryError::LayerVerification {
                digest: desc.digest.clone(),
            });
        }
        file.write_all(&chunk).await.map_err(io_err)?;
        state.hasher.update(&chunk);
        state.have += chunk.len() as u64;
        if state.throttle.advance(chunk.len() as u64) {
            progress.bar(id, "Downloading", state.have, total);
        }
    }
    if total > 0 && state.have < total {
        return Err(RegistryError::Transport {
            method: "Get",
            url,
            reason: "unexpected EOF".into(),
        });
    }
    Ok(())
}
