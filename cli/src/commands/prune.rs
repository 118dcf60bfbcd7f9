//! `container prune`.

use std::io::{BufRead, Write};

use clap::Args;

use super::ps::parse_filters;
use crate::backend::Backend;
use crate::units::human_size;

/// Remove all stopped containers
#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Asks a yes/no question on stdin; anything but `y`/`yes` is no.
pub fn confirm(question: &str) -> bool {
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// `berth container prune`.
pub async fn prune<B: Backend>(backend: &B, args: PruneArgs) -> anyhow::Result<()> {
    let filters = parse_filters(&args.filter)?;
    if !args.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )
    {
        return Ok(());
    }
    let report = backend.prune_containers(&filters).await?;
    print!(
        "{}",
        prune_report(
            report.containers_deleted.as_deref().unwrap_or(&[]),
            report.space_reclaimed
        )
    );
    Ok(())
}

fn prune_report(deleted: &[String], reclaimed: u64) -> String {
    let mut out = String::new();
    if !deleted.is_empty() {
        out.push_str("Deleted Containers:\n");
        for id in deleted {
            out.push_str(id);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed as f64)
    ));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_matches_docker() {
        assert_eq!(super::prune_report(&[], 0), "Total reclaimed space: 0B\n");
        assert_eq!(
            super::prune_report(&["abc".into(), "def".into()], 1234),
            "Deleted Containers:\nabc\ndef\n\nTotal reclaimed space: 1.234kB\n"
        );
    }
}
