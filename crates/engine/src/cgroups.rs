//! cgroups, detected at run time: v1 (one hierarchy per controller) or v2 (unified).
//!
//! The runtime creates and deletes a container's cgroup from the bundle's `cgroupsPath`;
//! the engine only needs to find it again: to freeze it (pause), to read it (inspect,
//! tests) and to remove what nothing owns after a crash.

use std::path::{Path, PathBuf};

/// The cgroup parent of containers of the default data root.
pub const DEFAULT_PARENT: &str = "berth";

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

/// The cgroups of one engine's containers: `/<parent>/<id>` in every hierarchy.
///
/// Each data root has its own parent (`berth` for the default one), so engines on different
/// data roots never take each other's cgroups for orphans.
#[derive(Debug, Clone)]
pub struct Cgroups {
    pub version: Version,
    pub parent: String,
}

impl Cgroups {
    /// The layout of this host with containers under `parent`.
    pub fn new(parent: &str) -> Self {
        Self {
            version: Version::detect(),
            parent: parent.to_string(),
        }
    }

    /// The `cgroupsPath` written into a container's spec.
    pub fn spec_path(&self, id: &str) -> String {
        format!("/{}/{id}", self.parent)
    }

    /// The directory of a container's cgroup for one controller (`memory`, `pids`,
    /// `freezer`…); on v2 the controller is ignored.
    pub fn dir(&self, controller: &str, id: &str) -> PathBuf {
        match self.version {
            Version::V1 => Path::new(ROOT).join(controller).join(&self.parent).join(id),
            Version::V2 => Path::new(ROOT).join(&self.parent).join(id),
        }
    }

    /// Freezes (`true`) or thaws a container's processes.
    pub fn set_frozen(&self, id: &str, frozen: bool) -> std::io::Result<()> {
        let d = self.dir("freezer", id);
        match self.version {
            Version::V1 => {
                let want = if frozen { "FROZEN" } else { "THAWED" };
                std::fs::write(d.join("freezer.state"), want)?;
                // The kernel may report FREEZING for a while; wait until it settles.
                for _ in 0..1000 {
                    if std::fs::read_to_string(d.join("freezer.state"))?.trim() == want {
                        return Ok(());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(std::io::Error::other("cgroup freezer did not settle"))
            }
            Version::V2 => std::fs::write(d.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
        }
    }

    /// Removes the cgroups of this engine's containers that no longer run (left by a
    /// crash). `keep(id)` says whether a container id still owns its cgroup.
    pub fn remove_orphans(&self, keep: &dyn Fn(&str) -> bool) {
        for parent in self.parents() {
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
                            tracing::warn!(cgroup = %entry.path().display(), error = %crate::error::Chain(&e), "cannot remove orphaned cgroup")
                        }
                    }
                }
            }
        }
    }
}

impl Cgroups {
    /// This engine's parent directory in every hierarchy that has one.
    fn parents(&self) -> Vec<PathBuf> {
        match self.version {
            Version::V1 => std::fs::read_dir(ROOT)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path().join(&self.parent))
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default(),
            Version::V2 => vec![Path::new(ROOT).join(&self.parent)],
        }
    }

    /// Removes what is left of container `id`'s cgroups once it is gone. The runtime's
    /// delete removes them, but a hierarchy whose last process was still being torn down
    /// refuses (EBUSY) and stays behind (seen with blkio): try each for a moment.
    pub fn remove(&self, id: &str) {
        for parent in self.parents() {
            let dir = parent.join(id);
            for attempt in 0..50 {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    Err(e) => {
                        tracing::warn!(cgroup = %dir.display(), error = %crate::error::Chain(&e), "cannot remove a removed container's cgroup");
                        break;
                    }
                }
            }
        }
    }
}

/// The cgroup parent for a data root: `berth` for the default one, `berth-<hash>` otherwise.
pub fn parent_for(data_root: &Path) -> String {
    if data_root == Path::new(crate::config::DEFAULT_DATA_ROOT) {
        return DEFAULT_PARENT.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data_root.as_os_str().as_encoded_bytes());
    format!("{DEFAULT_PARENT}-{}", &hex::encode(digest)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_layout() {
        let mut c = Cgroups::new("berth");
        assert_eq!(c.spec_path("abc"), "/berth/abc");
        c.version = Version::V1;
        assert_eq!(
            c.dir("memory", "abc"),
            Path::new("/sys/fs/cgroup/memory/berth/abc")
        );
        c.version = Version::V2;
        assert_eq!(
            c.dir("memory", "abc"),
            Path::new("/sys/fs/cgroup/berth/abc")
        );
    }

    #[test]
    fn each_data_root_has_its_own_parent() {
        assert_eq!(parent_for(Path::new("/var/lib/berth")), "berth");
        let a = parent_for(Path::new("/tmp/a"));
        assert!(a.starts_with("berth-") && a.len() == 18);
        assert_ne!(a, parent_for(Path::new("/tmp/b")));
    }
}
