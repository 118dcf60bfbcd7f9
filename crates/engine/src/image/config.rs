//! The image config JSON (Docker's and the OCI image spec's), whose sha256 is the image ID.
//!
//! Configs are stored byte for byte as they came; this type reads them leniently (unknown
//! keys ignored, `null` as empty) and writes the ones `import` makes.

use api_types::container::null_default;
use api_types::ContainerConfig;
use chrono::{DateTime, FixedOffset, Offset, Timelike};
use serde::{Deserialize, Serialize};

/// An image config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct ImageConfig {
    #[serde(deserialize_with = "null_default::deserialize")]
    pub architecture: String,
    #[serde(
        deserialize_with = "null_default::deserialize",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    #[serde(
        deserialize_with = "null_default::deserialize",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    pub config: Option<ContainerConfig>,
    #[serde(
        deserialize_with = "null_default::deserialize",
        skip_serializing_if = "String::is_empty"
    )]
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_config: Option<ContainerConfig>,
    pub created: Option<String>,
    #[serde(
        deserialize_with = "null_default::deserialize",
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_version: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub history: Vec<History>,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub os: String,
    #[serde(
        deserialize_with = "null_default::deserialize",
        skip_serializing_if = "String::is_empty"
    )]
    pub variant: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub rootfs: ConfigRootFs,
}

/// `rootfs` of an image config: the layers' diff IDs, bottom first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct ConfigRootFs {
    #[serde(rename = "type", deserialize_with = "null_default::deserialize")]
    pub kind: String,
    #[serde(deserialize_with = "null_default::deserialize")]
    pub diff_ids: Vec<String>,
}

/// One `history` entry of an image config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct History {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl ImageConfig {
    /// When the image was made, if the config says and it parses.
    pub(crate) fn created_time(&self) -> Option<DateTime<FixedOffset>> {
        self.created
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
    }

    /// `Created` as dockerd shows it in inspect (Go's RFC3339Nano; the zero time if unknown).
    pub(crate) fn created_string(&self) -> String {
        self.created_time()
            .map(|t| rfc3339_nano(&t))
            .unwrap_or_else(|| ZERO_TIME.to_string())
    }

    /// `Created` as `docker images` shows it: Unix seconds.
    pub(crate) fn created_unix(&self) -> i64 {
        self.created_time().map(|t| t.timestamp()).unwrap_or(0)
    }
}

/// Go's zero `time.Time` in RFC 3339, what dockerd shows for "never".
pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Go's `time.RFC3339Nano`: fractional seconds without trailing zeros, `Z` for UTC.
pub(crate) fn rfc3339_nano<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    let offset = t.offset().fix().local_minus_utc();
    if offset == 0 {
        s.push('Z');
    } else {
        s.push_str(&t.format("%:z").to_string());
    }
    s
}

/// The current time as dockerd writes it into configs.
pub(crate) fn now_rfc3339_nano() -> String {
    rfc3339_nano(&chrono::Utc::now())
}

/// The host's architecture in Go's (`GOARCH`) spelling.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_configs_leniently() {
        let raw = r#"{"architecture":"amd64","config":{"Hostname":"","Env":["PATH=/bin"],"Cmd":["sh"],
            "Image":"sha256:x","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},
            "container":"abc","created":"2023-05-19T20:19:24.152426358Z","docker_version":"20.10.23",
            "history":[{"created":"2023-05-19T20:19:24Z","created_by":"/bin/sh -c #(nop) ADD file:x in / "},
            {"created":"2023-05-19T20:19:24Z","created_by":"CMD [\"sh\"]","empty_layer":true}],
            "os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"author":null,"unknown":{"x":1}}"#;
        let c: ImageConfig = serde_json::from_str(raw).unwrap();
        assert_eq!(c.architecture, "amd64");
        assert_eq!(c.config.as_ref().unwrap().cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.rootfs.diff_ids, ["sha256:aa"]);
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.created_unix(), 1_684_527_564);
        assert_eq!(c.created_string(), "2023-05-19T20:19:24.152426358Z");
        let empty: ImageConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.created_string(), ZERO_TIME);
        assert_eq!(empty.created_unix(), 0);
    }

    #[test]
    fn times_format_like_go() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T14:39:27.825087000Z").unwrap();
        assert_eq!(rfc3339_nano(&t), "2026-11-27T14:39:27.825087Z");
        let t = DateTime::parse_from_rfc3339("2026-11-27T14:39:27+02:00").unwrap();
        assert_eq!(rfc3339_nano(&t), "2026-11-27T14:39:27+02:00");
        let t = DateTime::parse_from_rfc3339("2026-11-27T14:39:27.5+00:00").unwrap();
        assert_eq!(rfc3339_nano(&t), "2026-11-27T14:39:27.5Z");
        assert!(DateTime::parse_from_rfc3339(&now_rfc3339_nano()).is_ok());
    }
}
