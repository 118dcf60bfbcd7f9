//! The create-time check that the container's program exists and is executable.
//!
//! runc looks `process.args[0]` up with Go's `exec.LookPath` inside the new container
//! and fails `create` with `exec: "x": executable file not found in $PATH` (or
//! `permission denied`); the docker CLI turns those words into exit codes 127 and 126.
//! We do the same lookup before anything is created, in the bundle's rootfs, resolving
//! symlinks as the container will see them: inside the rootfs, never on the host.
//!
//! The rootfs is not yet what the container will see: the spec's mounts (volumes, /proc,
//! …) are not there. A path that crosses a mount destination is therefore "not known";
//! if nothing else is found, the check passes and libcontainer's own check inside the
//! container has the last word.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Spec;

/// How deep symlinks may nest before the lookup gives up, as Linux does.
const MAX_SYMLINKS: u32 = 40;

/// Why the container's program cannot be executed, in Go's `exec` wording.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExecutableError {
    #[error("exec: {name:?}: executable file not found in $PATH")]
    NotFoundInPath { name: String },
    #[error("exec: {name:?}: stat {name}: {}", errno_text(*.errno))]
    Stat { name: String, errno: Errno },
    #[error("exec: {name:?}: permission denied")]
    PermissionDenied { name: String },
    #[error("exec: {name:?}: is a directory")]
    IsDirectory { name: String },
    #[error("chdir to cwd ({cwd:?}) set in config.json failed: {}", errno_text(*.errno))]
    Cwd { cwd: PathBuf, errno: Errno },
}

/// Checks `process.args[0]` of `spec` against the PATH of `process.env` inside `rootfs`.
/// Specs without a process or args are left to libcontainer to reject.
pub fn check(spec: &Spec, rootfs: &Path) -> Result<(), ExecutableError> {
    let Some(process) = spec.process().as_ref() else {
        return Ok(());
    };
    let Some(name) = process.args().as_ref().and_then(|a| a.first()) else {
        return Ok(());
    };
    let path_var = process
        .env()
        .as_ref()
        .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")))
        .unwrap_or("");
    let mounts: Vec<PathBuf> = spec
        .mounts()
        .as_ref()
        .map(|ms| ms.iter().map(|m| clean(m.destination())).collect())
        .unwrap_or_default();
    let lookup = Lookup {
        root: rootfs,
        cwd: process.cwd(),
        mounts: &mounts,
    };
    lookup.check(name, path_var)
}

/// Checks that `process.cwd` of `spec` is a directory inside `rootfs` (for exec, where
/// nothing creates it): runc's words when it is not. A path crossing a mount destination
/// is left to the runtime.
pub fn check_cwd(spec: &Spec, rootfs: &Path) -> Result<(), ExecutableError> {
    let Some(process) = spec.process().as_ref() else {
        return Ok(());
    };
    let mounts: Vec<PathBuf> = spec
        .mounts()
        .as_ref()
        .map(|ms| ms.iter().map(|m| clean(m.destination())).collect())
        .unwrap_or_default();
    let lookup = Lookup {
        root: rootfs,
        cwd: Path::new("/"),
        mounts: &mounts,
    };
    let cwd = process.cwd();
    let errno = match lookup.resolve(cwd) {
        Resolved::File(meta) if meta.is_dir() => return Ok(()),
        Resolved::Unknown => return Ok(()),
        Resolved::File(_) => Errno::ENOTDIR,
        Resolved::Missing(errno) => errno,
    };
    Err(ExecutableError::Cwd {
        cwd: cwd.to_path_buf(),
        errno,
    })
}

struct Lookup<'a> {
    root: &'a Path,
    cwd: &'a Path,
    mounts: &'a [PathBuf],
}

/// Where a path leads inside the rootfs.
#[derive(Debug)]
enum Resolved {
    /// An existing file (symlinks followed).
    File(std::fs::Metadata),
    /// Nothing there, for this reason.
    Missing(Errno),
    /// The path crosses a mount destination of the spec: the rootfs cannot tell.
    Unknown,
}

