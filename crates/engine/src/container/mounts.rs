//! Bind mounts from `-v /host:/ctr[:ro]` (`HostConfig.Binds`) and
//! `--mount type=bind,...` (`HostConfig.Mounts`). Named volumes are not in berth yet and
//! are refused with a clear error rather than silently ignored.

use std::path::{Component, Path, PathBuf};

use api_types::HostConfig;

use super::ContainerError;

/// One bind mount of a host path into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
}

impl BindMount {
    /// The entry of inspect's `Mounts`.
    pub fn inspect(&self) -> serde_json::Value {
        serde_json::json!({
            "Type": "bind",
            "Source": self.source,
            "Destination": self.destination,
            "Mode": if self.readonly { "ro" } else { "" },
            "RW": !self.readonly,
            "Propagation": "rprivate",
        })
    }
}

fn invalid(message: String) -> ContainerError {
    ContainerError::InvalidConfig { message }
}

fn check_destination(dest: &str, spec: &str) -> Result<(), ContainerError> {
    let p = Path::new(dest);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(format!(
            "invalid mount config: mount path must be absolute and without '..': {spec}"
        )));
    }
    if p == Path::new("/") {
        return Err(invalid(format!(
            "invalid mount config: destination can't be '/': {spec}"
        )));
    }
    Ok(())
}

/// The bind mounts a container asks for, checked as dockerd does. With `create_missing`, a
/// missing `-v` source directory is created (as Docker does); `--mount` sources must exist.
pub fn bind_mounts(
    hc: &HostConfig,
    create_missing: bool,
) -> Result<Vec<BindMount>, ContainerError> {
    let mut out = Vec::new();
    for b in hc.binds.iter().flatten() {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => return Err(invalid(format!("invalid volume specification: '{b}'"))),
        };
        if !src.starts_with('/') {
            return Err(invalid(format!(
                "invalid volume specification: '{b}': named volumes are not supported by berth yet; bind a host path (/host:/container)"
            )));
        }
        check_destination(dst, b)?;
        let mut readonly = false;
        for opt in mode.split(',').filter(|o| !o.is_empty()) {
            match opt {
                "ro" => readonly = true,
                "rw" | "z" | "Z" | "rprivate" | "private" => {}
                other => return Err(invalid(format!("invalid mode: {other}"))),
            }
        }
        let source = PathBuf::from(src);
        if !source.exists() {
            if !create_missing {
                return Err(invalid(format!("bind source path does not exist: {src}")));
            }
            std::fs::create_dir_all(&source).map_err(|e| {
                ContainerError::io(format!("Failed to create the bind source {src}"), e)
            })?;
        }
        out.push(BindMount {
            source,
            destination: dst.to_string(),
            readonly,
        });
    }
    if let Some(mounts) = hc.extra.get("Mounts").and_then(|m| m.as_array()) {
        for m in mounts {
            let kind = m["Type"].as_str().unwrap_or("");
            let target = m["Target"].as_str().unwrap_or("");
            if kind != "bind" {
                return Err(invalid(format!(
                    "invalid mount config for type \"{kind}\": berth supports only bind mounts for now"
                )));
            }
            let src = m["Source"].as_str().unwrap_or("");
            if !src.starts_with('/') {
                return Err(invalid(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{src}' mount path must be absolute"
                )));
            }
            check_destination(target, target)?;
            if !Path::new(src).exists() {
                return Err(invalid(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                )));
            }
            out.push(BindMount {
                source: src.into(),
                destination: target.to_string(),
                readonly: m["ReadOnly"].as_bool().unwrap_or(false),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(binds: &[&str]) -> HostConfig {
        HostConfig {
            binds: Some(binds.iter().map(|s| s.to_string()).collect()),
            ..HostConfig::default()
        }
    }

    #[test]
    fn binds_parse_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().display().to_string();
        let m = bind_mounts(&hc(&[&format!("{src}:/data:ro")]), false).unwrap();
        assert_eq!(
            m,
            vec![BindMount {
                source: dir.path().into(),
                destination: "/data".into(),
                readonly: true
            }]
        );
        assert!(bind_mounts(&hc(&["myvol:/data"]), false)
            .unwrap_err()
            .to_string()
            .contains("named volumes"));
        assert!(bind_mounts(&hc(&[&format!("{src}:data")]), false).is_err());
        assert!(bind_mounts(&hc(&[&format!("{src}:/")]), false).is_err());
        assert!(bind_mounts(&hc(&[&format!("{src}:/d:xx")]), false).is_err());
        let missing = dir.path().join("made");
        assert!(bind_mounts(&hc(&[&format!("{}:/d", missing.display())]), false).is_err());
        bind_mounts(&hc(&[&format!("{}:/d", missing.display())]), true).unwrap();
        assert!(missing.is_dir());
    }
}
