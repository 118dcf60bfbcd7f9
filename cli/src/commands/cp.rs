//! `cp`: copy files and directories between a container and this host, with the docker
//! CLI's rules for which directory an archive is extracted into and what its top entry is
//! called (`archive.PrepareArchiveCopy`), and `-` for a tar archive on stdin or stdout.
//!
//! Archives made and unpacked here go through the engine's own tar code: a host path is
//! walked by descriptors and never followed out of the source (except the top one with
//! `-L`), and an archive from a container is extracted contained in its destination
//! directory, whatever names and links it holds.

use std::path::{Path, PathBuf};

use api_types::{file_mode, ContainerPathStat};
use clap::Args;
use engine::container::{archive_host_path, extract_into_host_dir, ExtractOptions, Owners};
use tokio::io::AsyncWriteExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::backend::{Backend, CopyToOptions};
use crate::stream::stdout_is_terminal;
use crate::units::human_size_with_precision;

/// Copy files/folders between a container and the local filesystem
///
/// Use '-' as the source to read a tar archive from stdin and extract it to a directory
/// destination in a container. Use '-' as the destination to stream a tar archive of a
/// container source to stdout.
#[derive(Args, Debug, Clone)]
#[command(
    override_usage = "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(value_name = "SRC")]
    pub source: String,
    #[arg(value_name = "DEST")]
    pub destination: String,
}

/// `berth cp`.
pub async fn cp<B: Backend>(backend: &B, args: CpArgs) -> anyhow::Result<()> {
    if args.source.is_empty() {
        anyhow::bail!("source can not be empty");
    }
    if args.destination.is_empty() {
        anyhow::bail!("destination can not be empty");
    }
    let quiet = args.quiet || !stdout_is_terminal();
    match (split_cp_arg(&args.source), split_cp_arg(&args.destination)) {
        ((Some(_), _), (Some(_), _)) => {
            anyhow::bail!("copying between containers is not supported")
        }
        ((Some(container), src), (None, dst)) => {
            copy_from_container(backend, container, src, dst, &args, quiet).await
        }
        ((None, src), (Some(container), dst)) => {
            copy_to_container(backend, src, container, dst, &args, quiet).await
        }
        ((None, _), (None, _)) => anyhow::bail!("must specify at least one container source"),
    }
}

/// Docker's `splitCpArg`: `CONTAINER:PATH`, unless the argument is an absolute path or an
/// explicit relative one (`./file:name`).
fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.starts_with('.') => (Some(container), path),
        _ => (None, arg),
    }
}

async fn copy_from_container<B: Backend>(
    backend: &B,
    container: &str,
    src: &str,
    dst: &str,
    args: &CpArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let dst = if dst == "-" {
        dst.to_string()
    } else {
        resolve_local_path(dst)?
    };
    validate_output_path(&dst)?;
    let mut src_path = src.to_string();
    let mut rebase_name = None;
    if args.follow_link {
        if let Ok(stat) = backend.stat_container_path(container, &src_path).await {
            if file_mode::is_symlink(stat.mode) {
                let mut target = stat.link_target.clone();
                if !target.starts_with('/') {
                    let (parent, _) = split_path_dir_entry(&src_path);
                    target = join(&parent, &target);
                }
                let (target, rebase) = rebase_name_for(&src_path, &target);
                src_path = target;
                rebase_name = rebase;
            }
        }
    }
    let copied = backend.copy_from_container(container, &src_path).await?;
    if dst == "-" {
        let mut reader = copied.content;
        let mut out = tokio::io::stdout();
        tokio::io::copy(&mut reader, &mut out).await?;
        out.flush().await?;
        return Ok(());
    }
    let src_info = CopyInfo {
        path: src_path.clone(),
        exists: true,
        is_dir: file_mode::is_dir(copied.stat.mode),
        rebase_name,
    };
    let dst_info = copy_info_destination_path(&dst)?;
    let (dst_dir, rename) = prepare_archive_copy(&src_info, &dst_info)?;
    // Entries are named after the source's base name; with -L after the link's.
    let (_, src_base) = split_path_dir_entry(&src_path);
    let rename = match (&src_info.rebase_name, rename) {
        (None, r) => r,
        (Some(link), None) => Some((src_base, link.clone())),
        (Some(_), Some((_, to))) => Some((src_base, to)),
    };
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: true,
        owners: if args.archive {
            Owners::Archive
        } else {
            Owners::Caller
        },
        rename: rename.map(|(from, to)| (from.into_bytes(), to.into_bytes())),
    };
    let reader = SyncIoBridge::new(copied.content);
    let dir = PathBuf::from(&dst_dir);
    let stat_size = copied.stat.size;
    let is_dir = src_info.is_dir;
    let counted = tokio::task::spawn_blocking(move || {
        let mut reader = Counting {
            inner: reader,
            count: 0,
        };
        extract_into_host_dir(&dir, &mut reader, opts).map(|_| reader.count)
    })
    .await??;
    if !quiet {
        let size = if is_dir {
            counted
        } else {
            stat_size.max(0) as u64
        };
        eprintln!(
            "Successfully copied {} to {dst}",
            human_size_with_precision(size as f64, 3)
        );
    }
    Ok(())
}

