//! `save` / `image save`: images as a tar archive.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokio::io::AsyncWriteExt;

use crate::backend::Backend;
use crate::stream::stdout_is_terminal;

/// Save one or more images to a tar archive (streamed to STDOUT by default)
#[derive(Args, Debug, Clone)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<PathBuf>,
    /// Archive layout: docker (docker-archive, the default) or oci (OCI image layout)
    #[arg(long, value_name = "string", default_value = "docker")]
    pub format: String,
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `berth save`.
pub async fn save<B: Backend>(backend: &B, args: SaveArgs) -> anyhow::Result<()> {
    if !matches!(
        args.format.as_str(),
        "docker" | "docker-archive" | "oci" | "oci-archive"
    ) {
        anyhow::bail!(
            "invalid format {:?}: berth saves docker (docker-archive) or oci",
            args.format
        );
    }
    if args.output.is_none() && stdout_is_terminal() {
        anyhow::bail!(
            "failed to save image: cowardly refusing to save to a terminal. Use the -o flag or redirect"
        );
    }
    let mut archive = backend.save_images(&args.images, &args.format).await?;
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed, so a failure leaves no half archive.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".berth-save-")
                .tempfile_in(dir)
                .with_context(|| {
                    format!("failed to save image: cannot write to {}", dir.display())
                })?;
            let mut out = tokio::fs::File::from_std(tmp.reopen()?);
            tokio::io::copy(&mut archive, &mut out)
                .await
                .context("failed to save image")?;
            out.flush().await?;
            out.sync_all().await?;
            tmp.persist(path).with_context(|| {
                format!("failed to save image: cannot write {}", path.display())
            })?;
        }
        None => {
            let mut out = tokio::io::stdout();
            tokio::io::copy(&mut archive, &mut out)
                .await
                .context("failed to save image")?;
            out.flush().await?;
        }
    }
    Ok(())
}
