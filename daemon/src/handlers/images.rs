//! Image endpoints.

use std::sync::Arc;

use api_types::ProgressMessage;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::image::ImportOptions;
use engine::Engine;

use super::upload::upload;
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
    let (mut reader, drain) = upload(body);
    let loaded = {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || engine.load_images(&caller, &mut reader))
            .await
            .map_err(|e| ApiError::internal(format!("image load failed: {e}")))
    };
    drain.finish().await;
    let loaded = loaded??;
    let msgs: Vec<ProgressMessage> = loaded
        .iter()
        .flat_map(|img| {
            if img.tags.is_empty() {
                vec![format!("Loaded image ID: {}\n", img.id)]
            } else {
                img.tags
                    .iter()
                    .map(|t| format!("Loaded image: {t}\n"))
                    .collect()
            }
        })
        .map(|s| ProgressMessage {
            stream: Some(s),
            ..Default::default()
        })
        .collect();
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
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from a URL ({src}) is not supported: send the tarball in the body with fromSrc=-"
        )));
    }
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
    let (mut reader, drain) = upload(body);
    let id = tokio::task::spawn_blocking(move || engine.import_image(&caller, &mut reader, &opts))
        .await
        .map_err(|e| ApiError::internal(format!("image import failed: {e}")));
    drain.finish().await;
    let id = id??;
    Ok(progress_lines(&[ProgressMessage {
        status: Some(id),
        ..Default::default()
    }]))
}

/// `GET /images/{name}/json`, where the name may hold `/` and `:`.
pub async fn get_by_name(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(rest): Path<String>,
) -> Result<Response, ApiError> {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError::not_found("page not found"));
    };
    let inspect = engine.inspect_image(&caller, name).map_err(|e| {
        let not_found = e.kind() == engine::ErrorKind::NotFound;
        let api = ApiError::from(e);
        if not_found {
            api.map_message(|m| format!("no such image: {name}: {m}"))
        } else {
            api
        }
    })?;
    Ok(Json(inspect).into_response())
}

/// `POST /images/{name}/tag?repo=&tag=`, `POST /images/{name}/push?tag=`.
pub async fn post_by_name(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(rest): Path<String>,
    headers: axum::http::HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    if let Some(name) = rest.strip_suffix("/push") {
        return super::distribution::push(engine, caller, name, &params, &headers).await;
    }
    let Some(name) = rest.strip_suffix("/tag") else {
        return Err(ApiError::not_found("page not found"));
    };
    let repo = params
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("repository name must have at least one component"))?;
    engine.tag_image(&caller, name, repo, params.get("tag"))?;
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
