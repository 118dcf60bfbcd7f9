//! `history` / `image history`: the steps an image was made of.

use api_types::ImageHistoryItem;
use clap::{ArgAction, Args};
use serde_json::{json, Value};

use crate::backend::Backend;
use crate::format::{ellipsis, short_id, RowFormat};
use crate::units::{human_size_with_precision, time_ago};

const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// Show the history of an image
#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, value_name = "bool", default_value = "true", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// `berth history`.
pub async fn history<B: Backend>(backend: &B, args: HistoryArgs) -> anyhow::Result<()> {
    let format_text = match args.format.as_deref().unwrap_or("") {
        "" | "table" if args.quiet => "{{.ID}}",
        f => f,
    };
    let format = RowFormat::parse(format_text, DEFAULT_TABLE)
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    let items = backend.image_history(&args.image).await?;
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<Value> = items
        .iter()
        .map(|h| history_row(h, !args.no_trunc, args.human, now))
        .collect();
    let header = json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
    });
    let out = format
        .render(&header, &rows)
        .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
    print!("{out}");
    Ok(())
}

/// One row as docker's history formatter shows it.
fn history_row(h: &ImageHistoryItem, trunc: bool, human: bool, now: i64) -> Value {
    let id = if trunc && h.id != "<missing>" {
        short_id(&h.id)
    } else {
        h.id.clone()
    };
    let created_at = rfc3339_local(h.created);
    let since = if human {
        time_ago(h.created, now)
    } else {
        created_at.clone()
    };
    let created_by = h.created_by.replace('\t', " ");
    let created_by = if trunc {
        ellipsis(&created_by, 45)
    } else {
        created_by
    };
    let size = if human {
        human_size_with_precision(h.size as f64, 3)
    } else {
        h.size.to_string()
    };
    json!({
        "ID": id, "CreatedSince": since, "CreatedAt": created_at, "CreatedBy": created_by,
        "Size": size, "Comment": h.comment,
    })
}

fn rfc3339_local(unix: i64) -> String {
    use chrono::{Local, TimeZone};
    Local
        .timestamp_opt(unix, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_as_docker_cuts_them() {
        let h = ImageHistoryItem {
            id: format!("sha256:{}", "a".repeat(64)),
            created: 100,
            created_by: "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789 in / ".into(),
            tags: None,
            size: 4_261_550,
            comment: String::new(),
        };
        let row = history_row(&h, true, true, 100 + 3 * 3600);
        assert_eq!(row["ID"], "aaaaaaaaaaaa");
        assert_eq!(row["CreatedSince"], "3 hours ago");
        assert_eq!(
            row["CreatedBy"],
            "/bin/sh -c #(nop) ADD file:0123456789abcdef0…"
        );
        assert_eq!(row["Size"], "4.26MB");
        let row = history_row(&h, false, false, 0);
        assert_eq!(row["Size"], "4261550");
        assert_eq!(row["ID"], h.id);
        let missing = ImageHistoryItem {
            id: "<missing>".into(),
            ..h
        };
        assert_eq!(history_row(&missing, true, true, 0)["ID"], "<missing>");
    }
}
