//! [`Backend`] in this very process, on the engine library: `berth --daemonless`.
//!
//! Each call is the engine call berthd's handler would make, with [`Caller::current`] as
//! the caller, and its answer is shaped as berthd shapes it (the same api-types values, the
//! same stdcopy-framed log bytes, the same progress messages, the same error wording), so
//! the commands cannot tell the two backends apart. What berthd keeps in memory comes from
//! disk here: containers from their records, events from the journal every process on the
//! data root appends to. Detached containers live on in their shims after this process
//! exits; the next command finds them.

use std::io;
use std::path::Path;
use std::sync::Arc;

use api_types::filters::Filters;
use api_types::stdcopy::{frame, StreamKind};
use api_types::{
    ContainerChange, ContainerCreateRequest, ContainerCreateResponse, ContainerInspect,
    ContainerPathStat, ContainerSummary, ContainerTopResponse, ContainersPruneResponse,
    ImageDeleteItem, ImageInspect, ImageSummary, Info, ProgressMessage, Version,
};
use bytes::Bytes;
use engine::container::{ListOptions, LogChunk, LogOptions, LogStream};
use engine::image::ImageError;
use engine::{Caller, Engine, EngineConfig, EngineError};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::http::CLIENT_API_VERSION;
use super::{
    AttachOptions, AttachStream, Backend, BackendError, ByteReader, ContainerListOptions, CopyFrom,
    CopyToOptions, ErrorKind, EventStream, EventsOptions, ImageListOptions, ImportOptions,
    ImportSource, Inspected, LogsOptions, PingInfo, ProgressStream, PullOptions, PushOptions,
    RemoveOptions, Result, StatsStream, WaitCondition, WaitHandle,
};

/// The engine, opened in this process on a data root shared with other daemonless commands.
pub struct EngineBackend {
    engine: Arc<Engine>,
    caller: Caller,
}

impl EngineBackend {
    /// Opens the engine on `data_root` and `exec_root`. Fails, naming the daemon, if a
    /// berthd owns the data root.
    pub async fn open(
        data_root: &Path,
        exec_root: &Path,
        insecure_registries: &[String],
    ) -> Result<Self> {
        let mut config = EngineConfig::new(data_root, exec_root);
        config.registry.insecure = insecure_registries.to_vec();
        let engine = Engine::open_daemonless(config)
            .await
            .map_err(|e| BackendError::Protocol {
                message: error_chain(&e),
            })?;
        Ok(Self {
            engine,
            caller: Caller::current(),
        })
    }
}

/// Runs an engine operation that reports progress, as berthd answers one: its error if it
/// fails before its first message, else the messages, ending with an error message if it
/// fails later.
async fn progress_of<F, Fut>(op: F) -> Result<ProgressStream>
where
    F: FnOnce(engine::image::Progress) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), EngineError>> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(op(engine::image::Progress::new(tx)));
    let Some(first) = rx.recv().await else {
        task.await
            .map_err(|e| BackendError::Protocol {
                message: format!("the operation failed: {e}"),
            })?
            .map_err(refused)?;
        return Ok(Box::pin(futures_util::stream::empty()));
    };
    let rest = futures_util::stream::unfold(Some((rx, task)), |state| async move {
        let (mut rx, task) = state?;
        match rx.recv().await {
            Some(msg) => Some((Ok(msg), Some((rx, task)))),
            None => match task.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    let message = error_chain(&e);
                    Some((
                        Ok(ProgressMessage {
                            error: Some(message.clone()),
                            error_detail: Some(api_types::ErrorDetail {
                                message,
                                code: None,
                            }),
                            ..Default::default()
                        }),
                        None,
                    ))
                }
                Err(e) => Some((
                    Err(BackendError::Protocol {
                        message: format!("the operation failed: {e}"),
                    }),
                    None,
                )),
            },
        }
    });
    use futures_util::StreamExt;
    Ok(Box::pin(
        futures_util::stream::once(async move { Ok(first) }).chain(rest),
    ))
}

/// An error and its sources as one line, as berthd words its error responses.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}

fn kind_of(kind: engine::ErrorKind) -> ErrorKind {
    match kind {
        engine::ErrorKind::NotFound => ErrorKind::NotFound,
        engine::ErrorKind::Conflict => ErrorKind::Conflict,
        engine::ErrorKind::InvalidArgument => ErrorKind::InvalidParameter,
        engine::ErrorKind::NotModified
        | engine::ErrorKind::Unauthorized
        | engine::ErrorKind::Internal => ErrorKind::Other,
    }
}

