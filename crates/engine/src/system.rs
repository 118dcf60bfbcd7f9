//! `version` and `info`: what the engine is and what it holds.

use std::collections::BTreeMap;

use api_types::{Info, Version, VersionComponent};

use crate::container::Status;
use crate::engine::Engine;
use crate::Caller;

/// berth's version, as `docker version` shows it for the engine.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Engine {
    /// `GET /version`.
    pub fn version(&self) -> Version {
        let kernel = kernel_release();
        let mut details = BTreeMap::new();
        details.insert("ApiVersion".to_string(), api_types::API_VERSION.to_string());
        details.insert(
            "MinAPIVersion".to_string(),
            api_types::MIN_API_VERSION.to_string(),
        );
        details.insert("Os".to_string(), "linux".to_string());
        details.insert("Arch".to_string(), arch().to_string());
        details.insert("KernelVersion".to_string(), kernel.clone());
        details.insert("GitCommit".to_string(), String::new());
        details.insert("GoVersion".to_string(), "n/a (Rust)".to_string());
        details.insert("BuildTime".to_string(), String::new());
        details.insert("Experimental".to_string(), "false".to_string());
        Version {
            platform: api_types::Platform {
                name: "berth".into(),
            },
            components: vec![VersionComponent {
                name: "Engine".into(),
                version: VERSION.into(),
                details,
            }],
            version: VERSION.into(),
            api_version: api_types::API_VERSION.into(),
            min_api_version: api_types::MIN_API_VERSION.into(),
            git_commit: String::new(),
            go_version: "n/a (Rust)".into(),
            os: "linux".into(),
            arch: arch().into(),
            kernel_version: kernel,
            build_time: String::new(),
        }
    }

    /// `GET /info`.
    pub async fn info(&self, _caller: &Caller) -> Info {
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        let all = self.list_records().await;
        for rec in &all {
            match rec.state.status {
                Status::Running | Status::Restarting => running += 1,
                Status::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        let mut runtimes = BTreeMap::new();
        runtimes.insert(
            "berth".to_string(),
            serde_json::json!({"path": self.config.builtin_runtime}),
        );
        runtimes.insert(
            "runc".to_string(),
            serde_json::json!({"path": self.config.runc_binary}),
        );
        let cgroup = self.cgroups.version;
        Info {
            id: machine_id(),
            containers: all.len() as i64,
            containers_running: running,
            containers_paused: paused,
            containers_stopped: stopped,
            images: self.images.count() as i64,
            driver: "overlay2".into(),
            driver_status: vec![["Backing Filesystem".into(), "extfs".into()]],
            plugins: serde_json::json!({"Volume": ["local"], "Network": ["null"], "Log": ["json-file"]}),
            memory_limit: true,
            swap_limit: true,
            cpu_cfs_period: true,
            cpu_cfs_quota: true,
            cpu_shares: true,
            cpu_set: true,
            pids_limit: true,
            oom_kill_disable: cgroup == crate::cgroups::Version::V1,
            debug: false,
            n_fd: std::fs::read_dir("/proc/self/fd")
                .map(|d| d.count() as i64)
                .unwrap_or(0),
            n_goroutines: 0,
            system_time: crate::container::now_rfc3339(),
            logging_driver: "json-file".into(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: cgroup.as_str().into(),
            n_events_listener: self.events.listeners() as i64,
            kernel_version: kernel_release(),
            operating_system: os_name(),
            os_version: String::new(),
            os_type: "linux".into(),
            architecture: std::env::consts::ARCH.into(),
            index_server_address: "https://index.docker.io/v1/".into(),
            registry_config: crate::distribution::registry_config(&self.config.registry),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get() as i64)
                .unwrap_or(1),
            mem_total: mem_total(),
            docker_root_dir: self.config.data_root.display().to_string(),
            name: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            labels: Vec::new(),
            experimental_build: false,
            server_version: VERSION.into(),
            runtimes,
            default_runtime: self.config.default_runtime.clone(),
            swarm: serde_json::json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
            live_restore_enabled: true,
            isolation: String::new(),
            init_binary: self
                .config
                .init_binary
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            security_options: Vec::new(),
            warnings: None,
        }
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
