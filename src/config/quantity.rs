//! The Kubernetes resource-quantity grammar (`resource.Quantity`).
//!
//! ```text
//! quantity        ::= signedNumber suffix
//! suffix          ::= binarySI | decimalExponent | decimalSI
//! binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI       ::= n | u | m | "" | k | M | G | T | P | E
//! decimalExponent ::= "e" signedNumber | "E" signedNumber   (an integer)
//! signedNumber    ::= number | sign number
//! number          ::= digits | digits "." digits | digits "." | "." digits
//! ```
//!
//! The API server canonicalises quantities itself; this module only decides
//! whether a string is one (so a bad annotation is refused with its name,
//! instead of failing Pod validation later with a message about a container
//! the user never wrote) and what it is worth, to compare a request with a
//! limit. The webhook's `--sidecar-*-request`/`-limit` flags and the Pod's
//! resource annotations are both read here.

/// Longest quantity accepted (real ones are a few characters).
pub const MAX_LEN: usize = 64;

/// A quantity: as written (what is put into the Pod) and its value in base
/// units (cores, bytes).
#[derive(Clone, PartialEq)]
pub struct Quantity {
    text: String,
    /// The value; compare with a relative tolerance, it is a float.
    pub value: f64,
}

/// Why a string is not a usable quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not in the grammar.
    #[error("not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi, 1G)")]
    Syntax,
    /// In the grammar but below zero (resources cannot be negative).
    #[error("must not be negative")]
    Negative,
}

/// Parses `s` as a non-negative quantity.
pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
    if s.is_empty() || s.len() > MAX_LEN || !s.is_ascii() {
        return Err(QuantityError::Syntax);
    }
    let (negative, rest) = split_sign(s);
    let number_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = rest.split_at(number_len);
    let mantissa = parse_number(number).ok_or(QuantityError::Syntax)?;
    let scale = parse_suffix(suffix).ok_or(QuantityError::Syntax)?;
    let value = mantissa * scale;
    if !value.is_finite() {
        return Err(QuantityError::Syntax);
    }
    if negative && value != 0.0 {
        return Err(QuantityError::Negative);
    }
    Ok(Quantity {
        text: s.to_owned(),
        value,
    })
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// `digits`, `digits.digits`, `digits.` or `.digits`.
fn parse_number(s: &str) -> Option<f64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let ok = digits(int)
        && frac.is_none_or(digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    if !ok {
        return None;
    }
    s.parse::<f64>().ok()
}

fn parse_suffix(s: &str) -> Option<f64> {
    let binary = |n: i32| Some(1024f64.powi(n));
    let decimal = |n: i32| Some(10f64.powi(n));
    match s {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let exponent = s.strip_prefix('e').or_else(|| s.strip_prefix('E'))?;
            let (_, digits) = split_sign(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: i32 = exponent.parse().ok()?;
            decimal(n)
        }
    }
}

// === impl Quantity ===

impl Quantity {
    /// Returns true if and only if `self` is more than `other` (beyond float
    /// rounding: `0.5` and `500m` are equal).
    pub fn exceeds(&self, other: &Quantity) -> bool {
        self.value > other.value * (1.0 + 1e-9) + f64::MIN_POSITIVE
    }

    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, QuantityError> {
        parse(s)
    }
}

super::flag::string_value!(Quantity);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_grammar() {
        let cases = [
            ("0", 0.0),
            ("1", 1.0),
            ("+1", 1.0),
            ("-0", 0.0),
            ("100m", 0.1),
            ("0.5", 0.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("1.5Gi", 1.5 * 1024f64.powi(3)),
            ("64Mi", 64.0 * 1024f64.powi(2)),
            ("1Ki", 1024.0),
            ("1Ei", 1024f64.powi(6)),
            ("1k", 1e3),
            ("1M", 1e6),
            ("1G", 1e9),
            ("1T", 1e12),
            ("1P", 1e15),
            ("1E", 1e18),
            ("1n", 1e-9),
            ("1u", 1e-6),
            ("1e3", 1e3),
            ("1E3", 1e3),
            ("1e+3", 1e3),
            ("1e-3", 1e-3),
            ("12e0", 12.0),
        ];
        for (s, want) in cases {
            let got = parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).value;
            assert!(
                (got - want).abs() <= want.abs() * 1e-12,
                "{s}: {got} != {want}"
            );
        }
    }

    #[test]
    fn refuses_what_kubernetes_refuses() {
        for s in [
            "",
            " ",
            "m",
            "Mi",
            ".",
            "+",
            "-",
            "1 ",
            " 1",
            "1.2.3",
            "1mi",
            "1MB",
            "1Kb",
            "1kb",
            "1KI",
            "1e",
            "1e+",
            "1e1.5",
            "1ee1",
            "0x10",
            "1,5",
            "1/2",
            "1_000",
            "1Gi1",
            "--1",
            "١",
            "1e99999",
            "10000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(parse(s), Err(QuantityError::Syntax), "{s:?}");
        }
        assert_eq!(parse("-1"), Err(QuantityError::Negative));
        assert_eq!(parse("-100m"), Err(QuantityError::Negative));
    }

    #[test]
    fn compares_across_suffixes() {
        let q = |s| parse(s).unwrap();
        assert!(!q("500m").exceeds(&q("0.5")));
        assert!(!q("0.5").exceeds(&q("500m")));
        assert!(!q("1024Mi").exceeds(&q("1Gi")));
        assert!(q("1001m").exceeds(&q("1")));
        assert!(q("1Gi").exceeds(&q("1G")));
        assert!(!q("0").exceeds(&q("0")));
        assert!(q("1n").exceeds(&q("0")));
        assert_eq!(q("1.5Gi").as_str(), "1.5Gi");
    }
}
