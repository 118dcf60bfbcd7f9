//! Containers: their persistent record, Docker's state machine, and the operations on
//! them (one file per verb, each an `impl Engine` block).

mod archive;
pub(crate) mod changes;
mod create;
mod extract;
mod fsroot;
mod hold;
#[cfg(test)]
mod lifecycle_tests;
mod logs;
mod monitor;
mod mounts;
mod naming;
mod pause;
mod query;
mod remove;
mod rename;
mod restart;
mod start;
mod stats;
mod stop;
mod store;
pub(crate) mod tarwrite;
mod top;
mod update;
mod wait;

// Clients on a running container's stdio: attach, exec, and the shim link they share.
mod attach;
mod exec;
mod health;
mod link;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use api_types::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::ErrorKind;

pub use archive::{ArchiveError, CopyToOptions, TarStream};
pub use extract::{extract_into_engine_dir, extract_into_host_dir, ExtractOptions, Owners};
pub use logs::{LogChunk, LogOptions, LogStream, LogsRequest};
pub(crate) use monitor::ExitNotice;
pub use mounts::BindMount;
pub use query::ListOptions;
pub use stats::StatsOptions;
pub(crate) use store::ContainerStore;
pub use tarwrite::archive_host_path;
pub use wait::WaitCondition;

pub use attach::{AttachError, AttachInput, AttachOptions, AttachSession};
pub(crate) use exec::ExecStore;
pub use exec::{ExecError, ExecSession};

/// The RFC 3339 value Docker shows for a time that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A container's status, with Docker's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    /// Docker's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether the container's processes exist (running or frozen).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a container's processes are, while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processes {
    /// The container's first process, in the host pid namespace.
    pub pid: i32,
    /// Its shim.
    pub shim_pid: i32,
    /// The shim's start time (clock ticks since boot), to recognise it after pid reuse.
    pub shim_start_time: u64,
    /// The shim's pidfs inode (0 where there is no pidfs): the same, checked cheaply.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shim_ino: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The run-time state kept in a container's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    pub processes: Option<Processes>,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// The healthcheck's state, for containers that have one.
    #[serde(default)]
    pub health: Option<api_types::Health>,
}

impl Default for RunState {
    fn default() -> Self {
        Self {
            status: Status::Created,
            processes: None,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            health: None,
        }
    }
}

/// Everything berth stores about a container (its `container.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// With Docker's leading `/`.
    pub name: String,
    pub created: String,
    /// The image id (`sha256:…`).
    pub image_id: String,
    /// The image as the user named it.
    pub image_name: String,
    /// The merged configuration (image defaults applied).
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// The command: first word and the rest, after merging entrypoint and cmd.
    pub path: String,
    pub args: Vec<String>,
    /// The image's unpacked layers, bottom first (kept so a force-removed image's
    /// containers still start).
    pub layers: Vec<PathBuf>,
    pub state: RunState,
    pub restart_count: i64,
    /// Who created the container (uid), for audit and policy.
    pub created_by_uid: u32,
    /// Stopped by a user (`stop`, `kill`): restart policies leave it alone, as Docker's
    /// `HasBeenManuallyStopped`.
    #[serde(default)]
    pub manually_stopped: bool,
}

/// What waiters watch: bumped on every exit and on removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    pub status: Status,
    pub exits: u64,
    pub exit_code: i64,
    pub removed: bool,
}

/// A container known to the engine.
pub(crate) struct Container {
    pub id: String,
    /// `<data-root>/containers/<id>`.
    pub dir: PathBuf,
    /// `<exec-root>/containers/<id>`: bundle, shim config.
    pub run_dir: PathBuf,
    pub record: Mutex<ContainerRecord>,
    /// Serializes lifecycle operations (start, stop, remove…) on this container.
    pub op: tokio::sync::Mutex<()>,
    pub lifecycle: watch::Sender<Lifecycle>,
    /// The restart policy's current back-off delay (Docker's: 100 ms, doubling).
    pub backoff: Mutex<std::time::Duration>,
    /// The shim (pid, start time) whose exit is being or has been handled: the shim watcher
    /// and a caller that notices the exit first must not both handle it.
    pub exit_claimed: Mutex<Option<(i32, u64)>>,
    /// Its shim's link and the attach sessions waiting for the next start.
    pub streams: attach::Streams,
    /// Which version of the record file `record` holds (a shared store re-reads changes).
    pub stamp: Mutex<Option<crate::store::Stamp>>,
}

