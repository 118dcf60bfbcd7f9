//! Streaming container endpoints: `logs` (chunked) and `attach` (hijacked connection).

use std::convert::Infallible;
use std::sync::Arc;

use api_types::stdcopy::{frame, StreamKind};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::container::{LogChunk, LogOptions, LogStream};
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

/// `POST /containers/{id}/attach`: with `Upgrade: tcp`, answers `101 UPGRADED` and then
/// writes the container's output on the raw connection until it exits; without, streams the
/// same bytes as the response body.
pub async fn attach(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
    mut req: Request,
) -> Result<Response, ApiError> {
    let stream = params.bool("stream", false)?;
    let stdout = params.bool("stdout", false)?;
    let stderr = params.bool("stderr", false)?;
    let (tty, rx) = engine.attach_output(&caller, &id, stdout, stderr).await?;
    let rx = if stream { rx } else { mpsc::channel(1).1 };
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    if !wants_upgrade {
        let mut resp = Body::from_stream(chunk_stream(rx, tty, false)).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return Ok(resp);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        // The upgrade completes once the 101 has been written, so no output can share a
        // read with the response head.
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "attach upgrade failed");
                return;
            }
        };
        let mut io = hyper_util::rt::TokioIo::new(upgraded);
        let mut rx = rx;
        while let Some(chunk) = rx.recv().await {
            if io.write_all(&encode(&chunk, tty, false)).await.is_err() {
                return;
            }
        }
        let _ = io.flush().await;
        let _ = io.shutdown().await;
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    Ok(resp)
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
