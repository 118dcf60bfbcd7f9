//! `export` and `diff`: a container's file system as a tar archive, and what it changed.

use std::io::Write;

use clap::Args;
use tokio::io::AsyncWriteExt;

use crate::backend::Backend;
use crate::stream::stdout_is_terminal;

/// Export a container's filesystem as a tar archive
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Inspect changes to files or directories on a container's filesystem
#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth export`.
pub async fn export<B: Backend>(backend: &B, args: ExportArgs) -> anyhow::Result<()> {
    let output = args.output.filter(|o| !o.is_empty());
    if output.is_none() && stdout_is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    if let Some(path) = &output {
        validate_output(path)?;
    }
    let mut reader = backend.export_container(&args.container).await?;
    match output {
        None => {
            let mut out = tokio::io::stdout();
            tokio::io::copy(&mut reader, &mut out).await?;
            out.flush().await?;
        }
        Some(path) => {
            // As docker's `CopyToFile`: a temporary file beside the target, renamed at the end.
            let target = std::path::Path::new(&path);
            let dir = target
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile_in(dir)?;
            let result = async {
                let mut file = tokio::fs::File::from_std(tmp.1.try_clone()?);
                tokio::io::copy(&mut reader, &mut file).await?;
                file.flush().await?;
                file.sync_all().await?;
                std::fs::rename(&tmp.0, target)
                    .map_err(|e| anyhow::anyhow!("failed to save to {path}: {e}"))
            }
            .await;
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp.0);
            }
            result?;
        }
    }
    Ok(())
}

/// `berth diff`.
pub async fn diff<B: Backend>(backend: &B, args: DiffArgs) -> anyhow::Result<()> {
    let changes = backend.container_changes(&args.container).await?;
    let mut out = std::io::stdout().lock();
    for c in changes {
        writeln!(out, "{} {}", c.kind.letter(), c.path)?;
    }
    Ok(())
}

fn validate_output(path: &str) -> anyhow::Result<()> {
    let parent = std::path::Path::new(path).parent();
    if let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
        if !p.exists() {
            anyhow::bail!(
                "failed to export container: invalid output path: directory {:?} does not exist",
                p.display().to_string()
            );
        }
    }
    Ok(())
}

/// A new file `docker-export-*` in `dir`.
fn tempfile_in(dir: &std::path::Path) -> anyhow::Result<(std::path::PathBuf, std::fs::File)> {
    for i in 0..100u32 {
        let name = dir.join(format!(".docker_temp_{}_{i}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&name)
        {
            Ok(f) => return Ok((name, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "failed to create a temporary file in {}: {e}",
                    dir.display()
                ))
            }
        }
    }
    anyhow::bail!("failed to create a temporary file in {}", dir.display())
}
