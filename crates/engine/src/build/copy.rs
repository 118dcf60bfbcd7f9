//! `COPY` and `ADD`: which files a step reads, the content hash the build cache keys the step
//! on, and writing them into the new layer.
//!
//! Sources are paths in the build context (or, with `--from`, in another stage's or image's
//! file system), globs as Go's `filepath.Match` reads them, or heredocs. A source path is
//! resolved inside its root (symlinks followed as they would be there, never out of it);
//! `..` that climbs out is refused with dockerd's message. The hash covers names, types,
//! permission bits and content, not times or owners, so an unchanged file hits the cache
//! whatever its mtime. Files are written as a tar into the step's overlay through the same
//! extractor `docker cp` uses, owned by root or `--chown`, with `--chmod` applied.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::dockerfile::Source;
use super::ignore::glob;
use super::BuildError;
use crate::container::{extract_into_engine_dir, ExtractOptions, Owners};

/// One source, resolved.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A file or directory on this host (inside the source root).
    Path {
        host: PathBuf,
        /// Its own name (the last component of what was written), for `dest/<name>`.
        name: String,
        dir: bool,
        /// `ADD` of a local tar archive: unpacked rather than copied.
        archive: bool,
    },
    /// A heredoc's content.
    Inline(Vec<u8>),
}

/// The sources of a step with their content hash (`file:<hex>`, `dir:<hex>`, `multi:<hex>`).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub items: Vec<Item>,
    pub digest: String,
}

fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// The real host path of `rel` inside `root`, following symlinks as inside it.
fn resolve_in_root(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let file = crate::rootfs::open_in_root(root, rel, rustix::fs::OFlags::PATH)?;
    std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ))
}

/// Cleans a source path; `None` when it climbs out of its root.
fn clean_source(p: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c.to_string()),
        }
    }
    Some(out)
}

fn not_found(src: &str) -> BuildError {
    BuildError::Invalid {
        message: format!(
            "COPY failed: file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
        ),
    }
}

/// Expands glob components against the directory tree under `root`.
fn glob_paths(root: &Path, comps: &[String]) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for comp in comps {
        let mut next = Vec::new();
        for base in &found {
            if has_glob(comp) {
                let Ok(entries) = std::fs::read_dir(root.join(base)) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| glob(comp, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| base.join(n)));
            } else {
                let p = base.join(comp);
                if std::fs::symlink_metadata(root.join(&p)).is_ok() {
                    next.push(p);
                }
            }
        }
        found = next;
    }
    found
}

/// Whether `path` holds a tar archive (plain or gzip), which `ADD` unpacks.
fn is_tar_archive(path: &Path) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let Ok(mut reader) = crate::image::decompressed(&mut file) else {
        return false;
    };
    let mut block = [0u8; 512];
    if reader.read_exact(&mut block).is_err() {
        return false;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    stored == Some(sum) && block.iter().any(|&b| b != 0)
}

