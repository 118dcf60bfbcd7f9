//! `build` / `image build`: an image from a Dockerfile, through the classic builder's API.
//!
//! As docker's CLI does: the context directory goes to the engine as a tar, without what
//! `.dockerignore` excludes (the Dockerfile and `.dockerignore` themselves always go, the
//! engine drops them if excluded); a Dockerfile outside the context is added to it under a
//! generated name; `-` reads a context tar (or a lone Dockerfile) from stdin. Output is the
//! engine's stream; `-q` prints only the image ID; a failed `RUN` exits with its code.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{ArgAction, Args};
use engine::build::ignore::IgnoreMatcher;
use futures_util::StreamExt;

use crate::backend::{Backend, BuildOptions};
use crate::exit::StatusError;

/// Build an image from a Dockerfile
#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "list")]
    pub build_arg: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile")
    #[arg(short = 'f', long, value_name = "string")]
    pub file: Option<String>,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "string")]
    pub iidfile: Option<PathBuf>,
    /// Set metadata for an image
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Remove intermediate containers after a successful build
    #[arg(long, value_name = "bool", default_value = "true", action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub rm: bool,
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long, value_name = "list")]
    pub tag: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long, value_name = "string")]
    pub target: Option<String>,
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
}

/// `berth build`.
pub async fn build<B: Backend>(backend: &B, args: BuildArgs) -> anyhow::Result<()> {
    for t in &args.tag {
        crate::reference::ImageRef::parse(t)
            .map_err(|e| anyhow::anyhow!("invalid argument \"{t}\" for \"-t, --tag\" flag: {e}"))?;
    }
    if args.context.starts_with("http://")
        || args.context.starts_with("https://")
        || args.context.starts_with("git@")
    {
        anyhow::bail!(
            "berth cannot build from a remote context ({}): clone or download it first",
            args.context
        );
    }
    let mut build_args = BTreeMap::new();
    for a in &args.build_arg {
        match a.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), Some(v.to_string())),
            // `--build-arg NAME` takes NAME from this environment, as docker does.
            None => build_args.insert(a.clone(), std::env::var(a).ok()),
        };
    }
    let mut labels = BTreeMap::new();
    for l in &args.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let (context, dockerfile) = if args.context == "-" {
        stdin_context().await?
    } else {
        let dir = PathBuf::from(&args.context);
        let file = args.file.clone();
        tokio::task::spawn_blocking(move || context_tar(&dir, file.as_deref()))
            .await
            .context("the context could not be read")??
    };
    let opts = BuildOptions {
        dockerfile,
        tags: args.tag.clone(),
        target: args.target.clone(),
        quiet: args.quiet,
        no_cache: args.no_cache,
        pull: args.pull,
        remove: args.rm,
        force_remove: args.force_rm,
        labels,
        build_args,
        platform: args.platform.clone(),
    };
    let reader: crate::backend::ByteReader = Box::pin(tokio::fs::File::from_std(context));
    let mut progress = backend.build_image(reader, &opts).await?;
    let mut id = None;
    let mut out = std::io::stdout();
    while let Some(msg) = progress.next().await {
        let msg = msg?;
        if let Some(detail) = &msg.error_detail {
            let code = detail.code.filter(|&c| c != 0).unwrap_or(1);
            return Err(StatusError::new(code as i32, detail.message.clone()).into());
        }
        if let Some(e) = &msg.error {
            return Err(StatusError::new(1, e.clone()).into());
        }
        if let Some(aux_id) = msg.aux.as_ref().and_then(|a| a["ID"].as_str()) {
            id = Some(aux_id.to_string());
        }
        if let Some(text) = &msg.stream {
            if !args.quiet {
                write!(out, "{text}")?;
                out.flush()?;
            }
        }
    }
    let Some(id) = id else {
        anyhow::bail!("the build ended without an image ID");
    };
    if args.quiet {
        println!("{id}");
    }
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id)
            .with_context(|| format!("failed to write image ID to {}", path.display()))?;
    }
    Ok(())
}

/// A context tar or a lone Dockerfile on stdin.
async fn stdin_context() -> anyhow::Result<(std::fs::File, String)> {
    tokio::task::spawn_blocking(|| {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        let is_tar = input.len() >= 262 && &input[257..262] == b"ustar";
        let is_gzip = input.starts_with(&[0x1f, 0x8b]);
        let mut file = tempfile::tempfile()?;
        if is_tar || is_gzip {
            file.write_all(&input)?;
        } else {
            let mut b = tar::Builder::new(&mut file);
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(input.len() as u64);
            b.append_data(&mut h, "Dockerfile", &input[..])?;
            b.finish()?;
        }
        file.rewind()?;
        Ok((file, "Dockerfile".to_string()))
    })
    .await?
}

