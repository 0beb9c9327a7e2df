//! Durations on the command line: `humantime`'s units (`500ms`, `10s`,
//! `20m`, `1h`, `1m30s`, ...) or bare seconds (`10`).

use std::time::Duration;

/// Parses a duration: bare seconds, or what `humantime` accepts. Fractions
/// and signs are refused. The error quotes the value (durations are never
/// secrets) and gives examples.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("'{raw}' is out of range"));
    }
    if !s.as_bytes()[0].is_ascii_digit() || s.contains('.') {
        return Err(format!(
            "'{raw}' is not a duration (e.g. 500ms, 10s, 20m, 1h)"
        ));
    }
    humantime::parse_duration(s).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => format!("'{raw}' is out of range"),
        humantime::DurationError::UnknownUnit { .. } => {
            format!("'{raw}' has an unknown unit (use ms, s, m or h)")
        }
        _ => format!("'{raw}' is not a duration (e.g. 500ms, 10s, 20m, 1h)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("10", 10_000),
            ("500ms", 500),
            ("10s", 10_000),
            ("20m", 1_200_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
            ("1h 30m", 5_400_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in [
            "",
            "s",
            "10x",
            "-1s",
            "1.5s",
            "m10",
            "+10",
            "99999999999999999999",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("99999999999999999999s")
            .unwrap_err()
            .contains("out of range"));
    }
}
