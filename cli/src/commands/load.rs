//! `load` and `import`: images from tarballs.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::run::show_progress;
use crate::backend::{Backend, ByteReader, ImportOptions, ImportSource};
use crate::reference::ImageRef;
use crate::stream::{stdin_is_terminal, stdout_is_terminal};

/// Load an image from a tar archive or STDIN
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long, value_name = "string")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

async fn open_input(path: Option<&std::path::Path>) -> anyhow::Result<ByteReader> {
    Ok(match path {
        Some(p) => Box::pin(
            tokio::fs::File::open(p)
                .await
                .with_context(|| format!("open {}", p.display()))?,
        ),
        None => Box::pin(tokio::io::stdin()),
    })
}

/// `berth load`.
pub async fn load<B: Backend>(backend: &B, args: LoadArgs) -> anyhow::Result<()> {
    if args.input.is_none() && stdin_is_terminal() {
        anyhow::bail!("requested load from stdin, but stdin is empty");
    }
    let input = open_input(args.input.as_deref()).await?;
    let quiet = args.quiet || !stdout_is_terminal();
    let progress = backend.load_images(input, quiet).await?;
    show_progress(progress, &mut std::io::stdout()).await
}

/// Import the contents from a tarball to create a filesystem image
#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long, value_name = "string")]
    pub message: Option<String>,
    /// A tarball, `-` for stdin, or a URL
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `berth import`.
pub async fn import<B: Backend>(backend: &B, args: ImportArgs) -> anyhow::Result<()> {
    if let Some(r) = &args.reference {
        ImageRef::parse(r).map_err(anyhow::Error::msg)?;
    }
    let source = if args.source == "-" {
        ImportSource::Upload(open_input(None).await?)
    } else if args.source.starts_with("http://") || args.source.starts_with("https://") {
        ImportSource::Url(args.source.clone())
    } else {
        ImportSource::Upload(open_input(Some(std::path::Path::new(&args.source))).await?)
    };
    let opts = ImportOptions {
        source,
        reference: args.reference,
        message: args.message,
        changes: args.change,
    };
    let progress = backend.import_image(opts).await?;
    show_progress(progress, &mut std::io::stdout()).await
}