async fn copy_to_container<B: Backend>(
    backend: &B,
    src: &str,
    container: &str,
    dst: &str,
    args: &CpArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let src = if src == "-" {
        src.to_string()
    } else {
        resolve_local_path(src)?
    };
    let mut dst_info = CopyInfo {
        path: dst.to_string(),
        ..Default::default()
    };
    if let Ok(mut stat) = backend.stat_container_path(container, dst).await.map(Some) {
        if let Some(s) = stat.as_ref().filter(|s| file_mode::is_symlink(s.mode)) {
            let mut target = s.link_target.clone();
            if !target.starts_with('/') {
                let (parent, _) = split_path_dir_entry(dst);
                target = join(&parent, &target);
            }
            dst_info.path = target.clone();
            stat = backend.stat_container_path(container, &target).await.ok();
        }
        if let Some(stat) = stat {
            validate_file_mode(&stat).map_err(|e| {
                anyhow::anyhow!(
                    "destination \"{container}:{dst}\" must be a directory or a regular file: {e}"
                )
            })?;
            dst_info.exists = true;
            dst_info.is_dir = file_mode::is_dir(stat.mode);
        }
    }
    let opts = CopyToOptions {
        no_overwrite_dir_non_dir: true,
        copy_uid_gid: args.archive,
    };
    if src == "-" {
        if !dst_info.is_dir {
            anyhow::bail!("destination \"{container}:{dst}\" must be a directory");
        }
        let stdin: crate::backend::ByteReader = Box::pin(tokio::io::stdin());
        backend
            .copy_to_container(container, &dst_info.path, stdin, opts)
            .await?;
        return Ok(());
    }
    let src_info = copy_info_source_path(&src, args.follow_link)?;
    let (dst_dir, rename) = prepare_archive_copy(&src_info, &dst_info)?;
    let (_, src_base) = split_path_dir_entry(&src_info.path);
    let name = match (rename, &src_info.rebase_name) {
        (Some((_, to)), _) => to,
        (None, Some(rebase)) => rebase.clone(),
        (None, None) => src_base,
    };
    let size = local_content_size(Path::new(&src_info.path));
    let rx = archive_host_path(Path::new(&src_info.path), name.as_bytes(), false)?;
    let chunks =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let content: crate::backend::ByteReader = Box::pin(StreamReader::new(chunks));
    backend
        .copy_to_container(container, &dst_dir, content, opts)
        .await?;
    if !quiet {
        eprintln!(
            "Successfully copied {} to {container}:{}",
            human_size_with_precision(size as f64, 3),
            dst_info.path
        );
    }
    Ok(())
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// The bytes of regular files at `path` (docker's `localContentSize`).
fn local_content_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| local_content_size(&e.path())).sum())
        .unwrap_or(0)
}

/// What is known of one side of a copy (docker's `archive.CopyInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CopyInfo {
    path: String,
    exists: bool,
    is_dir: bool,
    rebase_name: Option<String>,
}

/// Go's `filepath.Clean`.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|p| *p != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Go's `filepath.Join` of two parts.
fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        return clean(b);
    }
    clean(&format!("{a}/{b}"))
}

fn specifies_current_dir(path: &str) -> bool {
    base(path) == "."
}

/// Go's `filepath.Base`.
fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `filepath.Dir`.
fn dir(path: &str) -> String {
    let cut = path.rfind('/').map(|i| &path[..=i]).unwrap_or("");
    clean(if cut.is_empty() { "." } else { cut })
}

