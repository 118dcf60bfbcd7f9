//! Human-readable sizes, durations and timestamps, written and read the way docker's
//! `go-units` and `timetypes` packages do, so output and flag values match docker's.

use std::time::Duration;

pub use api_types::duration::{human_duration, parse_go_duration};

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// A size in decimal units with `precision` significant digits (`4.26MB`), like go-units'
/// `HumanSizeWithPrecision`.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    custom_size(size, precision, 1000.0, &DECIMAL_UNITS)
}

/// A size in decimal units with 4 significant digits, like go-units' `HumanSize`.
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// A size in binary units with 4 significant digits (`23.44GiB`), like go-units' `BytesSize`.
pub fn bytes_size(size: f64) -> String {
    custom_size(size, 4, 1024.0, &BINARY_UNITS)
}

fn custom_size(mut size: f64, precision: usize, base: f64, units: &[&str]) -> String {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    format!("{}{}", format_g(size, precision), units[i])
}

/// Formats `v` like Go's `%.{precision}g`: `precision` significant digits, trailing zeros
/// removed, scientific notation when the exponent is below -4 or at least `precision`.
pub fn format_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let p = precision.max(1);
    // Rounding to p significant digits decides the exponent (999.5 becomes 1e+03).
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').expect("exponent in {:e} output");
    let exp: i32 = exp.parse().expect("numeric exponent");
    if exp < -4 || exp >= p as i32 {
        let mantissa = trim_fraction_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_fraction_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// `human_duration` of the time between a Unix timestamp and `now`, plus " ago", as in the
/// CREATED columns of `ps` and `images`.
pub fn time_ago(created_unix: i64, now_unix: i64) -> String {
    let secs = now_unix.saturating_sub(created_unix).max(0) as u64;
    format!("{} ago", human_duration(Duration::from_secs(secs)))
}

/// Why a size or duration given on the command line could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses a memory size such as `64m`, `1g`, `512k`, `1.5g`, `64MiB` or `100` (bytes) into
/// bytes, with binary multipliers, like go-units' `RAMInBytes`.
pub fn ram_in_bytes(text: &str) -> Result<i64, ParseError> {
    let invalid = || ParseError(format!("invalid size: '{text}'"));
    let s = text.trim();
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(invalid());
    }
    let value: f64 = num.parse().map_err(|_| invalid())?;
    let mut unit = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    if unit.ends_with('b') {
        unit.pop();
    }
    if unit.len() == 2 && unit.ends_with('i') {
        unit.pop();
    }
    let multiplier: f64 = match unit.as_str() {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(invalid()),
    };
    Ok((value * multiplier) as i64)
}

/// Parses `--cpus` (`0.5`, `2`) into nano CPUs, refusing more than nine decimals as docker does.
pub fn parse_nano_cpus(text: &str) -> Result<i64, ParseError> {
    let invalid = || ParseError(format!("failed to parse {text} as a rational number"));
    let s = text.trim();
    let (int_part, frac_part) = s.split_once('.').unwrap_or((s, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
    {
        return Err(invalid());
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > 9 {
        return Err(ParseError("value is too precise".into()));
    }
    let int: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| invalid())?
    };
    let frac: i64 = format!("{frac_trimmed:0<9}")
        .parse()
        .map_err(|_| invalid())?;
    int.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(invalid)
}

/// Turns a `--since`/`--until` value into the Unix-seconds string the API takes, like
/// docker's `timetypes.GetTimestamp`: a Go duration counts back from `now`, a plain number
/// passes through, and RFC 3339 times or dates are converted.
pub fn api_timestamp(
    value: &str,
    now: chrono::DateTime<chrono::Local>,
) -> Result<String, ParseError> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    if value.is_empty() {
        return Ok(String::new());
    }
    // "0" is the Unix epoch, not a zero duration.
    if let Some(d) = parse_go_duration(value).filter(|_| value != "0") {
        let t = now - chrono::Duration::from_std(d).map_err(|e| ParseError(e.to_string()))?;
        return Ok(t.timestamp().to_string());
    }
    if value
        .split_once('.')
        .map_or(value, |(a, _)| a)
        .chars()
        .all(|c| c.is_ascii_digit())
        && value.chars().filter(|c| *c == '.').count() <= 1
        && !value.ends_with('.')
    {
        return Ok(value.to_string());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(unix_with_nanos(t.timestamp(), t.timestamp_subsec_nanos()));
    }
    let local = |naive: NaiveDateTime| {
        chrono::Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| unix_with_nanos(t.timestamp(), t.timestamp_subsec_nanos()))
    };
    for layout in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(value, layout) {
            if let Some(ts) = local(naive) {
                return Ok(ts);
            }
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        if let Some(ts) = local(date.and_hms_opt(0, 0, 0).expect("midnight exists")) {
            return Ok(ts);
        }
    }
    Err(ParseError(format!(
        "failed to parse value as time or duration: \"{value}\""
    )))
}