/// An engine refusal as the backend error berthd's response would have become.
fn refused(e: EngineError) -> BackendError {
    BackendError::Daemon {
        kind: kind_of(e.kind()),
        message: error_chain(&e),
    }
}

/// A refusal worded here (where berthd's handler, not the engine, words it).
fn invalid(message: impl Into<String>) -> BackendError {
    BackendError::Daemon {
        kind: ErrorKind::InvalidParameter,
        message: message.into(),
    }
}

/// "Already so" (berthd's 304) is success for start and stop.
fn done_unless_refused(r: std::result::Result<(), EngineError>) -> Result<()> {
    match r {
        Err(e) if e.kind() == engine::ErrorKind::NotModified => Ok(()),
        other => other.map_err(refused),
    }
}

/// A Unix time in seconds (maybe fractional) or RFC 3339, as nanoseconds (berthd's reading
/// of `since` and `until`).
fn time_nanos(key: &str, value: Option<&str>) -> Result<Option<i64>> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(secs) = v.parse::<f64>() {
        return Ok(Some((secs * 1e9) as i64));
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map(Some)
        .ok_or_else(|| invalid(format!("invalid value for {key}: {v:?} is not a time")))
}

/// A log chunk as berthd puts it on the wire: a stdcopy frame, or raw bytes with a tty.
fn encode(chunk: &LogChunk, tty: bool, timestamps: bool) -> Bytes {
    let mut payload = Vec::with_capacity(chunk.bytes.len() + 32);
    if timestamps {
        payload.extend_from_slice(chunk.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&chunk.bytes);
    if tty {
        return payload.into();
    }
    let kind = match chunk.stream {
        LogStream::Stdout => StreamKind::Stdout,
        LogStream::Stderr => StreamKind::Stderr,
    };
    frame(kind, &payload).into()
}

/// The chunks as one byte stream.
fn chunk_reader(rx: mpsc::Receiver<LogChunk>, tty: bool, timestamps: bool) -> ByteReader {
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        rx.recv()
            .await
            .map(|c| (Ok::<_, io::Error>(encode(&c, tty, timestamps)), rx))
    });
    Box::pin(StreamReader::new(stream))
}

fn progress(messages: Vec<ProgressMessage>) -> ProgressStream {
    Box::pin(futures_util::stream::iter(messages.into_iter().map(Ok)))
}

/// Runs a blocking engine call that reads a client stream (an archive, a root file system).
async fn with_blocking_reader<T: Send + 'static>(
    input: ByteReader,
    what: &'static str,
    f: impl FnOnce(&mut dyn io::Read) -> std::result::Result<T, EngineError> + Send + 'static,
) -> Result<T> {
    let mut reader = SyncIoBridge::new(input);
    tokio::task::spawn_blocking(move || f(&mut reader))
        .await
        .map_err(|e| BackendError::Protocol {
            message: format!("image {what} failed: {e}"),
        })?
        .map_err(refused)
}

/// A container's inspect with the raw JSON the HTTP backend would have read.
fn inspected_container(value: ContainerInspect) -> Result<Inspected<ContainerInspect>> {
    let raw = serde_json::to_vec(&value).map_err(|e| BackendError::Protocol {
        message: format!("cannot encode the container: {e}"),
    })?;
    Ok(Inspected {
        value,
        raw: raw.into(),
    })
}

impl Backend for EngineBackend {
    async fn ping(&self) -> Result<PingInfo> {
        Ok(PingInfo {
            api_version: CLIENT_API_VERSION.to_string(),
            os_type: "linux".into(),
            experimental: false,
        })
    }

    async fn version(&self) -> Result<Version> {
        Ok(self.engine.version())
    }

    async fn info(&self) -> Result<Info> {
        Ok(self.engine.info(&self.caller).await)
    }

