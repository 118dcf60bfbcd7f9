//! Registry endpoints: pull (`POST /images/create?fromImage=`), push, distribution inspect
//! and `POST /auth`. Credentials come in `X-Registry-Auth`; progress goes out as Docker's
//! JSON stream, one message per line.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use api_types::{AuthConfig, ErrorDetail, ProgressMessage};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::image::pull::PullRequest;
use engine::image::push::PushRequest;

use engine::image::registry::decode_registry_auth;

use engine::image::Progress;
use engine::{Engine, EngineError};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

/// The credentials in `X-Registry-Auth` (none when absent).
fn registry_auth(headers: &HeaderMap) -> Result<AuthConfig, ApiError> {
    let Some(value) = headers.get("x-registry-auth") else {
        return Ok(AuthConfig::default());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header: not ASCII"))?;
    decode_registry_auth(value).map_err(|e| ApiError::from(EngineError::from(e)))
}

/// `POST /images/create?fromImage=&tag=&platform=`.
pub async fn pull(
    engine: Arc<Engine>,
    caller: engine::Caller,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let request = PullRequest::parse(
        params.get("fromImage").unwrap_or(""),
        params.get("tag").unwrap_or(""),
        params.get("platform").unwrap_or(""),
        registry_auth(headers)?,
    )?;
    progress_response(move |progress| async move {
        engine
            .pull_image(&caller, request, progress)
            .await
            .map(|_| ())
    })
    .await
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(
    engine: Arc<Engine>,
    caller: engine::Caller,
    name: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let request = PushRequest::parse(
        name,
        params.get("tag").unwrap_or(""),
        registry_auth(headers)?,
    )?;
    progress_response(move |progress| async move {
        engine
            .push_image(&caller, request, progress)
            .await
            .map(|_| ())
    })
    .await
}

/// `GET /distribution/{name}/json` (the router has the name in one segment, `/` and all).
pub async fn inspect(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let auth = registry_auth(&headers)?;
    Ok(Json(engine.inspect_distribution(&caller, &name, auth).await?).into_response())
}

/// `POST /auth`: checks credentials against the registry (`docker login`).
pub async fn auth(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = super::small_body(&headers, body).await?;
    let mut config: AuthConfig = super::json_body(&headers, &body)?;
    use engine::image::registry::AuthConfigExt;
    config.expand_auth_field();
    Ok(Json(engine.login(&caller, config).await?).into_response())
}

/// Runs an operation that reports progress. If it fails before its first message, the
/// answer is the error (status and `{"message"}`, as dockerd answers a pull whose manifest
/// is unknown); once a message is out, the answer is a 200 stream of messages ending, on
/// failure, with an `errorDetail` message.
async fn progress_response<F, Fut>(op: F) -> Result<Response, ApiError>
where
    F: FnOnce(Progress) -> Fut,
    Fut: Future<Output = Result<(), EngineError>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(op(Progress::new(tx)));
    let Some(first) = rx.recv().await else {
        task.await
            .map_err(|e| ApiError::internal(format!("the operation failed: {e}")))??;
        return Ok(([(header::CONTENT_TYPE, "application/json")], "").into_response());
    };
    enum State {
        Messages(
            tokio::sync::mpsc::UnboundedReceiver<ProgressMessage>,
            tokio::task::JoinHandle<Result<(), EngineError>>,
        ),
        Done,
    }
    let first = line(&first);
    let rest = futures_util::stream::unfold(State::Messages(rx, task), |state| async move {
        let State::Messages(mut rx, task) = state else {
            return None;
        };
        match rx.recv().await {
            Some(msg) => Some((Ok::<_, Infallible>(line(&msg)), State::Messages(rx, task))),
            None => {
                let failure = match task.await {
                    Ok(Ok(())) => return None,
                    Ok(Err(e)) => {
                        if e.kind() == engine::ErrorKind::Internal {
                            tracing::error!(error = ?e, "registry operation failed");
                        }
                        engine::error::chain(&e)
                    }
                    Err(e) => format!("the operation failed: {e}"),
                };
                let msg = ProgressMessage {
                    error: Some(failure.clone()),
                    error_detail: Some(ErrorDetail {
                        message: failure,
                        code: None,
                    }),
                    ..Default::default()
                };
                Some((Ok(line(&msg)), State::Done))
            }
        }
    });
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(first) }).chain(rest);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One message and dockerd's `\r\n`.
fn line(msg: &ProgressMessage) -> Vec<u8> {
    let mut v = serde_json::to_vec(msg).unwrap_or_default();
    v.extend_from_slice(b"\r\n");
    v
}
