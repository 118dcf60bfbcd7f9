//! Streaming container endpoints: `logs` (chunked) and `attach` (hijacked connection), and
//! the hijacking exec start shares.

use std::convert::Infallible;
use std::sync::Arc;

use api_types::stdcopy::{frame, StreamKind};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::container::{AttachInput, AttachOptions, LogChunk, LogOptions, LogStream};
use engine::Engine;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

/// Encodes one chunk of output as it goes on the wire: a stdcopy frame, or the raw bytes for
/// a container with a terminal; with `timestamps`, each line is prefixed with its time.
fn encode(chunk: &LogChunk, tty: bool, timestamps: bool) -> Vec<u8> {
    let mut payload = Vec::with_capacity(chunk.bytes.len() + 32);
    if timestamps {
        payload.extend_from_slice(chunk.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&chunk.bytes);
    if tty {
        return payload;
    }
    let kind = match chunk.stream {
        LogStream::Stdout => StreamKind::Stdout,
        LogStream::Stderr => StreamKind::Stderr,
    };
    frame(kind, &payload)
}

fn chunk_stream(
    rx: mpsc::Receiver<LogChunk>,
    tty: bool,
    timestamps: bool,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, Infallible>> {
    futures_util::stream::unfold(rx, move |mut rx| async move {
        rx.recv()
            .await
            .map(|c| (Ok(encode(&c, tty, timestamps)), rx))
    })
}

/// `GET /containers/{id}/logs`.
pub async fn logs(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let stdout = params.bool("stdout", false)?;
    let stderr = params.bool("stderr", false)?;
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match params.get("tail").unwrap_or("all") {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid value for tail: {n:?}"
                )))
            }
        },
    };
    let opts = LogOptions {
        stdout,
        stderr,
        follow: params.bool("follow", false)?,
        tail,
        since: params.time_nanos("since")?.filter(|&s| s > 0),
        until: params.time_nanos("until")?.filter(|&u| u > 0),
    };
    let timestamps = params.bool("timestamps", false)?;
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
                tracing::debug!(error = %e, "stream upgrade failed");
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
            if writer.write_all(&encode(&chunk, tty, false)).await.is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_framed_unless_tty() {
        let c = LogChunk {
            stream: LogStream::Stderr,
            bytes: b"hi\n".to_vec(),
            time: "2026-01-01T00:00:00.000000001Z".into(),
        };
        assert_eq!(encode(&c, false, false), b"\x02\0\0\0\0\0\0\x03hi\n");
        assert_eq!(encode(&c, true, false), b"hi\n");
        assert_eq!(
            encode(&c, true, true),
            b"2026-01-01T00:00:00.000000001Z hi\n"
        );
    }
}