/// Docker's `PreserveTrailingDotOrSeparator`.
fn preserve_trailing(cleaned: &str, original: &str) -> String {
    let mut out = cleaned.to_string();
    if !specifies_current_dir(&out) && specifies_current_dir(original) {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push('.');
    }
    if !out.ends_with('/') && original.ends_with('/') {
        out.push('/');
    }
    out
}

/// Docker's `SplitPathDirEntry`.
fn split_path_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean(path);
    if specifies_current_dir(path) {
        cleaned.push_str("/.");
    }
    (dir(&cleaned), base(&cleaned))
}

fn asserts_directory(path: &str) -> bool {
    path.ends_with('/') || specifies_current_dir(path)
}

/// An absolute local path, keeping a trailing `/` or `/.` (docker's `resolveLocalPath`).
fn resolve_local_path(path: &str) -> anyhow::Result<String> {
    let abs = if path.starts_with('/') {
        clean(path)
    } else {
        let cwd = std::env::current_dir()?;
        join(&cwd.to_string_lossy(), path)
    };
    Ok(preserve_trailing(&abs, path))
}

/// Docker's `GetRebaseName`: the link target to copy, and the name the archive's entries
/// must then carry (the requested one) when it differs.
fn rebase_name_for(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_string();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let rebase = (base(path) != base(&resolved)).then(|| base(path));
    (resolved, rebase)
}

/// Docker's `ValidateOutputPath`.
fn validate_output_path(path: &str) -> anyhow::Result<()> {
    let parent = dir(&clean(path));
    if !parent.is_empty() && parent != "." && !Path::new(&parent).exists() {
        anyhow::bail!("invalid output path: directory {parent:?} does not exist");
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_dir() && !meta.is_file() {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            if t.is_block_device() || t.is_char_device() {
                anyhow::bail!(
                    "invalid output path: {path:?} must be a directory or a regular file: got a device"
                );
            }
        }
    }
    Ok(())
}

/// Docker's `ValidateOutputPathFileMode` on a container path's stat.
fn validate_file_mode(stat: &ContainerPathStat) -> Result<(), &'static str> {
    if stat.mode & file_mode::DEVICE != 0 {
        return Err("got a device");
    }
    Ok(())
}

/// Docker's `CopyInfoSourcePath`: the directory part's symlinks resolved; the last element
/// too with `-L` (then the archive keeps the requested name).
fn copy_info_source_path(path: &str, follow_link: bool) -> anyhow::Result<CopyInfo> {
    let (resolved, rebase_name) = if follow_link {
        let real = std::fs::canonicalize(path)
            .map_err(|e| anyhow::anyhow!("lstat {path}: {}", io_message(&e)))?;
        rebase_name_for(path, &real.to_string_lossy())
    } else {
        let cut = path.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (dir_part, base_part) = path.split_at(cut);
        let dir_part = if dir_part.is_empty() { "." } else { dir_part };
        let real_dir = std::fs::canonicalize(dir_part)
            .map_err(|e| anyhow::anyhow!("lstat {dir_part}: {}", io_message(&e)))?;
        let resolved = format!(
            "{}/{base_part}",
            real_dir.to_string_lossy().trim_end_matches('/')
        );
        let rebase = (path.ends_with('/') && base(path) != base(&resolved)).then(|| base(path));
        (resolved, rebase)
    };
    let meta = std::fs::symlink_metadata(&resolved)
        .map_err(|e| anyhow::anyhow!("lstat {resolved}: {}", io_message(&e)))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: meta.is_dir(),
        rebase_name,
    })
}

