//! `kill`: send a signal to a container's first process, or with `--all` to every
//! process in its cgroup.

use std::path::Path;

use anyhow::{anyhow, Context};
use libcontainer::signal::Signal;

/// Sends `signal` (a name such as `KILL`/`SIGKILL` or a number) to container `id`.
pub fn kill(root: &Path, id: &str, signal: &str, all: bool) -> anyhow::Result<()> {
    let signal = Signal::try_from(signal).map_err(|_| anyhow!("invalid signal {signal:?}"))?;
    let mut container = crate::load_container(root, id)?;
    if !container.can_kill() && !all {
        return Err(anyhow!("container {id:?} is not running"));
    }
    container
        .kill(signal, all)
        .with_context(|| format!("Cannot signal container {id:?}"))
}
