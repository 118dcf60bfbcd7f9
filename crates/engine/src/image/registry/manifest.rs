//! Manifests and indexes as registries serve them: Docker's v2 schema 2 and manifest lists,
//! the OCI image manifest and index, and choosing an index's entry for a platform.

use api_types::container::null_default;
use api_types::OciPlatform;
use serde::{Deserialize, Serialize};

use super::error::RegistryError;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What a manifest request accepts, most wanted first.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// A content descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<OciPlatform>,
    #[serde(
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty",
        deserialize_with = "null_default::deserialize"
    )]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// An image manifest (Docker v2 schema 2 or OCI): a config and its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub config: Descriptor,
    #[serde(default, deserialize_with = "null_default::deserialize")]
    pub layers: Vec<Descriptor>,
}

/// An index (manifest list): one manifest per platform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Index {
    #[serde(default, deserialize_with = "null_default::deserialize")]
    pub manifests: Vec<Descriptor>,
}

/// A manifest as fetched, parsed by what it is.
#[derive(Debug, Clone)]
pub enum Fetched {
    Manifest(Box<ImageManifest>),
    Index(Index),
}

/// Parses a fetched manifest by its `Content-Type` (or, when a registry sends none useful,
/// by its `mediaType` field and shape).
pub fn parse(reference: &str, content_type: &str, bytes: &[u8]) -> Result<Fetched, RegistryError> {
    let invalid = |reason: String| RegistryError::InvalidManifest {
        reference: reference.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let declared = value
        .get("mediaType")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let content_type = content_type.split(';').next().unwrap_or("").trim();
    let media_type = match content_type {
        DOCKER_MANIFEST | DOCKER_MANIFEST_LIST | OCI_MANIFEST | OCI_INDEX => content_type,
        _ if !declared.is_empty() => declared,
        _ if value.get("manifests").is_some() => OCI_INDEX,
        _ if value.get("config").is_some() => OCI_MANIFEST,
        other => other,
    };
    match media_type {
        DOCKER_MANIFEST | OCI_MANIFEST => {
            let m: ImageManifest =
                serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
            if m.schema_version != 2 {
                return Err(invalid(format!(
                    "schema version {} is not 2",
                    m.schema_version
                )));
            }
            Ok(Fetched::Manifest(Box::new(m)))
        }
        DOCKER_MANIFEST_LIST | OCI_INDEX => Ok(Fetched::Index(
            serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?,
        )),
        DOCKER_SCHEMA1 | "application/vnd.docker.distribution.manifest.v1+json" => {
            Err(RegistryError::UnsupportedManifest {
                media_type: format!("{media_type} (Docker image manifest schema 1 is deprecated)"),
            })
        }
        other => Err(RegistryError::UnsupportedManifest {
            media_type: other.to_string(),
        }),
    }
}

/// A platform asked for: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// The host's platform (linux and the architecture berth was built for, as Go names it).
    pub fn host() -> Self {
        let architecture = crate::image::config::host_architecture().to_string();
        let variant = match architecture.as_str() {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        Self {
            os: "linux".into(),
            architecture,
            variant,
        }
    }

    /// Parses `--platform` as containerd's `platforms.Parse` does for the common forms:
    /// `linux`, `amd64`, `linux/arm64`, `linux/arm/v7`, with the usual aliases.
    pub fn parse(value: &str) -> Result<Self, RegistryError> {
        let bad = || RegistryError::InvalidPlatform {
            value: value.to_string(),
        };
        let parts: Vec<String> = value.split('/').map(|p| p.to_lowercase()).collect();
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        }) {
            return Err(bad());
        }
        let host = Self::host();
        let known_os = |s: &str| matches!(s, "linux" | "windows" | "darwin" | "freebsd");
        let (os, arch, variant) = match parts.as_slice() {
            [one] if known_os(one) => (one.clone(), host.architecture.clone(), None),
            [one] => ("linux".to_string(), one.clone(), None),
            [os, arch] => (os.clone(), arch.clone(), None),
            [os, arch, variant] => (os.clone(), arch.clone(), Some(variant.clone())),
            _ => return Err(bad()),
        };
        let (architecture, variant) = normalize_arch(&arch, variant);
        if !known_os(&os) {
            return Err(bad());
        }
        Ok(Self {
            os,
            architecture,
            variant,
        })
    }

    /// `os/arch[/variant]`.
    pub fn render(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Whether an index entry's platform is this one (a missing variant matches any).
    pub fn matches(&self, p: &OciPlatform) -> bool {
        let (arch, variant) = normalize_arch(
            &p.architecture.to_lowercase(),
            Some(p.variant.to_lowercase()).filter(|v| !v.is_empty()),
        );
        p.os.eq_ignore_ascii_case(&self.os)
            && arch == self.architecture
            && match (&self.variant, &variant) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

fn normalize_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    match arch {
        "i386" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64".into(),
            variant
                .filter(|v| v != "v8" && v != "8")
                .or(Some("v8".into())),
        ),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => ("arm".into(), variant.or(Some("v7".into()))),
        other => (other.to_string(), variant),
    }
}

