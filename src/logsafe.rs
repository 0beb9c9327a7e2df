//! Strings from outside, made safe to log: a claim of an unverified token,
//! a field of an admission review, a value from an upstream answer.
//!
//! `--log-format text` writes a field's value as is, so a token whose `sub`
//! holds a newline and `{"level":"ERROR",…}` forges a log line, and escape
//! codes rewrite the terminal that tails it; the JSON format escapes both
//! but not their length. [`Untrusted`] is the one way such a value reaches
//! a log line: in both formats it shows backslash escapes for every
//! control character (C0, DEL, C1, the Unicode line separators, bidi and
//! zero-width format characters) and for bytes that are not UTF-8, doubles
//! a literal backslash (so an escape in the output always means an escape),
//! and keeps at most [`MAX_CHARS`] characters, saying how many bytes it
//! left out.
//!
//! [`redact_userinfo`] takes the credentials out of a URL
//! (`https://user:password@host/` → `https://***@host/`) for every log line
//! and message that names one.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// The most characters of one untrusted value a log line shows. A
/// ServiceAccount subject (`system:serviceaccount:` + two 253-character
/// names at most) fits; a value crafted to fill the log does not.
pub const MAX_CHARS: usize = 256;

/// A value from outside, for a log field: `sub = %Untrusted::new(sub)`.
#[derive(Clone, Copy)]
pub struct Untrusted<'a>(Raw<'a>);

#[derive(Clone, Copy)]
enum Raw<'a> {
    Str(&'a str),
    Bytes(&'a [u8]),
}

// === impl Untrusted ===

impl<'a> Untrusted<'a> {
    /// Wraps a string.
    pub fn new(value: &'a str) -> Self {
        Self(Raw::Str(value))
    }

    /// Wraps bytes that may not be UTF-8 (a header value).
    pub fn bytes(value: &'a [u8]) -> Self {
        Self(Raw::Bytes(value))
    }
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = match self.0 {
            Raw::Str(s) => s.as_bytes(),
            Raw::Bytes(b) => b,
        };
        let mut shown = 0;
        let mut left = bytes.len();
        for chunk in bytes.utf8_chunks() {
            let units = chunk
                .valid()
                .chars()
                .map(Ok)
                .chain(chunk.invalid().iter().map(|&b| Err(b)));
            for unit in units {
                if shown == MAX_CHARS {
                    return write!(f, "…(+{left} bytes)");
                }
                shown += 1;
                match unit {
                    Ok(c) => {
                        escape(f, c)?;
                        left -= c.len_utf8();
                    }
                    Err(b) => {
                        write!(f, "\\x{b:02x}")?;
                        left -= 1;
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

fn escape(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        c if (c as u32) < 0x80 && c.is_ascii_control() => write!(f, "\\x{:02x}", c as u32),
        c if is_unsafe(c) => write!(f, "\\u{{{:x}}}", c as u32),
        c => f.write_char(c),
    }
}

/// Characters that move, hide or reorder what a reader sees: C1 controls,
/// the line and paragraph separators, zero-width and bidi format
/// characters, the byte-order mark.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2069 | 0xFEFF | 0xFFF9..=0xFFFB)
}

/// `url` without the credentials in its user-info: everything between
/// `scheme://` and the last `@` of the authority becomes `***`. A URL
/// without user-info comes back unchanged.
pub fn redact_userinfo(url: &str) -> Cow<'_, str> {
    redact_userinfo_in(url)
}

/// `text` with the user-info of every URL in it redacted: for one URL, or
/// a whole configuration's Debug rendering (`--check-config`). An
/// authority ends at `/ ? #`, a double quote (Debug's string delimiter) or
/// whitespace; never at a character user-info may hold (`,` `)` `'` …), so
/// no part of a password is left after the cut.
pub fn redact_userinfo_in(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let start = i + 3;
        let end = rest[start..]
            .find(|c: char| "/?#\"".contains(c) || c.is_whitespace())
            .map_or(rest.len(), |j| start + j);
        out.push_str(&rest[..start]);
        match rest[start..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&rest[start + at..end]);
                changed = true;
            }
            None => out.push_str(&rest[start..end]),
        }
        rest = &rest[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &str) -> String {
        Untrusted::new(s).to_string()
    }

    #[test]
    fn control_characters_are_escaped_and_visible() {
        let forged = "app\n{\"level\":\"ERROR\",\"message\":\"pwned\"}\x1b[31m\r\t\x7f\u{85}";
        assert_eq!(
            show(forged),
            r#"app\n{"level":"ERROR","message":"pwned"}\x1b[31m\r\t\x7f\u{85}"#
        );
        assert_eq!(show("a\\nb"), r"a\\nb", "a literal backslash is doubled");
        assert_eq!(
            show("evil\u{202e}txt.exe\u{2028}x\u{200b}"),
            r"evil\u{202e}txt.exe\u{2028}x\u{200b}"
        );
        assert_eq!(
            show("system:serviceaccount:ns:sa"),
            "system:serviceaccount:ns:sa"
        );
        assert_eq!(show("ünïcode ✓"), "ünïcode ✓");
        assert_eq!(format!("{:?}", Untrusted::new("a\nb")), r#""a\nb""#);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped() {
        assert_eq!(
            Untrusted::bytes(b"ok\xff\xfe\xc3\xa9\xc3").to_string(),
            r"ok\xff\xfeé\xc3"
        );
    }

    #[test]
    fn long_values_are_cut_and_say_so() {
        let long = "x".repeat(10_000);
        let out = show(&long);
        assert_eq!(
            out,
            format!("{}…(+{} bytes)", "x".repeat(MAX_CHARS), 10_000 - MAX_CHARS)
        );
        let exactly = "y".repeat(MAX_CHARS);
        assert_eq!(show(&exactly), exactly);
        // Escapes count as one character each, so the output stays bounded.
        let newlines = "\n".repeat(1000);
        assert!(show(&newlines).len() < 2 * MAX_CHARS + 20);
    }

    #[test]
    fn url_user_info_is_redacted() {
        for (url, want) in [
            (
                "https://user:pa55@host.example/x?y=1",
                "https://***@host.example/x?y=1",
            ),
            ("http://u@127.0.0.1:8080", "http://***@127.0.0.1:8080"),
            ("https://a:b@c@host/p@q", "https://***@host/p@q"),
            ("https://host.example/p@q", "https://host.example/p@q"),
            ("https://host.example", "https://host.example"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_userinfo(url), want, "{url}");
        }
    }

    #[test]
    fn every_url_in_a_text_is_redacted() {
        let text = r#"Config { proxy: Some("http://user:s3cret@proxy:3128"), url: https://a:b@api.example/x, other: "ftp://host/p@q" }"#;
        let out = redact_userinfo_in(text);
        assert!(!out.contains("s3cret") && !out.contains("a:b"), "{out}");
        assert!(out.contains(r#""http://***@proxy:3128""#), "{out}");
        assert!(out.contains("https://***@api.example/x"), "{out}");
        assert!(out.contains("ftp://host/p@q"), "{out}");
        assert!(matches!(redact_userinfo_in("no urls"), Cow::Borrowed(_)));
        // User-info may hold sub-delimiters: none of the password is left.
        let out = redact_userinfo_in("url: http://u:p,a)s}s'w@host:1/x, next: 1 }");
        assert_eq!(out, "url: http://***@host:1/x, next: 1 }");
    }
}
