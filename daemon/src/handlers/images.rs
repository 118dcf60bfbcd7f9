//! Image endpoints.

use std::sync::Arc;

use api_types::{ContainerConfig, IdResponse, ProgressMessage};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::commit::CommitOptions;
use engine::image::{ImportOptions, SaveFormat};
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

/// `POST /images/create`: `fromSrc=-` imports the body as a root file system; `fromImage`
/// (pulling from a registry) is not available in berth yet.
pub async fn create(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    params: Params,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(image) = params.get("fromImage") {
        let tag = params
            .get("tag")
            .filter(|t| !t.is_empty())
            .unwrap_or("latest");
        return Err(ApiError::not_found(format!(
            "pull access denied for {image}:{tag}: berth cannot pull images from registries yet; load it with `berth load` or `docker load`"
        )));
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

/// `GET /images/{name}/json`, `/images/{name}/history`, `/images/{name}/get` and
/// `/images/get?names=…`, where the name may hold `/` and `:`.
pub async fn get_by_name(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(rest): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    if rest == "get" {
        return save(engine, caller, params.all("names"), &params).await;
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return save(engine, caller, vec![name.to_string()], &params).await;
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return Ok(Json(engine.image_history(&caller, name)?).into_response());
    }
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

/// `GET /images/{name}/get`, `GET /images/get?names=…`: a `docker save` archive
/// (`format=oci` for the OCI layout, a berth extension).
async fn save(
    engine: Arc<Engine>,
    caller: engine::Caller,
    names: Vec<String>,
    params: &Params,
) -> Result<Response, ApiError> {
    let format = params.get("format").unwrap_or("");
    let format = SaveFormat::parse(format)
        .ok_or_else(|| ApiError::bad_request(format!("unknown archive format {format:?}")))?;
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let rx = engine.save_images(&caller, &names, format).await?;
    let mut resp = tar_body(rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// `POST /images/prune?filters=`.
async fn prune(
    engine: Arc<Engine>,
    caller: engine::Caller,
    params: &Params,
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

/// `POST /images/{name}/tag?repo=&tag=` and `POST /images/prune`.
pub async fn post_by_name(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(rest): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    if rest == "prune" {
        return prune(engine, caller, &params).await;
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