    async fn events(&self, opts: EventsOptions) -> Result<EventStream> {
        let since = time_nanos("since", opts.since.as_deref())?;
        let until = time_nanos("until", opts.until.as_deref())?;
        let rx = self
            .engine
            .journal_events(&self.caller, since, until, opts.filters);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (Ok(e.to_message()), rx))
        });
        Ok(Box::pin(stream))
    }

    async fn create_container(
        &self,
        name: Option<&str>,
        body: &ContainerCreateRequest,
    ) -> Result<ContainerCreateResponse> {
        self.engine
            .create_container(&self.caller, name, body.clone())
            .await
            .map_err(refused)
    }

    async fn inspect_container(&self, id: &str) -> Result<Inspected<ContainerInspect>> {
        let value = self
            .engine
            .inspect_container(&self.caller, id)
            .await
            .map_err(refused)?;
        inspected_container(value)
    }

    async fn inspect_container_with_size(&self, id: &str) -> Result<Inspected<ContainerInspect>> {
        let value = self
            .engine
            .inspect_container_with_size(&self.caller, id)
            .await
            .map_err(refused)?;
        inspected_container(value)
    }

    async fn list_containers(&self, opts: &ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        let opts = ListOptions {
            all: opts.all,
            limit: opts.limit.filter(|&n| n > 0).map(|n| n as usize),
            filters: opts.filters.clone(),
            size: opts.size,
        };
        self.engine
            .list_containers(&self.caller, &opts)
            .await
            .map_err(refused)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        done_unless_refused(self.engine.start_container(&self.caller, id).await)
    }

    async fn stop_container(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        done_unless_refused(
            self.engine
                .stop_container(&self.caller, id, timeout, signal)
                .await,
        )
    }

    async fn restart_container(
        &self,
        id: &str,
        timeout: Option<i64>,
        _signal: Option<&str>,
    ) -> Result<()> {
        self.engine
            .restart_container(&self.caller, id, timeout)
            .await
            .map_err(refused)
    }

    async fn kill_container(&self, id: &str, signal: Option<&str>) -> Result<()> {
        self.engine
            .kill_container(&self.caller, id, signal)
            .await
            .map_err(|e| {
                let invalid = e.kind() == engine::ErrorKind::InvalidArgument;
                let mut err = refused(e);
                if let (false, BackendError::Daemon { message, .. }) = (invalid, &mut err) {
                    *message = format!("Cannot kill container: {id}: {message}");
                }
                err
            })
    }

    async fn remove_container(&self, id: &str, opts: RemoveOptions) -> Result<()> {
        self.engine
            .remove_container(&self.caller, id, opts.force)
            .await
            .map_err(refused)
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        if new_name.is_empty() {
            return Err(invalid("Neither old nor new names may be empty"));
        }
        self.engine
            .rename_container(&self.caller, id, new_name)
            .await
            .map_err(refused)
    }

    async fn pause_container(&self, id: &str) -> Result<()> {
        self.engine
            .pause_container(&self.caller, id)
            .await
            .map_err(refused)
    }

    async fn unpause_container(&self, id: &str) -> Result<()> {
        self.engine
            .unpause_container(&self.caller, id)
            .await
            .map_err(refused)
    }

    async fn wait_container(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle> {
        let condition = match condition {
            WaitCondition::NotRunning => engine::container::WaitCondition::NotRunning,
            WaitCondition::NextExit => engine::container::WaitCondition::NextExit,
            WaitCondition::Removed => engine::container::WaitCondition::Removed,
        };
        let pending = self
            .engine
            .wait_container(&self.caller, id, condition)
            .await
            .map_err(refused)?;
        Ok(Box::pin(async move { Ok(pending.await) }))
    }

    async fn attach_container(&self, id: &str, opts: AttachOptions) -> Result<AttachStream> {
        let session = self
            .engine
            .attach_container(
                &self.caller,
                id,
                engine::container::AttachOptions {
                    stdin: opts.stdin,
                    stdout: opts.stdout,
                    stderr: opts.stderr,
                    detach_keys: None,
                },
            )
            .await
            .map_err(refused)?;
        Ok(AttachStream {
            output: chunk_reader(session.output, session.tty, false),
            input: input_writer(session.input),
        })
    }

    async fn resize_container(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.engine
            .resize_container(&self.caller, id, height, width)
            .await
            .map_err(refused)
    }

    async fn container_logs(&self, id: &str, opts: &LogsOptions) -> Result<ByteReader> {
        if !opts.stdout && !opts.stderr {
            return Err(invalid(
                "Bad parameters: you must choose at least one stream",
            ));
        }
        let tail = match opts.tail.as_str() {
            "all" | "" => None,
            n => match n.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n as usize),
                Ok(_) => None,
                Err(_) => return Err(invalid(format!("invalid value for tail: {n:?}"))),
            },
        };
        let log_opts = LogOptions {
            stdout: opts.stdout,
            stderr: opts.stderr,
            follow: opts.follow,
            tail,
            since: time_nanos("since", opts.since.as_deref())?.filter(|&s| s > 0),
            until: time_nanos("until", opts.until.as_deref())?.filter(|&u| u > 0),
        };
        let (tty, rx) = self
            .engine
            .container_logs(&self.caller, id, log_opts)
            .await
            .map_err(refused)?;
        Ok(chunk_reader(rx, tty, opts.timestamps))
    }

    async fn prune_containers(&self, filters: &Filters) -> Result<ContainersPruneResponse> {
        self.engine
            .prune_containers(&self.caller, filters)
            .await
            .map_err(refused)
    }

    async fn update_container(
        &self,
        id: &str,
        req: &api_types::ContainerUpdateRequest,
    ) -> Result<api_types::ContainerUpdateResponse> {
        self.engine
            .update_container(&self.caller, id, req.clone())
            .await
            .map_err(refused)
    }

    async fn list_images(&self, opts: &ImageListOptions) -> Result<Vec<ImageSummary>> {
        self.engine
            .list_images(&self.caller, opts.all, &opts.filters)
            .map_err(refused)
    }

    async fn inspect_image(&self, name: &str) -> Result<Inspected<ImageInspect>> {
        let value = self.engine.inspect_image(&self.caller, name).map_err(|e| {
            let not_found = e.kind() == engine::ErrorKind::NotFound;
            let mut err = refused(e);
            if let (true, BackendError::Daemon { message, .. }) = (not_found, &mut err) {
                *message = format!("no such image: {name}: {message}");
            }
            err
        })?;
        let raw = serde_json::to_vec(&value).map_err(|e| BackendError::Protocol {
            message: format!("cannot encode the image: {e}"),
        })?;
        Ok(Inspected {
            value,
            raw: raw.into(),
        })
    }

    async fn pull_image(&self, repository: &str, tag: &str) -> Result<ProgressStream> {
        self.pull(&PullOptions {
            repository: repository.to_string(),
            tag: tag.to_string(),
            ..Default::default()
        })
        .await
    }

    async fn pull(&self, opts: &PullOptions) -> Result<ProgressStream> {
        use engine::image::reference::Reference;
        let bad_ref =
            |e: engine::image::ReferenceError| refused(EngineError::from(ImageError::from(e)));
        let mut reference = Reference::parse_normalized(&opts.repository).map_err(bad_ref)?;
        if !opts.tag.is_empty() {
            reference = if opts.tag.starts_with("sha256:") {
                Reference::parse_normalized(&format!("{}@{}", reference.name(), opts.tag))
                    .map_err(bad_ref)?
            } else {
                reference.with_tag(&opts.tag).map_err(bad_ref)?
            };
        }
        let platform = match opts.platform.as_str() {
            "" => None,
            p => Some(
                engine::image::registry::manifest::PlatformSpec::parse(p)
                    .map_err(|e| refused(e.into()))?,
            ),
        };
        let request = engine::image::PullRequest {
            reference: reference.with_default_tag(),
            platform,
            auth: opts.auth.clone(),
        };
        let engine = self.engine.clone();
        let caller = self.caller;
        progress_of(move |progress| async move {
            engine
                .pull_image(&caller, request, progress)
                .await
                .map(|_| ())
        })
        .await
    }

    async fn push_image(&self, opts: &PushOptions) -> Result<ProgressStream> {
        use engine::image::reference::Reference;
        let bad_ref =
            |e: engine::image::ReferenceError| refused(EngineError::from(ImageError::from(e)));
        let mut reference = Reference::parse_normalized(&opts.repository).map_err(bad_ref)?;
        if !opts.tag.is_empty() {
            reference = reference.with_tag(&opts.tag).map_err(bad_ref)?;
        }
        let request = engine::image::PushRequest {
            reference,
            auth: opts.auth.clone(),
        };
        let engine = self.engine.clone();
        let caller = self.caller;
        progress_of(move |progress| async move {
            engine
                .push_image(&caller, request, progress)
                .await
                .map(|_| ())
        })
        .await
    }

    async fn login(&self, auth: &api_types::AuthConfig) -> Result<api_types::AuthResponse> {
        self.engine
            .login(&self.caller, auth.clone())
            .await
            .map_err(refused)
    }

    async fn load_images(&self, input: ByteReader, _quiet: bool) -> Result<ProgressStream> {
        let engine = self.engine.clone();
        let caller = self.caller;
        let loaded =
            with_blocking_reader(input, "load", move |r| engine.load_images(&caller, r)).await?;
        let messages = loaded
            .iter()
            .flat_map(|img| {
                if img.tags.is_empty() {
                    vec![format!("Loaded image ID: {}\n", img.id)]
                } else {
                    img.tags
                        .iter()
                        .map(|t| format!("Loaded image: {t}\n"))
                        .collect()
                }
            })
            .map(|s| ProgressMessage {
                stream: Some(s),
                ..Default::default()
            })
            .collect();
        Ok(progress(messages))
    }

    async fn import_image(&self, opts: ImportOptions) -> Result<ProgressStream> {
        let input = match opts.source {
            ImportSource::Upload(reader) => reader,
            ImportSource::Url(url) => {
                return Err(invalid(format!(
                    "importing from a URL ({url}) is not supported: give a file or - for stdin"
                )))
            }
        };
        let import = engine::image::ImportOptions {
            repo_tag: opts.reference.filter(|r| !r.is_empty()),
            changes: opts.changes,
            message: opts.message.unwrap_or_default(),
        };
        let engine = self.engine.clone();
        let caller = self.caller;
        let id = with_blocking_reader(input, "import", move |r| {
            engine.import_image(&caller, r, &import)
        })
        .await?;
        Ok(progress(vec![ProgressMessage {
            status: Some(id),
            ..Default::default()
        }]))
    }

    async fn tag_image(&self, source: &str, repository: &str, tag: &str) -> Result<()> {
        if repository.is_empty() {
            return Err(invalid("repository name must have at least one component"));
        }
        self.engine
            .tag_image(&self.caller, source, repository, Some(tag))
            .map_err(refused)
    }

    async fn remove_image(
        &self,
        name: &str,
        force: bool,
        _no_prune: bool,
    ) -> Result<Vec<ImageDeleteItem>> {
        self.engine
            .remove_image(&self.caller, name, force)
            .map_err(refused)
    }

    async fn stat_container_path(&self, id: &str, path: &str) -> Result<ContainerPathStat> {
        self.engine
            .stat_container_path(&self.caller, id, path)
            .await
            .map_err(refused)
    }

    async fn copy_from_container(&self, id: &str, path: &str) -> Result<CopyFrom> {
        let (stat, rx) = self
            .engine
            .archive_container_path(&self.caller, id, path)
            .await
            .map_err(refused)?;
        Ok(CopyFrom {
            stat,
            content: tar_reader(rx),
        })
    }

    async fn copy_to_container(
        &self,
        id: &str,
        path: &str,
        content: ByteReader,
        opts: CopyToOptions,
    ) -> Result<()> {
        let opts = engine::container::CopyToOptions {
            no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
            copy_uid_gid: opts.copy_uid_gid,
        };
        let input = Box::new(SyncIoBridge::new(content));
        self.engine
            .extract_to_container(&self.caller, id, path, opts, input)
            .await
            .map_err(refused)
    }

    async fn export_container(&self, id: &str) -> Result<ByteReader> {
        let rx = self
            .engine
            .export_container(&self.caller, id)
            .await
            .map_err(refused)?;
        Ok(tar_reader(rx))
    }

    async fn container_changes(&self, id: &str) -> Result<Vec<ContainerChange>> {
        self.engine
            .container_changes(&self.caller, id)
            .await
            .map_err(refused)
    }

    async fn container_stats(&self, id: &str, stream: bool) -> Result<StatsStream> {
        let opts = engine::container::StatsOptions {
            stream,
            one_shot: false,
        };
        let rx = self
            .engine
            .container_stats(&self.caller, id, opts)
            .await
            .map_err(refused)?;
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|s| (Ok(s), rx)) },
        )))
    }

    async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse> {
        self.engine
            .top_container(&self.caller, id, ps_args)
            .await
            .map_err(refused)
    }

    async fn create_exec(
        &self,
        container: &str,
        config: &api_types::ExecCreateRequest,
    ) -> Result<String> {
        self.engine
            .create_exec(&self.caller, container, config.clone())
            .await
            .map_err(refused)
    }

    async fn start_exec(
        &self,
        id: &str,
        opts: &api_types::ExecStartRequest,
    ) -> Result<Option<AttachStream>> {
        let session = self
            .engine
            .start_exec(&self.caller, id, opts.clone())
            .await
            .map_err(refused)?;
        Ok(session.map(|s| AttachStream {
            output: chunk_reader(s.output, s.tty, false),
            input: input_writer(s.input),
        }))
    }

    async fn resize_exec(&self, id: &str, height: u16, width: u16) -> Result<()> {
        self.engine
            .resize_exec(&self.caller, id, height, width)
            .await
            .map_err(refused)
    }

    async fn inspect_exec(&self, id: &str) -> Result<api_types::ExecInspect> {
        self.engine.inspect_exec(&self.caller, id).map_err(refused)
    }
}

