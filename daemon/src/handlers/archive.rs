//! Copying files into and out of containers: `HEAD`/`GET`/`PUT /containers/{id}/archive`
//! (`docker cp`), `GET /containers/{id}/export` and `GET /containers/{id}/changes`
//! (`docker diff`).

use std::sync::Arc;

use api_types::{ContainerPathStat, PATH_STAT_HEADER};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use engine::container::{CopyToOptions, TarStream};
use engine::Engine;

use super::upload::upload;
use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

/// The stat header: base64 of the stat's JSON.
fn stat_header(stat: &ContainerPathStat) -> Result<HeaderValue, ApiError> {
    let json = serde_json::to_vec(stat).map_err(|e| ApiError::internal(e.to_string()))?;
    HeaderValue::from_str(&BASE64_STANDARD.encode(json))
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A tar stream as a response body: an error part-way aborts the response instead of
/// ending it as if the archive were complete.
pub(crate) fn tar_body(rx: TarStream) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Body::from_stream(stream)
}

/// `HEAD /containers/{id}/archive`: the stat of a path, in a header.
pub async fn head(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let path = params.get("path").unwrap_or("");
    let stat = engine.stat_container_path(&caller, &id, path).await?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert(PATH_STAT_HEADER, stat_header(&stat)?);
    Ok(resp)
}

/// `GET /containers/{id}/archive`: a tar of a path, with its stat in a header.
pub async fn get(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let path = params.get("path").unwrap_or("");
    let (stat, rx) = engine.archive_container_path(&caller, &id, path).await?;
    let mut resp = tar_body(rx).into_response();
    let h = resp.headers_mut();
    h.insert(PATH_STAT_HEADER, stat_header(&stat)?);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// `PUT /containers/{id}/archive`: extracts the uploaded tar into a directory.
pub async fn put(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
    params: Params,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let path = params.get("path").unwrap_or("");
    let opts = CopyToOptions {
        no_overwrite_dir_non_dir: params.bool("noOverwriteDirNonDir", false)?,
        copy_uid_gid: params.bool("copyUIDGID", false)?,
    };
    let (input, drain) = upload(body);
    let extracted = engine
        .extract_to_container(&caller, &id, path, opts, input)
        .await;
    drain.finish().await;
    extracted?;
    Ok(StatusCode::OK)
}

/// `GET /containers/{id}/export`: a tar of the container's file system.
pub async fn export(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rx = engine.export_container(&caller, &id).await?;
    let mut resp = tar_body(rx).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}

/// `GET /containers/{id}/changes`: `null` when nothing changed, as dockerd answers.
pub async fn changes(
    State(engine): State<Arc<Engine>>,
    CallerId(caller): CallerId,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let changes = engine.container_changes(&caller, &id).await?;
    Ok(Json((!changes.is_empty()).then_some(changes)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stat_header_is_base64_of_dockerds_json() {
        let stat = ContainerPathStat {
            name: "hostname".into(),
            size: 13,
            mode: 420,
            mtime: "2026-11-27T14:35:54.70440889Z".into(),
            link_target: String::new(),
        };
        // base64 of {"name":"hostname","size":13,"mode":420,"mtime":"…","linkTarget":""}
        assert_eq!(
            stat_header(&stat).unwrap(),
            "eyJuYW1lIjoiaG9zdG5hbWUiLCJzaXplIjoxMywibW9kZSI6NDIwLCJtdGltZSI6IjIwMjYtMTEtMjdUMTQ6MzU6NTQuNzA0NDA4ODlaIiwibGlua1RhcmdldCI6IiJ9"
        );
    }
}
