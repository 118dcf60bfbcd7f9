//! Watching a container: `GET /containers/{id}/stats` and `GET /containers/{id}/top`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::container::{ContainerError, StatsOptions};
use engine::Engine;

use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

/// `GET /containers/{id}/stats`: one sample (`stream=0`), or one a second as JSON lines
/// until the client goes.
pub async fn stats(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let opts = StatsOptions {
        stream: params.bool("stream", true)?,
        one_shot: params.bool("one-shot", false)?,
    };
    let mut rx = engine.container_stats(&caller, &id, opts).await?;
    if !opts.stream {
        let sample = rx
            .recv()
            .await
            // Removed before its first sample.
            .ok_or(ContainerError::NotFound { id })?;
        return Ok(Json(sample).into_response());
    }
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let sample = rx.recv().await?;
        let mut line = serde_json::to_vec(&sample).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(line), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let top = engine
        .top_container(&caller, &id, params.get("ps_args"))
        .await?;
    Ok(Json(top).into_response())
}
