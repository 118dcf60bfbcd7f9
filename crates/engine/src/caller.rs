//! Who asked: the identity that travels with every engine call and every event.

use serde::{Deserialize, Serialize};

/// The identity of the process on whose behalf the engine acts.
///
/// berthd builds it from the socket peer's credentials (SO_PEERCRED); daemonless mode from
/// the process itself. `loginuid` is the audit login uid (`/proc/<pid>/loginuid`), which
/// survives `sudo` and so names the person behind a root client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: i32,
    /// `None` when the kernel has no login uid for the process (unset is `u32::MAX`).
    pub loginuid: Option<u32>,
}

impl Caller {
    /// The identity of a peer process, reading its login uid from `/proc`.
    pub fn from_peer(uid: u32, gid: u32, pid: i32) -> Self {
        Self {
            uid,
            gid,
            pid,
            loginuid: read_loginuid(pid),
        }
    }

    /// The identity of this very process (daemonless mode).
    pub fn current() -> Self {
        Self::from_peer(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
            std::process::id() as i32,
        )
    }

    /// The engine acting on its own behalf (start-up reconciliation, auto-remove).
    pub fn engine() -> Self {
        Self {
            uid: 0,
            gid: 0,
            pid: std::process::id() as i32,
            loginuid: None,
        }
    }
}

fn read_loginuid(pid: i32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/loginuid")).ok()?;
    match text.trim().parse::<u32>() {
        Ok(u32::MAX) | Err(_) => None,
        Ok(uid) => Some(uid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_caller_is_this_process() {
        let c = Caller::current();
        assert_eq!(c.pid, std::process::id() as i32);
        assert_eq!(c.uid, nix::unistd::getuid().as_raw());
    }
}
