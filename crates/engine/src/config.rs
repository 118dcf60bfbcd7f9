//! Where the engine keeps things and which programs it runs.

use std::path::{Path, PathBuf};

/// The engine's settings, shared by berthd and daemonless mode (same flags, same defaults).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state: images, containers, logs (`--data-root`, default `/var/lib/berth`).
    pub data_root: PathBuf,
    /// Run-time state: bundles, runtime state, netns (`--exec-root`, default `/run/berth`).
    pub exec_root: PathBuf,
    /// The `berth-shim` binary.
    pub shim_binary: PathBuf,
    /// The runtime used when a container names none (`berth` = the built-in one).
    pub default_runtime: String,
    /// The built-in runtime's binary (`berth-runtime`).
    pub builtin_runtime: PathBuf,
    /// Where to find `runc` when a container asks for it.
    pub runc_binary: PathBuf,
    /// The init run as PID 1 with `--init` (Docker's docker-init is tini; Debian's
    /// `tini-static` is the same program, statically linked so it runs in any image).
    pub init_binary: Option<PathBuf>,
    /// How registries are reached (insecure ones, timeouts, parallel transfers).
    pub registry: crate::image::registry::RegistrySettings,
}

/// Default `--data-root`.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
/// Default `--exec-root`.
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";

impl EngineConfig {
    /// Settings for the given roots, finding `berth-shim` and `berth-runtime` next to the
    /// running executable (then on `PATH`), overridable with `BERTH_SHIM` and `BERTH_RUNTIME`.
    pub fn new(data_root: &Path, exec_root: &Path) -> Self {
        Self {
            data_root: data_root.to_path_buf(),
            exec_root: exec_root.to_path_buf(),
            shim_binary: find_helper("BERTH_SHIM", "berth-shim"),
            default_runtime: "berth".into(),
            builtin_runtime: find_helper("BERTH_RUNTIME", "berth-runtime"),
            runc_binary: find_on_path("runc").unwrap_or_else(|| PathBuf::from("/usr/sbin/runc")),
            init_binary: std::env::var_os("BERTH_INIT")
                .map(PathBuf::from)
                .or_else(|| find_on_path("docker-init"))
                .or_else(|| find_on_path("tini-static")),
            registry: crate::image::registry::RegistrySettings::from_env(),
        }
    }

    /// The binary of a runtime by name (`berth`, `runc`, or a path to a runc-compatible one).
    pub fn runtime_binary(&self, name: &str) -> Option<PathBuf> {
        match name {
            "" | "berth" => Some(self.builtin_runtime.clone()),
            "runc" => Some(self.runc_binary.clone()),
            other if other.starts_with('/') && Path::new(other).is_file() => Some(other.into()),
            _ => None,
        }
    }
}

fn find_helper(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    find_on_path(name).unwrap_or_else(|| PathBuf::from(name))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
