//! The machine a run was measured on, for the report.

use serde::Serialize;

/// What the numbers depend on besides the engines.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub os: String,
    /// `v1`, `v1 (hybrid: cgroup2 at …)` or `v2`.
    pub cgroup: String,
    pub berth_version: String,
    /// The 1-minute load average when the run started: other work on the machine.
    pub load_average_at_start: f64,
    /// Mounts in the bench's mount namespace when the run started: every container's new
    /// mount namespace starts as a copy of them, so many mounts slow every start.
    pub host_mounts: usize,
}

impl Machine {
    /// Reads this machine's description from `/proc`, `/sys` and `/etc/os-release`.
    pub fn describe() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mountinfo = read("/proc/self/mountinfo");
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let mem_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".to_string());
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os,
            cgroup: cgroup_layout(&mountinfo),
            host_mounts: mountinfo.lines().count(),
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
            load_average_at_start: load_average(),
        }
    }

    /// One line for the report's header.
    pub fn summary(&self) -> String {
        format!(
            "{} cores ({}), {} GiB memory, Linux {}, {}, cgroup {}, {} mounts, berth {}; load average {:.2} at start",
            self.cores,
            self.cpu_model,
            self.memory_gib,
            self.kernel,
            self.os,
            self.cgroup,
            self.host_mounts,
            self.berth_version,
            self.load_average_at_start
        )
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The cgroup layout from a mountinfo text.
fn cgroup_layout(mountinfo: &str) -> String {
    let mut unified = None;
    for line in mountinfo.lines() {
        let Some((head, tail)) = line.split_once(" - ") else {
            continue;
        };
        let mount = head.split(' ').nth(4).unwrap_or_default();
        if tail.starts_with("cgroup2 ") {
            if mount == "/sys/fs/cgroup" {
                return "v2".to_string();
            }
            unified = Some(mount.to_string());
        }
    }
    match unified {
        Some(m) => format!("v1 (hybrid: cgroup2 at {m})"),
        None => "v1".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_cgroup_layouts_apart() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_layout(v2), "v2");
        let hybrid = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_layout(hybrid),
            "v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)"
        );
        assert_eq!(
            cgroup_layout("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
            "v1"
        );
    }

    #[test]
    fn describes_this_machine() {
        let m = Machine::describe();
        assert!(m.cores >= 1);
        assert!(!m.kernel.is_empty());
        assert!(m.summary().contains("cgroup"));
    }
}
