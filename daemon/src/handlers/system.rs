//! `/_ping`, `/version`, `/info` and `/events`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::events::Event;
use engine::timestamp::parse_nanos;
use engine::Engine;

use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

fn ping_response(body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    r
}

pub async fn ping() -> Response {
    ping_response("OK")
}

pub async fn ping_head() -> Response {
    let mut r = ping_response("");
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

pub async fn version(State(engine): State<Arc<Engine>>) -> Json<api_types::Version> {
    Json(engine.version())
}

pub async fn info(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
) -> Json<api_types::Info> {
    Json(engine.info(&caller).await)
}

/// `GET /events`: past events since `since`, then live ones until `until` or the client goes.
pub async fn events(
    State(engine): State<Arc<Engine>>,
    CallerId(_caller): CallerId,
    params: Params,
) -> Result<Response, ApiError> {
    let since = parse_nanos("since", params.get("since"))?;
    let until = parse_nanos("until", params.get("until"))?;
    let filters = params.filters()?;
    let mut rx = engine.events().subscribe(since, until, filters);
    let stream = async_stream(move |tx| async move {
        while let Some(e) = rx.recv().await {
            if tx.send(encode(&e)).await.is_err() {
                return;
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn encode(e: &Event) -> Vec<u8> {
    let mut line = serde_json::to_vec(&e.to_message()).unwrap_or_default();
    line.push(b'\n');
    line
}

/// A body stream fed by a task: the task sends chunks, the stream yields them, and when the
/// client goes away the channel closes and the task's next send fails.
pub fn async_stream<F, Fut>(f: F) -> impl futures_util::Stream<Item = Result<Vec<u8>, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Vec<u8>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(f(tx));
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|c| (Ok(c), rx)) },
    )
}

/// `GET /system/df`.
pub async fn df(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
) -> Result<Json<api_types::DiskUsage>, ApiError> {
    Ok(Json(engine.disk_usage(&caller).await?))
}

/// `POST /build/prune?filters=&all=`.
pub async fn build_prune(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
) -> Result<Json<api_types::BuildCachePruneResponse>, ApiError> {
    let filters = params.filters()?;
    params.bool("all", false)?;
    let report = tokio::task::spawn_blocking(move || engine.prune_build_cache(&caller, &filters))
        .await
        .map_err(|e| ApiError::internal(format!("build cache prune failed: {e}")))??;
    Ok(Json(report))
}
