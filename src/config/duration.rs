//! Durations on the command line: bare seconds (`10`) or a sequence of
//! whole numbers with a unit of `ms`, `s`, `m` or `h` (`500ms`, `10s`, `20m`,
//! `1h`, `1m30s`, `1h 30m`).

use std::time::Duration;

const EXAMPLES: &str = "e.g. 500ms, 10s, 20m, 1h";

/// Parses a duration: bare seconds, or parts of `N` and a unit (`ms`, `s`,
/// `m`, `h`), optionally separated by spaces; surrounding ASCII whitespace is
/// ignored. Fractions, signs and other units are refused. The error quotes
/// the value (durations are never secrets) and gives examples.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let s = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let out_of_range = || format!("'{raw}' is out of range");
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| out_of_range());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("'{raw}' is not a duration ({EXAMPLES})"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| out_of_range())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..letters] {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "" => return Err(format!("'{raw}' is not a duration ({EXAMPLES})")),
            _ => return Err(format!("'{raw}' has an unknown unit (use ms, s, m or h)")),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(out_of_range)?;
        rest = rest[letters..].trim_start_matches(' ');
    }
    Ok(total)
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
            (" 10s\n", 10_000),
            ("1h1m1s1ms", 3_661_001),
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
            "10d",
            "1w",
            "10sec",
            "10 s",
            "1h30",
            "\u{b}10s",
            "10s\u{a0}",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("99999999999999999999s")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_duration("5124095576030432h")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_duration("10d").unwrap_err().contains("unknown unit"));
    }
}
