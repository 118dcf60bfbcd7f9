//! Durations as Docker reads and writes them: Go's `time.ParseDuration` (`1m30s`, for
//! healthcheck options and `--since 10m`) and go-units' `HumanDuration` (`Up 5 minutes`).

use std::time::Duration;

/// Parses a Go duration such as `10m`, `1h30m`, `1.5s` or `300ms` (an optional leading `+`;
/// a bare number only when it is `0`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let s = text.strip_prefix('+').unwrap_or(text);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut nanos = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += number * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_nanos(nanos.round() as u64))
}

/// How long something has been so, as docker shows it (`5 seconds`, `About a minute`,
/// `3 days`): go-units' `HumanDuration`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        // go-units truncates the hours here, where it rounds them above.
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let d = parse_go_duration;
        assert_eq!(d("10m"), Some(Duration::from_secs(600)));
        assert_eq!(d("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(d("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(d("1h2m3.5s"), Some(Duration::from_nanos(3_723_500_000_000)));
        assert_eq!(d("+1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        for bad in ["10", "5", "", "2026-01-01", "1x", "s", "-1s"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_print_like_go_units() {
        let s = |n| human_duration(Duration::from_secs(n));
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(s(1), "1 second");
        assert_eq!(s(5), "5 seconds");
        assert_eq!(s(61), "About a minute");
        assert_eq!(s(150), "2 minutes");
        assert_eq!(s(180), "3 minutes");
        assert_eq!(s(3600), "About an hour");
        assert_eq!(s(5 * 3600), "5 hours");
        assert_eq!(s(3 * 86400), "3 days");
        assert_eq!(s(20 * 86400), "2 weeks");
        assert_eq!(s(90 * 86400), "3 months");
        assert_eq!(s(800 * 86400), "2 years");
    }
}