/// Docker's `CopyInfoDestinationPath`: symlinks at the destination followed (10 at most); a
/// missing destination needs an existing parent directory.
fn copy_info_destination_path(path: &str) -> anyhow::Result<CopyInfo> {
    let mut path = path.to_string();
    let original = path.clone();
    let mut meta = std::fs::symlink_metadata(&path);
    let mut hops = 0;
    while let Ok(m) = &meta {
        if !m.file_type().is_symlink() {
            break;
        }
        hops += 1;
        if hops > 10 {
            anyhow::bail!("too many symlinks in {original}");
        }
        let target = std::fs::read_link(&path)?.to_string_lossy().into_owned();
        path = if target.starts_with('/') {
            target
        } else {
            let (parent, _) = split_path_dir_entry(&path);
            join(&parent, &target)
        };
        meta = std::fs::symlink_metadata(&path);
    }
    match meta {
        Ok(m) => Ok(CopyInfo {
            path,
            exists: true,
            is_dir: m.is_dir(),
            rebase_name: None,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (parent, _) = split_path_dir_entry(&path);
            let meta = std::fs::metadata(&parent)
                .map_err(|e| anyhow::anyhow!("stat {parent}: {}", io_message(&e)))?;
            if !meta.is_dir() {
                anyhow::bail!("not a directory");
            }
            Ok(CopyInfo {
                path,
                ..Default::default()
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Docker's `PrepareArchiveCopy`: the directory to extract into, and the renaming of the
/// archive's top entry from the source's base name to the destination's, if needed.
fn prepare_archive_copy(
    src: &CopyInfo,
    dst: &CopyInfo,
) -> anyhow::Result<(String, Option<(String, String)>)> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    let (_, src_base) = split_path_dir_entry(&src.path);
    let src_base = src.rebase_name.clone().unwrap_or(src_base);
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        anyhow::bail!("cannot copy directory");
    }
    if !dst.exists && !src.is_dir && asserts_directory(&dst.path) {
        anyhow::bail!("no such directory");
    }
    Ok((dst_dir, Some((src_base, dst_base))))
}

/// An I/O error's text as Go prints it (`no such file or directory`).
fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_like_docker() {
        assert_eq!(
            split_cp_arg("c:/etc/hostname"),
            (Some("c"), "/etc/hostname")
        );
        assert_eq!(split_cp_arg("/abs:path"), (None, "/abs:path"));
        assert_eq!(split_cp_arg("./file:name"), (None, "./file:name"));
        assert_eq!(split_cp_arg("file"), (None, "file"));
        assert_eq!(split_cp_arg("c:"), (Some("c"), ""));
    }

    #[test]
    fn paths_clean_split_and_keep_their_trailing_parts() {
        assert_eq!(clean("/a/./b/../c/"), "/a/c");
        assert_eq!(clean("../../x"), "../../x");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean(""), ".");
        assert_eq!(
            split_path_dir_entry("/tmp/tree/."),
            ("/tmp/tree".into(), ".".into())
        );
        assert_eq!(
            split_path_dir_entry("/tmp/tree/"),
            ("/tmp".into(), "tree".into())
        );
        assert_eq!(split_path_dir_entry("/"), ("/".into(), "/".into()));
        assert_eq!(preserve_trailing("/a/b", "b/."), "/a/b/.");
        assert_eq!(preserve_trailing("/a/b", "b/"), "/a/b/");
        assert_eq!(
            rebase_name_for("/x/link", "/y/target"),
            ("/y/target".into(), Some("link".into()))
        );
        assert_eq!(
            rebase_name_for("/x/link/", "/y/dir"),
            ("/y/dir/".into(), Some("link".into()))
        );
        assert_eq!(
            rebase_name_for("/x/same", "/y/same"),
            ("/y/same".into(), None)
        );
    }

    #[test]
    fn archives_are_prepared_like_dockers() {
        let info = |path: &str, exists: bool, is_dir: bool| CopyInfo {
            path: path.into(),
            exists,
            is_dir,
            rebase_name: None,
        };
        // Into an existing directory: as it is.
        assert_eq!(
            prepare_archive_copy(&info("/s/f", true, false), &info("/d", true, true)).unwrap(),
            ("/d".into(), None)
        );
        // Over an existing file, or to a new name: into the parent, renamed.
        assert_eq!(
            prepare_archive_copy(&info("/s/f", true, false), &info("/d/g", true, false)).unwrap(),
            ("/d".into(), Some(("f".into(), "g".into())))
        );
        assert_eq!(
            prepare_archive_copy(&info("/s/dir/.", true, true), &info("/d/new", false, false))
                .unwrap(),
            ("/d".into(), Some((".".into(), "new".into())))
        );
        let err = prepare_archive_copy(&info("/s/dir", true, true), &info("/d/file", true, false));
        assert_eq!(err.unwrap_err().to_string(), "cannot copy directory");
        let err = prepare_archive_copy(&info("/s/f", true, false), &info("/d/new/", false, false));
        assert_eq!(err.unwrap_err().to_string(), "no such directory");
    }
}
