//! [`Backend`] in this very process, on the engine library: `berth --daemonless`.
//!
//! Each call is the engine call berthd's handler would make, with [`Caller::current`] as
//! the caller, and its answer is shaped as berthd shapes it (the same api-types values, the
//! same stdcopy-framed log bytes, the same progress messages), so the commands cannot tell
//! the two backends apart. Docker's wording of every refusal is the engine's: this backend
//! only maps engine errors, as berthd's handlers do. What berthd keeps in memory comes from
//! disk here: containers from their records, events from the journal every process on the
//! data root appends to. Detached containers live on in their shims after this process
//! exits; the next command finds them.

use std::io;
use std::path::Path;
use std::sync::Arc;

use api_types::filters::Filters;
use api_types::{
    ContainerChange, ContainerCreateRequest, ContainerCreateResponse, ContainerInspect,
    ContainerPathStat, ContainerSummary, ContainerTopResponse, ContainersPruneResponse,
    ImageDeleteItem, ImageInspect, ImageSummary, Info, ProgressMessage, Version,
};
use bytes::Bytes;
use engine::container::LogChunk;
use engine::image::{ImageError, LoadedImage};
use engine::timestamp::parse_nanos;
use engine::{Caller, Engine, EngineConfig, EngineError};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{
    AttachOptions, AttachStream, Backend, BackendError, BuildOptions, ByteReader, CommitOptions,
    ContainerListOptions, CopyFrom, CopyToOptions, EventStream, EventsOptions, ImageListOptions,
    ImportOptions, ImportSource, Inspected, LogsRequest, PingInfo, ProgressStream, PullOptions,
    PushOptions, RemoveOptions, Result, StatsStream, WaitCondition, WaitHandle,
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
                message: engine::error::chain(&e),
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
                    let message = engine::error::chain(&e);
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

/// An engine refusal as the backend error berthd's response would have become.
fn refused(e: impl Into<EngineError>) -> BackendError {
    let e = e.into();
    BackendError::Daemon {
        kind: e.kind(),
        message: engine::error::chain(&e),
    }
}

/// "Already so" (berthd's 304) is success for start and stop.
fn done_unless_refused(r: std::result::Result<(), EngineError>) -> Result<()> {
    match r {
        Err(e) if e.kind() == engine::ErrorKind::NotModified => Ok(()),
        other => other.map_err(refused),
    }
}

/// The chunks as one byte stream.
fn chunk_reader(rx: mpsc::Receiver<LogChunk>, tty: bool, timestamps: bool) -> ByteReader {
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        rx.recv().await.map(|c| {
            (
                Ok::<_, io::Error>(Bytes::from(c.encode(tty, timestamps))),
                rx,
            )
        })
    });
    Box::pin(StreamReader::new(stream))
}

