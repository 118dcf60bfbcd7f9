//! What the bench reads from `/proc`: memory and CPU time of a process, its parent and start
//! time, and the pid of the daemon behind a Unix socket.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A field of `/proc/<pid>/status` or `smaps_rollup` in KiB (`VmRSS:     1234 kB`).
fn kib_field(path: &str, field: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The resident set size of `pid` in KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// The proportional set size of `pid` in KiB: its resident pages, each shared page divided
/// by the number of processes mapping it (so shims sharing one binary are not counted many
/// times over).
pub fn pss_kib(pid: i32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// The fields of `/proc/<pid>/stat` after the command name, counted from `state` (field 3).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split(' ').map(String::from).collect())
}

/// The parent of `pid`.
pub fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// When `pid` started, in clock ticks since boot: with the pid, it names one process even
/// after the pid is reused.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` still runs (and is not a zombie).
pub fn is_alive(pid: i32, start: u64) -> bool {
    stat_fields(pid).is_some_and(|f| {
        f.first().is_some_and(|s| s != "Z") && f.get(19).and_then(|v| v.parse().ok()) == Some(start)
    })
}

/// The CPU time `pid` used, with that of the children it has reaped (utime, stime, cutime,
/// cstime), at the kernel's clock-tick resolution.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let f = stat_fields(pid)?;
    let ticks: u64 = f
        .get(11..15)?
        .iter()
        .map(|v| v.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|v| *v > 0)
        .unwrap_or(100) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// The pid of the process listening on the Unix socket `path`, from the peer credentials of
/// a connection to it.
pub fn socket_peer_pid(path: &Path) -> Option<i32> {
    let stream = UnixStream::connect(path).ok()?;
    let cred =
        nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    Some(cred.pid()).filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        assert!(rss_kib(me).unwrap() > 0);
        assert!(pss_kib(me).unwrap() > 0);
        assert_eq!(ppid(me), Some(nix::unistd::getppid().as_raw()));
        let start = start_time(me).unwrap();
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1));
        assert!(cpu_time(me).is_some());
    }

    #[test]
    fn a_missing_process_has_nothing() {
        assert_eq!(rss_kib(i32::MAX), None);
        assert_eq!(ppid(i32::MAX), None);
        assert!(!is_alive(i32::MAX, 0));
    }

    #[test]
    fn the_peer_of_a_socket_is_its_listener() {
        let dir = std::env::temp_dir().join(format!("berth-peer-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(socket_peer_pid(&sock), Some(std::process::id() as i32));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
