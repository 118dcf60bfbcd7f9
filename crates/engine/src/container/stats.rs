//! `stats`: a container's CPU, memory, pids, block I/O and network counters in Docker's JSON
//! shape, read from its cgroup (v1 or v2) and `/proc`, so `docker stats` can compute its
//! percentages from two samples (`cpu_stats` and `precpu_stats`) and the host's CPU time.
//!
//! As dockerd: with `stream` a sample every second until the client goes or the container
//! is removed; without it two samples a second apart, the second one sent with the first as
//! its `precpu_stats` (so the CPU percentage is not zero); with `one_shot` a single sample at
//! once. A container that is not running gets a zeroed sample with only its name and id.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use api_types::{
    BlkioStatEntry, BlkioStats, ContainerStats, CpuStats, CpuUsage, MemoryStats, NetworkStats,
    PidsStats, ThrottlingData,
};
use tokio::sync::mpsc;

use super::{Container, ContainerError, ZERO_TIME};
use crate::cgroups::{Cgroups, Version};
use crate::engine::{Engine, EngineError};
use crate::Caller;

/// The interval between samples of a stream (dockerd's collector interval).
const INTERVAL: Duration = Duration::from_secs(1);

/// Options of `GET /containers/{id}/stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatsOptions {
    /// A sample every second until the receiver is dropped.
    pub stream: bool,
    /// Without `stream`: one sample at once, with no previous CPU sample.
    pub one_shot: bool,
}

/// The memory.stat keys dockerd reports for cgroup v1 (containerd's v1 metrics).
const V1_MEMORY_KEYS: &[&str] = &[
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "total_cache",
    "total_rss",
    "total_rss_huge",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_pgpgin",
    "total_pgpgout",
    "total_pgfault",
    "total_pgmajfault",
    "total_inactive_anon",
    "total_active_anon",
    "total_inactive_file",
    "total_active_file",
    "total_unevictable",
];

/// The memory.stat keys dockerd reports for cgroup v2.
const V2_MEMORY_KEYS: &[&str] = &[
    "anon",
    "file",
    "kernel_stack",
    "slab",
    "sock",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "pgfault",
    "pgmajfault",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
];

impl Engine {
    /// Samples of a container's resource use (`GET /containers/{id}/stats`). The channel
    /// closes after the last sample; dropping it stops the sampling.
    pub async fn container_stats(
        &self,
        _caller: &Caller,
        name: &str,
        opts: StatsOptions,
    ) -> Result<mpsc::Receiver<ContainerStats>, EngineError> {
        if opts.stream && opts.one_shot {
            return Err(ContainerError::StreamOneShot.into());
        }
        let container = self.find(name)?;
        self.refresh(&container).await;
        let (tx, rx) = mpsc::channel(1);
        let engine = self.self_arc();
        let cgroups = self.cgroups.clone();
        tokio::spawn(async move {
            let sampler = Sampler {
                container,
                cgroups,
                engine,
            };
            sampler.run(opts, tx).await;
        });
        Ok(rx)
    }
}

struct Sampler {
    container: Arc<Container>,
    cgroups: Cgroups,
    engine: Option<Arc<Engine>>,
}

impl Sampler {
    async fn run(&self, opts: StatsOptions, tx: mpsc::Sender<ContainerStats>) {
        let mut previous: Option<(CpuStats, String)> = None;
        loop {
            let (mut sample, running) = match self.sample().await {
                Sample::Removed => return,
                Sample::Stopped(zero) => (zero, false),
                Sample::Running(s) => (s, true),
            };
            if !opts.stream {
                if running && !opts.one_shot && previous.is_none() {
                    // Prime the CPU counters so the percentage is not zero.
                    previous = Some((sample.cpu_stats.clone(), sample.read.clone()));
                    if !pause(&tx).await {
                        return;
                    }
                    continue;
                }
                if let Some((cpu, read)) = previous.take().filter(|_| running) {
                    sample.precpu_stats = cpu;
                    sample.preread = read;
                }
                let _ = tx.send(sample).await;
                return;
            }
            if running {
                let next = (sample.cpu_stats.clone(), sample.read.clone());
                if let Some((cpu, read)) = previous.replace(next) {
                    sample.precpu_stats = cpu;
                    sample.preread = read;
                }
            } else {
                previous = None;
            }
            if tx.send(sample).await.is_err() || !pause(&tx).await {
                return;
            }
        }
    }

