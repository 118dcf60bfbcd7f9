//! Streaming container endpoints: `logs` (chunked) and `attach` (hijacked connection), and
//! the hijacking exec start shares.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::container::{AttachInput, AttachOptions, LogChunk, LogOptions, LogsRequest};
use engine::Engine;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

fn chunk_stream(
    rx: mpsc::Receiver<LogChunk>,
    tty: bool,
    timestamps: bool,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, Infallible>> {
    futures_util::stream::unfold(rx, move |mut rx| async move {
        rx.recv().await.map(|c| (Ok(c.encode(tty, timestamps)), rx))
    })
}

/// `GET /containers/{id}/logs`.
pub async fn logs(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let req = LogsRequest {
        stdout: params.bool("stdout", false)?,
        stderr: params.bool("stderr", false)?,
        follow: params.bool("follow", false)?,
        since: params.get("since").map(str::to_string),
        until: params.get("until").map(str::to_string),
        timestamps: params.bool("timestamps", false)?,
        // Read, not checked: berth's json-file log has no details to add.
        details: params.bool("details", false).unwrap_or(false),
        tail: params.get("tail").unwrap_or("all").to_string(),
    };
    let (opts, timestamps) = (req.options()?, req.timestamps);
    let (tty, rx) = engine.container_logs(&caller, &id, opts).await?;
    Ok(Body::from_stream(chunk_stream(rx, tty, timestamps)).into_response())
}

/// How long output that is ready at once waits after the `101`, so the response head is
/// read by itself.
const HEAD_ALONE: std::time::Duration = std::time::Duration::from_millis(20);

/// What a hijacked stream carries: the engine's output (and, with stdin, the way in).
pub struct Hijack {
    /// Raw bytes (a terminal) or stdcopy frames.
    pub tty: bool,
    pub output: mpsc::Receiver<LogChunk>,
    pub input: Option<AttachInput>,
    /// The output starts with a replay that is ready at once.
    pub replay: bool,
}

/// Whether the client asked to upgrade the connection (`Upgrade: tcp`).
fn wants_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// Answers a stream request: with `Upgrade: tcp`, `101 UPGRADED` and then the raw
/// connection both ways (output until the engine ends it, input until the client's
/// half-close); without, the output as the response body.
pub fn hijack(mut req: Request, stream: Hijack) -> Response {
    let content_type = if stream.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let Hijack {
        tty,
        output,
        input,
        replay,
    } = stream;
    if !wants_upgrade(&req) {
        let mut resp = Body::from_stream(chunk_stream(output, tty, false)).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return resp;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        // The upgrade completes once the 101 has been written, so no output can share a
        // read with the response head.
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %engine::error::Chain(&e), "stream upgrade failed");
                return;
            }
        };
        let (reader, mut writer) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
        // Input in a task of its own, so a container that does not read its stdin never
        // stops its output; it is stopped when the output ends so the connection closes.
        let input_task = input.map(|input| {
            // Dropping `input` at the end is the client's end of input.
            tokio::spawn(async move { input.copy_from(reader).await })
        });
        let mut output = output;
        // Output that is there at once (a log replay) would follow the 101 in the same
        // read, and docker-py, which lets http.client read the head through a buffer and
        // then reads the raw socket, would lose it: give the head a moment on its own.
        if replay {
            tokio::time::sleep(HEAD_ALONE).await;
        }
        while let Some(chunk) = output.recv().await {
            if writer.write_all(&chunk.encode(tty, false)).await.is_err() {
                break;
            }
        }
        let _ = writer.flush().await;
        let _ = writer.shutdown().await;
        if let Some(task) = input_task {
            task.abort();
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    resp
}

/// `POST /containers/{id}/attach`: the container's live output (and, with `stdin=1`,
/// its stdin) on a hijacked connection, from now on or from its next start.
pub async fn attach(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
    req: Request,
) -> Result<Response, ApiError> {
    let stream = params.bool("stream", false)?;
    // Input needs the upgraded connection: a plain response body only goes one way (and
    // a session's input that ends at once would close a StdinOnce container's stdin).
    let opts = AttachOptions {
        stdin: params.bool("stdin", false)? && stream && wants_upgrade(&req),
        stdout: params.bool("stdout", false)?,
        stderr: params.bool("stderr", false)?,
        detach_keys: params.get("detachKeys").map(str::to_string),
    };
    let logs = params.bool("logs", false)?;
    let (stdout, stderr) = (opts.stdout, opts.stderr);
    // A live session only with `stream` (subscribed before the log is read: a line
    // written in between may come twice, none is lost; dockerd has the same seam).
    let session = if stream {
        Some(engine.attach_container(&caller, &id, opts).await?)
    } else {
        None
    };
    let past_requested = logs && (stdout || stderr);
    let past = if past_requested {
        let opts = LogOptions {
            stdout,
            stderr,
            ..Default::default()
        };
        Some(engine.container_logs(&caller, &id, opts).await?)
    } else {
        None
    };
    let tty = match (&session, &past) {
        (Some(s), _) => s.tty,
        (None, Some((tty, _))) => *tty,
        (None, None) => engine.inspect_container(&caller, &id).await?.config.tty,
    };
    let (live, input) = match session {
        Some(s) => (Some(s.output), s.input),
        None => (None, None),
    };
    let output = match (past, live) {
        (None, Some(live)) => live,
        (past, live) => {
            // The log so far, then the live output.
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                for mut source in past.map(|(_, rx)| rx).into_iter().chain(live) {
                    while let Some(chunk) = source.recv().await {
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                }
            });
            rx
        }
    };
    let replay = past_requested;
    Ok(hijack(
        req,
        Hijack {
            tty,
            output,
            input,
            replay,
        },
    ))
}