impl Lookup<'_> {
    /// Go's `exec.LookPath`: a name with a slash is used as is; otherwise the first
    /// executable regular file along PATH wins, and non-executables are skipped.
    fn check(&self, name: &str, path_var: &str) -> Result<(), ExecutableError> {
        if name.contains('/') {
            return match self.resolve(&self.cwd.join(name)) {
                Resolved::Unknown => Ok(()),
                Resolved::Missing(errno) => Err(ExecutableError::Stat {
                    name: name.to_owned(),
                    errno,
                }),
                Resolved::File(meta) if meta.is_dir() => Err(ExecutableError::IsDirectory {
                    name: name.to_owned(),
                }),
                Resolved::File(meta) if meta.permissions().mode() & 0o111 == 0 => {
                    Err(ExecutableError::PermissionDenied {
                        name: name.to_owned(),
                    })
                }
                Resolved::File(_) => Ok(()),
            };
        }
        let mut unknown = false;
        for dir in path_var.split(':').filter(|_| !path_var.is_empty()) {
            let dir = if dir.is_empty() { "." } else { dir };
            match self.resolve(&self.cwd.join(dir).join(name)) {
                Resolved::File(meta)
                    if !meta.is_dir() && meta.permissions().mode() & 0o111 != 0 =>
                {
                    return Ok(())
                }
                Resolved::File(_) | Resolved::Missing(_) => {}
                Resolved::Unknown => unknown = true,
            }
        }
        if unknown {
            return Ok(());
        }
        Err(ExecutableError::NotFoundInPath {
            name: name.to_owned(),
        })
    }

    /// Resolves `path` (absolute, in the container's view) component by component inside
    /// the rootfs, following symlinks relative to the rootfs. Every prefix looked at has
    /// had its symlinks resolved already, so the host never follows a container symlink.
    fn resolve(&self, path: &Path) -> Resolved {
        let mut todo: VecDeque<OsString> = components(path).collect();
        let mut current = PathBuf::from("/");
        let mut meta = match std::fs::metadata(self.root) {
            Ok(m) => m,
            Err(e) => return Resolved::Missing(errno_of(&e)),
        };
        let mut links = 0;
        while let Some(part) = todo.pop_front() {
            if part == ".." {
                current.pop();
                meta = match std::fs::symlink_metadata(self.host_path(&current)) {
                    Ok(m) => m,
                    Err(e) => return Resolved::Missing(errno_of(&e)),
                };
                continue;
            }
            if !meta.is_dir() {
                return Resolved::Missing(Errno::ENOTDIR);
            }
            let next = current.join(&part);
            if self.mounts.iter().any(|m| next.starts_with(m)) {
                return Resolved::Unknown;
            }
            let host = self.host_path(&next);
            let next_meta = match std::fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) => return Resolved::Missing(errno_of(&e)),
            };
            if next_meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Resolved::Missing(Errno::ELOOP);
                }
                let target = match std::fs::read_link(&host) {
                    Ok(t) => t,
                    Err(e) => return Resolved::Missing(errno_of(&e)),
                };
                if target.is_absolute() {
                    current = PathBuf::from("/");
                    meta = match std::fs::metadata(self.root) {
                        Ok(m) => m,
                        Err(e) => return Resolved::Missing(errno_of(&e)),
                    };
                }
                for part in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(part);
                }
                continue;
            }
            current = next;
            meta = next_meta;
        }
        Resolved::File(meta)
    }

    fn host_path(&self, container_path: &Path) -> PathBuf {
        self.root
            .join(container_path.strip_prefix("/").unwrap_or(container_path))
    }
}

/// The normal and `..` components of a path; `/` and `.` say nothing once we know
/// whether it is absolute.
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_owned()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// A mount destination as an absolute path without `.`/`..`.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in components(path) {
        if part == ".." {
            out.pop();
        } else {
            out.push(part);
        }
    }
    out
}

fn errno_of(err: &std::io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
}