    /// One sample.
    async fn sample(&self) -> Sample {
        if let Some(engine) = &self.engine {
            engine.refresh(&self.container).await;
        }
        if self.container.lifecycle.borrow().removed {
            return Sample::Removed;
        }
        let rec = self.container.snapshot();
        if !rec.state.status.is_running() {
            return Sample::Stopped(ContainerStats {
                read: ZERO_TIME.into(),
                preread: ZERO_TIME.into(),
                name: rec.name,
                id: rec.id,
                ..Default::default()
            });
        }
        let pid = rec.state.processes.as_ref().map(|p| p.pid).unwrap_or(0);
        let cgroups = self.cgroups.clone();
        let id = rec.id.clone();
        match tokio::task::spawn_blocking(move || read_sample(&cgroups, &id, pid)).await {
            Ok(sample) => Sample::Running(ContainerStats {
                name: rec.name,
                id: rec.id,
                ..sample
            }),
            Err(_) => Sample::Removed,
        }
    }
}

/// What sampling found.
enum Sample {
    Removed,
    /// Not running: zeroed, with only the name and id.
    Stopped(ContainerStats),
    Running(ContainerStats),
}

/// Waits one interval; `false` if the client went away meanwhile.
async fn pause(tx: &mpsc::Sender<ContainerStats>) -> bool {
    tokio::select! {
        _ = tx.closed() => false,
        _ = tokio::time::sleep(INTERVAL) => true,
    }
}

