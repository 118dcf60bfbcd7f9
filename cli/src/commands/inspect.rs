//! `inspect`, `container inspect` and `image inspect`: the engine's JSON, indented as docker
//! prints it, or a `-f` template evaluated against it.

use bytes::Bytes;
use clap::Args;

use crate::backend::{Backend, BackendError};
use crate::exit::StatusError;
use crate::format::{compact_json, indent_json};
use crate::template::{Mode, Template};

/// Return low-level information on Docker objects
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Return JSON for specified type (container, image)
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    #[arg(value_name = "NAME|ID", required = true)]
    pub names: Vec<String>,
}

/// Display detailed information on one or more containers or images
#[derive(Args, Debug, Clone)]
pub struct TypedInspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    /// Display total file sizes (containers only)
    #[arg(short = 's', long)]
    pub size: bool,
    #[arg(value_name = "NAME|ID", required = true)]
    pub names: Vec<String>,
}

impl TypedInspectArgs {
    /// The equivalent `inspect --type kind`.
    pub fn with_kind(self, kind: &str) -> InspectArgs {
        InspectArgs {
            format: self.format,
            size: self.size,
            kind: Some(kind.to_string()),
            names: self.names,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Any,
    Container,
    Image,
}

async fn fetch<B: Backend>(
    backend: &B,
    kind: Kind,
    name: &str,
    size: bool,
) -> Result<Bytes, String> {
    let not_found = |e: &BackendError| e.is_not_found();
    if kind != Kind::Image {
        let container = if size {
            backend.inspect_container_with_size(name).await
        } else {
            backend.inspect_container(name).await
        };
        match container {
            Ok(i) => return Ok(i.raw),
            Err(e) if not_found(&e) && kind == Kind::Any => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    match backend.inspect_image(name).await {
        Ok(i) => Ok(i.raw),
        Err(e) if not_found(&e) && kind == Kind::Any => {
            Err(format!("Error: No such object: {name}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `berth inspect`.
pub async fn inspect<B: Backend>(backend: &B, args: InspectArgs) -> anyhow::Result<()> {
    let kind = match args.kind.as_deref() {
        None | Some("") => Kind::Any,
        Some("container") => Kind::Container,
        Some("image") => Kind::Image,
        Some(other) => anyhow::bail!("\"{other}\" is not a valid value for --type"),
    };
    let template = match args.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(
            Template::parse(f)
                .map_err(|e| StatusError::new(64, format!("template parsing error: {e}")))?,
        ),
    };
    let mut elements = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        match fetch(backend, kind, name, args.size).await {
            Ok(raw) => elements.push(raw),
            Err(e) => errors.push(e),
        }
    }
    match template {
        None => println!("{}", render_indented(&elements)),
        // Docker marshals its typed structs, which keeps the engine's field order.
        Some(_)
            if args.format.as_deref().map(str::trim) == Some("{{json .}}")
                || args.format.as_deref() == Some("json") =>
        {
            for raw in &elements {
                println!("{}", compact_json(raw));
            }
        }
        Some(t) => {
            let mode = Mode {
                missing_key_error: true,
                ..Mode::default()
            };
            for raw in &elements {
                let value: serde_json::Value = serde_json::from_slice(raw)?;
                match t.render_with(&value, mode) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        println!();
                        return Err(
                            StatusError::new(1, format!("template parsing error: {e}")).into()
                        );
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StatusError::new(1, errors.join("\n")).into())
    }
}

/// `[` elements `]`, indented like docker's `json.Indent` output.
pub fn render_indented(elements: &[Bytes]) -> String {
    if elements.is_empty() {
        return "[]".into();
    }
    let mut joined = Vec::from(&b"["[..]);
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(e.trim_ascii());
    }
    joined.push(b']');
    indent_json(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_output_matches_docker_layout() {
        let raw = Bytes::from_static(include_bytes!(
            "../../tests/fixtures/container-inspect.json"
        ));
        let out = render_indented(std::slice::from_ref(&raw));
        assert!(out.starts_with("[\n    {\n        \"Id\": \"03ed8a5ead50"));
        assert!(out.contains("\n        \"Args\": [\n            \"300\"\n        ],\n"));
        assert!(out.ends_with("\n    }\n]"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["State"]["Pid"], 9751);
        assert_eq!(render_indented(&[]), "[]");
        let t = Template::parse("{{.State.Status}} {{.Config.Image}} {{json .Config.Cmd}} {{.HostConfig.LogConfig.Type}}").unwrap();
        let value: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            t.render(&value).unwrap(),
            "running busybox [\"sleep\",\"300\"] json-file"
        );
    }
}
