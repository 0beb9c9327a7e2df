//! How hard an operator-supplied auth token is to guess: an estimate of its
//! entropy in bits, from its characters alone.
//!
//! Nothing can measure the entropy of one string; what can be measured is
//! how short a description of it an attacker could start guessing from.
//! The estimate is the length of one such description, in bits, and a
//! token is refused when it is under 128. Four things shorten it:
//!
//! 1. **The alphabet.** The token is matched to the smallest common
//!    alphabet holding all its characters (digits 10, hex 16, base32 32,
//!    lower- or upper-case letters 26, either with digits 36, letters 52,
//!    letters and digits 62, base64 or base64url 64, printable ASCII 95,
//!    any byte 256). A short random token often misses a class by chance
//!    (22 base64 characters have no digit one time in 50), so the alphabet
//!    is widened again to any larger one that would have produced a token
//!    fitting the smaller one at least one time in 1,000: absence counts
//!    only when it is significant.
//! 2. **Few distinct characters.** A token using k distinct characters,
//!    at most a quarter of what its length and alphabet allow, is described
//!    by which k (log2 C(alphabet, k) bits) and then log2 k bits per
//!    character.
//! 3. **Repeats, periods and runs.** Reading left to right, a stretch that
//!    copies an earlier one (a run `aaaa`, a period `abab`, a repeated
//!    word) costs a distance and a length (log2 position + log2 length
//!    bits) instead of its characters.
//! 4. **Sequences.** A stretch that counts up or down one character at a
//!    time (`abcdef`, `98765`) costs a direction and a length.
//!
//! Stretches count only from the length at which they carry 32 bits as
//! characters (8 hex digits, 6 base64 characters), so random tokens almost
//! never contain one. Of 400,000 random 16-byte tokens, every hex one
//! (exactly 128 bits) passed, and all but 2 base64 ones (132 bits): those
//! whose letters all came out in one case (about 6 in a million) look like
//! lower-case alphanumerics and are refused at 114 bits; a new one passes.
//! The agent's own 32 random bytes always pass. What the estimate cannot
//! see is meaning: words, dates, keyboard walks and reused passwords pass
//! if they are long enough. Tokens should come from a random source, as
//! the agent's own do.

/// The estimate, and what lowered it most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Estimated bits.
    pub bits: f64,
    /// Why it is below the alphabet's bits × length, if it is.
    pub reason: Option<&'static str>,
}

/// A common alphabet: its size and which bytes it holds.
struct Alphabet {
    size: f64,
    holds: fn(u8) -> bool,
}

const ALPHABETS: [Alphabet; 14] = [
    Alphabet {
        size: 10.0,
        holds: |b| b.is_ascii_digit(),
    },
    Alphabet {
        size: 16.0,
        holds: |b| matches!(b, b'0'..=b'9' | b'a'..=b'f'),
    },
    Alphabet {
        size: 16.0,
        holds: |b| matches!(b, b'0'..=b'9' | b'A'..=b'F'),
    },
    Alphabet {
        size: 26.0,
        holds: |b| b.is_ascii_lowercase(),
    },
    Alphabet {
        size: 26.0,
        holds: |b| b.is_ascii_uppercase(),
    },
    Alphabet {
        size: 32.0,
        holds: |b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'),
    },
    Alphabet {
        size: 36.0,
        holds: |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
    },
    Alphabet {
        size: 36.0,
        holds: |b| b.is_ascii_uppercase() || b.is_ascii_digit(),
    },
    Alphabet {
        size: 52.0,
        holds: |b| b.is_ascii_alphabetic(),
    },
    Alphabet {
        size: 62.0,
        holds: |b| b.is_ascii_alphanumeric(),
    },
    Alphabet {
        size: 64.0,
        holds: |b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'),
    },
    Alphabet {
        size: 64.0,
        holds: |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'),
    },
    Alphabet {
        size: 95.0,
        holds: |b| matches!(b, b' '..=b'~'),
    },
    Alphabet {
        size: 256.0,
        holds: |_| true,
    },
];

/// A larger alphabet counts when a random token from it would fit the
/// smaller one at least this often.
const UNREMARKABLE: f64 = 1.0 / 1000.0;

/// A repeat or a sequence counts from this many bits of characters.
const MATCH_BITS: f64 = 32.0;

/// Estimates the entropy of `token` (see the module docs).
pub fn estimate(token: &str) -> Estimate {
    // Base64 padding carries nothing.
    let body = token
        .strip_suffix("==")
        .or_else(|| token.strip_suffix('='))
        .unwrap_or(token);
    let s = body.as_bytes();
    let n = s.len();
    if n == 0 {
        return Estimate {
            bits: 0.0,
            reason: Some("it is empty"),
        };
    }
    let fits = |a: &Alphabet| s.iter().all(|&b| (a.holds)(b));
    let smallest = ALPHABETS
        .iter()
        .filter(|a| fits(a))
        .map(|a| a.size)
        .fold(f64::MAX, f64::min);
    let alphabet = ALPHABETS
        .iter()
        .filter(|a| fits(a) && (smallest / a.size).powi(n as i32) >= UNREMARKABLE)
        .map(|a| a.size)
        .fold(smallest, f64::max);

    let mut distinct = [false; 256];
    s.iter().for_each(|&b| distinct[b as usize] = true);
    let k = distinct.iter().filter(|&&d| d).count() as f64;
    let (per_char, overhead, few) = if k <= alphabet.min(n as f64) / 4.0 {
        (k.max(2.0).log2(), log2_choose(alphabet, k), true)
    } else {
        (alphabet.log2(), 0.0, false)
    };

    let min_match = (MATCH_BITS / per_char).ceil() as usize;
    let (mut bits, mut structured) = (overhead, false);
    let mut i = 0;
    while i < n {
        let (copy, seq) = (longest_copy(s, i), sequence(s, i));
        let len = copy.max(seq);
        if len >= min_match {
            bits += if copy >= seq {
                (i.max(2) as f64).log2()
            } else {
                1.0
            } + (n as f64).log2();
            structured = true;
            i += len;
        } else {
            bits += per_char;
            i += 1;
        }
    }
    let reason = if structured {
        Some("it repeats itself or counts in sequence")
    } else if few {
        Some("it uses few distinct characters")
    } else {
        None
    };
    Estimate { bits, reason }
}

