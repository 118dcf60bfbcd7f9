//! What the commands need from a container engine, independent of how it is reached.
//!
//! [`Backend`] speaks in api-types values and byte streams; [`http::HttpBackend`] implements it
//! against berthd's Docker Engine API over a Unix socket, [`engine::EngineBackend`] in-process
//! on the engine library (`--daemonless`), so no command knows about URLs, status codes,
//! connection hijacking, or whether there is a daemon at all.

pub mod engine;
pub mod http;

use std::future::Future;
use std::io;
use std::pin::Pin;

use api_types::filters::Filters;
use api_types::{
    ContainerChange, ContainerCreateRequest, ContainerCreateResponse, ContainerInspect,
    ContainerPathStat, ContainerStats, ContainerSummary, ContainerTopResponse,
    ContainersPruneResponse, EventMessage, ImageDeleteItem, ImageInspect, ImageSummary, Info,
    ProgressMessage, Version, WaitResponse,
};
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite};

pub use ::engine::container::{
    AttachOptions, CopyToOptions, ListOptions as ContainerListOptions, LogsRequest, WaitCondition,
};
pub use ::engine::ErrorKind;

/// An incoming byte stream (logs, the output side of an attach, an upload body).
pub type ByteReader = Pin<Box<dyn AsyncRead + Send>>;
/// An outgoing byte stream; shutting it down half-closes (the container sees EOF on stdin).
pub type ByteWriter = Pin<Box<dyn AsyncWrite + Send>>;
/// Messages of a pull, load or import.
pub type ProgressStream =
    Pin<Box<dyn Stream<Item = std::result::Result<ProgressMessage, BackendError>> + Send>>;
/// Engine events, as they happen.
pub type EventStream =
    Pin<Box<dyn Stream<Item = std::result::Result<EventMessage, BackendError>> + Send>>;
/// A wait the engine has accepted; resolves when the condition is met.
pub type WaitHandle =
    Pin<Box<dyn Future<Output = std::result::Result<WaitResponse, BackendError>> + Send>>;
/// Resource-use samples of a container, as they are taken.
pub type StatsStream =
    Pin<Box<dyn Stream<Item = std::result::Result<ContainerStats, BackendError>> + Send>>;

/// Why a backend call failed.
#[derive(Debug)]
pub enum BackendError {
    /// The engine refused the request; `message` is its own wording.
    Daemon { kind: ErrorKind, message: String },
    /// Nothing answers at the daemon's address.
    Unreachable { host: String },
    /// The daemon's socket exists but this user may not use it.
    PermissionDenied { host: String, source: io::Error },
    /// The daemon answered something that is not the Docker API.
    Protocol { message: String },
    /// Reading or writing a stream failed.
    Io(io::Error),
}

impl BackendError {
    /// The class of the engine's refusal (`Internal` for anything not from the engine).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Daemon { kind, .. } => *kind,
            _ => ErrorKind::Internal,
        }
    }

    /// Whether the engine said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Daemon { message, .. } => write!(f, "Error response from daemon: {message}"),
            Self::Unreachable { host, .. } => {
                write!(f, "Cannot connect to the berth daemon at {host}. Is berthd running?")
            }
            Self::PermissionDenied { host, source } => write!(
                f,
                "permission denied while trying to connect to the berth daemon socket at {host}: {source}"
            ),
            Self::Protocol { message } => f.write_str(message),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

// No `source()`: each message already says all there is, as docker prints it.
impl std::error::Error for BackendError {}

impl From<io::Error> for BackendError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Shorthand for backend results.
pub type Result<T> = std::result::Result<T, BackendError>;

/// What the engine reports about itself on a ping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingInfo {
    /// The API version in use (the lower of the engine's and ours).
    pub api_version: String,
    pub os_type: String,
    pub experimental: bool,
}

/// A decoded object with the exact bytes the engine produced, for `inspect` to print as is.
#[derive(Debug, Clone)]
pub struct Inspected<T> {
    pub value: T,
    pub raw: Bytes,
}

/// A live attach: the container's output (stdcopy frames, or raw bytes for a tty) and its
/// stdin.
pub struct AttachStream {
    pub output: ByteReader,
    pub input: ByteWriter,
}

/// Options of a container removal.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoveOptions {
    pub force: bool,
    pub volumes: bool,
}

/// Options of an image listing.
#[derive(Debug, Clone, Default)]
pub struct ImageListOptions {
    pub all: bool,
    pub digests: bool,
    pub filters: Filters,
}

