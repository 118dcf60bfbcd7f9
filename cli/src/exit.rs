//! Exit statuses: how errors end the process, as docker's `cli.StatusError` and
//! `toStatusError` decide.

use crate::backend::BackendError;

/// An error that ends berth with `code`, printing `message` (when not empty) to stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    pub code: i32,
    pub message: String,
}

impl StatusError {
    /// Exit with `code` and print nothing (a container's own exit status).
    pub fn silent(code: i32) -> Self {
        Self {
            code,
            message: String::new(),
        }
    }

    /// Exit with `code` after printing `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StatusError {}

/// The status `run` (and `create`/`start -a`) exits with when the engine refused to create
/// or start a container: 127 when the command cannot be found, 126 when it cannot be
/// invoked, 125 otherwise.
pub fn run_failure_code(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system error: exec")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    }
}

/// Wraps a failure of `run`/`create` in docker's format and exit status.
pub fn run_failure(command: &str, err: &anyhow::Error) -> StatusError {
    let message = format!("{err:#}");
    if let Some(BackendError::Unreachable { .. } | BackendError::PermissionDenied { .. }) =
        err.downcast_ref()
    {
        return StatusError::new(1, message);
    }
    StatusError::new(
        run_failure_code(&message),
        format!("berth: {message}\n\nRun 'berth {command} --help' for more information"),
    )
}

/// The exit status and message for an error that ended a command.
pub fn exit_status(err: &anyhow::Error) -> (i32, String) {
    if let Some(s) = err.downcast_ref::<StatusError>() {
        return (s.code, s.message.clone());
    }
    (1, format!("{err:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_map_like_docker() {
        assert_eq!(
            run_failure_code(
                "failed to create task: exec: \"nope\": executable file not found in $PATH"
            ),
            127
        );
        assert_eq!(
            run_failure_code("exec /bin/x: no such file or directory"),
            127
        );
        assert_eq!(run_failure_code("exec /etc/passwd: permission denied"), 126);
        assert_eq!(run_failure_code("No such image: busybox:latest"), 125);
    }

    #[test]
    fn status_errors_keep_their_code() {
        let e = anyhow::Error::new(StatusError::silent(3));
        assert_eq!(exit_status(&e), (3, String::new()));
        let e = anyhow::anyhow!("boom").context("doing x");
        assert_eq!(exit_status(&e), (1, "doing x: boom".into()));
        let e = anyhow::anyhow!("Error response from daemon: nope");
        let s = run_failure("run", &e);
        assert_eq!(s.code, 125);
        assert!(s
            .message
            .starts_with("berth: Error response from daemon: nope"));
    }
}
