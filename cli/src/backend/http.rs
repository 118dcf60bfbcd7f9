//! [`Backend`] over the Docker Engine API on berthd's Unix socket.
//!
//! Ordinary calls share keep-alive connections from a pool, like docker's client: a long
//! wait holds its connection, so a following start opens another one. Attach gets a
//! connection of its own that is upgraded (`Upgrade: tcp`, `101`) into a raw stream.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use api_types::filters::Filters;
use api_types::{
    ContainerChange, ContainerCreateRequest, ContainerCreateResponse, ContainerInspect,
    ContainerPathStat, ContainerStats, ContainerSummary, ContainerTopResponse,
    ContainersPruneResponse, ErrorResponse, EventMessage, ImageDeleteItem, ImageInspect,
    ImageSummary, Info, ProgressMessage, Version, WaitResponse, PATH_STAT_HEADER,
};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{
    HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, UPGRADE, USER_AGENT,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyperlocal::UnixConnector;
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::sync::OnceCell;
use tokio_util::io::{ReaderStream, StreamReader};

use super::{
    AttachOptions, AttachStream, Backend, BackendError, BuildOptions, ByteReader, CommitOptions,
    ContainerListOptions, CopyFrom, CopyToOptions, ErrorKind, EventStream, EventsOptions,
    ImageListOptions, ImportOptions, ImportSource, Inspected, LogsRequest, PingInfo,
    ProgressStream, PullOptions, PushOptions, RemoveOptions, Result, StatsStream, WaitCondition,
    WaitHandle,
};

/// The daemon address used when neither `-H` nor `BERTH_HOST` says otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";
const USER_AGENT_VALUE: &str = concat!("Berth-Client/", env!("CARGO_PKG_VERSION"), " (linux)");

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// The Docker Engine API client for berthd.
#[derive(Clone)]
pub struct HttpBackend {
    inner: Arc<Inner>,
}

struct Inner {
    host: String,
    socket: PathBuf,
    client: Client<UnixConnector, Body>,
    ping: OnceCell<PingInfo>,
}

/// Query parameters in order, encoded as Go's `url.Values` would (`+` for spaces).
#[derive(Default)]
struct Query(Vec<(&'static str, String)>);

impl Query {
    fn new() -> Self {
        Self::default()
    }

    fn set(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.0.push((key, value.into()));
        self
    }

    fn flag(self, key: &'static str, on: bool) -> Self {
        if on {
            self.set(key, "1")
        } else {
            self
        }
    }

    fn opt(self, key: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    fn filters(self, filters: &Filters) -> Self {
        if filters.is_empty() {
            self
        } else {
            self.set("filters", filters.to_json())
        }
    }

    fn encode(&self) -> String {
        let mut pairs: Vec<&(&str, String)> = self.0.iter().collect();
        pairs.sort_by_key(|(k, _)| *k);
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Escapes what cannot appear in a path; image references keep their `/`, `:` and `@`.
fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'/'
            | b':'
            | b'@'
            | b'+' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn json_body(value: &impl serde::Serialize) -> Result<Body> {
    let bytes = serde_json::to_vec(value).map_err(|e| BackendError::Protocol {
        message: format!("cannot encode request: {e}"),
    })?;
    Ok(Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync())
}

fn stream_body(reader: ByteReader) -> Body {
    let frames = ReaderStream::new(reader).map_ok(Frame::data);
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// The engine's kind of refusal an error status stands for (berthd's `status_of`, read back).
fn status_kind(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400 => ErrorKind::InvalidArgument,
        304 => ErrorKind::NotModified,
        _ => ErrorKind::Internal,
    }
}

impl HttpBackend {
    /// A client for the daemon at `host` (`unix:///path/to.sock`). Nothing is contacted yet.
    pub fn new(host: &str) -> Result<Self> {
        let socket = host
            .strip_prefix("unix://")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| BackendError::Protocol {
                message: format!(
                    "unsupported daemon host {host:?}: only unix:// sockets are supported"
                ),
            })?;
        let client = Client::builder(TokioExecutor::new()).build(UnixConnector);
        Ok(Self {
            inner: Arc::new(Inner {
                host: host.to_string(),
                socket: PathBuf::from(socket),
                client,
                ping: OnceCell::new(),
            }),
        })
    }

    fn connect_error(&self, e: io::Error) -> BackendError {
        if e.kind() == io::ErrorKind::PermissionDenied {
            BackendError::PermissionDenied {
                host: self.inner.host.clone(),
                source: e,
            }
        } else {
            BackendError::Unreachable {
                host: self.inner.host.clone(),
            }
        }
    }

    fn map_client_error(&self, e: hyper_util::client::legacy::Error) -> BackendError {
        if e.is_connect() {
            let mut source: Option<&(dyn std::error::Error + 'static)> =
                std::error::Error::source(&e);
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<io::Error>() {
                    return self.connect_error(io::Error::new(io.kind(), io.to_string()));
                }
                source = s.source();
            }
            return self.connect_error(io::Error::other(e.to_string()));
        }
        BackendError::Protocol {
            message: format!("error during connect: {e}"),
        }
    }

    fn build_request(&self, method: Method, path: &str, body: Body) -> Result<Request<Body>> {
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.inner.socket, path).into();
        Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, "api.moby.localhost")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .body(body)
            .map_err(|e| BackendError::Protocol {
                message: format!("bad request for {path}: {e}"),
            })
    }

    /// Pings once per process and returns what the engine said.
    async fn ping_info(&self) -> Result<&PingInfo> {
        self.inner
            .ping
            .get_or_try_init(|| async {
                let req = self.build_request(Method::HEAD, "/_ping", empty())?;
                let mut resp = self
                    .inner
                    .client
                    .request(req)
                    .await
                    .map_err(|e| self.map_client_error(e))?;
                if resp.status() != StatusCode::OK
                    && resp.status() != StatusCode::INTERNAL_SERVER_ERROR
                {
                    let req = self.build_request(Method::GET, "/_ping", empty())?;
                    resp = self
                        .inner
                        .client
                        .request(req)
                        .await
                        .map_err(|e| self.map_client_error(e))?;
                }
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let info = PingInfo {
                    api_version: api_types::version::negotiate(header("Api-Version").as_deref()),
                    os_type: header("Ostype").unwrap_or_default(),
                    experimental: header("Docker-Experimental").as_deref() == Some("true"),
                };
                // Drain the body so the connection returns to the pool.
                let _ = resp.into_body().collect().await;
                Ok(info)
            })
            .await
    }

    fn versioned(&self, api_version: &str, path: &str, query: &Query) -> String {
        let q = query.encode();
        if q.is_empty() {
            format!("/v{api_version}{path}")
        } else {
            format!("/v{api_version}{path}?{q}")
        }
    }

    /// Sends a request and turns an error status into [`BackendError::Daemon`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: Query,
        body: Body,
        headers: &[(&'static str, &str)],
    ) -> Result<Response<Incoming>> {
        let version = self.ping_info().await?.api_version.clone();
        let url = self.versioned(&version, path, &query);
        let has_body = hyper::body::Body::size_hint(&body).exact() != Some(0);
        let mut req = self.build_request(method.clone(), &url, body)?;
        if !has_body && method == Method::POST {
            req.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        for (name, value) in headers {
            let v = HeaderValue::from_str(value).map_err(|e| BackendError::Protocol {
                message: format!("bad header {name}: {e}"),
            })?;
            req.headers_mut().insert(*name, v);
        }
        let resp = self
            .inner
            .client
            .request(req)
            .await
            .map_err(|e| self.map_client_error(e))?;
        if resp.status().is_client_error() || resp.status().is_server_error() {
            return Err(error_from_response(resp, &url).await);
        }
        Ok(resp)
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str, query: Query) -> Result<T> {
        let resp = self.send(Method::GET, path, query, empty(), &[]).await?;
        read_json(resp).await
    }

    async fn post_empty(&self, path: &str, query: Query) -> Result<()> {
        let resp = self.send(Method::POST, path, query, empty(), &[]).await?;
        let _ = resp.into_body().collect().await;
        Ok(())
    }

    async fn inspect<T: DeserializeOwned>(&self, path: &str, query: Query) -> Result<Inspected<T>> {
        let resp = self.send(Method::GET, path, query, empty(), &[]).await?;
        let raw = read_bytes(resp).await?;
        let value = serde_json::from_slice(&raw).map_err(|e| BackendError::Protocol {
            message: format!("cannot read the daemon's answer to {path}: {e}"),
        })?;
        Ok(Inspected { value, raw })
    }
}

async fn read_bytes(resp: Response<Incoming>) -> Result<Bytes> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| BackendError::Io(io::Error::other(e)))?
        .to_bytes())
}

async fn read_json<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T> {
    let bytes = read_bytes(resp).await?;
    serde_json::from_slice(&bytes).map_err(|e| BackendError::Protocol {
        message: format!("cannot read the daemon's answer: {e}"),
    })
}

/// Builds the error for a failed response as docker's client does: the JSON `message` when
/// the body is `application/json`, else the raw body, else a note about the route.
async fn error_from_response(resp: Response<Incoming>, url: &str) -> BackendError {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some("application/json");
    let body = read_bytes(resp).await.unwrap_or_default();
    let message = if body.is_empty() {
        format!(
            "request returned {} for API route and version {url}, check if the server supports the requested API version",
            status.canonical_reason().unwrap_or(status.as_str())
        )
    } else if is_json {
        match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => e.message,
            Err(e) => format!("Error reading JSON: {e}"),
        }
    } else {
        String::from_utf8_lossy(&body).trim().to_string()
    };
    BackendError::Daemon {
        kind: status_kind(status),
        message,
    }
}

fn body_reader(resp: Response<Incoming>) -> ByteReader {
    let stream = resp
        .into_body()
        .into_data_stream()
        .map_err(io::Error::other);
    Box::pin(StreamReader::new(stream))
}

/// Decodes a stream of concatenated JSON values (separated by nothing, `\n` or `\r\n`).
pub fn json_stream<T: DeserializeOwned + Send + 'static>(
    reader: ByteReader,
) -> impl Stream<Item = Result<T>> + Send {
    futures_util::stream::unfold(
        (reader, Vec::<u8>::new(), false),
        |(mut reader, mut buf, done)| async move {
            if done {
                return None;
            }
            loop {
                let mut values = serde_json::Deserializer::from_slice(&buf).into_iter::<T>();
                match values.next() {
                    Some(Ok(v)) => {
                        let used = values.byte_offset();
                        buf.drain(..used);
                        return Some((Ok(v), (reader, buf, false)));
                    }
                    Some(Err(e)) if !e.is_eof() => {
                        let err = BackendError::Protocol {
                            message: format!("cannot read the daemon's stream: {e}"),
                        };
                        return Some((Err(err), (reader, buf, true)));
                    }
                    _ => {}
                }
                let mut chunk = [0u8; 8192];
                match reader.read(&mut chunk).await {
                    Ok(0) => {
                        if buf.iter().all(u8::is_ascii_whitespace) {
                            return None;
                        }
                        let err = BackendError::Protocol {
                            message: "unexpected EOF in the daemon's stream".into(),
                        };
                        return Some((Err(err), (reader, Vec::new(), true)));
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) => return Some((Err(BackendError::Io(e)), (reader, buf, true))),
                }
            }
        },
    )
}