/// Where an imported filesystem comes from.
pub enum ImportSource {
    /// A tarball streamed by the client.
    Upload(ByteReader),
    /// A URL the engine fetches itself.
    Url(String),
}

/// Options of an image import.
pub struct ImportOptions {
    pub source: ImportSource,
    /// `repo[:tag]` as the user wrote it.
    pub reference: Option<String>,
    pub message: Option<String>,
    pub changes: Vec<String>,
}

/// Options of a commit and of a build (the build's context travels separately, as a tar):
/// the engine's own, so both backends send the same thing.
pub use ::engine::build::BuildOptions;
pub use ::engine::commit::CommitOptions;

/// What to pull and how.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The repository, fully qualified (`docker.io/library/busybox`).
    pub repository: String,
    /// A tag or a digest (`sha256:…`).
    pub tag: String,
    /// `os/arch[/variant]`, or empty for the engine's own.
    pub platform: String,
    /// Credentials for the registry (empty for none).
    pub auth: api_types::AuthConfig,
}

/// What to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// The repository, fully qualified.
    pub repository: String,
    /// The tag; empty pushes every tag of the repository.
    pub tag: String,
    /// Credentials for the registry (empty for none).
    pub auth: api_types::AuthConfig,
}

/// Options of an events subscription.
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    pub since: Option<String>,
    pub until: Option<String>,
    pub filters: Filters,
}

/// A tar archive of a path in a container, with the path's stat.
pub struct CopyFrom {
    pub stat: ContainerPathStat,
    pub content: ByteReader,
}

/// A container engine as the CLI sees it.
pub trait Backend: Send + Sync {
    /// Checks the engine answers and settles the API version.
    fn ping(&self) -> impl Future<Output = Result<PingInfo>> + Send;
    fn version(&self) -> impl Future<Output = Result<Version>> + Send;
    fn info(&self) -> impl Future<Output = Result<Info>> + Send;
    fn events(&self, opts: EventsOptions) -> impl Future<Output = Result<EventStream>> + Send;

