//! The engine: one value that owns the stores and serves every operation.

use std::sync::{Arc, Weak};

use crate::cgroups;
use crate::config::EngineConfig;
use crate::container::{Container, ContainerError, ContainerStore, ExitNotice};
use crate::events::Events;
use crate::image::{ImageError, ImageStore};
use crate::kernel::{Host, Kernel};
use crate::store::Sharing;
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

/// The berth engine.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) images: ImageStore,
    pub(crate) containers: ContainerStore,
    pub(crate) events: Events,
    pub(crate) cgroups: cgroups::Cgroups,
    /// Every exec, by id.
    pub(crate) execs: crate::container::ExecStore,
    /// How exits come to be known: watched as they happen (berthd) or noticed when looked
    /// at (daemonless).
    pub(crate) exits: ExitNotice,
    /// The kernel calls of the container life cycle.
    pub(crate) kernel: Arc<dyn Kernel>,
    /// This engine itself, for tasks that outlive a call (shim watchers).
    me: Weak<Engine>,
    /// A daemonless engine's shared claim on the data root (berthd holds its own).
    _root_lock: Option<crate::lock::RootLock>,
}

impl Engine {
    /// Opens the engine for berthd, which owns the data root: loads every container and
    /// image, reconciles what is on disk with what runs, and watches running containers'
    /// shims so exits are handled as they happen (requires a tokio runtime). The caller
    /// holds the data root exclusively (see [`crate::lock::RootLock`]).
    pub async fn open(config: EngineConfig) -> Result<Arc<Self>, EngineError> {
        Self::open_with(config, Sharing::Owned, None, Arc::new(Host)).await
    }

    /// Opens the engine for one daemonless command: claims the data root (shared with other
    /// daemonless commands; refused while berthd owns it) for as long as the engine lives.
    /// Nothing is loaded up front: each operation reads the records it needs, locks what it
    /// changes, and notices exits when it looks; start-up clean-up is left to berthd.
    pub async fn open_daemonless(config: EngineConfig) -> Result<Arc<Self>, EngineError> {
        std::fs::create_dir_all(&config.data_root).map_err(|source| EngineError::Open {
            path: config.data_root.clone(),
            source,
        })?;
        let lock = crate::lock::RootLock::daemonless(&config.data_root)?;
        Self::open_with(config, Sharing::Shared, Some(lock), Arc::new(Host)).await
    }

    /// Opens an engine on its roots used as `sharing` says, with `kernel` for the container
    /// life cycle (tests pass a fake).
    pub(crate) async fn open_with(
        config: EngineConfig,
        sharing: Sharing,
        root_lock: Option<crate::lock::RootLock>,
        kernel: Arc<dyn Kernel>,
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
        let images = ImageStore::open_as(&config.data_root.join("image"), sharing)?;
        let journal = crate::journal::Journal::open(&config.data_root).map_err(|source| {
            EngineError::Open {
                path: config.data_root.join("events"),
                source,
            }
        })?;
        let containers = ContainerStore::open(
            sharing,
            &config.data_root,
            &config.exec_root,
            kernel.clone(),
        )
        .await?;
        let cgroups = cgroups::Cgroups::new(&cgroups::parent_for(&config.data_root));
        let exits = match sharing {
            Sharing::Owned => ExitNotice::Watched,
            Sharing::Shared => ExitNotice::OnLook,
        };
        let engine = Arc::new_cyclic(|me| Self {
            config,
            images,
            containers,
            events: Events::new(journal, sharing),
            cgroups,
            execs: Default::default(),
            exits,
            kernel,
            me: me.clone(),
            _root_lock: root_lock,
        });
        if sharing == Sharing::Owned {
            engine.reconcile().await;
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

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub(crate) fn find(&self, key: &str) -> Result<Arc<Container>, ContainerError> {
        self.containers.find(key)
    }

    /// Every container.
    pub(crate) fn all_containers(&self) -> Vec<Arc<Container>> {
        self.containers.all()
    }

    /// Every container's record, newest first, as listings show them.
    pub(crate) async fn list_records(&self) -> Vec<crate::container::ContainerRecord> {
        self.containers.listing(self).await
    }
}
