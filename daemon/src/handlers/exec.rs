//! Exec endpoints: create, start (hijacked like attach), resize, inspect.

use std::sync::Arc;

use api_types::{ExecCreateRequest, ExecStartRequest, IdResponse};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::Engine;

use super::streams::{hijack, Hijack};
use super::{json_body, small_body};
use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

/// `POST /containers/{id}/exec` → 201 `{"Id": ...}`.
pub async fn create(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body: Bytes = small_body(&parts.headers, body).await?;
    let config: ExecCreateRequest = json_body(&parts.headers, &body)?;
    let exec_id = engine.create_exec(&caller, &id, config).await?;
    Ok((StatusCode::CREATED, Json(IdResponse { id: exec_id })).into_response())
}

/// `POST /exec/{id}/start`: detached, 200 with an empty body once the process runs;
/// attached, `101 UPGRADED` and the process's stdio on the raw connection.
pub async fn start(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let body: Bytes = small_body(&parts.headers, body).await?;
    let opts: ExecStartRequest = json_body(&parts.headers, &body)?;
    let req = Request::from_parts(parts, Body::empty());
    match engine.start_exec(&caller, &id, opts).await? {
        None => Ok((StatusCode::OK, [(header::CONTENT_LENGTH, "0")]).into_response()),
        Some(session) => Ok(hijack(
            req,
            Hijack {
                tty: session.tty,
                output: session.output,
                input: session.input,
                replay: false,
            },
        )),
    }
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let (h, w) = (params.dimension("h")?, params.dimension("w")?);
    engine.resize_exec(&caller, &id, h, w).await?;
    Ok(StatusCode::OK)
}

/// `GET /exec/{id}/json`.
pub async fn inspect(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(engine.inspect_exec(&caller, &id)?).into_response())
}
