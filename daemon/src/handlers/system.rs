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
use tokio::sync::broadcast::error::RecvError;

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
    let (past, mut rx) = engine.events().subscribe(since);
    let stream = async_stream(move |tx| async move {
        let keep = |e: &Event| e.matches(&filters);
        let before_until = |e: &Event| until.is_none_or(|u| e.time_nano <= u);
        for e in past.iter().filter(|e| keep(e) && before_until(e)) {
            if tx.send(encode(e)).await.is_err() {
                return;
            }
        }
        loop {
            let wait = until.map_or(u64::MAX / 4, |u| {
                (u - engine::events::now_nanos()).max(0) as u64
            });
            let next = tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(std::time::Duration::from_nanos(wait)) => return,
                r = rx.recv() => r,
            };
            match next {
                Ok(e) if keep(&e) && before_until(&e) => {
                    if tx.send(encode(&e)).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
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
