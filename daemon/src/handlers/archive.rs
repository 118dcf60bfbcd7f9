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
use engine::container::{CopyToOptions, TarStream};
use engine::Engine;

use super::upload::upload;
use crate::error::ApiError;
use crate::params::Params;
use crate::peer::CallerId;

/// The `path` parameter, which Docker requires.
fn path_param(params: &Params) -> Result<String, ApiError> {
    params
        .get("path")
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("bad parameter: path cannot be empty"))
}

/// The stat header: base64 of the stat's JSON.
fn stat_header(stat: &ContainerPathStat) -> Result<HeaderValue, ApiError> {
    let json = serde_json::to_vec(stat).map_err(|e| ApiError::internal(e.to_string()))?;
    HeaderValue::from_str(&base64(&json)).map_err(|e| ApiError::internal(e.to_string()))
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
    let path = path_param(&params)?;
    let stat = engine.stat_container_path(&caller, &id, &path).await?;
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
    let path = path_param(&params)?;
    let (stat, rx) = engine.archive_container_path(&caller, &id, &path).await?;
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
    let path = path_param(&params)?;
    let opts = CopyToOptions {
        no_overwrite_dir_non_dir: params.bool("noOverwriteDirNonDir", false)?,
        copy_uid_gid: params.bool("copyUIDGID", false)?,
    };
    let (input, drain) = upload(body);
    let extracted = engine
        .extract_to_container(&caller, &id, &path, opts, input)
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

/// Standard base64 with padding (Go's `base64.StdEncoding`).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let stat = ContainerPathStat {
            name: "hostname".into(),
            size: 13,
            mode: 420,
            mtime: "2026-11-27T14:35:54.70440889Z".into(),
            link_target: String::new(),
        };
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&stat).unwrap()).unwrap(),
            r#"{"name":"hostname","size":13,"mode":420,"mtime":"2026-11-27T14:35:54.70440889Z","linkTarget":""}"#
        );
    }
}