/// The index entry for `platform`: attestations and `unknown/unknown` entries left out.
pub fn choose<'a>(
    index: &'a Index,
    platform: &PlatformSpec,
) -> Result<&'a Descriptor, RegistryError> {
    index
        .manifests
        .iter()
        .filter(|d| {
            d.annotations
                .get("vnd.docker.reference.type")
                .is_none_or(|t| t != "attestation-manifest")
        })
        .find(|d| match &d.platform {
            Some(p) => platform.matches(p),
            // An entry without a platform: only if it is the only candidate kind we know.
            None => false,
        })
        .ok_or_else(|| RegistryError::NoMatchingPlatform {
            platform: platform.render(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}{variant}"),
            size: 1,
            platform: Some(OciPlatform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.into(),
                ..Default::default()
            }),
            annotations: Default::default(),
        }
    }

    #[test]
    fn platforms_parse_and_match() {
        let p = PlatformSpec::parse("linux/arm64").unwrap();
        assert_eq!(p.render(), "linux/arm64/v8");
        assert_eq!(
            PlatformSpec::parse("linux/x86_64").unwrap().render(),
            "linux/amd64"
        );
        assert_eq!(PlatformSpec::parse("arm").unwrap().render(), "linux/arm/v7");
        assert!(PlatformSpec::parse("linux/amd64/v2/x").is_err());
        assert!(PlatformSpec::parse("plan9/amd64").is_err());
        assert!(PlatformSpec::parse("linux//").is_err());
        let index = Index {
            manifests: vec![
                entry("linux", "arm", "v6"),
                entry("linux", "arm", "v7"),
                entry("linux", "arm64", ""),
                entry("linux", "amd64", ""),
                entry("unknown", "unknown", ""),
            ],
        };
        let pick =
            |s: &str| choose(&index, &PlatformSpec::parse(s).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/arm/v7").unwrap(), "sha256:armv7");
        assert_eq!(pick("linux/arm64").unwrap(), "sha256:arm64");
        assert_eq!(pick("linux/amd64").unwrap(), "sha256:amd64");
        assert_eq!(
            pick("linux/s390x").unwrap_err().to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
    }

    #[test]
    fn manifests_parse_by_type() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:a","size":2},"layers":[]}"#;
        assert!(matches!(
            parse("x", DOCKER_MANIFEST, m).unwrap(),
            Fetched::Manifest(_)
        ));
        assert!(matches!(
            parse("x", "application/json", m).unwrap(),
            Fetched::Manifest(_)
        ));
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse("x", "", i).unwrap(), Fetched::Index(_)));
        let s1 = br#"{"schemaVersion":1,"name":"x"}"#;
        assert!(parse("x", DOCKER_SCHEMA1, s1)
            .unwrap_err()
            .to_string()
            .contains("schema 1"));
        assert!(parse("x", OCI_MANIFEST, b"{").is_err());
    }
}