/// `X-Registry-Auth`: the credentials as base64url JSON, as the docker CLI sends them
/// (`e30=`, `{}`, for none).
fn registry_auth_header(auth: &api_types::AuthConfig) -> Result<String> {
    use base64::Engine as _;
    let json = serde_json::to_vec(auth).map_err(|e| BackendError::Protocol {
        message: format!("cannot encode the credentials: {e}"),
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE.encode(json))
}

fn progress_stream(resp: Response<Incoming>) -> ProgressStream {
    Box::pin(json_stream::<ProgressMessage>(body_reader(resp)))
}

/// Reads an event leniently: fields an engine leaves out take their defaults.
fn event_from_value(mut v: serde_json::Value) -> Result<EventMessage> {
    if let Some(obj) = v.as_object_mut() {
        for (key, default) in [
            ("Type", serde_json::json!("")),
            ("Action", serde_json::json!("")),
            ("Actor", serde_json::json!({"ID": "", "Attributes": {}})),
            ("scope", serde_json::json!("")),
            ("time", serde_json::json!(0)),
            ("timeNano", serde_json::json!(0)),
        ] {
            obj.entry(key).or_insert(default);
        }
        if let Some(actor) = obj.get_mut("Actor").and_then(|a| a.as_object_mut()) {
            actor.entry("ID").or_insert(serde_json::json!(""));
            let attrs = actor.entry("Attributes").or_insert(serde_json::json!({}));
            if attrs.is_null() {
                *attrs = serde_json::json!({});
            }
        }
    }
    serde_json::from_value(v).map_err(|e| BackendError::Protocol {
        message: format!("cannot read an event: {e}"),
    })
}

impl Backend for HttpBackend {
    async fn ping(&self) -> Result<PingInfo> {
        self.ping_info().await.cloned()
    }

    async fn version(&self) -> Result<Version> {
        self.get_json("/version", Query::new()).await
    }

    async fn info(&self) -> Result<Info> {
        self.get_json("/info", Query::new()).await
    }

    async fn events(&self, opts: EventsOptions) -> Result<EventStream> {
        let query = Query::new()
            .opt("since", opts.since)
            .opt("until", opts.until)
            .filters(&opts.filters);
        let resp = self
            .send(Method::GET, "/events", query, empty(), &[])
            .await?;
        let values = json_stream::<serde_json::Value>(body_reader(resp));
        Ok(Box::pin(values.map(|v| v.and_then(event_from_value))))
    }

    async fn create_container(
        &self,
        name: Option<&str>,
        body: &ContainerCreateRequest,
    ) -> Result<ContainerCreateResponse> {
        let query = Query::new().opt("name", name);
        let resp = self
            .send(
                Method::POST,
                "/containers/create",
                query,
                json_body(body)?,
                &[("content-type", "application/json")],
            )
            .await?;
        let created: serde_json::Value = read_json(resp).await?;
        let id = created["Id"].as_str().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(BackendError::Protocol {
                message: "the daemon created a container without an ID".into(),
            });
        }
        let warnings = created["Warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ContainerCreateResponse { id, warnings })
    }

    async fn inspect_container(&self, id: &str) -> Result<Inspected<ContainerInspect>> {
        let path = format!("/containers/{}/json", path_escape(id));
        self.inspect(&path, Query::new()).await
    }

    async fn inspect_container_with_size(&self, id: &str) -> Result<Inspected<ContainerInspect>> {
        let path = format!("/containers/{}/json", path_escape(id));
        self.inspect(&path, Query::new().set("size", "1")).await
    }

    async fn list_containers(&self, opts: &ContainerListOptions) -> Result<Vec<ContainerSummary>> {
        let query = Query::new()
            .flag("all", opts.all)
            .opt(
                "limit",
                opts.limit.filter(|l| *l > 0).map(|l| l.to_string()),
            )
            .flag("size", opts.size)
            .filters(&opts.filters);
        self.get_json("/containers/json", query).await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.post_empty(
            &format!("/containers/{}/start", path_escape(id)),
            Query::new(),
        )
        .await
    }

    async fn stop_container(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let query = Query::new()
            .opt("signal", signal)
            .opt("t", timeout.map(|t| t.to_string()));
        self.post_empty(&format!("/containers/{}/stop", path_escape(id)), query)
            .await
    }

    async fn restart_container(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let query = Query::new()
            .opt("signal", signal)
            .opt("t", timeout.map(|t| t.to_string()));
        self.post_empty(&format!("/containers/{}/restart", path_escape(id)), query)
            .await
    }

    async fn kill_container(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let query = Query::new().opt("signal", signal);
        self.post_empty(&format!("/containers/{}/kill", path_escape(id)), query)
            .await
    }

    async fn remove_container(&self, id: &str, opts: RemoveOptions) -> Result<()> {
        let query = Query::new()
            .flag("force", opts.force)
            .flag("v", opts.volumes);
        let resp = self
            .send(
                Method::DELETE,
                &format!("/containers/{}", path_escape(id)),
                query,
                empty(),
                &[],
            )
            .await?;
        let _ = resp.into_body().collect().await;
        Ok(())
    }

    async fn update_container(
        &self,
        id: &str,
        req: &api_types::ContainerUpdateRequest,
    ) -> Result<api_types::ContainerUpdateResponse> {
        let resp = self
            .send(
                Method::POST,
                &format!("/containers/{}/update", path_escape(id)),
                Query::new(),
                json_body(req)?,
                &[("content-type", "application/json")],
            )
            .await?;
        read_json(resp).await
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let query = Query::new().set("name", new_name);
        self.post_empty(&format!("/containers/{}/rename", path_escape(id)), query)
            .await
    }

    async fn pause_container(&self, id: &str) -> Result<()> {
        self.post_empty(
            &format!("/containers/{}/pause", path_escape(id)),
            Query::new(),
        )
        .await
    }

    async fn unpause_container(&self, id: &str) -> Result<()> {
        self.post_empty(
            &format!("/containers/{}/unpause", path_escape(id)),
            Query::new(),
        )
        .await
    }

    async fn wait_container(&self, id: &str, condition: WaitCondition) -> Result<WaitHandle> {
        let query = match condition {
            WaitCondition::NotRunning => Query::new(),
            c => Query::new().set("condition", c.as_str()),
        };
        // The daemon sends the headers as soon as the wait is registered; the body follows
        // when the condition is met.
        let resp = self
            .send(
                Method::POST,
                &format!("/containers/{}/wait", path_escape(id)),
                query,
                empty(),
                &[],
            )
            .await?;
        Ok(Box::pin(async move {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| BackendError::Protocol {
                    message: format!("error waiting for container: {e}"),
                })?
                .to_bytes();
            serde_json::from_slice::<WaitResponse>(&bytes).map_err(|e| BackendError::Protocol {
                message: format!("error waiting for container: {e}"),
            })
        }))
    }

    async fn attach_container(&self, id: &str, opts: AttachOptions) -> Result<AttachStream> {
        let query = Query::new()
            .opt("detachKeys", opts.detach_keys.filter(|k| !k.is_empty()))
            .flag("stderr", opts.stderr)
            .flag("stdin", opts.stdin)
            .flag("stdout", opts.stdout)
            .set("stream", "1");
        let path = format!("/containers/{}/attach", path_escape(id));
        self.hijack(&path, query, Vec::new(), "text/plain").await
    }

    async fn resize_container(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let query = Query::new()
            .set("h", height.to_string())
            .set("w", width.to_string());
        self.post_empty(&format!("/containers/{}/resize", path_escape(id)), query)
            .await
    }

    async fn container_logs(&self, id: &str, opts: &LogsRequest) -> Result<ByteReader> {
        let query = Query::new()
            .flag("details", opts.details)
            .flag("follow", opts.follow)
            .opt("since", opts.since.clone())
            .flag("stderr", opts.stderr)
            .flag("stdout", opts.stdout)
            .set(
                "tail",
                if opts.tail.is_empty() {
                    "all"
                } else {
                    &opts.tail
                },
            )
            .flag("timestamps", opts.timestamps)
            .opt("until", opts.until.clone());
        let resp = self
            .send(
                Method::GET,
                &format!("/containers/{}/logs", path_escape(id)),
                query,
                empty(),
                &[],
            )
            .await?;
        Ok(body_reader(resp))
    }

    async fn prune_containers(&self, filters: &Filters) -> Result<ContainersPruneResponse> {
        let resp = self
            .send(
                Method::POST,
                "/containers/prune",
                Query::new().filters(filters),
                empty(),
                &[],
            )
            .await?;
        read_json(resp).await
    }

    async fn list_images(&self, opts: &ImageListOptions) -> Result<Vec<ImageSummary>> {
        let query = Query::new()
            .flag("all", opts.all)
            .flag("digests", opts.digests)
            .filters(&opts.filters);
        self.get_json("/images/json", query).await
    }

    async fn inspect_image(&self, name: &str) -> Result<Inspected<ImageInspect>> {
        self.inspect(&format!("/images/{}/json", path_escape(name)), Query::new())
            .await
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
        let mut query = Query::new()
            .set("fromImage", &opts.repository)
            .set("tag", &opts.tag);
        if !opts.platform.is_empty() {
            query = query.set("platform", &opts.platform);
        }
        let auth = registry_auth_header(&opts.auth)?;
        let resp = self
            .send(
                Method::POST,
                "/images/create",
                query,
                empty(),
                &[("x-registry-auth", &auth)],
            )
            .await?;
        Ok(progress_stream(resp))
    }

    async fn push_image(&self, opts: &PushOptions) -> Result<ProgressStream> {
        let query = Query::new().set("tag", &opts.tag);
        let auth = registry_auth_header(&opts.auth)?;
        let resp = self
            .send(
                Method::POST,
                &format!("/images/{}/push", path_escape(&opts.repository)),
                query,
                empty(),
                &[("x-registry-auth", &auth)],
            )
            .await?;
        Ok(progress_stream(resp))
    }

    async fn login(&self, auth: &api_types::AuthConfig) -> Result<api_types::AuthResponse> {
        let resp = self
            .send(
                Method::POST,
                "/auth",
                Query::new(),
                json_body(auth)?,
                &[("content-type", "application/json")],
            )
            .await?;
        read_json(resp).await
    }

    async fn load_images(&self, input: ByteReader, quiet: bool) -> Result<ProgressStream> {
        let query = Query::new().set("quiet", if quiet { "1" } else { "0" });
        let resp = self
            .send(
                Method::POST,
                "/images/load",
                query,
                stream_body(input),
                &[("content-type", "application/x-tar")],
            )
            .await?;
        Ok(progress_stream(resp))
    }

    async fn import_image(&self, opts: ImportOptions) -> Result<ProgressStream> {
        let mut query = Query::new();
        let body = match opts.source {
            ImportSource::Upload(reader) => {
                query = query.set("fromSrc", "-");
                stream_body(reader)
            }
            ImportSource::Url(url) => {
                query = query.set("fromSrc", url);
                empty()
            }
        };
        query = query
            .opt("repo", opts.reference)
            .opt("message", opts.message);
        for change in opts.changes {
            query = query.set("changes", change);
        }
        let resp = self
            .send(
                Method::POST,
                "/images/create",
                query,
                body,
                &[("content-type", "text/plain")],
            )
            .await?;
        Ok(progress_stream(resp))
    }

    async fn tag_image(&self, source: &str, repository: &str, tag: &str) -> Result<()> {
        let query = Query::new().set("repo", repository).set("tag", tag);
        self.post_empty(&format!("/images/{}/tag", path_escape(source)), query)
            .await
    }

    async fn remove_image(
        &self,
        name: &str,
        force: bool,
        no_prune: bool,
    ) -> Result<Vec<ImageDeleteItem>> {
        let query = Query::new().flag("force", force).flag("noprune", no_prune);
        let resp = self
            .send(
                Method::DELETE,
                &format!("/images/{}", path_escape(name)),
                query,
                empty(),
                &[],
            )
            .await?;
        read_json(resp).await
    }

    async fn save_images(&self, names: &[String], format: &str) -> Result<ByteReader> {
        let (path, mut query) = match names {
            [one] => (format!("/images/{}/get", path_escape(one)), Query::new()),
            _ => {
                let mut q = Query::new();
                for n in names {
                    q = q.set("names", n.clone());
                }
                ("/images/get".to_string(), q)
            }
        };
        if !format.is_empty() && format != "docker" {
            query = query.set("format", format);
        }
        let resp = self.send(Method::GET, &path, query, empty(), &[]).await?;
        Ok(body_reader(resp))
    }

    async fn image_history(&self, name: &str) -> Result<Vec<api_types::ImageHistoryItem>> {
        self.get_json(
            &format!("/images/{}/history", path_escape(name)),
            Query::new(),
        )
        .await
    }

    async fn prune_images(&self, filters: &Filters) -> Result<api_types::ImagesPruneResponse> {
        let resp = self
            .send(
                Method::POST,
                "/images/prune",
                Query::new().filters(filters),
                empty(),
                &[],
            )
            .await?;
        read_json(resp).await
    }

    async fn commit_container(&self, container: &str, opts: &CommitOptions) -> Result<String> {
        let mut query = Query::new()
            .set("container", container)
            .opt("repo", opts.repo.clone())
            .opt("tag", opts.tag.clone())
            .set("comment", opts.comment.clone())
            .set("author", opts.author.clone())
            .set("pause", if opts.pause { "1" } else { "0" });
        for c in &opts.changes {
            query = query.set("changes", c.clone());
        }
        let resp = self
            .send(Method::POST, "/commit", query, empty(), &[])
            .await?;
        let made: api_types::IdResponse = read_json(resp).await?;
        Ok(made.id)
    }

    async fn disk_usage(&self) -> Result<api_types::DiskUsage> {
        self.get_json("/system/df", Query::new()).await
    }

    async fn prune_build_cache(
        &self,
        filters: &Filters,
        all: bool,
    ) -> Result<api_types::BuildCachePruneResponse> {
        let resp = self
            .send(
                Method::POST,
                "/build/prune",
                Query::new().filters(filters).flag("all", all),
                empty(),
                &[],
            )
            .await?;
        read_json(resp).await
    }

    async fn build_image(
        &self,
        context: ByteReader,
        opts: &BuildOptions,
    ) -> Result<ProgressStream> {
        let mut query = Query::new()
            .set("dockerfile", opts.dockerfile.clone())
            .flag("q", opts.quiet)
            .flag("nocache", opts.no_cache)
            .flag("pull", opts.pull)
            .flag("forcerm", opts.force_remove)
            .opt("target", opts.target.clone())
            .opt("platform", opts.platform.clone());
        if !opts.remove {
            query = query.set("rm", "0");
        }
        for t in &opts.tags {
            query = query.set("t", t.clone());
        }
        if !opts.labels.is_empty() {
            query = query.set(
                "labels",
                serde_json::to_string(&opts.labels).unwrap_or_default(),
            );
        }
        if !opts.build_args.is_empty() {
            query = query.set(
                "buildargs",
                serde_json::to_string(&opts.build_args).unwrap_or_default(),
            );
        }
        let resp = self
            .send(
                Method::POST,
                "/build",
                query,
                stream_body(context),
                &[("content-type", "application/x-tar")],
            )
            .await?;
        Ok(progress_stream(resp))
    }

    async fn stat_container_path(&self, id: &str, path: &str) -> Result<ContainerPathStat> {
        let resp = self
            .send(
                Method::HEAD,
                &format!("/containers/{}/archive", path_escape(id)),
                Query::new().set("path", path),
                empty(),
                &[],
            )
            .await?;
        path_stat(&resp)
    }

    async fn copy_from_container(&self, id: &str, path: &str) -> Result<CopyFrom> {
        let resp = self
            .send(
                Method::GET,
                &format!("/containers/{}/archive", path_escape(id)),
                Query::new().set("path", path),
                empty(),
                &[],
            )
            .await?;
        let stat = path_stat(&resp)?;
        Ok(CopyFrom {
            stat,
            content: body_reader(resp),
        })
    }

    async fn copy_to_container(
        &self,
        id: &str,
        path: &str,
        content: ByteReader,
        opts: CopyToOptions,
    ) -> Result<()> {
        let query = Query::new()
            .set("path", path)
            .opt(
                "noOverwriteDirNonDir",
                opts.no_overwrite_dir_non_dir.then_some("true"),
            )
            .opt("copyUIDGID", opts.copy_uid_gid.then_some("true"));
        let resp = self
            .send(
                Method::PUT,
                &format!("/containers/{}/archive", path_escape(id)),
                query,
                stream_body(content),
                &[("content-type", "text/plain")],
            )
            .await?;
        let _ = resp.into_body().collect().await;
        Ok(())
    }

    async fn export_container(&self, id: &str) -> Result<ByteReader> {
        let resp = self
            .send(
                Method::GET,
                &format!("/containers/{}/export", path_escape(id)),
                Query::new(),
                empty(),
                &[],
            )
            .await?;
        Ok(body_reader(resp))
    }

    async fn container_changes(&self, id: &str) -> Result<Vec<ContainerChange>> {
        let changes: Option<Vec<ContainerChange>> = self
            .get_json(
                &format!("/containers/{}/changes", path_escape(id)),
                Query::new(),
            )
            .await?;
        Ok(changes.unwrap_or_default())
    }

    async fn container_stats(&self, id: &str, stream: bool) -> Result<StatsStream> {
        let resp = self
            .send(
                Method::GET,
                &format!("/containers/{}/stats", path_escape(id)),
                Query::new().set("stream", if stream { "1" } else { "0" }),
                empty(),
                &[],
            )
            .await?;
        Ok(Box::pin(json_stream::<ContainerStats>(body_reader(resp))))
    }

    async fn container_top(&self, id: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse> {
        self.get_json(
            &format!("/containers/{}/top", path_escape(id)),
            Query::new().opt("ps_args", ps_args),
        )
        .await
    }

    async fn create_exec(
        &self,
        container: &str,
        config: &api_types::ExecCreateRequest,
    ) -> Result<String> {
        let resp = self
            .send(
                Method::POST,
                &format!("/containers/{}/exec", path_escape(container)),
                Query::new(),
                json_body(config)?,
                &[("content-type", "application/json")],
            )
            .await?;
        let created: api_types::IdResponse = read_json(resp).await?;
        if created.id.is_empty() {
            return Err(BackendError::Protocol {
                message: "exec ID empty".into(),
            });
        }
        Ok(created.id)
    }

    async fn start_exec(
        &self,
        id: &str,
        opts: &api_types::ExecStartRequest,
    ) -> Result<Option<AttachStream>> {
        let path = format!("/exec/{}/start", path_escape(id));
        if opts.detach {
            let resp = self
                .send(
                    Method::POST,
                    &path,
                    Query::new(),
                    json_body(opts)?,
                    &[("content-type", "application/json")],
                )
                .await?;
            let _ = resp.into_body().collect().await;
            return Ok(None);
        }
        let body = serde_json::to_vec(opts).map_err(|e| BackendError::Protocol {
            message: format!("cannot encode the exec start body: {e}"),
        })?;
        self.hijack(&path, Query::new(), body, "application/json")
            .await
            .map(Some)
    }

    async fn resize_exec(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let query = Query::new()
            .set("h", height.to_string())
            .set("w", width.to_string());
        self.post_empty(&format!("/exec/{}/resize", path_escape(id)), query)
            .await
    }

    async fn inspect_exec(&self, id: &str) -> Result<api_types::ExecInspect> {
        self.get_json(&format!("/exec/{}/json", path_escape(id)), Query::new())
            .await
    }
}

impl HttpBackend {
    /// POSTs on a connection of its own with `Upgrade: tcp` and turns the `101` into a
    /// raw stream both ways (attach, exec start).
    async fn hijack(
        &self,
        path: &str,
        query: Query,
        body: Vec<u8>,
        content_type: &'static str,
    ) -> Result<AttachStream> {
        let version = self.ping_info().await?.api_version.clone();
        let url = self.versioned(&version, path, &query);
        let stream = UnixStream::connect(&self.inner.socket)
            .await
            .map_err(|e| self.connect_error(e))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream))
                .await
                .map_err(|e| BackendError::Protocol {
                    message: format!("hijack: {e}"),
                })?;
        tokio::spawn(conn.with_upgrades());
        let length = body.len().to_string();
        let req = Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .header(HOST, "api.moby.localhost")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "tcp")
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_LENGTH, length)
            .body(
                Full::new(Bytes::from(body))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .map_err(|e| BackendError::Protocol {
                message: format!("bad request for {url}: {e}"),
            })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| BackendError::Protocol {
                message: format!("hijack: {e}"),
            })?;
        let status = resp.status();
        if status.is_client_error() || status.is_server_error() {
            return Err(error_from_response(resp, &url).await);
        }
        if status != StatusCode::SWITCHING_PROTOCOLS {
            return Err(BackendError::Protocol {
                message: format!("unable to upgrade to tcp, received {}", status.as_u16()),
            });
        }
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| BackendError::Protocol {
                message: format!("hijack: {e}"),
            })?;
        let parts =
            upgraded
                .downcast::<TokioIo<UnixStream>>()
                .map_err(|_| BackendError::Protocol {
                    message: "hijack: the upgraded connection is not a Unix socket".into(),
                })?;
        let (read_half, write_half) = parts.io.into_inner().into_split();
        let early = std::io::Cursor::new(parts.read_buf);
        Ok(AttachStream {
            output: Box::pin(tokio::io::AsyncReadExt::chain(early, read_half)),
            input: Box::pin(write_half),
        })
    }
}

