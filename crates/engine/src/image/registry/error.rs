//! What can go wrong talking to a registry, worded as dockerd words it.

use crate::ErrorKind;

/// A registry failure. Messages follow dockerd's (`manifest unknown: manifest unknown`,
/// `Get "http://…/v2/": connect: connection refused`), so scripts that match them work.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request did not get an answer: refused, reset, timed out, a TLS failure.
    #[error("{method} \"{url}\": {reason}")]
    Transport {
        /// Go's spelling of the method: `Get`, `Head`, `Put`, …
        method: &'static str,
        url: String,
        reason: String,
    },

    /// The registry answered with an error (`{"errors":[{"code":…,"message":…}]}`), shown as
    /// distribution's `errcode` renders it: `unauthorized: authentication required`.
    #[error("{message}")]
    Status { status: u16, message: String },

    /// The tag or digest is not in the repository.
    #[error("manifest for {reference} not found: {message}")]
    ManifestUnknown { reference: String, message: String },

    /// An image index without an entry for the platform asked for.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { platform: String },

    /// `--platform` that does not parse.
    #[error("\"{value}\": unknown operating system or architecture: invalid argument")]
    InvalidPlatform { value: String },

    /// A manifest of a kind berth cannot pull (schema 1, an artifact, …).
    #[error("unsupported manifest media type and no default available: {media_type}")]
    UnsupportedManifest { media_type: String },

    /// A manifest, index or config that does not parse or does not match its digest.
    #[error("invalid manifest for {reference}: {reason}")]
    InvalidManifest { reference: String, reason: String },

    /// A downloaded layer whose bytes do not hash to the digest its manifest names.
    #[error("filesystem layer verification failed for digest {digest}")]
    LayerVerification { digest: String },

    /// A layer that still failed to download after its retries.
    #[error("failed to download layer {digest} after {attempts} attempts: {reason}")]
    LayerDownload {
        digest: String,
        attempts: u32,
        reason: String,
    },

    /// `docker login` refused by the registry.
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed { url: String, status: String },

    /// Credentials the client sent that are not base64url JSON.
    #[error("invalid X-Registry-Auth header: {reason}")]
    InvalidAuthHeader { reason: String },

    /// The push names an image or tag berth does not have.
    #[error("An image does not exist locally with the tag: {name}")]
    NoLocalTag { name: String },

    /// A layer berth cannot produce the original bytes of.
    #[error("cannot push layer {diff_id}: {reason}")]
    LayerNotPushable { diff_id: String, reason: String },

    /// A local file operation of a pull or push failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// What kind of failure this is, for status and exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ManifestUnknown { .. } | Self::NoMatchingPlatform { .. } => ErrorKind::NotFound,
            Self::NoLocalTag { .. } => ErrorKind::NotFound,
            Self::InvalidPlatform { .. } | Self::InvalidAuthHeader { .. } => {
                ErrorKind::InvalidArgument
            }
            Self::LoginFailed { .. } => ErrorKind::Unauthorized,
            Self::Status { status: 404, .. } => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether trying the same request again may succeed (a dropped connection, a timeout,
    /// a registry error of the 5xx kind).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

/// Go's spelling of an HTTP method, as dockerd's `url.Error`s show it.
pub(crate) fn go_method(method: &reqwest::Method) -> &'static str {
    match *method {
        reqwest::Method::GET => "Get",
        reqwest::Method::HEAD => "Head",
        reqwest::Method::PUT => "Put",
        reqwest::Method::POST => "Post",
        reqwest::Method::PATCH => "Patch",
        reqwest::Method::DELETE => "Delete",
        _ => "Do",
    }
}

/// A transport failure's innermost cause, as Go's net package words the common ones.
pub(crate) fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "read timed out".to_string();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    if let Some(io) = inner.downcast_ref::<std::io::Error>() {
        return match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
            std::io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
            std::io::ErrorKind::UnexpectedEof => "unexpected EOF".to_string(),
            std::io::ErrorKind::TimedOut => "read timed out".to_string(),
            _ => io.to_string(),
        };
    }
    let text = inner.to_string();
    if text.is_empty() {
        e.to_string()
    } else {
        text
    }
}

/// distribution's `errcode.Errors` as Go renders them: `code words: message`, joined.
pub(crate) fn errcode_message(status: u16, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        let parts: Vec<String> = env
            .errors
            .iter()
            .map(|e| {
                let code = e.code.to_lowercase().replace('_', " ");
                match (code.is_empty(), e.message.is_empty()) {
                    (false, false) => format!("{code}: {}", e.message),
                    (false, true) => code,
                    (true, _) => e.message.clone(),
                }
            })
            .collect();
        if !parts.is_empty() {
            return parts.join(", ");
        }
    }
    match status {
        401 => "unauthorized: authentication required".to_string(),
        403 => "denied: requested access to the resource is denied".to_string(),
        _ => format!(
            "received unexpected HTTP status: {status} {}",
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
        )
        .trim_end()
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_as_dockers() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(
            errcode_message(401, body),
            "unauthorized: authentication required"
        );
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(
            errcode_message(404, body),
            "manifest unknown: manifest unknown"
        );
        assert_eq!(
            errcode_message(401, b""),
            "unauthorized: authentication required"
        );
        assert_eq!(
            errcode_message(502, b"<html>"),
            "received unexpected HTTP status: 502 Bad Gateway"
        );
        let e = RegistryError::NoMatchingPlatform {
            platform: "linux/s390x".into(),
        };
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
