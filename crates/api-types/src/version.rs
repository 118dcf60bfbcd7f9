//! The API versions berth serves, in one place: berthd's `/vX.Y` prefix check, its
//! `/version` and `_ping` answers, and the CLI's version negotiation all use these bounds.

use std::cmp::Ordering;

/// The newest API version berth serves and speaks (`Api-Version`, `/version`'s
/// `ApiVersion`, what a client uses when the daemon allows it).
pub const API_VERSION: &str = "1.41";
/// The oldest API version berth accepts in a `/vX.Y/` prefix (`MinAPIVersion`), and what a
/// client assumes when a ping does not say.
pub const MIN_API_VERSION: &str = "1.24";

/// Compares two API versions as Docker does: numerically, part by part, a missing or
/// unreadable part counting as 0 (`1.9` < `1.41`, `1.41` = `1.41.0`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).unwrap_or(&0), b.get(i).unwrap_or(&0));
        match x.cmp(y) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    Ordering::Equal
}

/// Why berthd refuses the version of a `/vX.Y` prefix, in dockerd's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRefusal {
    TooOld(String),
    TooNew(String),
}

impl std::fmt::Display for VersionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooOld(v) => write!(
                f,
                "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            ),
            Self::TooNew(v) => write!(
                f,
                "client version {v} is too new. Maximum supported API version is {API_VERSION}"
            ),
        }
    }
}

/// Checks a requested API version against berth's bounds.
pub fn check_version(requested: &str) -> Result<(), VersionRefusal> {
    if compare_versions(requested, MIN_API_VERSION) == Ordering::Less {
        return Err(VersionRefusal::TooOld(requested.to_string()));
    }
    if compare_versions(requested, API_VERSION) == Ordering::Greater {
        return Err(VersionRefusal::TooNew(requested.to_string()));
    }
    Ok(())
}

/// The version a client speaks with a daemon that serves up to `server` (its `Api-Version`
/// header, [`MIN_API_VERSION`] when it sends none): the lower of that and [`API_VERSION`].
pub fn negotiate(server: Option<&str>) -> String {
    let server = server.unwrap_or(MIN_API_VERSION);
    if compare_versions(server, API_VERSION) == Ordering::Less {
        server.to_string()
    } else {
        API_VERSION.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("1.24", "1.41"), Ordering::Less);
        assert_eq!(compare_versions("1.41", "1.41.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.50", "1.41"), Ordering::Greater);
        assert_eq!(compare_versions("1.9", "1.10"), Ordering::Less);
        assert_eq!(compare_versions("2", "1.99"), Ordering::Greater);
    }

    #[test]
    fn the_bounds_are_dockerds_and_worded_as_dockerd_words_them() {
        assert_eq!(check_version("1.24"), Ok(()));
        assert_eq!(check_version("1.41"), Ok(()));
        assert_eq!(
            check_version("1.23").unwrap_err().to_string(),
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
        assert_eq!(
            check_version("1.99").unwrap_err().to_string(),
            "client version 1.99 is too new. Maximum supported API version is 1.41"
        );
        assert_eq!(negotiate(Some("1.30")), "1.30");
        assert_eq!(negotiate(Some("1.45")), "1.41");
        assert_eq!(negotiate(None), "1.24");
    }
}