fn unix_with_nanos(secs: i64, nanos: u32) -> String {
    format!("{secs}.{nanos:09}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(ram_in_bytes("64m").unwrap(), 67_108_864);
        assert_eq!(ram_in_bytes("1g").unwrap(), 1_073_741_824);
        assert_eq!(ram_in_bytes("512k").unwrap(), 524_288);
        assert_eq!(ram_in_bytes("1.5g").unwrap(), 1_610_612_736);
        assert_eq!(ram_in_bytes("64MiB").unwrap(), 67_108_864);
        assert_eq!(ram_in_bytes("64MB").unwrap(), 67_108_864);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert_eq!(ram_in_bytes("6M").unwrap(), 6_291_456);
        assert!(ram_in_bytes("abc").is_err());
        assert!(ram_in_bytes("12x").is_err());
        assert!(ram_in_bytes("").is_err());
        assert_eq!(
            ram_in_bytes("-1").unwrap_err().to_string(),
            "invalid size: '-1'"
        );
    }

    #[test]
    fn cpus_become_nano_cpus() {
        assert_eq!(parse_nano_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(parse_nano_cpus("2").unwrap(), 2_000_000_000);
        assert_eq!(parse_nano_cpus("1.25").unwrap(), 1_250_000_000);
        assert_eq!(parse_nano_cpus(".5").unwrap(), 500_000_000);
        assert!(parse_nano_cpus("0.0000000001").is_err());
        assert!(parse_nano_cpus("x").is_err());
    }

    #[test]
    fn sizes_print_like_go_units() {
        assert_eq!(human_size_with_precision(1_985_586.0, 3), "1.99MB");
        assert_eq!(human_size_with_precision(4_261_412.0, 3), "4.26MB");
        assert_eq!(human_size_with_precision(126.0, 3), "126B");
        assert_eq!(human_size_with_precision(0.0, 3), "0B");
        assert_eq!(human_size_with_precision(1_000.0, 3), "1kB");
        assert_eq!(human_size_with_precision(999.6, 3), "1e+03B");
        assert_eq!(human_size_with_precision(72_900_000.0, 3), "72.9MB");
        assert_eq!(human_size(1_234_567.0), "1.235MB");
        assert_eq!(bytes_size(25_166_790_656.0), "23.44GiB");
    }

    #[test]
    fn times_ago_print_like_go_units() {
        assert_eq!(time_ago(100, 105), "5 seconds ago");
        assert_eq!(time_ago(0, 3 * 86400), "3 days ago");
    }

    #[test]
    fn timestamps_become_unix_seconds() {
        use chrono::TimeZone;
        let now = chrono::Local.timestamp_opt(1_795_790_400, 0).unwrap();
        assert_eq!(api_timestamp("10m", now).unwrap(), "1795789800");
        assert_eq!(api_timestamp("0", now).unwrap(), "0");
        assert_eq!(api_timestamp("1795790184", now).unwrap(), "1795790184");
        assert_eq!(api_timestamp("1795790184.5", now).unwrap(), "1795790184.5");
        assert_eq!(
            api_timestamp("2026-11-27T14:35:54.5Z", now).unwrap(),
            "1795790154.500000000"
        );
        assert!(api_timestamp("yesterday", now).is_err());
    }
}