/// Reads every counter of a running container.
fn read_sample(cgroups: &Cgroups, id: &str, pid: i32) -> ContainerStats {
    let read = super::now_rfc3339();
    let (system_cpu_usage, online_cpus) = host_cpu();
    let machine_memory = machine_memory();
    let mut s = ContainerStats {
        read,
        preread: ZERO_TIME.into(),
        ..Default::default()
    };
    match cgroups.version {
        Version::V1 => {
            let cpuacct = cgroups.dir("cpuacct", id);
            let cpu = cgroups.dir("cpu", id);
            let ticks = clock_ticks();
            let acct = keyed(&cpuacct.join("cpuacct.stat"));
            let to_ns = |t: u64| t.saturating_mul(1_000_000_000) / ticks;
            let percpu: Vec<u64> = read_text(&cpuacct.join("cpuacct.usage_percpu"))
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let throttle = keyed(&cpu.join("cpu.stat"));
            s.cpu_stats = CpuStats {
                cpu_usage: CpuUsage {
                    total_usage: read_u64(&cpuacct.join("cpuacct.usage")),
                    percpu_usage: (!percpu.is_empty()).then_some(percpu),
                    usage_in_kernelmode: to_ns(get(&acct, "system")),
                    usage_in_usermode: to_ns(get(&acct, "user")),
                },
                system_cpu_usage,
                online_cpus,
                throttling_data: ThrottlingData {
                    periods: get(&throttle, "nr_periods"),
                    throttled_periods: get(&throttle, "nr_throttled"),
                    throttled_time: get(&throttle, "throttled_time"),
                },
            };
            let mem = cgroups.dir("memory", id);
            let stat = keyed(&mem.join("memory.stat"));
            let stats: BTreeMap<String, u64> = V1_MEMORY_KEYS
                .iter()
                .filter_map(|k| stat.get(*k).map(|v| (k.to_string(), *v)))
                .collect();
            let limit = get(&stat, "hierarchical_memory_limit");
            s.memory_stats = MemoryStats {
                usage: read_u64(&mem.join("memory.usage_in_bytes")),
                max_usage: read_u64(&mem.join("memory.max_usage_in_bytes")),
                stats,
                failcnt: read_u64(&mem.join("memory.failcnt")),
                limit: cap_limit(limit, machine_memory),
            };
            let pids = cgroups.dir("pids", id);
            s.pids_stats = PidsStats {
                current: read_u64(&pids.join("pids.current")),
                limit: read_u64(&pids.join("pids.max")),
            };
            let blkio = cgroups.dir("blkio", id);
            let v1 = |names: &[&str]| -> Option<Vec<BlkioStatEntry>> {
                Some(
                    names
                        .iter()
                        .map(|n| blkio.join(n))
                        .find(|p| p.exists())
                        .map(|p| blkio_v1(&read_text(&p)))
                        .unwrap_or_default(),
                )
            };
            s.blkio_stats = BlkioStats {
                io_service_bytes_recursive: v1(&[
                    "blkio.io_service_bytes_recursive",
                    "blkio.throttle.io_service_bytes_recursive",
                    "blkio.throttle.io_service_bytes",
                ]),
                io_serviced_recursive: v1(&[
                    "blkio.io_serviced_recursive",
                    "blkio.throttle.io_serviced_recursive",
                    "blkio.throttle.io_serviced",
                ]),
                io_queue_recursive: v1(&["blkio.io_queued_recursive"]),
                io_service_time_recursive: v1(&["blkio.io_service_time_recursive"]),
                io_wait_time_recursive: v1(&["blkio.io_wait_time_recursive"]),
                io_merged_recursive: v1(&["blkio.io_merged_recursive"]),
                io_time_recursive: v1(&["blkio.time_recursive"]),
                sectors_recursive: v1(&["blkio.sectors_recursive"]),
            };
        }
        Version::V2 => {
            let dir = cgroups.dir("", id);
            let cpu = keyed(&dir.join("cpu.stat"));
            s.cpu_stats = CpuStats {
                cpu_usage: CpuUsage {
                    total_usage: get(&cpu, "usage_usec").saturating_mul(1000),
                    percpu_usage: None,
                    usage_in_kernelmode: get(&cpu, "system_usec").saturating_mul(1000),
                    usage_in_usermode: get(&cpu, "user_usec").saturating_mul(1000),
                },
                system_cpu_usage,
                online_cpus,
                throttling_data: ThrottlingData {
                    periods: get(&cpu, "nr_periods"),
                    throttled_periods: get(&cpu, "nr_throttled"),
                    throttled_time: get(&cpu, "throttled_usec").saturating_mul(1000),
                },
            };
            let stat = keyed(&dir.join("memory.stat"));
            let stats: BTreeMap<String, u64> = V2_MEMORY_KEYS
                .iter()
                .map(|k| (k.to_string(), get(&stat, k)))
                .collect();
            let max = read_text(&dir.join("memory.max"));
            let limit = if max.trim() == "max" {
                u64::MAX
            } else {
                max.trim().parse().unwrap_or(0)
            };
            s.memory_stats = MemoryStats {
                usage: read_u64(&dir.join("memory.current")),
                max_usage: 0,
                stats,
                failcnt: get(&keyed(&dir.join("memory.events")), "oom"),
                limit: cap_limit(limit, machine_memory),
            };
            s.pids_stats = PidsStats {
                current: read_u64(&dir.join("pids.current")),
                limit: read_u64(&dir.join("pids.max")),
            };
            s.blkio_stats = BlkioStats {
                io_service_bytes_recursive: Some(io_stat_v2(&read_text(&dir.join("io.stat")))),
                ..Default::default()
            };
        }
    }
    s.networks = networks(pid);
    s
}

/// With no limit set the cgroup reports a huge number; Docker shows the host's memory.
fn cap_limit(limit: u64, machine: u64) -> u64 {
    if machine > 0 && (limit == 0 || limit > machine) {
        machine
    } else {
        limit
    }
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A file holding one number (`max` and unreadable files are 0).
fn read_u64(path: &Path) -> u64 {
    read_text(path).trim().parse().unwrap_or(0)
}

/// A `key value` file (`memory.stat`, `cpu.stat`, `cpuacct.stat`, `memory.events`).
fn keyed(path: &Path) -> BTreeMap<String, u64> {
    parse_keyed(&read_text(path))
}

fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

fn get(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

/// `8:0 Read 4096` lines (the `Total` line has no device and is left out, as containerd does).
fn blkio_v1(text: &str) -> Vec<BlkioStatEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (major, minor) = f[0].split_once(':')?;
            Some(BlkioStatEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: f[1].to_string(),
                value: f[2].parse().ok()?,
            })
        })
        .collect()
}