/// Resolves `sources` in `root`; `add` allows archives (and refuses URLs clearly).
pub(crate) fn resolve(
    root: &Path,
    sources: &[(Source, String)],
    add: bool,
    chmod: Option<u32>,
) -> Result<Resolved, BuildError> {
    let verb = if add { "ADD" } else { "COPY" };
    let mut items = Vec::new();
    for (source, expanded) in sources {
        let src = match source {
            Source::HereDoc(content) => {
                items.push(Item::Inline(content.clone().into_bytes()));
                continue;
            }
            Source::Path(_) => expanded.as_str(),
        };
        if src.starts_with("http://") || src.starts_with("https://") || src.starts_with("git@") {
            return Err(BuildError::Invalid {
                message: format!(
                    "{verb} failed: berth's builder does not download remote sources ({src}): put the file in the build context"
                ),
            });
        }
        let comps = clean_source(src).ok_or_else(|| BuildError::Invalid {
            message: format!("{verb} failed: forbidden path outside the build context: {src} ()"),
        })?;
        let paths = if comps.iter().any(|c| has_glob(c)) {
            let found = glob_paths(root, &comps);
            if found.is_empty() {
                return Err(BuildError::Invalid {
                    message: format!("{verb} failed: no source files were specified"),
                });
            }
            found
        } else {
            vec![comps.iter().collect::<PathBuf>()]
        };
        for rel in paths {
            let host = if rel.as_os_str().is_empty() {
                root.to_path_buf()
            } else {
                resolve_in_root(root, &rel).map_err(|_| not_found(src))?
            };
            let meta = std::fs::metadata(&host).map_err(|_| not_found(src))?;
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let archive = add && meta.is_file() && is_tar_archive(&host);
            items.push(Item::Path {
                host,
                name,
                dir: meta.is_dir(),
                archive,
            });
        }
    }
    let mut h = Sha256::new();
    for item in &items {
        match item {
            Item::Inline(content) => {
                h.update(b"inline\0");
                h.update(content);
            }
            Item::Path { host, dir, .. } => {
                for (rel, path, meta) in walk(host, *dir)? {
                    h.update(rel.as_bytes());
                    h.update([0]);
                    let ft = meta.file_type();
                    let mode = chmod.unwrap_or(meta.permissions().mode() & 0o7777);
                    h.update(format!("{:o}\0", mode).as_bytes());
                    if ft.is_symlink() {
                        h.update(b"l");
                        h.update(
                            std::fs::read_link(&path)
                                .unwrap_or_default()
                                .as_os_str()
                                .as_encoded_bytes(),
                        );
                    } else if ft.is_dir() {
                        h.update(b"d");
                    } else if ft.is_file() {
                        h.update(format!("f{}\0", meta.len()).as_bytes());
                        let mut f = File::open(&path)
                            .map_err(|e| BuildError::io("cannot read a source", e))?;
                        io::copy(&mut f, &mut HashWriter(&mut h))
                            .map_err(|e| BuildError::io("cannot read a source", e))?;
                    }
                    h.update([0]);
                }
            }
        }
    }
    let kind = match items.as_slice() {
        [Item::Path { dir: true, .. }] => "dir",
        [_] => "file",
        _ => "multi",
    };
    Ok(Resolved {
        items,
        digest: format!("{kind}:{}", hex::encode(h.finalize())),
    })
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The nodes of a source in lexical order: a file is itself (`rel` empty); a directory its
/// contents, never following symlinks below it.
fn walk(top: &Path, dir: bool) -> Result<Vec<(String, PathBuf, std::fs::Metadata)>, BuildError> {
    let fail = |e: io::Error| BuildError::io("cannot read a source", e);
    if !dir {
        let meta = std::fs::metadata(top).map_err(fail)?;
        return Ok(vec![(String::new(), top.to_path_buf(), meta)]);
    }
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), top.to_path_buf())];
    while let Some((rel, path)) = stack.pop() {
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .map_err(fail)?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let child = path.join(&name);
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(&child).map_err(fail)?;
            if meta.is_dir() {
                subdirs.push((child_rel.clone(), child.clone()));
            }
            out.push((child_rel, child, meta));
        }
        // Depth-first in lexical order, like filepath.Walk.
        for sub in subdirs.into_iter().rev() {
            stack.push(sub);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Where and as whom a step writes its files.
pub(crate) struct Target<'a> {
    /// The step's merged file system.
    pub merged: &'a Path,
    /// The destination as written (made absolute against the working directory).
    pub dest: String,
    pub uid: u32,
    pub gid: u32,
    pub chmod: Option<u32>,
    /// Scratch file for the tar.
    pub scratch: PathBuf,
}

