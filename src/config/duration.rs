//! Durations on the command line: bare seconds (`10`) or a sequence of
//! whole numbers with a unit of `ms`, `s`, `m` or `h` (`500ms`, `10s`, `20m`,
//! `1h`, `1m30s`, `1h 30m`), and the durations with a rule of their own.
//!
//! [`parse_duration`] is written by hand (and fuzzed against an oracle):
//! it refuses what humantime accepted but users should not write
//! (fractions, signs, `10 s`, `1h30`).

use std::time::Duration;

use super::flag::flag_value;

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

/// A duration above zero (a timeout, a wait).
pub fn positive_duration(raw: &str) -> Result<Duration, String> {
    match parse_duration(raw)? {
        d if d.is_zero() => Err("must be > 0".into()),
        d => Ok(d),
    }
}

/// A projected token's lifetime: whole seconds from Kubernetes' minimum,
/// 10 minutes, to 24 hours (EKS's default, and a bound on how long a
/// stolen token stays useful). The webhook's `--token-expiration` and the
/// Pod's `credagent.io/token-expiration` annotation alike.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenExpiration(u32);

impl TokenExpiration {
    /// Shortest lifetime, seconds.
    pub const MIN: u32 = 600;
    /// Longest lifetime, seconds.
    pub const MAX: u32 = 86_400;

    /// `secs`, if in range.
    pub fn from_secs(secs: u32) -> Option<Self> {
        (Self::MIN..=Self::MAX)
            .contains(&secs)
            .then_some(Self(secs))
    }

    /// The lifetime in seconds (`expirationSeconds`).
    pub fn secs(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for TokenExpiration {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let lifetime = parse_duration(raw)?;
        u32::try_from(lifetime.as_secs())
            .ok()
            .filter(|_| lifetime.subsec_nanos() == 0)
            .and_then(Self::from_secs)
            .ok_or_else(|| {
                "must be whole seconds from 10m to 24h (Kubernetes' minimum to 24 hours)".into()
            })
    }
}

impl std::fmt::Debug for TokenExpiration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

flag_value!(TokenExpiration);

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
        assert_eq!(positive_duration("0s"), Err("must be > 0".into()));
        assert_eq!(positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn token_expirations() {
        let secs = |s: &str| s.parse::<TokenExpiration>().map(TokenExpiration::secs);
        assert_eq!(secs("1h"), Ok(3600));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("86400"), Ok(86_400));
        for bad in ["5m", "25h", "599", "10m500ms"] {
            assert!(secs(bad).unwrap_err().contains("10m to 24h"), "{bad}");
        }
        assert!(secs("soon").unwrap_err().contains("not a duration"));
        assert_eq!(TokenExpiration::from_secs(599), None);
    }
}
