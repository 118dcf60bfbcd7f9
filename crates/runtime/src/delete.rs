//! `delete`: remove a container's runtime state and cgroup.

use std::path::Path;

use anyhow::Context;

/// Deletes container `id`; with `force`, kills it first if it still runs and succeeds
/// when it does not exist (runc's behaviour, which shims rely on for cleanup).
pub fn delete(root: &Path, id: &str, force: bool) -> anyhow::Result<()> {
    crate::validate_id(id)?;
    let dir = root.join(id);
    if !dir.join("state.json").exists() {
        // An aborted create can leave a directory without state; nothing else owns it.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("Cannot remove {dir:?}"))?;
        }
        if force {
            return Ok(());
        }
        anyhow::bail!("container {id:?} does not exist");
    }
    let mut container = crate::load_container(root, id)?;
    container
        .delete(force)
        .with_context(|| format!("Cannot delete container {id:?}"))
}
