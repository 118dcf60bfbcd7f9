//! Query parameters as Docker reads them: repeated keys, lenient booleans, JSON filters.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use api_types::filters::Filters;

use crate::error::ApiError;

/// The decoded query string of a request.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Self(
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ))
    }
}

impl Params {
    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean: `1/0`, `true/false` in any case, `t/f`, `yes/no`; absent is `default`.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not a boolean"))
            }),
        }
    }

    /// An integer; absent or empty is `None`.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }

    /// The `filters` parameter.
    pub fn filters(&self) -> Result<Filters, ApiError> {
        Filters::parse(self.get("filters").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// A terminal dimension (`h`, `w` of a resize): an integer from 0 to 65535.
    pub fn dimension(&self, key: &str) -> Result<u16, ApiError> {
        let raw = self.get(key).unwrap_or("");
        let n: i64 = raw.parse().map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing {raw:?}: invalid syntax"))
        })?;
        u16::try_from(n).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid terminal size {key}={n}: it must be between 0 and 65535"
            ))
        })
    }
}

/// Parses a boolean as dockerd's lenient parser does.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_lenient() {
        for t in ["1", "true", "True", "t"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "false", "False", "f"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn repeated_keys_numbers_and_dimensions() {
        let p = Params(vec![
            ("changes".into(), "CMD [\"sh\"]".into()),
            ("changes".into(), "ENV A=1".into()),
            ("since".into(), "1795790184.5".into()),
            ("h".into(), "24".into()),
            ("w".into(), "70000".into()),
        ]);
        assert_eq!(p.all("changes").len(), 2);
        assert!(p.int("since").is_err());
        assert_eq!(p.dimension("h").unwrap(), 24);
        assert_eq!(
            p.dimension("w").unwrap_err().message,
            "invalid terminal size w=70000: it must be between 0 and 65535"
        );
    }
}
