//! The OCI runtime spec of a container, as Docker would generate it.
//!
//! The spec is written as the runtime-spec's own JSON (easy to compare with `runc spec` and
//! Docker's output) and then parsed into `oci_spec::runtime::Spec`, which checks its types
//! before it is saved as the bundle's `config.json`.

use std::path::PathBuf;

use api_types::HostConfig;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use crate::rootfs::ResolvedUser;

/// Docker's default capability set: exactly these and nothing more.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths Docker hides from containers.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in containers.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The default size of `/dev/shm`, 64 MiB.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// What the spec is made from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub hostname: &'a str,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: &'a str,
    pub user: &'a ResolvedUser,
    pub tty: bool,
    pub rootfs: PathBuf,
    pub hostname_file: PathBuf,
    pub hosts_file: PathBuf,
    pub resolv_conf_file: PathBuf,
    pub cgroups_path: String,
    pub host_config: &'a HostConfig,
    /// With `--init`: the init binary, bind-mounted at `/sbin/docker-init` and run as PID 1.
    pub init: Option<PathBuf>,
    /// Host paths bound into the container (`-v`, `--mount type=bind`).
    pub binds: Vec<crate::container::BindMount>,
}

/// Where `--init`'s binary appears inside the container, as with Docker.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// Why a spec could not be built from the container's settings.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid capability {name:?}")]
    Capability { name: String },
    #[error("invalid ulimit {name:?}")]
    Ulimit { name: String },
    #[error("the generated runtime spec is invalid")]
    Invalid(#[from] serde_json::Error),
}

/// Builds the spec.
pub fn build(input: &SpecInput<'_>) -> Result<Spec, SpecError> {
    let hc = input.host_config;
    let caps = capabilities(hc)?;
    let shm = if hc.shm_size > 0 {
        hc.shm_size
    } else {
        DEFAULT_SHM_SIZE
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
    ];
    for (dest, src) in [
        ("/etc/resolv.conf", &input.resolv_conf_file),
        ("/etc/hostname", &input.hostname_file),
        ("/etc/hosts", &input.hosts_file),
    ] {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    for b in &input.binds {
        let mut options = vec!["rbind", "rprivate"];
        if b.readonly {
            options.push("ro");
        }
        mounts.push(json!({"destination": b.destination, "type": "bind", "source": b.source, "options": options}));
    }
    let mut args = input.args.clone();
    if let Some(init) = &input.init {
        mounts.push(json!({"destination": INIT_PATH, "type": "bind", "source": init, "options": ["bind", "ro"]}));
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let masked: Vec<String> = hc
        .masked_paths
        .clone()
        .unwrap_or_else(|| MASKED_PATHS.iter().map(|s| s.to_string()).collect());
    let readonly: Vec<String> = hc
        .readonly_paths
        .clone()
        .unwrap_or_else(|| READONLY_PATHS.iter().map(|s| s.to_string()).collect());
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": input.tty,
            "user": {
                "uid": input.user.uid,
                "gid": input.user.gid,
                "additionalGids": input.user.additional_gids,
            },
            "args": args,
            "env": input.env,
            "cwd": input.cwd,
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": [], "ambient": [],
            },
            "rlimits": rlimits(hc)?,
            "noNewPrivileges": false,
            "oomScoreAdj": 0,
        },
        "root": {"path": input.rootfs, "readonly": hc.readonly_rootfs},
        "hostname": input.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": input.cgroups_path,
            "resources": resources(hc),
            "namespaces": [
                {"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"},
            ],
            "devices": default_devices(),
            "maskedPaths": if hc.privileged { Vec::new() } else { masked },
            "readonlyPaths": if hc.privileged { Vec::new() } else { readonly },
        },
    });
    Ok(serde_json::from_value(spec)?)
}