    fn create_container(
        &self,
        name: Option<&str>,
        body: &ContainerCreateRequest,
    ) -> impl Future<Output = Result<ContainerCreateResponse>> + Send;
    fn inspect_container(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Inspected<ContainerInspect>>> + Send;
    /// `inspect -s`: with `SizeRw` and `SizeRootFs`.
    fn inspect_container_with_size(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Inspected<ContainerInspect>>> + Send;
    fn list_containers(
        &self,
        opts: &ContainerListOptions,
    ) -> impl Future<Output = Result<Vec<ContainerSummary>>> + Send;
    /// Starts a container; starting a running one is not an error.
    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stops a container; stopping a stopped one is not an error.
    fn stop_container(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn restart_container(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn kill_container(
        &self,
        id: &str,
        signal: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    fn remove_container(
        &self,
        id: &str,
        opts: RemoveOptions,
    ) -> impl Future<Output = Result<()>> + Send;
    fn rename_container(&self, id: &str, new_name: &str)
        -> impl Future<Output = Result<()>> + Send;
    fn pause_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    fn unpause_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Registers a wait. The returned future resolves once the engine has accepted the wait
    /// (so a following start cannot be missed); the handle inside resolves at the condition.
    fn wait_container(
        &self,
        id: &str,
        condition: WaitCondition,
    ) -> impl Future<Output = Result<WaitHandle>> + Send;
    fn attach_container(
        &self,
        id: &str,
        opts: AttachOptions,
    ) -> impl Future<Output = Result<AttachStream>> + Send;
    fn resize_container(
        &self,
        id: &str,
        height: u16,
        width: u16,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The container's log: stdcopy frames, or raw bytes for a tty container.
    fn container_logs(
        &self,
        id: &str,
        req: &LogsRequest,
    ) -> impl Future<Output = Result<ByteReader>> + Send;
    fn prune_containers(
        &self,
        filters: &Filters,
    ) -> impl Future<Output = Result<ContainersPruneResponse>> + Send;
    fn update_container(
        &self,
        id: &str,
        req: &api_types::ContainerUpdateRequest,
    ) -> impl Future<Output = Result<api_types::ContainerUpdateResponse>> + Send;

    fn list_images(
        &self,
        opts: &ImageListOptions,
    ) -> impl Future<Output = Result<Vec<ImageSummary>>> + Send;
    fn inspect_image(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Inspected<ImageInspect>>> + Send;
    /// Pulls `repository` (fully qualified) at `tag`.
    fn pull_image(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<ProgressStream>> + Send;
    /// Pulls an image as [`PullOptions`] say.
    fn pull(&self, opts: &PullOptions) -> impl Future<Output = Result<ProgressStream>> + Send;
    /// Pushes an image's tag (or every tag of a repository).
    fn push_image(&self, opts: &PushOptions)
        -> impl Future<Output = Result<ProgressStream>> + Send;
    /// Checks credentials against a registry (`login`).
    fn login(
        &self,
        auth: &api_types::AuthConfig,
    ) -> impl Future<Output = Result<api_types::AuthResponse>> + Send;
    fn load_images(
        &self,
        input: ByteReader,
        quiet: bool,
    ) -> impl Future<Output = Result<ProgressStream>> + Send;
    fn import_image(
        &self,
        opts: ImportOptions,
    ) -> impl Future<Output = Result<ProgressStream>> + Send;
    /// Tags `source` as `repository` (fully qualified) `:tag`.
    fn tag_image(
        &self,
        source: &str,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    fn remove_image(
        &self,
        name: &str,
        force: bool,
        no_prune: bool,
    ) -> impl Future<Output = Result<Vec<ImageDeleteItem>>> + Send;

    /// A `docker save` archive of the images (`format`: `docker` or `oci`).
    fn save_images(
        &self,
        names: &[String],
        format: &str,
    ) -> impl Future<Output = Result<ByteReader>> + Send;
    /// The steps an image was made of, newest first.
    fn image_history(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<api_types::ImageHistoryItem>>> + Send;
    fn prune_images(
        &self,
        filters: &Filters,
    ) -> impl Future<Output = Result<api_types::ImagesPruneResponse>> + Send;
    /// Makes an image of a container's changes; returns the image ID.
    fn commit_container(
        &self,
        container: &str,
        opts: &CommitOptions,
    ) -> impl Future<Output = Result<String>> + Send;
    /// What images, containers and the build cache take on disk.
    fn disk_usage(&self) -> impl Future<Output = Result<api_types::DiskUsage>> + Send;
    fn prune_build_cache(
        &self,
        filters: &Filters,
        all: bool,
    ) -> impl Future<Output = Result<api_types::BuildCachePruneResponse>> + Send;

    /// Builds an image from a context tar; the build's messages as they come.
    fn build_image(
        &self,
        context: ByteReader,
        opts: &BuildOptions,
    ) -> impl Future<Output = Result<ProgressStream>> + Send;

    /// The stat of a path in a container.
    fn stat_container_path(
        &self,
        id: &str,
        path: &str,
    ) -> impl Future<Output = Result<ContainerPathStat>> + Send;
    /// A tar archive of a path in a container.
    fn copy_from_container(
        &self,
        id: &str,
        path: &str,
    ) -> impl Future<Output = Result<CopyFrom>> + Send;
    /// Extracts a tar archive into a directory of a container.
    fn copy_to_container(
        &self,
        id: &str,
        path: &str,
        content: ByteReader,
        opts: CopyToOptions,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A tar archive of a container's whole file system.
    fn export_container(&self, id: &str) -> impl Future<Output = Result<ByteReader>> + Send;
    /// What a container changed in its file system.
    fn container_changes(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Vec<ContainerChange>>> + Send;
    /// Resource-use samples: one, or one a second until the stream is dropped.
    fn container_stats(
        &self,
        id: &str,
        stream: bool,
    ) -> impl Future<Output = Result<StatsStream>> + Send;
    /// A container's processes, with `ps` options.
    fn container_top(
        &self,
        id: &str,
        ps_args: Option<&str>,
    ) -> impl Future<Output = Result<ContainerTopResponse>> + Send;

    /// Registers an exec in a running container; returns its id.
    fn create_exec(
        &self,
        container: &str,
        config: &api_types::ExecCreateRequest,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Starts an exec: detached (`None`, once it runs), or attached to its stdio (stdcopy
    /// frames, or raw bytes with a terminal).
    fn start_exec(
        &self,
        id: &str,
        opts: &api_types::ExecStartRequest,
    ) -> impl Future<Output = Result<Option<AttachStream>>> + Send;
    fn resize_exec(
        &self,
        id: &str,
        height: u16,
        width: u16,
    ) -> impl Future<Output = Result<()>> + Send;
    /// An exec's state; its `ExitCode` is set once its stream has ended.
    fn inspect_exec(&self, id: &str)
        -> impl Future<Output = Result<api_types::ExecInspect>> + Send;
}
