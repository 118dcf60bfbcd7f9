//! Looking at a container from outside: its resource use (`stats`), its processes (`top`),
//! its file-system changes (`changes`) and the stat of a path in it (the `archive` header).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The answer to `GET /containers/{id}/top`. Every value is a string, as `ps` printed it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerTopResponse {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// What happened to a path, as `GET /containers/{id}/changes` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "u8", into = "u8")]
pub enum ChangeKind {
    Modified,
    Added,
    Deleted,
}

impl From<u8> for ChangeKind {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Added,
            2 => Self::Deleted,
            _ => Self::Modified,
        }
    }
}

impl From<ChangeKind> for u8 {
    fn from(k: ChangeKind) -> u8 {
        match k {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

impl ChangeKind {
    /// The letter `docker diff` prints: `C`, `A` or `D`.
    pub fn letter(self) -> char {
        match self {
            Self::Modified => 'C',
            Self::Added => 'A',
            Self::Deleted => 'D',
        }
    }
}

/// One entry of `GET /containers/{id}/changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerChange {
    pub path: String,
    pub kind: ChangeKind,
}

/// Go's `os.FileMode` bits that Docker puts in [`ContainerPathStat::mode`].
pub mod file_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
    /// The permission bits.
    pub const PERM: u32 = 0o777;

    /// Go's `FileMode` of a Unix `st_mode`.
    pub fn from_unix(st_mode: u32) -> u32 {
        let mut m = st_mode & PERM;
        match st_mode & 0o170000 {
            0o040000 => m |= DIR,
            0o120000 => m |= SYMLINK,
            0o060000 => m |= DEVICE,
            0o020000 => m |= DEVICE | CHAR_DEVICE,
            0o010000 => m |= NAMED_PIPE,
            0o140000 => m |= SOCKET,
            _ => {}
        }
        if st_mode & 0o4000 != 0 {
            m |= SETUID;
        }
        if st_mode & 0o2000 != 0 {
            m |= SETGID;
        }
        if st_mode & 0o1000 != 0 {
            m |= STICKY;
        }
        m
    }

    /// Whether a Go `FileMode` is a directory.
    pub fn is_dir(mode: u32) -> bool {
        mode & DIR != 0
    }

    /// Whether a Go `FileMode` is a symbolic link.
    pub fn is_symlink(mode: u32) -> bool {
        mode & SYMLINK != 0
    }

    /// Whether a Go `FileMode` is a regular file (no type bit set).
    pub fn is_regular(mode: u32) -> bool {
        mode & (DIR | SYMLINK | DEVICE | NAMED_PIPE | SOCKET | CHAR_DEVICE) == 0
    }
}

/// The stat of a path in a container, sent base64-encoded in the
/// `X-Docker-Container-Path-Stat` header of `HEAD`/`GET /containers/{id}/archive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerPathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits (see [`file_mode`]).
    pub mode: u32,
    /// RFC 3339 with nanoseconds.
    pub mtime: String,
    /// For a symbolic link: where it leads, resolved inside the container, absolute.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// The header that carries a [`ContainerPathStat`].
pub const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// `cpu_usage` of a stats sample, nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    pub total_usage: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percpu_usage: Option<Vec<u64>>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

/// CFS throttling of a stats sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// `cpu_stats` and `precpu_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    /// The host's CPU time since boot, nanoseconds (from `/proc/stat`).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub system_cpu_usage: u64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub online_cpus: u32,
    pub throttling_data: ThrottlingData,
}

/// `memory_stats`: every field is left out when zero, as Docker does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub max_usage: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub failcnt: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub limit: u64,
}

/// `pids_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub limit: u64,
}

/// One device's counter in `blkio_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioStatEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// `blkio_stats`: `null` where the cgroup version has no such counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_serviced_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_queue_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_service_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_wait_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_merged_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub sectors_recursive: Option<Vec<BlkioStatEntry>>,
}

/// One interface's counters in `networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// One sample of `GET /containers/{id}/stats`, in Docker's shape (`samples/stats.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerStats {
    /// When the sample was taken, RFC 3339 with nanoseconds.
    pub read: String,
    /// When the previous sample (`precpu_stats`) was taken.
    pub preread: String,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub num_procs: u32,
    pub storage_stats: BTreeMap<String, u64>,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<BTreeMap<String, NetworkStats>>,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_modes_are_go_file_modes() {
        assert_eq!(file_mode::from_unix(0o100644), 420);
        assert_eq!(file_mode::from_unix(0o040755), 2147484141);
        assert_eq!(
            file_mode::from_unix(0o041777),
            file_mode::DIR | file_mode::STICKY | 0o777
        );
        assert_eq!(file_mode::from_unix(0o120777), file_mode::SYMLINK | 0o777);
        assert_eq!(
            file_mode::from_unix(0o020666),
            file_mode::DEVICE | file_mode::CHAR_DEVICE | 0o666
        );
        assert!(file_mode::is_regular(file_mode::from_unix(0o104755)));
    }

    #[test]
    fn the_sample_stats_parse_and_zero_stats_look_like_dockers() {
        let sample = r#"{"read":"2026-11-27T14:39:50.901128197Z","preread":"2026-11-27T14:39:49.89838135Z",
            "pids_stats":{"current":1},"blkio_stats":{"io_service_bytes_recursive":[]},"num_procs":0,
            "storage_stats":{},"cpu_stats":{"cpu_usage":{"total_usage":81856806,"percpu_usage":[1,2],
            "usage_in_kernelmode":30000000,"usage_in_usermode":40000000},"system_cpu_usage":1030550000000,
            "online_cpus":2,"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},
            "memory_stats":{"usage":331776,"stats":{"cache":0},"limit":25276502016},"name":"/ck-d","id":"03ed"}"#;
        let s: ContainerStats = serde_json::from_str(sample).unwrap();
        assert_eq!(s.cpu_stats.online_cpus, 2);
        assert_eq!(s.memory_stats.limit, 25276502016);
        let zero = serde_json::to_value(ContainerStats {
            read: "0001-01-01T00:00:00Z".into(),
            preread: "0001-01-01T00:00:00Z".into(),
            name: "/x".into(),
            id: "abc".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(zero["memory_stats"], serde_json::json!({}));
        assert_eq!(zero["pids_stats"], serde_json::json!({}));
        assert_eq!(
            zero["cpu_stats"],
            serde_json::json!({"cpu_usage":{"total_usage":0,"usage_in_kernelmode":0,"usage_in_usermode":0},
                "throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}})
        );
        assert!(zero["blkio_stats"]["io_service_bytes_recursive"].is_null());
        assert!(zero.get("networks").is_none());
    }

    #[test]
    fn changes_use_docker_numbers() {
        let c: Vec<ContainerChange> =
            serde_json::from_str(r#"[{"Path":"/a","Kind":1},{"Path":"/b","Kind":2}]"#).unwrap();
        assert_eq!(c[0].kind, ChangeKind::Added);
        assert_eq!(c[1].kind.letter(), 'D');
        assert_eq!(
            serde_json::to_string(&ContainerChange {
                path: "/etc".into(),
                kind: ChangeKind::Modified
            })
            .unwrap(),
            r#"{"Path":"/etc","Kind":0}"#
        );
    }
}
