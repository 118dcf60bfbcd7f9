//! `ps` / `container ls`: list containers with docker's columns and placeholders.

use api_types::filters::Filters;
use api_types::ContainerSummary;
use clap::Args;
use serde_json::{json, Map, Value};

use crate::backend::{Backend, ContainerListOptions};
use crate::format::{ellipsis, go_quote, short_id, RowFormat};
use crate::reference::ImageRef;
use crate::units::{human_size_with_precision, time_ago};

const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// List containers
#[derive(Args, Debug, Clone, Default)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", value_name = "int", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

/// Parses `-f name=value` flags.
pub fn parse_filters(args: &[String]) -> anyhow::Result<Filters> {
    let mut filters = Filters::default();
    for a in args {
        filters.add_arg(a).map_err(anyhow::Error::msg)?;
    }
    Ok(filters)
}

/// `berth ps`.
pub async fn ps<B: Backend>(backend: &B, args: PsArgs) -> anyhow::Result<()> {
    let user_format = args.format.clone().unwrap_or_default();
    let format_text = match user_format.as_str() {
        "" | "table" if args.quiet => "{{.ID}}".to_string(),
        "" | "table" if args.size => format!("{DEFAULT_TABLE}\t{{{{.Size}}}}"),
        f => f.to_string(),
    };
    let format = RowFormat::parse(&format_text, DEFAULT_TABLE)
        .map_err(|e| anyhow::anyhow!("failed to parse template: {e}"))?;
    let limit = if args.latest && args.last == -1 {
        1
    } else {
        args.last
    };
    let opts = ContainerListOptions {
        all: args.all,
        limit: usize::try_from(limit).ok().filter(|&n| n > 0),
        size: args.size || format_text.contains(".Size"),
        filters: parse_filters(&args.filter)?,
    };
    let containers = backend.list_containers(&opts).await?;
    let now = chrono::Utc::now().timestamp();
    let wanted = Placeholders::printed_by(&format_text);
    let rows: Vec<Value> = containers
        .iter()
        .map(|c| container_row_of(c, !args.no_trunc, now, &wanted))
        .collect();
    let out = format
        .render(&container_header(), &rows)
        .map_err(|e| anyhow::anyhow!("failed to execute template: {e}"))?;
    print!("{out}");
    Ok(())
}

/// The header row: each placeholder's column title.
pub fn container_header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
    })
}

/// Every placeholder of a container row.
const PLACEHOLDERS: [&str; 16] = [
    "ID",
    "Image",
    "Command",
    "CreatedAt",
    "RunningFor",
    "Ports",
    "State",
    "Status",
    "Size",
    "Names",
    "Labels",
    "Label",
    "Mounts",
    "Networks",
    "LocalVolumes",
    "Platform",
];

