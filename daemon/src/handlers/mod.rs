//! Request handlers: parse, call the engine, shape the response. Nothing else.

pub mod archive;
pub mod build;
pub mod containers;
pub mod distribution;
pub mod exec;
pub mod images;
pub mod observe;
pub mod streams;
pub mod system;
pub mod upload;

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest JSON request body berthd reads (image and archive uploads are streamed).
pub const MAX_JSON_BODY: usize = 4 << 20;

/// Parses a JSON body as dockerd does: an empty body is the default value; a body labelled
/// with another content type is refused.
pub fn json_body<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.is_empty() && mime != "application/json" {
            return Err(ApiError::bad_request(format!(
                "Content-Type specified ({ct}) must be 'application/json'"
            )));
        }
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Reads a request body of at most [`MAX_JSON_BODY`] bytes. A larger announced
/// `Content-Length` is refused before a byte of the body is read.
pub async fn small_body(headers: &HeaderMap, body: axum::body::Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {MAX_JSON_BODY} bytes berthd accepts"),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_JSON_BODY as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| too_large())
}
