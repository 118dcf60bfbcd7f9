//! Engine errors as Docker's HTTP errors: a status code and `{"message": "..."}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::{EngineError, ErrorKind};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The one place engine failures become status codes.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The engine's module errors, through [`EngineError`].
macro_rules! from_engine_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                EngineError::from(e).into()
            }
        }
    )*};
}
from_engine_errors!(
    engine::container::ContainerError,
    engine::image::ImageError,
    engine::timestamp::TimeError
);

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = status_of(e.kind());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = ?e, "request failed");
        }
        Self::new(status, engine::error::chain(&e))
    }
}

impl From<engine::build::BuildError> for ApiError {
    fn from(e: engine::build::BuildError) -> Self {
        let status = status_of(e.kind());
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = ?e, "build failed");
        }
        Self::new(status, engine::error::chain(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::NOT_MODIFIED {
            return self.status.into_response();
        }
        let body = serde_json::to_string(&api_types::ErrorResponse {
            message: self.message,
        })
        .unwrap_or_else(|_| "{}".into())
            + "\n";
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}