fn progress(messages: Vec<ProgressMessage>) -> ProgressStream {
    Box::pin(futures_util::stream::iter(messages.into_iter().map(Ok)))
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
            api_version: api_types::API_VERSION.to_string(),
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
        let since = parse_nanos("since", opts.since.as_deref()).map_err(refused)?;
        let until = parse_nanos("until", opts.until.as_deref()).map_err(refused)?;
        let rx = self.engine.events().subscribe(since, until, opts.filters);
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
        self.engine
            .list_containers(&self.caller, opts)
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
            .map_err(refused)
    }

    async fn remove_container(&self, id: &str, opts: RemoveOptions) -> Result<()> {
        self.engine
            .remove_container(&self.caller, id, opts.force)
            .await
            .map_err(refused)
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
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
            .attach_container(&self.caller, id, opts)
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

    async fn container_logs(&self, id: &str, req: &LogsRequest) -> Result<ByteReader> {
        let opts = req.options().map_err(refused)?;
        let (tty, rx) = self
            .engine
            .container_logs(&self.caller, id, opts)
            .await
            .map_err(refused)?;
        Ok(chunk_reader(rx, tty, req.timestamps))
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
        let value = self
            .engine
            .inspect_image(&self.caller, name)
            .map_err(refused)?;
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
        let request = engine::image::PullRequest::parse(
            &opts.repository,
            &opts.tag,
            &opts.platform,
            opts.auth.clone(),
        )
        .map_err(refused)?;
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
        let request =
            engine::image::PushRequest::parse(&opts.repository, &opts.tag, opts.auth.clone())
                .map_err(refused)?;
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
        let loaded = self
            .engine
            .load_images(&self.caller, Box::new(SyncIoBridge::new(input)))
            .await
            .map_err(refused)?;
        Ok(progress(
            loaded.iter().flat_map(LoadedImage::progress).collect(),
        ))
    }

    async fn import_image(&self, opts: ImportOptions) -> Result<ProgressStream> {
        let input = match opts.source {
            ImportSource::Upload(reader) => reader,
            ImportSource::Url(url) => return Err(refused(ImageError::ImportFromUrl { url })),
        };
        let import = engine::image::ImportOptions {
            repo_tag: opts.reference.filter(|r| !r.is_empty()),
            changes: opts.changes,
            message: opts.message.unwrap_or_default(),
        };
        let id = self
            .engine
            .import_image(&self.caller, Box::new(SyncIoBridge::new(input)), import)
            .await
            .map_err(refused)?;
        Ok(progress(vec![ProgressMessage {
            status: Some(id),
            ..Default::default()
        }]))
    }

    async fn tag_image(&self, source: &str, repository: &str, tag: &str) -> Result<()> {
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

    async fn save_images(&self, names: &[String], format: &str) -> Result<ByteReader> {
        let rx = self
            .engine
            .save_images(&self.caller, names, format)
            .await
            .map_err(refused)?;
        Ok(tar_reader(rx))
    }

    async fn image_history(&self, name: &str) -> Result<Vec<api_types::ImageHistoryItem>> {
        self.engine
            .image_history(&self.caller, name)
            .map_err(refused)
    }

    async fn prune_images(&self, filters: &Filters) -> Result<api_types::ImagesPruneResponse> {
        let engine = self.engine.clone();
        let caller = self.caller;
        let filters = filters.clone();
        tokio::task::spawn_blocking(move || engine.prune_images(&caller, &filters))
            .await
            .map_err(|e| BackendError::Io(io::Error::other(e)))?
            .map_err(refused)
    }

    async fn commit_container(&self, container: &str, opts: &CommitOptions) -> Result<String> {
        self.engine
            .commit_container(&self.caller, container, opts.clone())
            .await
            .map_err(refused)
    }

    async fn disk_usage(&self) -> Result<api_types::DiskUsage> {
        self.engine.disk_usage(&self.caller).await.map_err(refused)
    }

    async fn prune_build_cache(
        &self,
        filters: &Filters,
        _all: bool,
    ) -> Result<api_types::BuildCachePruneResponse> {
        let engine = self.engine.clone();
        let caller = self.caller;
        let filters = filters.clone();
        tokio::task::spawn_blocking(move || engine.prune_build_cache(&caller, &filters))
            .await
            .map_err(|e| BackendError::Io(io::Error::other(e)))?
            .map_err(refused)
    }

    async fn build_image(
        &self,
        context: ByteReader,
        opts: &BuildOptions,
    ) -> Result<ProgressStream> {
        let options = opts.clone();
        let (tx, mut rx) = mpsc::channel(64);
        let engine = self.engine.clone();
        let caller = self.caller;
        let reader: Box<dyn std::io::Read + Send> = Box::new(SyncIoBridge::new(context));
        let mut task =
            tokio::spawn(async move { engine.build(&caller, reader, options, tx).await });
        // As berthd answers: a failure before the first message is the call's error.
        let refused_build = |e: engine::build::BuildError| BackendError::Daemon {
            kind: e.kind(),
            message: engine::error::chain(&e),
        };
        let mut finished = false;
        let first = tokio::select! {
            m = rx.recv() => m,
            r = &mut task => {
                finished = true;
                r.map_err(|e| BackendError::Io(io::Error::other(e)))?
                    .map_err(refused_build)?;
                rx.recv().await
            }
        };
        let task = if first.is_none() && !finished {
            task.await
                .map_err(|e| BackendError::Io(io::Error::other(e)))?
                .map_err(refused_build)?;
            None
        } else {
            (!finished).then_some(task)
        };
        // The messages, then the outcome: a failure as the message berthd would stream.
        let stream =
            futures_util::stream::unfold((first, rx, task), |(first, mut rx, task)| async move {
                if let Some(m) = first {
                    return Some((Ok(m), (None, rx, task)));
                }
                if let Some(m) = rx.recv().await {
                    return Some((Ok(m), (None, rx, task)));
                }
                let task = task?;
                let failure = match task.await {
                    Ok(Ok(_)) => return None,
                    Ok(Err(e)) => ProgressMessage {
                        error: Some(engine::error::chain(&e)),
                        error_detail: Some(api_types::ErrorDetail {
                            message: engine::error::chain(&e),
                            code: e.code(),
                        }),
                        ..Default::default()
                    },
                    Err(e) => ProgressMessage {
                        error: Some(format!("the build failed: {e}")),
                        error_detail: Some(api_types::ErrorDetail {
                            message: format!("the build failed: {e}"),
                            code: None,
                        }),
                        ..Default::default()
                    },
                };
                Some((Ok(failure), (None, rx, None)))
            });
        Ok(Box::pin(stream))
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
