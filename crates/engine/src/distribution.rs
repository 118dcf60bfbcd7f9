//! The engine's registry operations: pull, push, distribution inspect and login, with the
//! caller's credentials, events, and Docker's progress messages.

use std::collections::BTreeMap;

use api_types::{AuthConfig, AuthResponse, DistributionInspect, OciPlatform};

use crate::engine::{Engine, EngineError};
use crate::image::progress::Progress;
use crate::image::pull::{self, PullOutcome, PullRequest};
use crate::image::push::{PushRequest, Pushed};
use crate::image::reference::{Reference, DEFAULT_DOMAIN};
use crate::image::registry::manifest::{self, Fetched};
use crate::image::registry::{self, Registry, RegistryError};
use crate::image::ImageError;
use crate::Caller;

impl Engine {
    /// Pulls an image (`POST /images/create?fromImage=`), sending Docker's progress
    /// messages to `progress`, `Digest:` and `Status:` lines included.
    pub async fn pull_image(
        &self,
        caller: &Caller,
        request: PullRequest,
        progress: Progress,
    ) -> Result<PullOutcome, EngineError> {
        let settings = self.config.registry.clone();
        let resolved = pull::resolve(&settings, &request, &progress).await?;
        let engine = self.self_arc().ok_or_else(|| {
            ImageError::io("the engine is shutting down", std::io::Error::other("gone"))
        })?;
        let runtime = tokio::runtime::Handle::current();
        let p = progress.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            engine
                .images
                .store_pulled(&resolved, &settings, &p, &runtime)
        })
        .await
        .map_err(|e| ImageError::io("the pull failed", std::io::Error::other(e)))??;
        let shown = request
            .reference
            .clone()
            .with_default_tag()
            .familiar_string();
        progress.line(format!("Digest: {}", outcome.digest));
        progress.line(if outcome.updated {
            format!("Status: Downloaded newer image for {shown}")
        } else {
            format!("Status: Image is up to date for {shown}")
        });
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), shown.clone());
        self.events.emit(caller, "image", "pull", &shown, attrs);
        Ok(outcome)
    }

    /// Pushes an image's tag, or every tag of a repository (`POST /images/{name}/push`).
    pub async fn push_image(
        &self,
        caller: &Caller,
        request: PushRequest,
        progress: Progress,
    ) -> Result<Vec<Pushed>, EngineError> {
        let settings = self.config.registry.clone();
        let engine = self.self_arc().ok_or_else(|| {
            ImageError::io("the engine is shutting down", std::io::Error::other("gone"))
        })?;
        let runtime = tokio::runtime::Handle::current();
        let req = request.clone();
        let pushed = tokio::task::spawn_blocking(move || {
            engine.images.push(&req, &settings, &progress, &runtime)
        })
        .await
        .map_err(|e| ImageError::io("the push failed", std::io::Error::other(e)))??;
        for p in &pushed {
            let name = format!("{}:{}", request.reference.familiar_name(), p.tag);
            let mut attrs = BTreeMap::new();
            attrs.insert("name".to_string(), name.clone());
            self.events.emit(caller, "image", "push", &name, attrs);
        }
        Ok(pushed)
    }

    /// What a registry says a reference is (`GET /distribution/{name}/json`): its
    /// descriptor and the platforms it has images for.
    pub async fn inspect_distribution(
        &self,
        _caller: &Caller,
        name: &str,
        auth: AuthConfig,
    ) -> Result<DistributionInspect, EngineError> {
        let reference = Reference::parse_normalized(name)
            .map_err(ImageError::from)?
            .with_default_tag();
        let settings = &self.config.registry;
        let registry =
            Registry::connect(settings, reference.domain(), reference.path(), auth, "pull")
                .await
                .map_err(ImageError::from)?;
        let wanted = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string();
        let shown = reference.familiar_string();
        let (bytes, content_type, digest) = registry
            .get_manifest(&wanted, &shown)
            .await
            .map_err(ImageError::from)?;
        let parsed = manifest::parse(&shown, &content_type, &bytes).map_err(ImageError::from)?;
        let (media_type, platforms) = match parsed {
            Fetched::Index(index) => {
                let mt = if content_type.starts_with(manifest::DOCKER_MANIFEST_LIST) {
                    manifest::DOCKER_MANIFEST_LIST
                } else {
                    manifest::OCI_INDEX
                };
                let platforms = index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.clone())
                    .filter(|p| p.os != "unknown")
                    .collect();
                (mt.to_string(), platforms)
            }
            Fetched::Manifest(m) => {
                let config = registry
                    .get_small_blob(&m.config.digest)
                    .await
                    .map_err(ImageError::from)?;
                #[derive(serde::Deserialize, Default)]
                #[serde(default)]
                struct Cfg {
                    os: String,
                    architecture: String,
                    variant: String,
                }
                let cfg: Cfg = serde_json::from_slice(&config).unwrap_or_default();
                let mt = if m.media_type.is_empty() {
                    manifest::OCI_MANIFEST.to_string()
                } else {
                    m.media_type.clone()
                };
                (
                    mt,
                    vec![OciPlatform {
                        os: cfg.os,
                        architecture: cfg.architecture,
                        variant: cfg.variant,
                        ..Default::default()
                    }],
                )
            }
        };
        Ok(DistributionInspect {
            descriptor: api_types::Descriptor {
                media_type,
                digest,
                size: bytes.len() as i64,
            },
            platforms,
        })
    }

    /// Checks credentials against a registry (`POST /auth`, `docker login`).
    pub async fn login(
        &self,
        _caller: &Caller,
        auth: AuthConfig,
    ) -> Result<AuthResponse, EngineError> {
        let domain = registry_domain(&auth.server_address);
        let identity = registry::login(&self.config.registry, &domain, auth)
            .await
            .map_err(ImageError::from)?;
        Ok(AuthResponse {
            status: "Login Succeeded".to_string(),
            identity_token: identity.unwrap_or_default(),
        })
    }
}

/// The registry a `serveraddress` names: `https://index.docker.io/v1/` and empty are Docker
/// Hub; a scheme and path are dropped (`http://127.0.0.1:5000/v2/` is `127.0.0.1:5000`).
pub fn registry_domain(server_address: &str) -> String {
    let s = server_address.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => DEFAULT_DOMAIN.to_string(),
        other => other.to_string(),
    }
}

/// `RegistryConfig` of `GET /info`, as dockerd shows its insecure registries: loopback and
/// the CIDRs given, and an index entry per insecure name.
pub fn registry_config(settings: &registry::RegistrySettings) -> serde_json::Value {
    let mut cidrs = vec!["127.0.0.0/8".to_string()];
    let mut indexes = serde_json::Map::new();
    indexes.insert(
        DEFAULT_DOMAIN.to_string(),
        serde_json::json!({"Name": DEFAULT_DOMAIN, "Mirrors": [], "Secure": true, "Official": true}),
    );
    for entry in &settings.insecure {
        if entry.contains('/') {
            cidrs.push(entry.clone());
        } else {
            indexes.insert(
                entry.clone(),
                serde_json::json!({"Name": entry, "Mirrors": [], "Secure": false, "Official": false}),
            );
        }
    }
    serde_json::json!({
        "AllowNondistributableArtifactsCIDRs": [],
        "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": indexes,
        "Mirrors": [],
    })
}

impl From<RegistryError> for EngineError {
    fn from(e: RegistryError) -> Self {
        EngineError::Image(ImageError::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_name_registries() {
        assert_eq!(registry_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_domain(""), "docker.io");
        assert_eq!(registry_domain("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            registry_domain("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
    }
}
