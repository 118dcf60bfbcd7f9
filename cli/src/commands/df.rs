//! `system df`: what images, containers, volumes and the build cache take on disk.

use api_types::DiskUsage;
use clap::Args;
use serde_json::{json, Value};

use super::images::{image_header, image_rows};
use crate::backend::Backend;
use crate::format::{ellipsis, go_quote, short_id, tabwrite, RowFormat};
use crate::units::{human_size, time_ago};

const SUMMARY_TABLE: &str =
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

/// Show docker disk usage
#[derive(Args, Debug, Clone)]
pub struct DfArgs {
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// `berth system df`.
pub async fn df<B: Backend>(backend: &B, args: DfArgs) -> anyhow::Result<()> {
    let usage = backend.disk_usage().await?;
    let now = chrono::Utc::now().timestamp();
    if args.verbose {
        print!("{}", verbose(&usage, now));
        return Ok(());
    }
    let format = RowFormat::parse(args.format.as_deref().unwrap_or(""), SUMMARY_TABLE)
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    let out = format
        .render(&header, &summary_rows(&usage))
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    print!("{out}");
    Ok(())
}

fn with_percent(reclaimable: i64, total: i64) -> String {
    if total > 0 {
        format!(
            "{} ({}%)",
            human_size(reclaimable as f64),
            reclaimable * 100 / total
        )
    } else {
        human_size(reclaimable as f64)
    }
}

fn is_active(state: &str) -> bool {
    matches!(state, "running" | "paused" | "restarting")
}

/// The four summary rows, reckoned as docker's CLI reckons them.
fn summary_rows(u: &DiskUsage) -> Vec<Value> {
    let active_images = u.images.iter().filter(|i| i.containers > 0).count();
    let used: i64 = u
        .images
        .iter()
        .filter(|i| i.containers > 0 && i.size >= 0 && i.shared_size >= 0)
        .map(|i| i.size - i.shared_size)
        .sum();
    let container_size: i64 = u.containers.iter().filter_map(|c| c.size_rw).sum();
    let idle: i64 = u
        .containers
        .iter()
        .filter(|c| !is_active(&c.state))
        .filter_map(|c| c.size_rw)
        .sum();
    let cache = u.build_cache.as_deref().unwrap_or(&[]);
    let cache_idle: i64 = cache
        .iter()
        .filter(|c| !c.in_use && !c.shared)
        .map(|c| c.size)
        .sum();
    vec![
        json!({"Type": "Images", "TotalCount": u.images.len().to_string(), "Active": active_images.to_string(),
               "Size": human_size(u.layers_size as f64), "Reclaimable": with_percent(u.layers_size - used, u.layers_size)}),
        json!({"Type": "Containers", "TotalCount": u.containers.len().to_string(),
               "Active": u.containers.iter().filter(|c| is_active(&c.state)).count().to_string(),
               "Size": human_size(container_size as f64), "Reclaimable": with_percent(idle, container_size)}),
        json!({"Type": "Local Volumes", "TotalCount": u.volumes.len().to_string(), "Active": "0",
               "Size": "0B", "Reclaimable": "0B"}),
        json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(),
               "Active": cache.iter().filter(|c| c.in_use).count().to_string(),
               "Size": human_size(u.builder_size as f64), "Reclaimable": human_size(cache_idle as f64)}),
    ]
}

fn verbose(u: &DiskUsage, now: i64) -> String {
    let mut out = String::from("Images space usage:\n\n");
    let images = RowFormat::parse(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        "",
    );
    if let Ok(f) = images {
        let rows: Vec<Value> = u
            .images
            .iter()
            .flat_map(|i| {
                let mut rows = image_rows(i, true, false, now);
                for r in &mut rows {
                    r["SharedSize"] = human_size(i.shared_size as f64).into();
                    r["UniqueSize"] = human_size((i.size - i.shared_size) as f64).into();
                    r["Containers"] = i.containers.to_string().into();
                }
                rows
            })
            .collect();
        out.push_str(&f.render(&image_header(), &rows).unwrap_or_default());
    }
    out.push_str("\nContainers space usage:\n\n");
    let mut table =
        String::from("CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES\n");
    for c in &u.containers {
        table.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            short_id(&c.id),
            c.image,
            go_quote(&ellipsis(&c.command, 20)),
            c.mounts.len(),
            human_size(c.size_rw.unwrap_or(0) as f64),
            time_ago(c.created, now),
            c.status,
            c.names
                .iter()
                .map(|n| n.trim_start_matches('/'))
                .collect::<Vec<_>>()
                .join(","),
        ));
    }
    out.push_str(&tabwrite(&table, 10, 3));
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&tabwrite("VOLUME NAME\tLINKS\tSIZE\n", 10, 3));
    out.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(u.builder_size as f64)
    ));
    let mut table = String::from("CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n");
    for c in u.build_cache.iter().flatten() {
        let created =
            chrono::DateTime::parse_from_rfc3339(&c.created_at).map_or(0, |t| t.timestamp());
        let used = c
            .last_used_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(created, |t| t.timestamp());
        table.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            c.id.chars().take(12).collect::<String>(),
            c.kind,
            human_size(c.size as f64),
            time_ago(created, now),
            time_ago(used, now),
            c.usage_count,
            c.shared,
        ));
    }
    out.push_str(&tabwrite(&table, 10, 3));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::{BuildCacheRecord, ContainerSummary, ImageSummary};

    #[test]
    fn summary_rows_reckon_like_docker() {
        let u = DiskUsage {
            layers_size: 4_000_000,
            images: vec![
                ImageSummary {
                    size: 3_000_000,
                    shared_size: 0,
                    containers: 1,
                    ..Default::default()
                },
                ImageSummary {
                    size: 1_000_000,
                    shared_size: 0,
                    containers: 0,
                    ..Default::default()
                },
            ],
            containers: vec![
                ContainerSummary {
                    state: "running".into(),
                    size_rw: Some(10),
                    ..Default::default()
                },
                ContainerSummary {
                    state: "exited".into(),
                    size_rw: Some(30),
                    ..Default::default()
                },
            ],
            build_cache: Some(vec![BuildCacheRecord {
                size: 500,
                in_use: false,
                ..Default::default()
            }]),
            builder_size: 500,
            ..Default::default()
        };
        let rows = summary_rows(&u);
        assert_eq!(rows[0]["Active"], "1");
        assert_eq!(rows[0]["Size"], "4MB");
        assert_eq!(rows[0]["Reclaimable"], "1MB (25%)");
        assert_eq!(rows[1]["Reclaimable"], "30B (75%)");
        assert_eq!(rows[3]["TotalCount"], "1");
        assert_eq!(rows[3]["Reclaimable"], "500B");
    }
}