/// Go's lower-case errno texts (`no such file or directory`).
fn errno_text(errno: Errno) -> String {
    let desc = errno.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("data")).unwrap();
        std::fs::write(r.join("bin/busybox"), b"").unwrap();
        std::fs::set_permissions(
            r.join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(r.join("usr/bin/plain"), b"").unwrap();
        std::fs::set_permissions(
            r.join("usr/bin/plain"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        symlink("busybox", r.join("bin/sh")).unwrap();
        // An absolute symlink must resolve inside the rootfs, not on the host.
        symlink("/bin/busybox", r.join("usr/bin/abs")).unwrap();
        symlink("/etc/passwd", r.join("usr/bin/host-escape")).unwrap();
        symlink("../../../../bin/busybox", r.join("usr/bin/dotdot")).unwrap();
        symlink("loop", r.join("usr/bin/loop")).unwrap();
        dir
    }

    fn check(root: &Path, name: &str, path: &str, mounts: &[&str]) -> Result<(), ExecutableError> {
        let mounts: Vec<PathBuf> = mounts.iter().map(|m| clean(Path::new(m))).collect();
        Lookup {
            root,
            cwd: Path::new("/"),
            mounts: &mounts,
        }
        .check(name, path)
    }

    fn spec_with_cwd(cwd: &str, mounts: &[&str]) -> Spec {
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_cwd(PathBuf::from(cwd));
        spec.set_process(Some(process));
        let mounts: Vec<oci_spec::runtime::Mount> = mounts
            .iter()
            .map(|m| {
                let mut mount = oci_spec::runtime::Mount::default();
                mount.set_destination(PathBuf::from(m));
                mount
            })
            .collect();
        spec.set_mounts(Some(mounts));
        spec
    }

    #[test]
    fn a_working_directory_must_be_a_directory_in_the_rootfs() {
        let dir = rootfs();
        let r = dir.path();
        check_cwd(&spec_with_cwd("/data", &[]), r).unwrap();
        check_cwd(&spec_with_cwd("/", &[]), r).unwrap();
        let err = check_cwd(&spec_with_cwd("/nonexistent", &[]), r).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"chdir to cwd ("/nonexistent") set in config.json failed: no such file or directory"#
        );
        let err = check_cwd(&spec_with_cwd("/bin/busybox", &[]), r).unwrap_err();
        assert!(err.to_string().ends_with("not a directory"), "{err}");
        // Under a mount destination the rootfs cannot tell.
        check_cwd(&spec_with_cwd("/vol/sub", &["/vol"]), r).unwrap();
    }

    #[test]
    fn programs_are_found_along_path_through_symlinks_inside_the_rootfs() {
        let dir = rootfs();
        let r = dir.path();
        check(r, "sh", "/usr/bin:/bin", &[]).unwrap();
        check(r, "abs", "/usr/bin", &[]).unwrap();
        check(r, "dotdot", "/usr/bin", &[]).unwrap();
        check(r, "/bin/sh", "", &[]).unwrap();
        check(r, "bin/sh", "", &[]).unwrap();
    }

    #[test]
    fn a_missing_program_has_runcs_wording() {
        let dir = rootfs();
        let r = dir.path();
        let err = check(r, "nosuchcmd", "/usr/bin:/bin", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"exec: "nosuchcmd": executable file not found in $PATH"#
        );
        // No PATH at all: only names with a slash can be found.
        assert!(matches!(
            check(r, "sh", "", &[]),
            Err(ExecutableError::NotFoundInPath { .. })
        ));
        // /etc/passwd exists on the host, not in the rootfs.
        assert!(matches!(
            check(r, "host-escape", "/usr/bin", &[]),
            Err(ExecutableError::NotFoundInPath { .. })
        ));
        assert!(matches!(
            check(r, "loop", "/usr/bin", &[]),
            Err(ExecutableError::NotFoundInPath { .. })
        ));
        let err = check(r, "/nosuch", "/bin", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"exec: "/nosuch": stat /nosuch: no such file or directory"#
        );
        let err = check(r, "/bin/sh/x", "/bin", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"exec: "/bin/sh/x": stat /bin/sh/x: not a directory"#
        );
    }

    #[test]
    fn non_executables_are_skipped_on_path_and_refused_by_path() {
        let dir = rootfs();
        let r = dir.path();
        assert!(matches!(
            check(r, "plain", "/usr/bin", &[]),
            Err(ExecutableError::NotFoundInPath { .. })
        ));
        let err = check(r, "/usr/bin/plain", "", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"exec: "/usr/bin/plain": permission denied"#
        );
        let err = check(r, "/bin", "", &[]).unwrap_err();
        assert_eq!(err.to_string(), r#"exec: "/bin": is a directory"#);
    }

    #[test]
    fn paths_under_a_mount_are_left_to_the_container() {
        let dir = rootfs();
        let r = dir.path();
        check(r, "/data/tool", "", &["/data/"]).unwrap();
        check(r, "tool", "/data:/bin", &["/data"]).unwrap();
        symlink("/data/tool", r.join("usr/bin/via-volume")).unwrap();
        check(r, "via-volume", "/usr/bin", &["/data"]).unwrap();
        // A mount elsewhere changes nothing.
        assert!(check(r, "nosuchcmd", "/bin", &["/data"]).is_err());
    }
}
