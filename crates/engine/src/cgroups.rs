//! cgroups, detected at run time: v1 (one hierarchy per controller) or v2 (unified).
//!
//! The runtime creates and deletes a container's cgroup from the bundle's `cgroupsPath`;
//! the engine only needs to find it again: to freeze it (pause), to read it (inspect,
//! tests) and to remove what nothing owns after a crash.

use std::path::{Path, PathBuf};

/// The cgroup parent under which every berth container's cgroup lives.
pub const PARENT: &str = "berth";

const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Per-controller hierarchies (also "hybrid", where cgroup2 has no controllers).
    V1,
    /// The unified hierarchy with controllers.
    V2,
}

impl Version {
    /// Detects the layout: v2 when `/sys/fs/cgroup` itself is cgroup2.
    pub fn detect() -> Self {
        if Path::new(ROOT).join("cgroup.controllers").exists() {
            Version::V2
        } else {
            Version::V1
        }
    }

    /// `1` or `2`, as `docker info` shows `CgroupVersion`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "1",
            Version::V2 => "2",
        }
    }
}

/// The `cgroupsPath` written into a container's spec.
pub fn spec_path(id: &str) -> String {
    format!("/{PARENT}/{id}")
}

/// The directory of a container's cgroup for one controller (`memory`, `pids`, `freezer`…);
/// on v2 the controller is ignored.
pub fn dir(version: Version, controller: &str, id: &str) -> PathBuf {
    match version {
        Version::V1 => Path::new(ROOT).join(controller).join(PARENT).join(id),
        Version::V2 => Path::new(ROOT).join(PARENT).join(id),
    }
}

/// Freezes (`true`) or thaws a container's processes.
pub fn set_frozen(version: Version, id: &str, frozen: bool) -> std::io::Result<()> {
    let d = dir(version, "freezer", id);
    match version {
        Version::V1 => {
            std::fs::write(
                d.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            )?;
            // The kernel may report FREEZING for a while; wait until it settles.
            for _ in 0..1000 {
                let state = std::fs::read_to_string(d.join("freezer.state"))?;
                if state.trim() == if frozen { "FROZEN" } else { "THAWED" } {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(std::io::Error::other("cgroup freezer did not settle"))
        }
        Version::V2 => std::fs::write(d.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
    }
}

/// Removes the cgroups of containers that no longer exist (left by a crash).
/// `keep(id)` says whether a container id is still known.
pub fn remove_orphans(version: Version, keep: &dyn Fn(&str) -> bool) {
    let parents: Vec<PathBuf> = match version {
        Version::V1 => std::fs::read_dir(ROOT)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path().join(PARENT))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default(),
        Version::V2 => vec![Path::new(ROOT).join(PARENT)],
    };
    for parent in parents {
        let Ok(rd) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && !keep(&name) {
                match std::fs::remove_dir(entry.path()) {
                    Ok(()) => {
                        tracing::info!(cgroup = %entry.path().display(), "removed orphaned cgroup")
                    }
                    Err(e) => {
                        tracing::warn!(cgroup = %entry.path().display(), error = %e, "cannot remove orphaned cgroup")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_layout() {
        assert_eq!(spec_path("abc"), "/berth/abc");
        assert_eq!(
            dir(Version::V1, "memory", "abc"),
            Path::new("/sys/fs/cgroup/memory/berth/abc")
        );
        assert_eq!(
            dir(Version::V2, "memory", "abc"),
            Path::new("/sys/fs/cgroup/berth/abc")
        );
    }
}
