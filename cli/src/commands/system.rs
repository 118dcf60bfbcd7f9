//! `version`, `info` and `events`.

use api_types::{EventMessage, Info, Version, VersionComponent};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::ps::parse_filters;
use crate::backend::{Backend, EventsOptions};
use crate::format::tabwrite;
use crate::template::Template;
use crate::units::{api_timestamp, bytes_size};
use api_types::API_VERSION as CLIENT_API_VERSION;

/// The version of this client.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Docker's name for this machine's architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Show the berth version information
#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
}

fn client_json(api_version: &str) -> Value {
    json!({
        "Platform": {"Name": ""},
        "Version": CLIENT_VERSION,
        "ApiVersion": api_version,
        "DefaultAPIVersion": CLIENT_API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": go_arch(),
        "Context": "default",
    })
}

fn client_section(api_version: &str) -> String {
    let mut api = api_version.to_string();
    if api_version != CLIENT_API_VERSION {
        api = format!("{api_version} (downgraded from {CLIENT_API_VERSION})");
    }
    format!(
        "Client:\n Version:\t{CLIENT_VERSION}\n API version:\t{api}\n OS/Arch:\t{}/{}\n Context:\tdefault\n",
        std::env::consts::OS,
        go_arch()
    )
}

/// The server part of `version`, with docker's layout.
pub fn server_section(v: &Version) -> String {
    let mut out = String::from("Server:");
    if !v.platform.name.is_empty() {
        out.push(' ');
        out.push_str(&v.platform.name);
    }
    out.push('\n');
    let components = if v.components.is_empty() {
        let details = [
            ("ApiVersion", &v.api_version),
            ("MinAPIVersion", &v.min_api_version),
            ("GitCommit", &v.git_commit),
            ("GoVersion", &v.go_version),
            ("Os", &v.os),
            ("Arch", &v.arch),
            ("KernelVersion", &v.kernel_version),
            ("BuildTime", &v.build_time),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
        vec![VersionComponent {
            name: "Engine".into(),
            version: v.version.clone(),
            details,
        }]
    } else {
        v.components.clone()
    };
    for c in &components {
        out.push_str(&format!(" {}:\n", c.name));
        let d = |k: &str| c.details.get(k).cloned().unwrap_or_default();
        if c.name == "Engine" {
            out.push_str(&format!("  Version:\t{}\n", c.version));
            out.push_str(&format!(
                "  API version:\t{} (minimum version {})\n",
                d("ApiVersion"),
                d("MinAPIVersion")
            ));
            out.push_str(&format!("  Go version:\t{}\n", d("GoVersion")));
            out.push_str(&format!("  Git commit:\t{}\n", d("GitCommit")));
            out.push_str(&format!("  Built:\t{}\n", ansic_time(&d("BuildTime"))));
            out.push_str(&format!("  OS/Arch:\t{}/{}\n", d("Os"), d("Arch")));
            out.push_str(&format!("  Experimental:\t{}\n", d("Experimental")));
        } else {
            out.push_str(&format!("  Version:\t{}\n", c.version));
            for (k, v) in &c.details {
                out.push_str(&format!("  {k}:\t{v}\n"));
            }
        }
    }
    out
}

/// Go's `time.ANSIC` rendering of an RFC 3339 time (`Thu May  7 21:09:36 2026`), as
/// docker shows build times; anything else is shown as is.
fn ansic_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// `berth version`.
pub async fn version<B: Backend>(backend: &B, args: VersionArgs) -> anyhow::Result<()> {
    let ping = backend.ping().await;
    let server = match &ping {
        Ok(_) => Some(backend.version().await),
        Err(_) => None,
    };
    let api = ping
        .as_ref()
        .map(|p| p.api_version.clone())
        .unwrap_or_else(|_| CLIENT_API_VERSION.to_string());
    if let Some(f) = args.format.as_deref().filter(|f| !f.is_empty()) {
        let t = Template::parse(f)?;
        let server_json = match &server {
            Some(Ok(v)) => serde_json::to_value(v)?,
            _ => Value::Null,
        };
        println!(
            "{}",
            t.render(&json!({"Client": client_json(&api), "Server": server_json}))?
        );
    } else {
        print!("{}", tabwrite(&client_section(&api), 20, 1));
        if let Some(Ok(v)) = &server {
            print!("\n{}", tabwrite(&server_section(v), 20, 1));
        }
    }
    match (ping, server) {
        (Err(e), _) | (Ok(_), Some(Err(e))) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Display system-wide information
#[derive(Args, Debug, Clone)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
}

/// `berth info`.
pub async fn info<B: Backend>(backend: &B, args: InfoArgs) -> anyhow::Result<()> {
    if let Some(f) = args.format.as_deref().filter(|f| !f.is_empty()) {
        let t = Template::parse(f)?;
        let info = backend.info().await?;
        let mut v = serde_json::to_value(&info)?;
        v["ClientInfo"] = json!({"Version": CLIENT_VERSION, "Context": "default", "Debug": false});
        println!("{}", t.render(&v)?);
        return Ok(());
    }
    print!("Client:\n Version:    {CLIENT_VERSION}\n Context:    default\n Debug Mode: false\n\n");
    let info = backend.info().await?;
    print!("{}", server_info(&info));
    for w in info.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    Ok(())
}

fn join_strings(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The server part of `info`, with docker's layout.
pub fn server_info(i: &Info) -> String {
    let mut o = String::from("Server:\n");
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    line(format!(" Containers: {}", i.containers));
    line(format!("  Running: {}", i.containers_running));
    line(format!("  Paused: {}", i.containers_paused));
    line(format!("  Stopped: {}", i.containers_stopped));
    line(format!(" Images: {}", i.images));
    line(format!(" Server Version: {}", i.server_version));
    line(format!(" Storage Driver: {}", i.driver));
    for [k, v] in &i.driver_status {
        line(format!("  {k}: {v}"));
    }
    line(format!(" Logging Driver: {}", i.logging_driver));
    line(format!(" Cgroup Driver: {}", i.cgroup_driver));
    line(format!(" Cgroup Version: {}", i.cgroup_version));
    line(" Plugins:".into());
    line(format!("  Volume: {}", join_strings(&i.plugins["Volume"])));
    line(format!(
        "  Network: {}",
        join_strings(&i.plugins["Network"])
    ));
    line(format!("  Log: {}", join_strings(&i.plugins["Log"])));
    let swarm = i.swarm["LocalNodeState"].as_str().unwrap_or("inactive");
    line(format!(" Swarm: {swarm}"));
    line(format!(
        " Runtimes: {}",
        i.runtimes.keys().cloned().collect::<Vec<_>>().join(" ")
    ));
    line(format!(" Default Runtime: {}", i.default_runtime));
    line(format!(" Init Binary: {}", i.init_binary));
    if !i.security_options.is_empty() {
        line(" Security Options:".into());
        for opt in &i.security_options {
            for kv in opt.split(',') {
                match kv.split_once('=') {
                    Some(("name", v)) => line(format!("  {v}")),
                    Some((k, v)) => {
                        let mut key = k.to_string();
                        if let Some(first) = key.get_mut(..1) {
                            first.make_ascii_uppercase();
                        }
                        line(format!("   {key}: {v}"));
                    }
                    None => line(format!("  {kv}")),
                }
            }
        }
    }
    line(format!(" Kernel Version: {}", i.kernel_version));
    line(format!(" Operating System: {}", i.operating_system));
    line(format!(" OSType: {}", i.os_type));
    line(format!(" Architecture: {}", i.architecture));
    line(format!(" CPUs: {}", i.ncpu));
    line(format!(" Total Memory: {}", bytes_size(i.mem_total as f64)));
    line(format!(" Name: {}", i.name));
    line(format!(" ID: {}", i.id));
    line(format!(" Docker Root Dir: {}", i.docker_root_dir));
    line(format!(" Debug Mode: {}", i.debug));
    if !i.labels.is_empty() {
        line(" Labels:".into());
        for l in &i.labels {
            line(format!("  {l}"));
        }
    }
    line(format!(" Experimental: {}", i.experimental_build));
    let insecure = &i.registry_config["InsecureRegistryCIDRs"];
    if insecure.as_array().is_some_and(|a| !a.is_empty()) {
        line(" Insecure Registries:".into());
        for r in insecure
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            line(format!("  {r}"));
        }
    }
    line(format!(" Live Restore Enabled: {}", i.live_restore_enabled));
    line(String::new());
    o
}

/// Get real time events from the server
#[derive(Args, Debug, Clone)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

/// `berth events`.
pub async fn events<B: Backend>(backend: &B, args: EventsArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let now = chrono::Local::now();
    let template = match args.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(f)?),
    };
    let opts = EventsOptions {
        since: args
            .since
            .as_deref()
            .map(|s| api_timestamp(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| api_timestamp(s, now))
            .transpose()?,
        filters: parse_filters(&args.filter)?,
    };
    let mut stream = backend.events(opts).await?;
    let mut stdout = std::io::stdout();
    while let Some(event) = stream.next().await {
        let event = event?;
        let line = match &template {
            Some(t) => t.render(&serde_json::to_value(&event)?)?,
            None => pretty_event(&event),
        };
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    Ok(())
}

/// Docker's default event line: `<time> container start <id> (image=busybox, name=x)`.
pub fn pretty_event(e: &EventMessage) -> String {
    use chrono::TimeZone;
    let mut out = String::new();
    let time = if e.time_nano != 0 {
        Some(chrono::Local.timestamp_nanos(e.time_nano))
    } else if e.time != 0 {
        chrono::Local.timestamp_opt(e.time, 0).single()
    } else {
        None
    };
    if let Some(t) = time {
        let mut s = t.format("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string();
        if s.ends_with("+00:00") {
            s.truncate(s.len() - 6);
            s.push('Z');
        }
        out.push_str(&s);
        out.push(' ');
    }
    out.push_str(&format!("{} {} {}", e.kind, e.action, e.actor.id));
    if !e.actor.attributes.is_empty() {
        let attrs: Vec<String> = e
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(" ({})", attrs.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_layout_matches_docker() {
        let v: Version =
            serde_json::from_str(include_str!("../../tests/fixtures/version.json")).unwrap();
        let out = tabwrite(&server_section(&v), 20, 1);
        assert!(out.starts_with(
            "Server:\n Engine:\n  Version:          20.10.24+dfsg1\n  API version:      1.41 (minimum version 1.12)\n  Go version:       go1.19.8\n"
        ), "{out}");
        assert!(
            out.contains("  Built:            Thu May  7 21:09:36 2026\n"),
            "{out}"
        );
        assert!(out.contains(" containerd:\n  Version:          1.6.20~ds1\n  GitCommit:        1.6.20~ds1-1+deb12u3\n"));
        let client = tabwrite(&client_section("1.41"), 20, 1);
        assert!(client.starts_with(&format!(
            "Client:\n Version:           {CLIENT_VERSION}\n API version:       1.41\n"
        )));
        assert!(tabwrite(&client_section("1.30"), 20, 1).contains("1.30 (downgraded from 1.41)"));
    }

    #[test]
    fn info_layout_matches_docker() {
        let i: Info = serde_json::from_str(include_str!("../../tests/fixtures/info.json")).unwrap();
        let out = server_info(&i);
        assert!(out.starts_with(
            "Server:\n Containers: 30\n  Running: 3\n  Paused: 0\n  Stopped: 27\n Images: 32\n"
        ));
        assert!(out.contains(" Storage Driver: overlay2\n  Backing Filesystem: extfs\n"));
        assert!(out.contains(" Security Options:\n  seccomp\n   Profile: default\n"));
        assert!(out.contains(" Total Memory: 23.54GiB\n"));
        assert!(
            out.ends_with(" Insecure Registries:\n  127.0.0.0/8\n Live Restore Enabled: false\n\n")
        );
    }

    #[test]
    fn events_print_like_docker() {
        let e: EventMessage = serde_json::from_value(json!({
            "status":"create","id":"abc","from":"busybox","Type":"container","Action":"create",
            "Actor":{"ID":"abc","Attributes":{"name":"ck-ev","image":"busybox"}},
            "scope":"local","time":1795790373,"timeNano":1795790373763772875i64}))
        .unwrap();
        let line = pretty_event(&e);
        assert!(
            line.ends_with(" container create abc (image=busybox, name=ck-ev)"),
            "{line}"
        );
        assert!(line.contains(".763772875"));
    }
}
