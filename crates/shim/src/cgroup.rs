//! The container's OOM-kill count, read from its memory cgroup before the runtime deletes
//! it. Where that cgroup lives is found at run time from /proc/self/mountinfo: the v1
//! `memory` hierarchy (`memory.oom_control`) when there is one, otherwise cgroup v2
//! (`memory.events`), so v1, hybrid and unified hosts all work.

use std::path::{Path, PathBuf};

/// The bundle's `linux.cgroupsPath`, if it has one.
pub fn cgroups_path_of(bundle: &Path) -> std::io::Result<Option<String>> {
    let bytes = std::fs::read(bundle.join("config.json"))?;
    let spec: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(spec["linux"]["cgroupsPath"].as_str().map(str::to_owned))
}

/// How many processes of the cgroup at `cgroups_path` the OOM killer has killed.
pub fn oom_kill_count(cgroups_path: &str) -> std::io::Result<u64> {
    if cgroups_path.contains(':') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("systemd-style cgroupsPath {cgroups_path:?} is not supported"),
        ));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let (file, key) = memory_counter_file(&mountinfo, cgroups_path).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no memory cgroup hierarchy is mounted",
        )
    })?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| std::io::Error::new(e.kind(), format!("Cannot read {file:?}: {e}")))?;
    Ok(counter(&text, key).unwrap_or(0))
}

/// The file holding the OOM-kill counter of `cgroups_path`, and the counter's key.
fn memory_counter_file(mountinfo: &str, cgroups_path: &str) -> Option<(PathBuf, &'static str)> {
    let relative = cgroups_path.trim_start_matches('/');
    let mut v2 = None;
    for line in mountinfo.lines() {
        // `36 35 0:30 / /sys/fs/cgroup/memory rw,… shared:1 - cgroup cgroup rw,memory`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut right = right.split(' ');
        let (fstype, super_opts) = (right.next(), right.nth(1).unwrap_or(""));
        match fstype {
            Some("cgroup") if super_opts.split(',').any(|o| o == "memory") => {
                let dir = PathBuf::from(unescape(mount_point)).join(relative);
                return Some((dir.join("memory.oom_control"), "oom_kill"));
            }
            Some("cgroup2") if v2.is_none() => {
                let dir = PathBuf::from(unescape(mount_point)).join(relative);
                v2 = Some((dir.join("memory.events"), "oom_kill"));
            }
            _ => {}
        }
    }
    v2
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in a flat-keyed cgroup file (`key value` per line).
fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 253:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const UNIFIED: &str = "\
25 1 253:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn v1_memory_wins_over_a_controllerless_v2_mount() {
        assert_eq!(
            memory_counter_file(HYBRID, "/berth-test/abc"),
            Some((
                PathBuf::from("/sys/fs/cgroup/memory/berth-test/abc/memory.oom_control"),
                "oom_kill"
            ))
        );
    }

    #[test]
    fn unified_hosts_use_memory_events() {
        assert_eq!(
            memory_counter_file(UNIFIED, "/berth/abc"),
            Some((
                PathBuf::from("/sys/fs/cgroup/berth/abc/memory.events"),
                "oom_kill"
            ))
        );
    }

    #[test]
    fn counters_are_read_by_key() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(counter(v1, "oom_kill"), Some(2));
        let v2 = "low 0\nhigh 0\nmax 14\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(v2, "oom_kill"), Some(1));
        assert_eq!(counter("oom 3\n", "oom_kill"), None);
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
    }
}
