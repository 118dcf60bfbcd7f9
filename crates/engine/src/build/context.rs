//! The build context: the client's tar (plain or gzip) unpacked into scratch space under
//! the image store's `tmp/`, with dockerd's untar rules (no entry or relative symlink may
//! lead outside it), and the mounts a build makes there. Everything goes when the build
//! ends, whether it succeeded or not: mounts first, then the directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::ignore::IgnoreMatcher;
use super::BuildError;
use crate::container::{extract_into_engine_dir, ArchiveError, ExtractOptions};
use crate::image::ScratchDir;

/// A build's scratch space: the unpacked context and room for overlays.
pub(crate) struct Workspace {
    /// Mounts to undo, most recent last.
    mounts: std::sync::Mutex<Vec<PathBuf>>,
    next: std::sync::atomic::AtomicU64,
    // Dropped last: the directory goes once nothing is mounted in it.
    scratch: ScratchDir,
}

impl Workspace {
    /// Unpacks `context` into a new scratch directory under `tmp`.
    pub(crate) fn unpack(tmp: &Path, context: &mut dyn Read) -> Result<Self, BuildError> {
        let scratch = ScratchDir::new(tmp, "build")?;
        let ws = Self {
            mounts: Default::default(),
            next: Default::default(),
            scratch,
        };
        let dir = ws.context();
        std::fs::create_dir(&dir).map_err(|e| BuildError::io("cannot create the context", e))?;
        let mut reader = crate::image::decompressed(context)?;
        // The messages name the context, not where berth keeps it.
        let shown = format!("{:?}", dir.display().to_string());
        let hide = |m: String| m.replace(&shown, "the build context");
        extract_into_engine_dir(&dir, &mut reader, ExtractOptions::default()).map_err(|e| {
            let message = match e {
                ArchiveError::Breakout { message } => message,
                other => other.to_string(),
            };
            BuildError::Context {
                message: format!("Error processing tar file: {}", hide(message)),
            }
        })?;
        Ok(ws)
    }

    /// The unpacked context.
    pub(crate) fn context(&self) -> PathBuf {
        self.scratch.path().join("context")
    }

    /// A new, empty directory in the scratch space.
    pub(crate) fn new_dir(&self, what: &str) -> Result<PathBuf, BuildError> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.scratch.path().join(format!("{what}-{n}"));
        std::fs::create_dir(&dir).map_err(|e| BuildError::io("cannot create scratch space", e))?;
        Ok(dir)
    }

    /// Notes a mount to undo when the workspace goes.
    pub(crate) fn mounted(&self, target: PathBuf) {
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(target);
    }

    /// Undoes a mount now.
    pub(crate) fn unmount(&self, target: &Path) {
        if let Err(e) = crate::rootfs::unmount(target) {
            tracing::warn!(target = %target.display(), error = %crate::error::Chain(&e), "cannot unmount build scratch");
        }
        self.mounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|m| m != target);
    }

    /// The Dockerfile `name` (a path in the context), as text.
    pub(crate) fn dockerfile(&self, name: &str) -> Result<String, BuildError> {
        let missing = || BuildError::Invalid {
            message: format!("Cannot locate specified Dockerfile: {name}"),
        };
        let mut file = crate::rootfs::open_in_root(
            &self.context(),
            Path::new(name),
            rustix::fs::OFlags::RDONLY,
        )
        .map_err(|_| missing())?;
        if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(missing());
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| BuildError::Invalid {
                message: format!("cannot read the Dockerfile {name}: {e}"),
            })?;
        Ok(text)
    }

    /// dockerd's `removeDockerfile`: `.dockerignore` and the Dockerfile leave the context
    /// when `.dockerignore` excludes them (the client sent them for the build to read).
    pub(crate) fn remove_ignored(&self, dockerfile: &str) {
        let Ok(Some(text)) =
            crate::rootfs::read_in_root(&self.context(), Path::new(".dockerignore"))
        else {
            return;
        };
        let matcher = IgnoreMatcher::parse(&text);
        for name in [".dockerignore", dockerfile] {
            if matcher.excludes(name) {
                let clean: PathBuf = Path::new(name)
                    .components()
                    .filter(|c| matches!(c, std::path::Component::Normal(_)))
                    .collect();
                let _ = std::fs::remove_file(self.context().join(clean));
            }
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let mounts = std::mem::take(&mut *self.mounts.lock().unwrap_or_else(|e| e.into_inner()));
        for target in mounts.iter().rev() {
            if let Err(e) = crate::rootfs::unmount(target) {
                tracing::warn!(target = %target.display(), error = %crate::error::Chain(&e), "cannot unmount build scratch; leaving it");
                // A directory still mounted must not be removed recursively.
                self.scratch_keep();
                return;
            }
        }
    }
}

impl Workspace {
    fn scratch_keep(&mut self) {
        let placeholder = ScratchDir::placeholder();
        let scratch = std::mem::replace(&mut self.scratch, placeholder);
        scratch.keep();
    }
}
