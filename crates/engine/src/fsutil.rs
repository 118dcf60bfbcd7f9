//! Small file-system helpers shared by the stores.

use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

pub use shim::write_atomic;

/// Serializes `value` as JSON and writes it atomically (temp file, fsync, rename).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads a JSON file; a file that does not parse is an `InvalidData` error naming the path.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// The bytes of what lies under `dir`, as dockerd counts a container's changes (`SizeRw`):
/// the sizes of everything but directories, each inode once (hard links), not following
/// symlinks. Unreadable parts count as empty.
pub fn tree_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.len() > 0 && seen.insert(meta.ino()) {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_size_counts_files_once_and_not_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/one"), vec![0u8; 100]).unwrap();
        std::fs::write(d.join("a/b/two"), vec![0u8; 20]).unwrap();
        std::fs::hard_link(d.join("a/one"), d.join("again")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
        std::fs::write(d.join("empty"), b"").unwrap();
        let link_len = std::fs::symlink_metadata(d.join("link")).unwrap().len();
        assert_eq!(tree_size(d), 120 + link_len);
        assert_eq!(tree_size(&d.join("missing")), 0);
    }
}