/// The context directory as a tar in an anonymous file, and the Dockerfile's name in it.
fn context_tar(dir: &Path, file: Option<&str>) -> anyhow::Result<(std::fs::File, String)> {
    let meta = std::fs::metadata(dir).with_context(|| {
        format!(
            "unable to prepare context: path {:?} not found",
            dir.display().to_string()
        )
    })?;
    if !meta.is_dir() {
        anyhow::bail!(
            "unable to prepare context: context must be a directory: {}",
            dir.display()
        );
    }
    let dir = dir.canonicalize()?;
    let dockerfile = match file {
        Some(f) => std::env::current_dir()?.join(f),
        None => {
            let upper = dir.join("Dockerfile");
            if upper.exists() || !dir.join("dockerfile").exists() {
                upper
            } else {
                dir.join("dockerfile")
            }
        }
    };
    let dockerfile = dockerfile
        .canonicalize()
        .with_context(|| format!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory", dockerfile.display()))?;
    let inside = dockerfile
        .strip_prefix(&dir)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let ignore = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| IgnoreMatcher::parse(&t))
        .unwrap_or_default();
    let mut out = tempfile::tempfile()?;
    let name = {
        let mut b = tar::Builder::new(std::io::BufWriter::new(&mut out));
        b.follow_symlinks(false);
        let keep = |rel: &str| -> bool {
            rel == ".dockerignore" || Some(rel) == inside.as_deref() || !ignore.excludes(rel)
        };
        let mut stack = vec![(dir.clone(), String::new())];
        while let Some((path, rel)) = stack.pop() {
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            names.reverse();
            for name in names {
                let child_rel = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let child = path.join(&name);
                let meta = std::fs::symlink_metadata(&child)?;
                if meta.is_dir() {
                    if keep(&child_rel) {
                        append(&mut b, &child, &child_rel, &meta)?;
                        stack.push((child, child_rel));
                    } else if ignore.has_exceptions() {
                        // An exception may bring back something below.
                        stack.push((child, child_rel));
                    }
                } else if keep(&child_rel) {
                    append(&mut b, &child, &child_rel, &meta)?;
                }
            }
        }
        let name = match &inside {
            Some(rel) => rel.clone(),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let name = format!(
                    ".dockerfile.{:x}{:x}",
                    std::process::id(),
                    nanos & 0xffff_ffff
                );
                let content = std::fs::read(&dockerfile)?;
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                h.set_size(content.len() as u64);
                b.append_data(&mut h, &name, &content[..])?;
                name
            }
        };
        b.finish()?;
        let mut w = b.into_inner()?;
        w.flush()?;
        name
    };
    out.rewind()?;
    Ok((out, name))
}

fn append<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    rel: &str,
    meta: &std::fs::Metadata,
) -> anyhow::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)?;
        b.append_link(&mut h, rel, target)?;
    } else if meta.is_dir() {
        b.append_data(&mut h, format!("{rel}/"), std::io::empty())?;
    } else if meta.is_file() {
        let f = std::fs::File::open(path)?;
        b.append_data(&mut h, rel, f.take(meta.len()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_follow_dockerignore_and_carry_outside_dockerfiles() {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::write(
            ctx.path().join(".dockerignore"),
            "*.log\nskip\nDockerfile\n",
        )
        .unwrap();
        std::fs::write(ctx.path().join("a.log"), "x").unwrap();
        std::fs::write(ctx.path().join("keep.txt"), "x").unwrap();
        std::fs::create_dir(ctx.path().join("skip")).unwrap();
        std::fs::write(ctx.path().join("skip/f"), "x").unwrap();
        let names = |f: std::fs::File| -> Vec<String> {
            tar::Archive::new(f)
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect()
        };
        let (f, name) = context_tar(ctx.path(), None).unwrap();
        assert_eq!(name, "Dockerfile");
        let mut n = names(f);
        n.sort();
        assert_eq!(n, [".dockerignore", "Dockerfile", "keep.txt"]);
        let other = tempfile::tempdir().unwrap();
        let outside = other.path().join("Other.dockerfile");
        std::fs::write(&outside, "FROM scratch\n").unwrap();
        let (f, name) = context_tar(ctx.path(), Some(outside.to_str().unwrap())).unwrap();
        assert!(name.starts_with(".dockerfile."), "{name}");
        assert!(names(f).contains(&name));
    }
}
