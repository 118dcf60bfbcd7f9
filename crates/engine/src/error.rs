//! The kinds of failure the transports map to status codes and exit codes, and the one way
//! an error is shown with its causes.

use std::fmt;

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

/// An error and its causes on one line, `error: cause: cause`, as berthd words its
/// `{"message"}` bodies and daemonless berth prints them. Every engine error either shows
/// its cause in its own message or marks it as its source, never both, so each cause is
/// shown exactly once (and nothing is dropped by comparing texts).
pub struct Chain<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// [`Chain`] as a string.
pub fn chain(e: &dyn std::error::Error) -> String {
    Chain(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer {
        #[source]
        source: Middle,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_shown_once() {
        let e = Outer {
            source: Middle {
                source: std::io::Error::other("bottom"),
            },
        };
        assert_eq!(chain(&e), "outer: middle: bottom");
        // A message that repeats text of its cause is shown as it is: nothing is dropped.
        assert_eq!(chain(&std::io::Error::other("a: a")), "a: a");
    }
}