/// The `X-Docker-Container-Path-Stat` header of an archive response.
fn path_stat(resp: &Response<Incoming>) -> Result<ContainerPathStat> {
    let bad = |why: String| BackendError::Protocol {
        message: format!("unable to decode container path stat header: {why}"),
    };
    let value = resp
        .headers()
        .get(PATH_STAT_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad("it is missing".into()))?;
    let json = BASE64_STANDARD
        .decode(value)
        .map_err(|e| bad(format!("it is not base64: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_like_go_url_values() {
        let q = Query::new()
            .set("tag", "1.36")
            .set("fromImage", "docker.io/library/busybox")
            .set("changes", "CMD [\"/bin/sh\"]")
            .flag("off", false);
        assert_eq!(
            q.encode(),
            "changes=CMD+%5B%22%2Fbin%2Fsh%22%5D&fromImage=docker.io%2Flibrary%2Fbusybox&tag=1.36"
        );
        assert_eq!(
            path_escape("localhost:5999/ck-build:v1"),
            "localhost:5999/ck-build:v1"
        );
        assert_eq!(path_escape("a b?"), "a%20b%3F");
    }

    #[test]
    fn only_unix_hosts_are_accepted() {
        assert!(HttpBackend::new("unix:///run/berth/berth.sock").is_ok());
        assert!(HttpBackend::new("tcp://127.0.0.1:2375").is_err());
        assert!(HttpBackend::new("unix://").is_err());
    }

    #[tokio::test]
    async fn json_streams_split_on_any_separator() {
        let data: &[u8] = b"{\"status\":\"a\"}\r\n{\"status\":\"b\"}{\"stream\":\"c\\n\"}\n";
        let values: Vec<_> = json_stream::<ProgressMessage>(Box::pin(data))
            .collect()
            .await;
        let statuses: Vec<_> = values
            .into_iter()
            .map(|v| v.unwrap())
            .map(|m| m.status.or(m.stream).unwrap())
            .collect();
        assert_eq!(statuses, ["a", "b", "c\n"]);
        let broken: &[u8] = b"{\"status\":";
        let values: Vec<_> = json_stream::<ProgressMessage>(Box::pin(broken))
            .collect()
            .await;
        assert!(values[0].is_err());
    }

    #[test]
    fn events_missing_fields_still_decode() {
        let e = event_from_value(
            serde_json::json!({"Type":"container","Action":"start","Actor":{"ID":"abc"}}),
        )
        .unwrap();
        assert_eq!(
            (e.kind.as_str(), e.action.as_str(), e.actor.id.as_str()),
            ("container", "start", "abc")
        );
    }
}
