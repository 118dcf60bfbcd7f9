//! Image types: list entries, inspect and delete results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::container::null_default;
use crate::ContainerConfig;

/// One entry of `GET /images/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageSummary {
    pub containers: i64,
    pub created: i64,
    pub id: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub parent_id: String,
    pub repo_digests: Option<Vec<String>>,
    pub repo_tags: Option<Vec<String>>,
    pub shared_size: i64,
    pub size: i64,
    pub virtual_size: i64,
}

/// `RootFS` in image inspect.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

/// The answer to `GET /images/{name}/json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub container: String,
    pub container_config: ContainerConfig,
    pub docker_version: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    pub os: String,
    pub size: i64,
    pub virtual_size: i64,
    pub graph_driver: crate::GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: ImageMetadata,
}

/// `Metadata` in image inspect.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageMetadata {
    pub last_tag_time: String,
}

/// One entry of the answer to `DELETE /images/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ImageDeleteItem {
    Untagged(String),
    Deleted(String),
}

/// One message of a JSON progress stream (load, import, pull, push).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProgressMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A layer's bytes done and in all (`{}` on the messages of a layer without a count).
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    /// The progress bar dockerd draws for clients that print it as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

/// `progressDetail` of a progress message.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// The body of `POST /auth` (`docker login`), and what `X-Registry-Auth` carries (base64url
/// JSON) on pull and push.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AuthConfig {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default::deserialize"
    )]
    pub username: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default::deserialize"
    )]
    pub password: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default::deserialize"
    )]
    pub auth: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default::deserialize"
    )]
    pub email: String,
    #[serde(
        rename = "serveraddress",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default::deserialize"
    )]
    pub server_address: String,
    /// A refresh token a token server gave at login, used instead of the password.
    #[serde(
        rename = "identitytoken",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default::deserialize"
    )]
    pub identity_token: String,
    /// A bearer token sent to the registry as it is.
    #[serde(
        rename = "registrytoken",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_default::deserialize"
    )]
    pub registry_token: String,
}

/// The answer to `POST /auth`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuthResponse {
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identity_token: String,
}

/// `GET /distribution/{name}/json`: what a registry says an image reference is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct DistributionInspect {
    pub descriptor: Descriptor,
    pub platforms: Vec<OciPlatform>,
}

/// An OCI content descriptor, as the distribution endpoint shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
}

/// An OCI platform (`os/architecture[/variant]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct OciPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    #[serde(rename = "os.features", skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// `errorDetail` of a progress message.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_items_serialize_as_docker_does() {
        let items = vec![
            ImageDeleteItem::Untagged("ck-bb:v1".into()),
            ImageDeleteItem::Deleted("sha256:ab".into()),
        ];
        assert_eq!(
            serde_json::to_string(&items).unwrap(),
            r#"[{"Untagged":"ck-bb:v1"},{"Deleted":"sha256:ab"}]"#
        );
    }
}

/// One entry of `GET /images/{name}/history`, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageHistoryItem {
    /// The image at this step, or `<missing>` when it is not in the store.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    pub tags: Option<Vec<String>>,
    pub size: i64,
    pub comment: String,
}

/// The answer to `POST /images/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImagesPruneResponse {
    pub images_deleted: Option<Vec<ImageDeleteItem>>,
    pub space_reclaimed: i64,
}

/// The answer to `POST /build/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct BuildCachePruneResponse {
    pub caches_deleted: Option<Vec<String>>,
    pub space_reclaimed: i64,
}

/// One entry of `BuildCache` in `GET /system/df`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct BuildCacheRecord {
    #[serde(rename = "ID")]
    pub id: String,
    pub parents: Option<Vec<String>>,
    #[serde(rename = "Type")]
    pub kind: String,
    pub description: String,
    pub in_use: bool,
    pub shared: bool,
    pub size: i64,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub usage_count: i64,
}
