//! The kinds of failure the transports map to status codes and exit codes.

/// What kind of failure an engine error is; berthd maps it to an HTTP status
/// (404, 409, 400, 304, 500) and daemonless mode to the same messages and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named object does not exist (404).
    NotFound,
    /// The request conflicts with the object's state (409).
    Conflict,
    /// The request itself is wrong (400).
    InvalidArgument,
    /// Nothing to do: already in the requested state (304).
    NotModified,
    /// The registry refused the credentials (401).
    Unauthorized,
    /// Something failed inside the engine or the kernel (500).
    Internal,
}