fn capabilities(hc: &HostConfig) -> Result<Vec<String>, SpecError> {
    let normalize = |c: &String| -> Result<String, SpecError> {
        let up = c.to_ascii_uppercase();
        let name = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if name == "CAP_ALL" || ALL_CAPABILITIES.contains(&name.as_str()) {
            Ok(name)
        } else {
            Err(SpecError::Capability { name: c.clone() })
        }
    };
    if hc.privileged {
        return Ok(grantable_capabilities());
    }
    let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
    for drop in hc.cap_drop.iter().flatten() {
        let d = normalize(drop)?;
        if d == "CAP_ALL" {
            caps.clear();
        } else {
            caps.retain(|c| *c != d);
        }
    }
    for add in hc.cap_add.iter().flatten() {
        let a = normalize(add)?;
        if a == "CAP_ALL" {
            caps = grantable_capabilities();
        } else if !caps.contains(&a) {
            caps.push(a);
        }
    }
    Ok(caps)
}

fn rlimits(hc: &HostConfig) -> Result<Vec<Value>, SpecError> {
    // No defaults: like dockerd without --default-ulimit, containers inherit the limits of
    // whoever started them, which never needs CAP_SYS_RESOURCE to apply.
    let mut out: Vec<Value> = Vec::new();
    for u in hc.ulimits.iter().flatten() {
        let ty = format!("RLIMIT_{}", u.name.to_ascii_uppercase());
        if !RLIMITS.contains(&ty.as_str()) {
            return Err(SpecError::Ulimit {
                name: u.name.clone(),
            });
        }
        out.retain(|r| r["type"] != ty.as_str());
        out.push(json!({"type": ty, "hard": u.hard as u64, "soft": u.soft as u64}));
    }
    Ok(out)
}

fn resources(hc: &HostConfig) -> Value {
    let mut r = json!({ "devices": device_rules() });
    let mut memory = serde_json::Map::new();
    if hc.memory > 0 {
        memory.insert("limit".into(), json!(hc.memory));
        // As Docker: with a limit and no swap setting, swap may equal the limit again.
        let swap = match hc.memory_swap {
            0 => hc.memory * 2,
            s => s,
        };
        memory.insert("swap".into(), json!(swap));
    }
    if hc.memory_reservation > 0 {
        memory.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| (0..=100).contains(s)) {
        memory.insert("swappiness".into(), json!(s));
    }
    if hc.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        r["memory"] = Value::Object(memory);
    }
    let mut cpu = serde_json::Map::new();
    if hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if hc.nano_cpus > 0 {
        cpu.insert("period".into(), json!(100_000u64));
        cpu.insert("quota".into(), json!(hc.nano_cpus / 10_000));
    } else {
        if hc.cpu_period > 0 {
            cpu.insert("period".into(), json!(hc.cpu_period));
        }
        if hc.cpu_quota > 0 {
            cpu.insert("quota".into(), json!(hc.cpu_quota));
        }
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(limit) = hc.pids_limit.filter(|&l| l > 0) {
        r["pids"] = json!({ "limit": limit });
    }
    r
}

