//! `image prune` and `builder prune`.

use api_types::ImageDeleteItem;
use clap::Args;

use super::prune::confirm;
use super::ps::parse_filters;
use crate::backend::Backend;
use crate::units::human_size;

/// Remove unused images
#[derive(Args, Debug, Clone)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `berth image prune`.
pub async fn image_prune<B: Backend>(backend: &B, args: ImagePruneArgs) -> anyhow::Result<()> {
    let mut filters = parse_filters(&args.filter)?;
    if args.all {
        filters
            .add_arg("dangling=false")
            .map_err(anyhow::Error::msg)?;
    }
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !confirm(&format!("{warning}\nAre you sure you want to continue?")) {
        return Ok(());
    }
    let report = backend.prune_images(&filters).await?;
    print!(
        "{}",
        image_report(
            report.images_deleted.as_deref().unwrap_or(&[]),
            report.space_reclaimed
        )
    );
    Ok(())
}

fn image_report(deleted: &[ImageDeleteItem], reclaimed: i64) -> String {
    let mut out = String::new();
    if !deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for item in deleted {
            match item {
                ImageDeleteItem::Untagged(t) => out.push_str(&format!("untagged: {t}\n")),
                ImageDeleteItem::Deleted(d) => out.push_str(&format!("deleted: {d}\n")),
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed as f64)
    ));
    out
}

/// Remove build cache
#[derive(Args, Debug, Clone)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `berth builder prune`.
pub async fn builder_prune<B: Backend>(backend: &B, args: BuilderPruneArgs) -> anyhow::Result<()> {
    let filters = parse_filters(&args.filter)?;
    let warning = if args.all {
        "WARNING! This will remove all build cache."
    } else {
        "WARNING! This will remove all dangling build cache."
    };
    if !args.force && !confirm(&format!("{warning}\nAre you sure you want to continue?")) {
        return Ok(());
    }
    let report = backend.prune_build_cache(&filters, args.all).await?;
    let mut out = String::new();
    if let Some(deleted) = report.caches_deleted.as_ref().filter(|d| !d.is_empty()) {
        out.push_str("Deleted build cache objects:\n");
        for id in deleted {
            out.push_str(id.strip_prefix("sha256:").unwrap_or(id));
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(report.space_reclaimed as f64)
    ));
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_matches_docker() {
        assert_eq!(image_report(&[], 0), "Total reclaimed space: 0B\n");
        assert_eq!(
            image_report(
                &[
                    ImageDeleteItem::Untagged("a:1".into()),
                    ImageDeleteItem::Deleted("sha256:ab".into())
                ],
                4_261_550
            ),
            "Deleted Images:\nuntagged: a:1\ndeleted: sha256:ab\n\nTotal reclaimed space: 4.262MB\n"
        );
    }
}
