//! `docker commit`: a container's changes as a new image (`POST /commit`).
//!
//! The container's overlay upper directory becomes the new layer (see `image::upper_tar`),
//! its config, with `--change` instructions applied, the image's config. A running
//! container is frozen meanwhile (`pause`, dockerd's default) so its files do not change
//! half-way through; it is held for the whole commit so it cannot be removed under it.

use std::collections::BTreeMap;

use api_types::ContainerConfig;

use crate::container::changes::INIT_PATHS;
use crate::container::{ContainerError, Status};
use crate::engine::{Engine, EngineError};
use crate::image::{ChildImage, ImageError, Reference, ReferenceError};
use crate::Caller;

/// What `commit` was asked for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Repository to tag the image with (a tag may be in it, as `repo:tag`).
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: String,
    pub author: String,
    /// Freeze a running container while its changes are read (dockerd's default: yes).
    pub pause: bool,
    /// Dockerfile instructions applied to the config (`CMD ["sh"]`, `ENV A=b`, …).
    pub changes: Vec<String>,
    /// A config given with the request; its set fields win over the container's.
    pub config: Option<ContainerConfig>,
}

impl CommitOptions {
    /// The tag the image gets, checked as dockerd checks it.
    fn reference(&self) -> Result<Option<Reference>, ImageError> {
        let Some(repo) = self.repo.as_deref().filter(|r| !r.is_empty()) else {
            if self.tag.as_deref().is_some_and(|t| !t.is_empty()) {
                return Err(ReferenceError::InvalidFormat.into());
            }
            return Ok(None);
        };
        let r = Reference::parse_normalized(repo)?;
        if r.digest().is_some() {
            return Err(ReferenceError::DigestTag.into());
        }
        Ok(Some(match self.tag.as_deref().filter(|t| !t.is_empty()) {
            Some(tag) => r.with_tag(tag)?,
            None => r.with_default_tag(),
        }))
    }
}

/// Fills what `over` leaves unset from `base` (dockerd's `merge` of commit configs).
fn merge(mut over: ContainerConfig, base: &ContainerConfig) -> ContainerConfig {
    macro_rules! keep {
        ($($f:ident),*) => { $( if over.$f.is_none() { over.$f = base.$f.clone(); } )* };
    }
    keep!(
        exposed_ports,
        env,
        cmd,
        healthcheck,
        volumes,
        entrypoint,
        on_build,
        labels,
        stop_signal,
        stop_timeout,
        shell
    );
    if over.user.is_empty() {
        over.user = base.user.clone();
    }
    if over.working_dir.is_empty() {
        over.working_dir = base.working_dir.clone();
    }
    if over.hostname.is_empty() {
        over.hostname = base.hostname.clone();
    }
    if over.image.is_empty() {
        over.image = base.image.clone();
    }
    over.tty |= base.tty;
    over.open_stdin |= base.open_stdin;
    over.stdin_once |= base.stdin_once;
    over.attach_stdin |= base.attach_stdin;
    over.attach_stdout |= base.attach_stdout;
    over.attach_stderr |= base.attach_stderr;
    over
}

impl Engine {
    /// Makes an image of container `name`'s changes; returns the image ID.
    pub async fn commit_container(
        &self,
        caller: &Caller,
        name: &str,
        opts: CommitOptions,
    ) -> Result<String, EngineError> {
        let reference = opts.reference()?;
        let container = self.find(name)?;
        let _op = self.lock_op(&container).await?;
        let rec = container.snapshot();
        let mut config = match &opts.config {
            Some(given) => merge(given.clone(), &rec.config),
            None => rec.config.clone(),
        };
        crate::image::apply_changes(&mut config, &opts.changes)?;
        let freeze = opts.pause && rec.state.status == Status::Running;
        if freeze {
            self.cgroups.set_frozen(&container.id, true).map_err(|e| {
                ContainerError::io(format!("Cannot pause container {}", container.id), e)
            })?;
        }
        let upper = container.dir.join("diff");
        let layers = rec.layers.clone();
        let created_by = rec.config.cmd.clone().unwrap_or_default().join(" ");
        let child = ChildImageParts {
            parent: (!rec.image_id.is_empty()).then(|| rec.image_id.clone()),
            config,
            container_config: rec.config.clone(),
            container: container.id.clone(),
            author: opts.author.clone(),
            comment: opts.comment.clone(),
            created_by,
            tags: reference.clone().into_iter().collect(),
        };
        let engine = self.self_arc();
        let made = tokio::task::spawn_blocking(move || {
            let Some(engine) = engine else {
                return Err(EngineError::from(ContainerError::io(
                    "The engine is shutting down",
                    std::io::Error::other("gone"),
                )));
            };
            engine
                .images
                .create_from_upper(&upper, &layers, INIT_PATHS, child.into_child())
                .map_err(EngineError::from)
        })
        .await
        .map_err(|e| ContainerError::io("The commit task failed", std::io::Error::other(e)));
        if freeze {
            if let Err(e) = self.cgroups.set_frozen(&container.id, false) {
                tracing::warn!(container = %container.id, error = %crate::error::Chain(&e), "cannot thaw the container after commit");
            }
        }
        let id = made??;
        let mut attrs: BTreeMap<String, String> = BTreeMap::new();
        attrs.insert("comment".into(), opts.comment.clone());
        attrs.insert("imageID".into(), id.clone());
        attrs.insert(
            "imageRef".into(),
            reference
                .as_ref()
                .map(Reference::familiar_string)
                .unwrap_or_else(|| id.clone()),
        );
        attrs.extend(container.event_attributes());
        self.events
            .emit(caller, "container", "commit", &container.id, attrs);
        Ok(id)
    }
}

/// The owned parts of a [`ChildImage`], to move into a blocking task.
struct ChildImageParts {
    parent: Option<String>,
    config: ContainerConfig,
    container_config: ContainerConfig,
    container: String,
    author: String,
    comment: String,
    created_by: String,
    tags: Vec<Reference>,
}

impl ChildImageParts {
    fn into_child(self) -> ChildImage<'static> {
        ChildImage {
            parent: self.parent,
            layer: None,
            config: self.config,
            container_config: Some(self.container_config),
            container: self.container,
            author: self.author,
            comment: self.comment,
            created_by: self.created_by,
            build_key: None,
            tags: self.tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked_like_dockerd() {
        let opts = |repo: &str, tag: &str| CommitOptions {
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            ..Default::default()
        };
        assert_eq!(
            opts("app", "")
                .reference()
                .unwrap()
                .unwrap()
                .familiar_string(),
            "app:latest"
        );
        assert_eq!(
            opts("localhost:5000/app", "v1")
                .reference()
                .unwrap()
                .unwrap()
                .familiar_string(),
            "localhost:5000/app:v1"
        );
        assert!(opts("App", "").reference().is_err());
        assert!(opts("app", "bad tag").reference().is_err());
        assert!(CommitOptions::default().reference().unwrap().is_none());
    }

    #[test]
    fn given_configs_win_and_the_rest_comes_from_the_container() {
        let base = ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["A=1".into()]),
            working_dir: "/srv".into(),
            ..Default::default()
        };
        let given = ContainerConfig {
            cmd: Some(vec!["top".into()]),
            ..Default::default()
        };
        let m = merge(given, &base);
        assert_eq!(m.cmd, Some(vec!["top".to_string()]));
        assert_eq!(m.env, Some(vec!["A=1".to_string()]));
        assert_eq!(m.working_dir, "/srv");
    }
}