/// The longest stretch at `i` that copies one starting earlier (it may
/// overlap its source: a run or a period).
fn longest_copy(s: &[u8], i: usize) -> usize {
    (0..i)
        .map(|from| {
            s[i..]
                .iter()
                .zip(&s[from..])
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The longest stretch at `i` that steps by +1 or -1 from the character
/// before it.
fn sequence(s: &[u8], i: usize) -> usize {
    if i == 0 {
        return 0;
    }
    [1i16, -1]
        .iter()
        .map(|&step| {
            (i..s.len())
                .take_while(|&j| s[j] as i16 - s[j - 1] as i16 == step)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// log2 of `n` choose `k`.
fn log2_choose(n: f64, k: f64) -> f64 {
    (0..k as u32)
        .map(|j| ((n - j as f64) / (j as f64 + 1.0)).log2())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn bits(token: &str) -> f64 {
        estimate(token).bits
    }

    #[test]
    fn repeats_periods_runs_and_sequences_are_weak_however_long() {
        for weak in [
            "a".repeat(128),
            "ab".repeat(64),
            "password".repeat(16),
            "0123456789abcdef".repeat(8),
            "abcdefghijklmnopqrstuvwxyz".repeat(5),
            format!("{}{}", "x".repeat(200), "Kq9"),
            (0..128)
                .map(|i| if (i * 7) % 3 == 0 { 'a' } else { 'b' })
                .collect(),
        ] {
            let e = estimate(&weak);
            assert!(e.bits < 128.0, "{weak}: {e:?}");
            assert!(e.reason.is_some(), "{weak}: {e:?}");
        }
        assert!(bits(&"a".repeat(128)) < 20.0);
        assert!(bits(&"ab".repeat(64)) < 25.0);
        assert_eq!(
            estimate(&"a".repeat(128)).reason,
            Some("it repeats itself or counts in sequence")
        );
    }

    #[test]
    fn short_or_small_alphabet_tokens_are_weak() {
        for weak in [
            "operator-chosen",
            "password",
            "0123456789abcdef0123456789abcde",
            "",
        ] {
            assert!(bits(weak) < 128.0, "{weak}: {}", bits(weak));
        }
        // 32 random decimal digits: 106 bits.
        assert!((bits("83920174658301927465019283746501") - 106.3).abs() < 0.1);
    }

    #[test]
    fn random_tokens_of_16_bytes_or_more_pass() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        use base64::Engine as _;
        let mut rng = StdRng::seed_from_u64(21);
        for _ in 0..5_000 {
            let bytes: [u8; 16] = rng.random();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert!(bits(&hex) >= 128.0, "{hex}: {:?}", estimate(&hex));
            assert!(bits(&hex.to_uppercase()) >= 128.0, "{hex}");
            let b64 = STANDARD.encode(bytes);
            assert!(bits(&b64) >= 128.0, "{b64}: {:?}", estimate(&b64));
            let long: [u8; 32] = rng.random();
            let url = URL_SAFE_NO_PAD.encode(long);
            assert!(bits(&url) >= 200.0, "{url}: {:?}", estimate(&url));
        }
        assert_eq!(bits("6f1c2a9be04d7783a2c5d1e0f9b84c37"), 128.0);
        assert_eq!(estimate("6f1c2a9be04d7783a2c5d1e0f9b84c37").reason, None);
    }

    #[test]
    fn a_missing_class_counts_only_when_significant() {
        // 22 base64 characters without a digit (1 in 50 random ones):
        // still base64's 6 bits each.
        let no_digit = "bxKzfQQzeLWmAvTpqYcrAw";
        assert!(
            (bits(no_digit) - 22.0 * 6.0).abs() < 1e-9,
            "{}",
            bits(no_digit)
        );
        // 40 lower-case letters: no digit in 40 is remarkable (1 in 500,000).
        let lower = "qwhvkzpmxbtrnjdlfsgcayoeuiqpwzmxncbvlkjd";
        assert!((bits(lower) - 40.0 * 26f64.log2()).abs() < 1e-9);
    }

    #[test]
    fn few_distinct_characters_cost_only_their_own_bits() {
        // 200 random binary choices carry 200 bits; 100 carry 100.
        let mut rng = StdRng::seed_from_u64(7);
        let coin = |n: usize, rng: &mut StdRng| -> String {
            (0..n)
                .map(|_| if rng.random::<bool>() { 'x' } else { 'y' })
                .collect()
        };
        let long = coin(200, &mut rng);
        let e = estimate(&long);
        assert!(e.bits >= 128.0 && e.bits < 220.0, "{long}: {e:?}");
        let short = coin(100, &mut rng);
        let e = estimate(&short);
        assert!(e.bits < 128.0, "{short}: {e:?}");
        assert_eq!(e.reason, Some("it uses few distinct characters"));
    }
}