/// `8:0 rbytes=1 wbytes=2 rios=3 …` lines as dockerd reports them: read and write bytes.
fn io_stat_v2(text: &str) -> Vec<BlkioStatEntry> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        let kv: BTreeMap<&str, u64> = f
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        for (op, key) in [("read", "rbytes"), ("write", "wbytes")] {
            out.push(BlkioStatEntry {
                major,
                minor,
                op: op.into(),
                value: kv.get(key).copied().unwrap_or(0),
            });
        }
    }
    out
}

/// The host's CPU time since boot in nanoseconds and its number of CPUs (`/proc/stat`).
fn host_cpu() -> (u64, u32) {
    parse_proc_stat(&read_text(Path::new("/proc/stat")), clock_ticks())
}

fn parse_proc_stat(text: &str, ticks: u64) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let t: u64 = f.take(7).filter_map(|v| v.parse::<u64>().ok()).sum();
                total = t.saturating_mul(1_000_000_000) / ticks;
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// The host's memory in bytes (`MemTotal` of `/proc/meminfo`).
fn machine_memory() -> u64 {
    read_text(Path::new("/proc/meminfo"))
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The counters of the container's network interfaces (its own network namespace only,
/// loopback left out, as dockerd reports its endpoints); `None` without any.
fn networks(pid: i32) -> Option<BTreeMap<String, NetworkStats>> {
    if pid <= 0 {
        return None;
    }
    let ns = |p: &str| {
        std::fs::metadata(p)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
    };
    let own = ns(&format!("/proc/{pid}/ns/net"))?;
    if Some(own) == ns("/proc/self/ns/net") {
        return None;
    }
    let nets = parse_net_dev(&read_text(Path::new(&format!("/proc/{pid}/net/dev"))));
    (!nets.is_empty()).then_some(nets)
}

fn parse_net_dev(text: &str) -> BTreeMap<String, NetworkStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                NetworkStats {
                    rx_bytes: v[0],
                    rx_packets: v[1],
                    rx_errors: v[2],
                    rx_dropped: v[3],
                    tx_bytes: v[8],
                    tx_packets: v[9],
                    tx_errors: v[10],
                    tx_dropped: v[11],
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_time_is_the_first_seven_fields_in_nanoseconds() {
        let text = "cpu  156050 0 60958 424386 1801 0 353 30 0 0\ncpu0 1 2 3 4 5 6 7 8 9 0\ncpu1 1 2 3 4 5 6 7 8 9 0\nintr 5\n";
        let (total, cpus) = parse_proc_stat(text, 100);
        assert_eq!(total, (156050 + 60958 + 424386 + 1801 + 353) * 10_000_000);
        assert_eq!(cpus, 2);
    }

    #[test]
    fn blkio_lines_parse_for_both_versions() {
        let v1 = blkio_v1("8:0 Read 4096\n8:0 Write 0\n8:0 Total 4096\nTotal 4096\n");
        assert_eq!(v1.len(), 3);
        assert_eq!(
            (v1[0].major, v1[0].op.as_str(), v1[0].value),
            (8, "Read", 4096)
        );
        let v2 = io_stat_v2("259:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(v2.len(), 2);
        assert_eq!((v2[0].op.as_str(), v2[0].value), ("read", 512));
        assert_eq!(
            (v2[1].op.as_str(), v2[1].value, v2[1].major),
            ("write", 1024, 259)
        );
    }

    #[test]
    fn network_counters_leave_out_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    2000      20    1    2    0     0          0         0     3000      30    3    4    0     0       0          0\n";
        let n = parse_net_dev(text);
        assert_eq!(n.len(), 1);
        let e = &n["eth0"];
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (2000, 20, 1, 2)
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (3000, 30, 3, 4)
        );
    }

    #[test]
    fn limits_are_capped_at_the_machine() {
        assert_eq!(cap_limit(9223372036854771712, 1 << 30), 1 << 30);
        assert_eq!(cap_limit(64 << 20, 1 << 30), 64 << 20);
        assert_eq!(cap_limit(u64::MAX, 0), u64::MAX);
        let k = parse_keyed("user 158075\nsystem 62107\nbad\n");
        assert_eq!(
            (get(&k, "user"), get(&k, "system"), get(&k, "none")),
            (158075, 62107, 0)
        );
    }
}