/// A writer whose bytes go to an engine session's input; shutting it down is the end of
/// input. Without input, a sink.
fn input_writer(input: Option<engine::container::AttachInput>) -> super::ByteWriter {
    let Some(input) = input else {
        return Box::pin(tokio::io::sink());
    };
    let (writer, reader) = tokio::io::duplex(32 * 1024);
    tokio::spawn(async move { input.copy_from(reader).await });
    Box::pin(writer)
}

/// An engine tar stream as a reader; a failure part-way is a read error, not an early end.
fn tar_reader(rx: engine::container::TarStream) -> ByteReader {
    let chunks =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Box::pin(StreamReader::new(chunks))
}

/// Drains a stream of events into a vector (for tests).
#[cfg(test)]
async fn collect_events(mut s: EventStream) -> Vec<api_types::EventMessage> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(e) = s.next().await {
        out.push(e.unwrap());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_berthd_reads_them() {
        assert_eq!(
            time_nanos("since", Some("1795790184.5")).unwrap(),
            Some(1_795_790_184_500_000_000)
        );
        assert_eq!(
            time_nanos("since", Some("1970-01-01T00:00:01Z")).unwrap(),
            Some(1_000_000_000)
        );
        assert_eq!(time_nanos("since", None).unwrap(), None);
        let e = time_nanos("until", Some("soon")).unwrap_err().to_string();
        assert_eq!(
            e,
            "Error response from daemon: invalid value for until: \"soon\" is not a time"
        );
    }

    #[test]
    fn logs_are_framed_as_on_the_wire() {
        let c = LogChunk {
            stream: LogStream::Stderr,
            bytes: b"hi\n".to_vec(),
            time: "2026-01-01T00:00:00.000000001Z".into(),
        };
        assert_eq!(&encode(&c, false, false)[..], b"\x02\0\0\0\0\0\0\x03hi\n");
        assert_eq!(
            &encode(&c, true, true)[..],
            b"2026-01-01T00:00:00.000000001Z hi\n"
        );
    }

    #[tokio::test]
    async fn a_data_root_berthd_owns_is_refused_and_events_come_from_the_journal() {
        struct Scratch(std::path::PathBuf);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = Scratch(
            std::env::temp_dir().join(format!("berth-engine-backend-{}", std::process::id())),
        );
        let (data, exec) = (dir.0.join("data"), dir.0.join("exec"));
        std::fs::create_dir_all(&data).unwrap();
        {
            let _daemon =
                engine::lock::RootLock::daemon(&data, "/run/test.sock", std::time::Duration::ZERO)
                    .unwrap();
            let e = EngineBackend::open(&data, &exec, &[]).await.err().unwrap();
            assert!(
                e.to_string().contains("is owned by berthd (pid ")
                    && e.to_string().contains("unix:///run/test.sock"),
                "{e}"
            );
        }
        let a = EngineBackend::open(&data, &exec, &[]).await.unwrap();
        let b = EngineBackend::open(&data, &exec, &[]).await.unwrap();
        a.engine
            .events()
            .emit(&a.caller, "container", "create", "abc", Default::default());
        let until = engine::events::now_nanos();
        let seen = collect_events(
            b.events(EventsOptions {
                since: Some("0".into()),
                until: Some(format!("{}", until as f64 / 1e9 + 0.001)),
                filters: Filters::default(),
            })
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].action, "create");
        assert_eq!(seen[0].actor.id, "abc");
    }
}
