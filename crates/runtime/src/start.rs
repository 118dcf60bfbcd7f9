//! `start`: let a created container's process execute the user's program.

use std::path::Path;

use anyhow::Context;

/// Starts the created container `id`.
pub fn start(root: &Path, id: &str) -> anyhow::Result<()> {
    let mut container = crate::load_container(root, id)?;
    container
        .start()
        .with_context(|| format!("Cannot start container {id:?}"))
}
