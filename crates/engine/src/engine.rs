//! The engine: one value that owns the stores and serves every operation.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

use crate::cgroups;
use crate::config::EngineConfig;
use crate::container::{Container, ContainerError};
use crate::events::Events;
use crate::image::{ImageError, ImageStore};
use crate::ErrorKind;

/// Any engine failure. Transports map [`EngineError::kind`] to status and exit codes and
/// show the message as it is.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Attach(#[from] crate::container::AttachError),
    #[error(transparent)]
    Exec(#[from] crate::container::ExecError),
    #[error(transparent)]
    Archive(#[from] crate::container::ArchiveError),
    #[error("Failed to open the engine's state in {path:?}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
}

impl EngineError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Container(e) => e.kind(),
            Self::Image(e) => e.kind(),
            Self::Attach(e) => e.kind(),
            Self::Exec(e) => e.kind(),
            Self::Archive(e) => e.kind(),
            Self::Open { .. } => ErrorKind::Internal,
            Self::Lock(_) => ErrorKind::Conflict,
        }
    }
}

/// The in-memory index of containers: by id, and names to ids.
#[derive(Default)]
pub(crate) struct Index {
    pub by_id: HashMap<String, Arc<Container>>,
    /// Names with their leading `/`.
    pub names: HashMap<String, String>,
}

impl Index {
    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub fn find(&self, key: &str) -> Result<Arc<Container>, ContainerError> {
        if key.is_empty() {
            return Err(ContainerError::NotFound { id: key.into() });
        }
        if let Some(c) = self.by_id.get(key) {
            return Ok(c.clone());
        }
        let name = if key.starts_with('/') {
            key.to_string()
        } else {
            format!("/{key}")
        };
        if let Some(id) = self.names.get(&name) {
            if let Some(c) = self.by_id.get(id) {
                return Ok(c.clone());
            }
        }
        if key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = self.by_id.iter().filter(|(id, _)| id.starts_with(key));
            if let Some((_, c)) = found.next() {
                if found.next().is_some() {
                    return Err(ContainerError::Ambiguous { prefix: key.into() });
                }
                return Ok(c.clone());
            }
        }
        Err(ContainerError::NotFound { id: key.into() })
    }
}

/// The berth engine.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) images: ImageStore,
    pub(crate) index: RwLock<Index>,
    pub(crate) events: Events,
    pub(crate) cgroups: cgroups::Cgroups,
    /// Every exec, by id.
    pub(crate) execs: crate::container::ExecStore,
    /// Whether this process watches shims (berthd) or only looks when asked (daemonless).
    pub(crate) watching: bool,
    /// This engine itself, for tasks that outlive a call (shim watchers).
    me: Weak<Engine>,
    /// A daemonless engine's shared claim on the data root (berthd holds its own).
    _root_lock: Option<crate::lock::RootLock>,
}

impl Engine {
    /// Opens the engine on its roots, loading every container and image, and reconciles what
    /// is on disk with what runs. With `watch`, running containers' shims are watched so
    /// exits are handled as they happen (requires a tokio runtime).
    ///
    /// Without `watch` the engine shares the data root with other processes (daemonless
    /// mode, see `container::disk`): it loads nothing up front, reads records when an
    /// operation needs them, locks what it changes, and leaves the start-up clean-up to
    /// berthd. The caller holds the data root (see [`crate::lock::RootLock`]); berthd takes
    /// it exclusively, [`Engine::open_daemonless`] shared.
    pub async fn open(config: EngineConfig, watch: bool) -> Result<Arc<Self>, EngineError> {
        Self::open_with(config, watch, None).await
    }

    /// Opens the engine for one daemonless command: claims the data root (shared with other
    /// daemonless commands; refused while berthd owns it) for as long as the engine lives.
    pub async fn open_daemonless(config: EngineConfig) -> Result<Arc<Self>, EngineError> {
        std::fs::create_dir_all(&config.data_root).map_err(|source| EngineError::Open {
            path: config.data_root.clone(),
            source,
        })?;
        let lock = crate::lock::RootLock::daemonless(&config.data_root)?;
        Self::open_with(config, false, Some(lock)).await
    }

    async fn open_with(
        config: EngineConfig,
        watch: bool,
        root_lock: Option<crate::lock::RootLock>,
    ) -> Result<Arc<Self>, EngineError> {
        for dir in [
            config.data_root.join("containers"),
            config.exec_root.join("containers"),
            config.exec_root.join("runtime"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| EngineError::Open {
                path: dir.clone(),
                source,
            })?;
        }
        let image_root = config.data_root.join("image");
        let images = if watch {
            ImageStore::open(&image_root)?
        } else {
            ImageStore::open_shared(&image_root)?
        };
        let journal = crate::journal::Journal::open(&config.data_root).map_err(|source| {
            EngineError::Open {
                path: config.data_root.join("events"),
                source,
            }
        })?;
        let cgroups = cgroups::Cgroups::new(&cgroups::parent_for(&config.data_root));
        let engine = Arc::new_cyclic(|me| Self {
            config,
            images,
            index: RwLock::new(Index::default()),
            events: Events::with_journal(journal),
            cgroups,
            execs: Default::default(),
            watching: watch,
            me: me.clone(),
            _root_lock: root_lock,
        });
        if watch {
            engine.load_containers()?;
            engine.reconcile().await;
        } else {
            engine.ensure_names().await?;
        }
        Ok(engine)
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The event bus.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Where this engine's containers' cgroups are.
    pub fn cgroups(&self) -> &cgroups::Cgroups {
        &self.cgroups
    }

    /// The image store.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    pub(crate) fn self_arc(&self) -> Option<Arc<Engine>> {
        self.me.upgrade()
    }

    pub(crate) fn find(&self, key: &str) -> Result<Arc<Container>, ContainerError> {
        if self.shared() {
            return self.find_on_disk(key);
        }
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .find(key)
    }

    pub(crate) fn all_containers(&self) -> Vec<Arc<Container>> {
        if self.shared() {
            return self.all_on_disk();
        }
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .values()
            .cloned()
            .collect()
    }
}
