//! `docker import`: a one-layer image from a root file system tarball.

use std::io::Read;

use api_types::ContainerConfig;

use super::changes;
use super::config::{host_architecture, now_rfc3339_nano, ConfigRootFs, History, ImageConfig};
use super::error::ImageError;
use super::reference::{Reference, ReferenceError};
use super::{ImageStore, ImportOptions};

/// The comment dockerd gives an image imported from the request body.
const DEFAULT_MESSAGE: &str = "Imported from -";

impl ImageStore {
    /// Makes an image of `rootfs_tar` (plain or gzip), with `opts.changes` applied to its
    /// config, tagged `opts.repo_tag` if given. Returns the image ID.
    pub fn import(
        &self,
        rootfs_tar: &mut dyn Read,
        opts: &ImportOptions,
    ) -> Result<String, ImageError> {
        // Everything that can be refused is checked before the tarball is read.
        let tag = match opts.repo_tag.as_deref().filter(|t| !t.is_empty()) {
            Some(repo_tag) => {
                let reference = Reference::parse_normalized(repo_tag)?;
                if reference.digest().is_some() {
                    return Err(ReferenceError::DigestTag.into());
                }
                Some(reference.with_default_tag())
            }
            None => None,
        };
        let mut container_config = ContainerConfig::default();
        changes::apply(&mut container_config, &opts.changes)?;

        let _gc = self.gc_shared()?;
        let layer = self.layers.create(rootfs_tar, None)?;
        let created = now_rfc3339_nano();
        let comment = if opts.message.is_empty() {
            DEFAULT_MESSAGE.to_string()
        } else {
            opts.message.clone()
        };
        let config = ImageConfig {
            architecture: host_architecture().to_string(),
            comment: comment.clone(),
            config: Some(container_config),
            created: Some(created.clone()),
            history: vec![History {
                created: Some(created),
                comment: Some(comment),
                ..History::default()
            }],
            os: "linux".to_string(),
            rootfs: ConfigRootFs {
                kind: "layers".to_string(),
                diff_ids: vec![layer.diff_id],
            },
            ..ImageConfig::default()
        };
        let bytes = serde_json::to_vec(&config)
            .map_err(|e| ImageError::io("cannot encode an image config", e.into()))?;
        self.publish(&bytes, tag.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::blob::sha256_digest;
    use crate::image::testutil::{store, TarMaker};
    use crate::ErrorKind;

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn imports_a_rootfs_with_changes() {
        let (_tmp, store) = store();
        let rootfs = TarMaker::default()
            .file("bin/sh", b"elf")
            .dir("etc")
            .finish();
        let opts = ImportOptions {
            repo_tag: Some("docker.io/library/ck-imported:v1".into()),
            changes: vec![
                r#"CMD ["/bin/sh"]"#.into(),
                "ENV A=1 B=\"two words\"".into(),
                "WORKDIR /srv".into(),
            ],
            message: String::new(),
        };
        let id = store.import(&mut &rootfs[..], &opts).unwrap();
        let inspect = store.inspect("ck-imported:v1").unwrap();
        assert_eq!(inspect.id, id);
        assert_eq!(inspect.repo_tags, ["ck-imported:v1"]);
        assert_eq!(inspect.comment, "Imported from -");
        assert_eq!(inspect.config.cmd, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(
            inspect.config.env,
            Some(vec!["A=1".to_string(), "B=two words".to_string()])
        );
        assert_eq!(inspect.config.working_dir, "/srv");
        assert_eq!(inspect.os, "linux");
        assert_eq!(inspect.architecture, host_architecture());
        assert_eq!(inspect.root_fs.layers, [sha256_digest(&rootfs)]);
        assert_eq!(inspect.size, 3);

        // The stored config is what Docker writes: history, rootfs, created.
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.config_path(&id)).unwrap()).unwrap();
        assert_eq!(
            sha256_digest(&std::fs::read(store.config_path(&id)).unwrap()),
            id
        );
        assert_eq!(raw["rootfs"]["type"], "layers");
        assert_eq!(raw["history"][0]["comment"], "Imported from -");
        assert_eq!(raw["history"][0]["created"], raw["created"]);
        assert_eq!(raw["config"]["Cmd"][0], "/bin/sh");

        let image = store.resolve(&id[7..19]).unwrap();
        assert_eq!(
            std::fs::read(image.layer_dirs[0].join("bin/sh")).unwrap(),
            b"elf"
        );
    }

    #[test]
    #[ignore = "needs root: layers are unpacked with their owners (run scripts/test.sh as root)"]
    fn message_becomes_the_comment_and_no_tag_is_dangling() {
        let (_tmp, store) = store();
        let rootfs = TarMaker::default().file("x", b"").finish();
        let opts = ImportOptions {
            message: "ck import".into(),
            ..ImportOptions::default()
        };
        let id = store.import(&mut &rootfs[..], &opts).unwrap();
        let inspect = store.inspect(&id).unwrap();
        assert_eq!(inspect.comment, "ck import");
        assert!(inspect.repo_tags.is_empty());
        // The same rootfs again shares the layer.
        store.import(&mut &rootfs[..], &opts).unwrap();
        assert_eq!(
            std::fs::read_dir(store.root().join("layers"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn bad_input_is_refused_before_reading() {
        let (_tmp, store) = store();
        let opts = ImportOptions {
            changes: vec!["FOO bar".into()],
            ..ImportOptions::default()
        };
        let err = store.import(&mut &b"not even read"[..], &opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dockerfile parse error line 1: unknown instruction: FOO"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let opts = ImportOptions {
            repo_tag: Some("Bad:tag".into()),
            ..ImportOptions::default()
        };
        let err = store.import(&mut &b""[..], &opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid reference format: repository name must be lowercase"
        );
        let opts = ImportOptions {
            repo_tag: Some("ok:tag".into()),
            ..ImportOptions::default()
        };
        let err = store.import(&mut &[1u8; 600][..], &opts).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert_eq!(store.count(), 0);
    }
}