/// Writes the resolved sources into the step's file system.
pub(crate) fn write(resolved: &Resolved, t: &Target<'_>, add: bool) -> Result<(), BuildError> {
    let verb = if add { "ADD" } else { "COPY" };
    let many = resolved.items.len() > 1;
    let dest_slash = t.dest.ends_with('/');
    if many && !dest_slash {
        return Err(BuildError::Invalid {
            message: format!(
                "When using {verb} with more than one source file, the destination must be a directory and end with a /"
            ),
        });
    }
    let dest = Path::new(&t.dest);
    let existing_dir = resolve_in_root(t.merged, dest)
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.is_dir());
    let dest_is_dir = dest_slash
        || existing_dir
        || many
        || matches!(
            resolved.items.as_slice(),
            [Item::Path { dir: true, .. } | Item::Path { archive: true, .. }]
        );
    let (dir, file_name) = if dest_is_dir {
        (dest.to_path_buf(), None)
    } else {
        (
            dest.parent().unwrap_or(Path::new("/")).to_path_buf(),
            dest.file_name().map(|n| n.to_string_lossy().into_owned()),
        )
    };
    crate::rootfs::mkdir_all_in_root(t.merged, &dir, t.uid, t.gid)
        .map_err(|e| BuildError::io(format!("cannot create {}", dir.display()), e))?;
    let host_dir = resolve_in_root(t.merged, &dir)
        .map_err(|e| BuildError::io(format!("cannot open {}", dir.display()), e))?;
    let fail = |e: io::Error| BuildError::io(format!("cannot copy into {}", t.dest), e);
    let tar_file = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&t.scratch)
        .map_err(fail)?;
    let mut b = tar::Builder::new(io::BufWriter::new(tar_file));
    let mode_of = |m: &std::fs::Metadata| t.chmod.unwrap_or(m.permissions().mode() & 0o7777);
    let mut archives = Vec::new();
    for item in &resolved.items {
        match item {
            Item::Inline(content) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(t.chmod.unwrap_or(0o644));
                h.set_size(content.len() as u64);
                h.set_mtime(0);
                let name = file_name.clone().unwrap_or_else(|| "heredoc".into());
                b.append_data(&mut h, &name, &content[..]).map_err(fail)?;
            }
            Item::Path {
                host,
                archive: true,
                ..
            } => archives.push(host.clone()),
            Item::Path {
                host, name, dir, ..
            } => {
                let prefix = if *dir {
                    String::new()
                } else {
                    file_name.clone().unwrap_or_else(|| name.clone())
                };
                for (rel, path, meta) in walk(host, *dir)? {
                    let entry_name = match (prefix.is_empty(), rel.is_empty()) {
                        (_, true) => prefix.clone(),
                        (true, false) => rel,
                        (false, false) => format!("{prefix}/{rel}"),
                    };
                    let mut h = tar::Header::new_gnu();
                    h.set_mode(mode_of(&meta));
                    h.set_mtime(meta.mtime().max(0) as u64);
                    h.set_size(0);
                    let ft = meta.file_type();
                    if ft.is_symlink() {
                        h.set_entry_type(tar::EntryType::Symlink);
                        let target = std::fs::read_link(&path).map_err(fail)?;
                        b.append_link(&mut h, &entry_name, &target).map_err(fail)?;
                    } else if ft.is_dir() {
                        h.set_entry_type(tar::EntryType::Directory);
                        b.append_data(&mut h, format!("{entry_name}/"), io::empty())
                            .map_err(fail)?;
                    } else if ft.is_file() {
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(meta.len());
                        let f = File::open(&path).map_err(fail)?;
                        b.append_data(&mut h, &entry_name, f.take(meta.len()))
                            .map_err(fail)?;
                    }
                }
            }
        }
    }
    let mut out = b.into_inner().map_err(fail)?;
    out.flush().map_err(fail)?;
    let mut tar_file = out.into_inner().map_err(|e| fail(e.into_error()))?;
    use std::io::Seek;
    tar_file.rewind().map_err(fail)?;
    let opts = ExtractOptions {
        owners: Owners::Fixed(t.uid, t.gid),
        ..ExtractOptions::default()
    };
    extract_into_engine_dir(&host_dir, &mut io::BufReader::new(tar_file), opts).map_err(|e| {
        BuildError::Invalid {
            message: format!("{verb} failed: {e}"),
        }
    })?;
    for archive in archives {
        let mut file = File::open(&archive).map_err(fail)?;
        let mut reader = crate::image::decompressed(&mut file)?;
        extract_into_engine_dir(&host_dir, &mut reader, ExtractOptions::default()).map_err(
            |e| BuildError::Invalid {
                message: format!("{verb} failed: {e}"),
            },
        )?;
    }
    let _ = std::fs::remove_file(&t.scratch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src/sub")).unwrap();
        std::fs::write(d.path().join("src/a.txt"), b"a").unwrap();
        std::fs::write(d.path().join("src/sub/b.txt"), b"b").unwrap();
        std::fs::write(d.path().join("one.txt"), b"1").unwrap();
        std::fs::write(d.path().join("two.txt"), b"2").unwrap();
        d
    }

    fn path(p: &str) -> (Source, String) {
        (Source::Path(p.into()), p.into())
    }

    #[test]
    fn sources_resolve_glob_and_hash_by_content() {
        let d = ctx();
        let r = resolve(d.path(), &[path("*.txt")], false, None).unwrap();
        assert_eq!(r.items.len(), 2);
        assert!(r.digest.starts_with("multi:"));
        let a = resolve(d.path(), &[path("src")], false, None).unwrap();
        assert!(a.digest.starts_with("dir:"));
        // Times do not matter, content does.
        let f = File::options()
            .write(true)
            .open(d.path().join("src/a.txt"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            resolve(d.path(), &[path("src")], false, None)
                .unwrap()
                .digest,
            a.digest
        );
        std::fs::write(d.path().join("src/a.txt"), b"changed").unwrap();
        assert_ne!(
            resolve(d.path(), &[path("src")], false, None)
                .unwrap()
                .digest,
            a.digest
        );
        assert_ne!(
            resolve(d.path(), &[path("src")], false, Some(0o600))
                .unwrap()
                .digest,
            a.digest
        );
    }

    #[test]
    fn bad_sources_get_dockers_messages() {
        let d = ctx();
        let e = resolve(d.path(), &[path("../x")], false, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "COPY failed: forbidden path outside the build context: ../x ()"
        );
        let e = resolve(d.path(), &[path("missing")], false, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "COPY failed: file not found in build context or excluded by .dockerignore: stat missing: file does not exist"
        );
        let e = resolve(d.path(), &[path("*.none")], false, None).unwrap_err();
        assert_eq!(e.to_string(), "COPY failed: no source files were specified");
        let e = resolve(d.path(), &[path("https://example.com/x")], true, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ADD failed: berth's builder does not download"),
            "{e}"
        );
    }

    #[test]
    fn files_land_where_docker_puts_them() {
        let d = ctx();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("existing")).unwrap();
        let t = |dest: &str| Target {
            merged: root.path(),
            dest: dest.into(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            chmod: None,
            scratch: root.path().join("scratch.tar"),
        };
        let r = resolve(d.path(), &[path("one.txt")], false, None).unwrap();
        write(&r, &t("/renamed.txt"), false).unwrap();
        assert_eq!(
            std::fs::read(root.path().join("renamed.txt")).unwrap(),
            b"1"
        );
        write(&r, &t("/existing"), false).unwrap();
        assert!(root.path().join("existing/one.txt").is_file());
        let r = resolve(d.path(), &[path("src")], false, None).unwrap();
        write(&r, &t("/app/"), false).unwrap();
        assert!(root.path().join("app/a.txt").is_file());
        assert!(root.path().join("app/sub/b.txt").is_file());
        let r = resolve(d.path(), &[path("one.txt"), path("two.txt")], false, None).unwrap();
        let e = write(&r, &t("/nodir"), false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("When using COPY with more than one source file"),
            "{e}"
        );
        assert!(!root.path().join("scratch.tar").exists());
    }
}
