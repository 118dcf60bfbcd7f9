//! `commit` / `container commit`: a new image from a container's changes.

use clap::{ArgAction, Args};

use crate::backend::{Backend, CommitOptions};
use crate::reference::ImageRef;

/// Create a new image from a container's changes
#[derive(Args, Debug, Clone)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long, value_name = "string", default_value = "")]
    pub author: String,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long, value_name = "string", default_value = "")]
    pub message: String,
    /// Pause container during commit
    #[arg(short = 'p', long, value_name = "bool", default_value = "true", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `berth commit`: prints the new image's ID.
pub async fn commit<B: Backend>(backend: &B, args: CommitArgs) -> anyhow::Result<()> {
    let (repo, tag) = match args.reference.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => {
            let parsed = ImageRef::parse(r).map_err(anyhow::Error::msg)?;
            if parsed.digest.is_some() {
                anyhow::bail!("refusing to create a tag with a digest reference");
            }
            (Some(parsed.full_name()), parsed.tag.clone())
        }
        None => (None, None),
    };
    let opts = CommitOptions {
        repo,
        tag,
        comment: args.message,
        author: args.author,
        pause: args.pause,
        changes: args.change,
        config: None,
    };
    let id = backend.commit_container(&args.container, &opts).await?;
    println!("{id}");
    Ok(())
}
