//! Image endpoints.

use std::sync::Arc;

use api_types::{ContainerConfig, IdResponse, ProgressMessage};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::commit::CommitOptions;
use engine::image::{check_import_source, ImportOptions, LoadedImage};
use engine::Engine;

use super::archive::tar_body;
use super::upload::upload;
use super::{json_body, small_body};
use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

pub async fn list(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
) -> Result<Response, ApiError> {
    let all = params.bool("all", false)?;
    let filters = params.filters()?;
    Ok(Json(engine.list_images(&caller, all, &filters)?).into_response())
}

fn progress_lines(msgs: &[ProgressMessage]) -> Response {
    let mut body = Vec::new();
    for m in msgs {
        body.extend(serde_json::to_vec(m).unwrap_or_default());
        body.push(b'\n');
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /images/load`: a `docker save` archive in the body.
pub async fn load(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
    body: Body,
) -> Result<Response, ApiError> {
    params.bool("quiet", false)?;
    let (reader, drain) = upload(body);
    let loaded = engine.load_images(&caller, reader).await;
    drain.finish().await;
    let msgs: Vec<ProgressMessage> = loaded?.iter().flat_map(LoadedImage::progress).collect();
    Ok(progress_lines(&msgs))
}

/// `POST /images/create`: `fromImage` pulls from a registry; `fromSrc=-` imports the body
/// as a root file system.
pub async fn create(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    headers: axum::http::HeaderMap,
    params: Params,
    body: Body,
) -> Result<Response, ApiError> {
    if params.get("fromImage").is_some() {
        return super::distribution::pull(engine, caller, &params, &headers).await;
    }
    let Some(src) = params.get("fromSrc") else {
        return Err(ApiError::bad_request("fromImage or fromSrc is required"));
    };
    check_import_source(src)?;
    let repo_tag = params.get("repo").filter(|r| !r.is_empty()).map(|repo| {
        match params.get("tag").filter(|t| !t.is_empty()) {
            Some(tag) => format!("{repo}:{tag}"),
            None => repo.to_string(),
        }
    });
    let opts = ImportOptions {
        repo_tag,
        changes: params.all("changes"),
        message: params.get("message").unwrap_or("").to_string(),
    };
    let (reader, drain) = upload(body);
    let id = engine.import_image(&caller, reader, opts).await;
    drain.finish().await;
    let id = id?;
    Ok(progress_lines(&[ProgressMessage {
        status: Some(id),
        ..Default::default()
    }]))
}

/// `GET /images/{name}/json` (the router has the name in one segment, `/` and all).
pub async fn inspect(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(engine.inspect_image(&caller, &name)?).into_response())
}

/// `POST /images/{name}/tag?repo=&tag=`.
pub async fn tag(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let repo = params.get("repo").unwrap_or("");
    engine.tag_image(&caller, &name, repo, params.get("tag"))?;
    Ok(axum::http::StatusCode::CREATED.into_response())
}

/// `DELETE /images/{name}`.
pub async fn remove(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let force = params.bool("force", false)?;
    params.bool("noprune", false)?;
    Ok(Json(engine.remove_image(&caller, &name, force)?).into_response())
}

/// `GET /images/{name}/history`.
pub async fn history(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(engine.image_history(&caller, &name)?).into_response())
}

/// `GET /images/{name}/get`: a `docker save` archive of one image (`format=oci` for the OCI
/// layout, a berth extension).
pub async fn save_one(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    save(engine, caller, vec![name], &params).await
}

/// `GET /images/get?names=…`: one archive of several images.
pub async fn save_many(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
) -> Result<Response, ApiError> {
    save(engine, caller, params.all("names"), &params).await
}

async fn save(
    engine: Arc<Engine>,
    caller: engine::Caller,
    names: Vec<String>,
    params: &Params,
) -> Result<Response, ApiError> {
    let format = params.get("format").unwrap_or("");
    let rx = engine.save_images(&caller, &names, format).await?;
    let mut resp = tar_body(rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// `POST /images/prune?filters=`.
pub async fn prune(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
) -> Result<Response, ApiError> {
    let filters = params.filters()?;
    let report = tokio::task::spawn_blocking(move || engine.prune_images(&caller, &filters))
        .await
        .map_err(|e| ApiError::internal(format!("image prune failed: {e}")))??;
    Ok(Json(report).into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`, with an optional
/// container config in the body.
pub async fn commit(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = small_body(&headers, body).await?;
    let trimmed: &[u8] = body.trim_ascii();
    let config: Option<ContainerConfig> = if trimmed.is_empty() || trimmed == b"null" {
        None
    } else {
        Some(json_body(&headers, &body)?)
    };
    let opts = CommitOptions {
        repo: params.get("repo").map(str::to_string),
        tag: params.get("tag").map(str::to_string),
        comment: params.get("comment").unwrap_or("").to_string(),
        author: params.get("author").unwrap_or("").to_string(),
        pause: params.bool("pause", true)?,
        changes: params.all("changes"),
        config,
    };
    let container = params.get("container").unwrap_or("");
    let id = engine.commit_container(&caller, container, opts).await?;
    Ok((StatusCode::CREATED, Json(IdResponse { id })).into_response())
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    super::distribution::push(engine, caller, &name, &params, &headers).await
}