/// The placeholders a format can print: those it names, or all of them when it prints a
/// row whole or looks into it other than by name (`json`, `{{.}}`, `range`, `index`, …).
/// A listing of many containers then computes only what it shows.
pub struct Placeholders(Vec<&'static str>);

impl Placeholders {
    pub fn all() -> Self {
        Self(PLACEHOLDERS.to_vec())
    }

    /// For a `--format` as the user gave it (empty or `table` is the default table).
    pub fn printed_by(format: &str) -> Self {
        let format = match format {
            "" | "table" => DEFAULT_TABLE,
            f => f,
        };
        let whole = [
            "json", "{{.}}", "{{ . }}", "range", "index", "$", "with", "printf", "len", "slice",
            "call", "{{-.", "{{- .",
        ]
        .iter()
        .any(|w| format.contains(w));
        if whole {
            return Self::all();
        }
        Self(
            PLACEHOLDERS
                .into_iter()
                .filter(|k| format.contains(&format!(".{k}")))
                .collect(),
        )
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains(&key)
    }
}

/// One container's placeholders, as docker's `ContainerContext` computes them.
#[cfg(test)]
pub fn container_row(c: &ContainerSummary, trunc: bool, now: i64) -> Value {
    container_row_of(c, trunc, now, &Placeholders::all())
}

/// The placeholders of `wanted` for one container.
pub fn container_row_of(
    c: &ContainerSummary,
    trunc: bool,
    now: i64,
    wanted: &Placeholders,
) -> Value {
    let mut row = Map::new();
    let mut put = |key: &str, value: &dyn Fn() -> Value| {
        if wanted.has(key) {
            row.insert(key.to_string(), value());
        }
    };
    put("ID", &|| {
        Value::from(if trunc { short_id(&c.id) } else { c.id.clone() })
    });
    put("Image", &|| Value::from(display_image(c, trunc)));
    put("Command", &|| {
        Value::from(if trunc {
            go_quote(&ellipsis(&c.command, 20))
        } else {
            go_quote(&c.command)
        })
    });
    put("CreatedAt", &|| Value::from(local_time_string(c.created)));
    put("RunningFor", &|| Value::from(time_ago(c.created, now)));
    put("Ports", &|| Value::from(display_ports(&c.ports)));
    put("State", &|| Value::from(c.state.clone()));
    put("Status", &|| Value::from(c.status.clone()));
    put("Size", &|| Value::from(size_of(c)));
    put("Names", &|| {
        Value::from(
            c.names
                .iter()
                .map(|n| n.strip_prefix('/').unwrap_or(n))
                .filter(|n| !trunc || !n.contains('/'))
                .collect::<Vec<_>>()
                .join(","),
        )
    });
    put("Labels", &|| {
        Value::from(
            c.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        )
    });
    put("Label", &|| {
        Value::Object(
            c.labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    });
    put("Mounts", &|| Value::from(display_mounts(c, trunc)));
    put("Networks", &|| {
        Value::from(
            c.network_settings
                .networks
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
        )
    });
    put("LocalVolumes", &|| {
        Value::from(
            c.mounts
                .iter()
                .filter(|m| m["Driver"] == "local")
                .count()
                .to_string(),
        )
    });
    put("Platform", &|| Value::from(""));
    Value::Object(row)
}

fn size_of(c: &ContainerSummary) -> String {
    let size = human_size_with_precision(c.size_rw.unwrap_or(0) as f64, 3);
    match c.size_root_fs.filter(|s| *s > 0) {
        Some(root) => format!(
            "{size} (virtual {})",
            human_size_with_precision(root as f64, 3)
        ),
        None => size,
    }
}

fn display_mounts(c: &ContainerSummary, trunc: bool) -> String {
    c.mounts
        .iter()
        .map(|m| {
            let name = m["Name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(m["Source"].as_str())
                .unwrap_or("");
            if trunc {
                ellipsis(name, 15)
            } else {
                name.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn display_image(c: &ContainerSummary, trunc: bool) -> String {
    if c.image.is_empty() {
        return "<no image>".into();
    }
    if trunc {
        if !c.image_id.is_empty() && short_id(&c.image_id) == short_id(&c.image) {
            return short_id(&c.image);
        }
        if let Ok(r) = ImageRef::parse(&c.image) {
            if r.digest.is_some() {
                return match &r.tag {
                    Some(t) => format!("{}:{t}", r.familiar_name()),
                    None => r.familiar_name(),
                };
            }
        }
    }
    c.image.clone()
}

/// Go's `time.Unix(t, 0).String()` in local time: `2026-11-27 14:37:17 +0000 UTC`.
pub fn local_time_string(unix: i64) -> String {
    use chrono::{Local, Offset, TimeZone};
    match Local.timestamp_opt(unix, 0).single() {
        Some(t) => {
            let zone = if t.offset().fix().local_minus_utc() == 0 {
                "UTC".to_string()
            } else {
                t.format("%z").to_string()
            };
            format!("{} {zone}", t.format("%Y-%m-%d %H:%M:%S %z"))
        }
        None => unix.to_string(),
    }
}

/// The PORTS column: `0.0.0.0:8080->80/tcp, 443/tcp`.
pub fn display_ports(ports: &[Value]) -> String {
    let mut out: Vec<String> = ports
        .iter()
        .map(|p| {
            let private = p["PrivatePort"].as_u64().unwrap_or(0);
            let kind = p["Type"].as_str().unwrap_or("tcp");
            match (
                p["IP"].as_str().filter(|ip| !ip.is_empty()),
                p["PublicPort"].as_u64(),
            ) {
                (Some(ip), Some(public)) if public != 0 => {
                    let host = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    format!("{host}:{public}->{private}/{kind}")
                }
                _ => format!("{private}/{kind}"),
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ContainerSummary> {
        serde_json::from_str(include_str!("../../tests/fixtures/containers-list.json")).unwrap()
    }

    #[test]
    fn default_table_matches_docker_ps() {
        let now = 1_795_790_400;
        let rows: Vec<Value> = sample()
            .iter()
            .map(|c| container_row(c, true, now))
            .collect();
        let out = RowFormat::parse("", DEFAULT_TABLE)
            .unwrap()
            .render(&container_header(), &rows)
            .unwrap();
        let expected = "\
CONTAINER ID   IMAGE          COMMAND                   CREATED         STATUS         PORTS     NAMES
c9283e8a7e03   f87059d7cfa0   \"sleep 9999\"              2 minutes ago   Up 2 minutes             lucid_shtern
577055a12f8f   f87059d7cfa0   \"sh -c 'trap \\\"echo g…\"   3 minutes ago   Up 3 minutes             ck-c2
03ed8a5ead50   f87059d7cfa0   \"sleep 300\"               4 minutes ago   Up 3 minutes             ck-d
";
        assert_eq!(out, expected);
    }

    #[test]
    fn rows_hold_what_their_format_prints() {
        let now = 1_800_000_000;
        for fmt in [
            "",
            "table",
            "json",
            "table {{.ID}}\t{{.Status}}",
            "{{.ID}}",
            "table {{.Names}}\t{{.Labels}}\t{{.Label \"a\"}}",
            "{{.CreatedAt}} {{.Size}} {{.Mounts}} {{.Networks}} {{.LocalVolumes}} {{.State}}",
            "{{json .}}",
            "{{range $k, $v := .Label}}{{$k}}{{end}}",
            "{{index .Label \"a\"}}",
        ] {
            let format = RowFormat::parse(fmt, DEFAULT_TABLE).unwrap();
            let wanted = Placeholders::printed_by(fmt);
            for c in sample() {
                assert_eq!(
                    format
                        .render(
                            &container_header(),
                            &[container_row_of(&c, true, now, &wanted)]
                        )
                        .unwrap(),
                    format
                        .render(&container_header(), &[container_row(&c, true, now)])
                        .unwrap(),
                    "{fmt}"
                );
            }
        }
        assert_eq!(Placeholders::printed_by("{{.ID}}").0, ["ID"]);
    }

    #[test]
    fn placeholders_and_no_trunc() {
        let c = &sample()[1];
        let row = container_row(c, false, 1_795_790_400);
        assert_eq!(row["ID"], c.id.as_str());
        assert!(row["Command"].as_str().unwrap().ends_with("done'\""));
        let f = RowFormat::parse(
            r#"{{.Names}} {{.Labels}} {{.Label "ck"}} {{.State}} {{.Networks}}"#,
            DEFAULT_TABLE,
        )
        .unwrap();
        assert_eq!(
            f.render(&container_header(), &[row]).unwrap(),
            "ck-c2 ck=1 1 running none\n"
        );
        let f = RowFormat::parse(r"table {{.ID}}\t{{.Size}}", DEFAULT_TABLE).unwrap();
        let mut c = c.clone();
        c.size_rw = Some(12);
        c.size_root_fs = Some(1_985_586);
        let out = f
            .render(&container_header(), &[container_row(&c, true, 0)])
            .unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   SIZE\n577055a12f8f   12B (virtual 1.99MB)\n"
        );
        assert!(RowFormat::parse("{{.Bogus}}", DEFAULT_TABLE)
            .unwrap()
            .render(&container_header(), &[container_row(&c, true, 0)])
            .is_err());
    }

    #[test]
    fn ports_print_like_docker() {
        let ports = vec![
            json!({"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}),
            json!({"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}),
            json!({"PrivatePort":443,"Type":"tcp"}),
        ];
        assert_eq!(
            display_ports(&ports),
            "0.0.0.0:8080->80/tcp, 443/tcp, [::]:8080->80/tcp"
        );
    }
}