impl Container {
    pub fn new(record: ContainerRecord, data_root: &Path, exec_root: &Path) -> Self {
        let lifecycle = Lifecycle {
            status: record.state.status,
            exits: 0,
            exit_code: record.state.exit_code,
            removed: false,
        };
        Self {
            id: record.id.clone(),
            dir: data_root.join("containers").join(&record.id),
            run_dir: exec_root.join("containers").join(&record.id),
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
            lifecycle: watch::channel(lifecycle).0,
            backoff: Mutex::new(std::time::Duration::ZERO),
            exit_claimed: Mutex::new(None),
            streams: attach::Streams::default(),
            stamp: Mutex::new(None),
        }
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> ContainerRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the record, persists it atomically and publishes the new status.
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut ContainerRecord) -> R,
    ) -> Result<R, ContainerError> {
        let mut rec = self.record.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut rec);
        let path = self.dir.join(RECORD_FILE);
        crate::fsutil::write_json_atomic(&path, &*rec).map_err(|source| {
            ContainerError::WriteState {
                path: path.clone(),
                source,
            }
        })?;
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = crate::store::Stamp::of(&path);
        let (status, code) = (rec.state.status, rec.state.exit_code);
        drop(rec);
        self.lifecycle.send_modify(|l| {
            l.status = status;
            l.exit_code = code;
        });
        Ok(out)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id))
    }

    pub fn exit_file(&self) -> PathBuf {
        self.dir.join("exit.json")
    }

    pub fn name(&self) -> String {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .name
            .clone()
    }

    /// Docker's event attributes: image, name and the labels.
    pub fn event_attributes(&self) -> BTreeMap<String, String> {
        let rec = self.record.lock().unwrap_or_else(|e| e.into_inner());
        let mut attrs: BTreeMap<String, String> = rec.config.labels.clone().unwrap_or_default();
        attrs.insert("image".into(), rec.image_name.clone());
        attrs.insert("name".into(), rec.name.trim_start_matches('/').to_string());
        attrs
    }
}

/// The name of a container's record file.
pub const RECORD_FILE: &str = "container.json";

/// Failures of container operations, in Docker's words where clients match on them.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {id}")]
    NotFound { id: String },
    #[error("Multiple IDs found with provided prefix: {prefix}")]
    Ambiguous { prefix: String },
    #[error("Conflict. The container name \"{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName { name: String },
    #[error("{message}")]
    InvalidConfig { message: String },
    #[error("Container {id} is not running")]
    NotRunning { id: String },
    #[error("Container {id} is already paused")]
    AlreadyPaused { id: String },
    #[error("Container {id} is not paused")]
    NotPaused { id: String },
    #[error("cannot start a paused container, try unpause instead")]
    StartPaused,
    #[error("You cannot remove a {status} container {id}. Stop the container before attempting removal or force remove")]
    RemoveRunning { id: String, status: Status },
    #[error("removal of container {id} is already in progress")]
    RemovalInProgress { id: String },
    #[error("Container {id} is already {status}")]
    NotModified { id: String, status: Status },
    #[error("Invalid signal: {signal}")]
    InvalidSignal { signal: String },
    #[error("invalid condition: {condition:?}")]
    InvalidCondition { condition: String },
    /// `kill` that failed for a reason other than the request itself, in dockerd's words.
    #[error("Cannot kill container: {name}")]
    Kill {
        name: String,
        #[source]
        source: Box<ContainerError>,
    },
    #[error("Neither old nor new names may be empty")]
    EmptyName,
    #[error("Bad parameters: you must choose at least one stream")]
    NoLogStream,
    #[error("invalid value for tail: {tail:?}")]
    InvalidTail { tail: String },
    #[error(transparent)]
    Time(#[from] crate::timestamp::TimeError),
    #[error("cannot have stream=true and one-shot=true")]
    StreamOneShot,
    #[error("{message}")]
    StartFailed { message: String, invalid: bool },
    #[error("Error when allocating new name")]
    Rename {
        #[source]
        source: Box<ContainerError>,
    },
    #[error("Failed to write state file {path:?}")]
    WriteState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
}

impl ContainerError {
    /// The kind of failure, for status codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Ambiguous { .. }
            | Self::InvalidName { .. }
            | Self::InvalidConfig { .. }
            | Self::InvalidSignal { .. }
            | Self::InvalidCondition { .. }
            | Self::EmptyName
            | Self::NoLogStream
            | Self::InvalidTail { .. }
            | Self::Time(_)
            | Self::StreamOneShot => ErrorKind::InvalidArgument,
            Self::Kill { source, .. } => source.kind(),
            Self::StartFailed { invalid, .. } => {
                if *invalid {
                    ErrorKind::InvalidArgument
                } else {
                    ErrorKind::Internal
                }
            }
            Self::NameInUse { .. }
            | Self::NotRunning { .. }
            | Self::AlreadyPaused { .. }
            | Self::StartPaused
            | Self::RemoveRunning { .. }
            | Self::RemovalInProgress { .. } => ErrorKind::Conflict,
            Self::Rename { source } => source.kind(),
            Self::NotPaused { .. }
            | Self::WriteState { .. }
            | Self::Io { .. }
            | Self::Rootfs(_) => ErrorKind::Internal,
            Self::NotModified { .. } => ErrorKind::NotModified,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The current time as Docker writes it in inspect: RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A new 64-hex container id.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    let id = hex::encode(bytes);
    // Docker avoids all-digit short ids, which could be read as numbers.
    if id[..12].bytes().all(|b| b.is_ascii_digit()) {
        return new_id();
    }
    id
}
