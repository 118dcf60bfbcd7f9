//! The image every engine runs: busybox, built by the repository's
//! `scripts/make-busybox-image.sh` (embedded, so an installed `berth` can bench too) from
//! Debian's busybox-static, and loaded into each engine with its own `load -i`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The script, as in the repository.
const SCRIPT: &str = include_str!("../../../../scripts/make-busybox-image.sh");

/// The tag the bench loads the image under: its own, so an engine's `busybox` is left alone.
pub const TAG: &str = "berth-bench-busybox:latest";

/// Builds the `docker save` archive in `dir`; returns its path.
pub fn build(dir: &Path) -> Result<PathBuf> {
    let script = dir.join("make-busybox-image.sh");
    std::fs::write(&script, SCRIPT)
        .with_context(|| format!("Cannot write {}", script.display()))?;
    let archive = dir.join("busybox.tar");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(&archive).args(["--tag", TAG]);
    let out = super::command::run(cmd, Duration::from_secs(120))?;
    if !out.status.success() {
        bail!("Cannot build the busybox image: {}", out.reason());
    }
    Ok(archive)
}
