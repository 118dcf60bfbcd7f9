//! Container endpoints that answer with one response (the streaming ones are in `streams`).

use std::convert::Infallible;
use std::sync::Arc;

use api_types::{ContainerCreateRequest, WaitError, WaitResponse};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::container::{ListOptions, WaitCondition};
use engine::Engine;

use super::{json_body, small_body};
use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

pub async fn create(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body: Bytes = small_body(&headers, body).await?;
    let req: ContainerCreateRequest = json_body(&headers, &body)?;
    let created = engine
        .create_container(&caller, params.get("name"), req)
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn list(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
) -> Result<Response, ApiError> {
    let limit = params.int("limit")?.filter(|&n| n > 0).map(|n| n as usize);
    let opts = ListOptions {
        all: params.bool("all", false)?,
        limit,
        filters: params.filters()?,
        size: params.bool("size", false)?,
    };
    Ok(Json(engine.list_containers(&caller, &opts).await?).into_response())
}

pub async fn inspect(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let inspect = if params.bool("size", false)? {
        engine.inspect_container_with_size(&caller, &id).await?
    } else {
        engine.inspect_container(&caller, &id).await?
    };
    Ok(Json(inspect).into_response())
}

pub async fn start(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.start_container(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stop(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let timeout = params.int("t")?;
    engine
        .stop_container(&caller, &id, timeout, params.get("signal"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    engine
        .kill_container(&caller, &id, params.get("signal"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn restart(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    engine
        .restart_container(&caller, &id, params.int("t")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/wait`: the headers go out at once; the body when the condition is
/// met (the docker CLI starts the container only after it has the headers).
pub async fn wait(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let condition = WaitCondition::parse(params.get("condition").unwrap_or(""))?;
    let pending = engine.wait_container(&caller, &id, condition).await?;
    let stream = futures_util::stream::once(async move {
        let resp: WaitResponse = pending.await;
        let mut body = serde_json::to_vec(&resp).unwrap_or_else(|_| {
            serde_json::to_vec(&WaitResponse {
                error: Some(WaitError {
                    message: "encoding failed".into(),
                }),
                status_code: -1,
            })
            .unwrap_or_default()
        });
        body.push(b'\n');
        Ok::<_, Infallible>(body)
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

pub async fn remove(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let force = params.bool("force", false)?;
    params.bool("v", false)?;
    params.bool("link", false)?;
    engine.remove_container(&caller, &id, force).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
) -> Result<Response, ApiError> {
    let filters = params.filters()?;
    Ok(Json(engine.prune_containers(&caller, &filters).await?).into_response())
}

/// `POST /containers/{id}/resize?h=&w=`: the container's terminal size (SIGWINCH reaches
/// its foreground process).
pub async fn resize(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let (h, w) = (params.dimension("h")?, params.dimension("w")?);
    engine.resize_container(&caller, &id, h, w).await?;
    Ok(StatusCode::OK)
}

pub async fn rename(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let new_name = params.get("name").unwrap_or("");
    engine.rename_container(&caller, &id, new_name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn pause(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.pause_container(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unpause(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.unpause_container(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn update(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = small_body(&headers, body).await?;
    let req: api_types::ContainerUpdateRequest = json_body(&headers, &body)?;
    Ok(Json(engine.update_container(&caller, &id, req).await?).into_response())
}
