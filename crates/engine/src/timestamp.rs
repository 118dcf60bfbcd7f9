//! Times as clients send them in `since` and `until` (`logs`, `events`): Unix seconds,
//! possibly fractional, or RFC 3339. The docker CLI turns what its user typed (`10m`,
//! `2026-01-02`) into Unix seconds before it sends them.

use crate::container::ContainerError;
use crate::engine::EngineError;

/// A `since` or `until` that is not a time.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {key}: {value:?} is not a time")]
pub struct TimeError {
    pub key: &'static str,
    pub value: String,
}

impl From<TimeError> for EngineError {
    fn from(e: TimeError) -> Self {
        ContainerError::Time(e).into()
    }
}

/// Reads the value of `key` as Unix nanoseconds; absent or empty is `None`.
pub fn parse_nanos(key: &'static str, value: Option<&str>) -> Result<Option<i64>, TimeError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(secs) = v.parse::<f64>() {
        return Ok(Some((secs * 1e9) as i64));
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map(Some)
        .ok_or_else(|| TimeError {
            key,
            value: v.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_rfc3339_times_read_as_nanoseconds() {
        assert_eq!(
            parse_nanos("since", Some("1795790184.5")).unwrap(),
            Some(1_795_790_184_500_000_000)
        );
        assert_eq!(
            parse_nanos("since", Some("1970-01-01T00:00:01Z")).unwrap(),
            Some(1_000_000_000)
        );
        assert_eq!(parse_nanos("since", None).unwrap(), None);
        assert_eq!(parse_nanos("since", Some("")).unwrap(), None);
        assert_eq!(
            parse_nanos("until", Some("soon")).unwrap_err().to_string(),
            "invalid value for until: \"soon\" is not a time"
        );
    }
}