/// The device nodes every container gets in its `/dev`.
fn default_devices() -> Value {
    let dev = |path: &str, major: i64, minor: i64| json!({"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0});
    json!([
        dev("/dev/null", 1, 3),
        dev("/dev/zero", 1, 5),
        dev("/dev/full", 1, 7),
        dev("/dev/random", 1, 8),
        dev("/dev/urandom", 1, 9),
        dev("/dev/tty", 5, 0),
    ])
}

/// Docker's default device cgroup rules: deny everything, then allow the usual nodes.
fn device_rules() -> Value {
    let allow = |ty: &str, major: Option<i64>, minor: Option<i64>, access: &str| json!({"allow": true, "type": ty, "major": major, "minor": minor, "access": access});
    json!([
        {"allow": false, "access": "rwm"},
        allow("c", None, None, "m"),
        allow("b", None, None, "m"),
        allow("c", Some(1), Some(3), "rwm"),
        allow("c", Some(1), Some(8), "rwm"),
        allow("c", Some(1), Some(7), "rwm"),
        allow("c", Some(5), Some(0), "rwm"),
        allow("c", Some(1), Some(5), "rwm"),
        allow("c", Some(1), Some(9), "rwm"),
        allow("c", Some(5), Some(1), "rwm"),
        allow("c", Some(136), None, "rwm"),
        allow("c", Some(5), Some(2), "rwm"),
        allow("c", Some(10), Some(200), "rwm"),
    ])
}

const RLIMITS: [&str; 16] = [
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
];

/// Every capability the kernel knows that this process may give (its own bounding set):
/// what `--privileged`, `--cap-add ALL` and a privileged exec get. Asking for more makes
/// the runtime's capset fail where berth itself runs with fewer (in some sandboxes).
pub fn grantable_capabilities() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// Every capability the kernel knows, in bit order.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(hc: &'a HostConfig, user: &'a ResolvedUser) -> SpecInput<'a> {
        SpecInput {
            hostname: "abc",
            args: vec!["echo".into(), "hi".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/",
            user,
            tty: false,
            rootfs: "/r".into(),
            hostname_file: "/c/hostname".into(),
            hosts_file: "/c/hosts".into(),
            resolv_conf_file: "/c/resolv.conf".into(),
            cgroups_path: "/berth/abc".into(),
            host_config: hc,
            init: None,
            binds: Vec::new(),
        }
    }

    fn root() -> ResolvedUser {
        ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            home: "/root".into(),
        }
    }

    #[test]
    fn defaults_match_docker() {
        let hc = HostConfig::default();
        let user = root();
        let spec = serde_json::to_value(build(&input(&hc, &user)).unwrap()).unwrap();
        let caps = spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert_eq!(caps.len(), 14);
        assert!(!caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert_eq!(spec["linux"]["namespaces"].as_array().unwrap().len(), 5);
        assert!(spec["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore"));
        assert_eq!(spec["root"]["readonly"], json!(false));
        assert!(spec["linux"]["resources"].get("memory").is_none());
    }

    #[test]
    fn limits_become_resources() {
        let hc = HostConfig {
            memory: 64 << 20,
            nano_cpus: 500_000_000,
            pids_limit: Some(20),
            cpuset_cpus: "0".into(),
            cpu_shares: 512,
            readonly_rootfs: true,
            cap_drop: Some(vec!["net_raw".into()]),
            cap_add: Some(vec!["SYS_ADMIN".into()]),
            ..HostConfig::default()
        };
        let user = root();
        let spec = serde_json::to_value(build(&input(&hc, &user)).unwrap()).unwrap();
        let r = &spec["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], json!(64 << 20));
        assert_eq!(r["cpu"]["quota"], json!(50_000));
        assert_eq!(r["cpu"]["period"], json!(100_000));
        assert_eq!(r["cpu"]["shares"], json!(512));
        assert_eq!(r["pids"]["limit"], json!(20));
        assert_eq!(spec["root"]["readonly"], json!(true));
        let caps = spec["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap();
        assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert!(!caps.iter().any(|c| c == "CAP_NET_RAW"));
    }

    #[test]
    fn init_runs_first_from_a_read_only_bind() {
        let hc = HostConfig::default();
        let user = root();
        let mut i = input(&hc, &user);
        i.init = Some("/usr/bin/tini-static".into());
        let spec = serde_json::to_value(build(&i).unwrap()).unwrap();
        assert_eq!(
            spec["process"]["args"],
            json!(["/sbin/docker-init", "--", "echo", "hi"])
        );
        assert!(spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == INIT_PATH));
    }

    #[test]
    fn unknown_capabilities_and_ulimits_are_refused() {
        let user = root();
        let hc = HostConfig {
            cap_add: Some(vec!["FLY".into()]),
            ..HostConfig::default()
        };
        assert!(matches!(
            build(&input(&hc, &user)),
            Err(SpecError::Capability { .. })
        ));
        let hc = HostConfig {
            ulimits: Some(vec![api_types::Ulimit {
                name: "bogus".into(),
                soft: 1,
                hard: 1,
            }]),
            ..HostConfig::default()
        };
        assert!(matches!(
            build(&input(&hc, &user)),
            Err(SpecError::Ulimit { .. })
        ));
    }
}
