//! A wrapper for values that must never reach a log line, a metric label, a
//! `Debug` print or an error message.
//!
//! `Secret` has a redacted `Debug`, no `Display`, and zeroizes its bytes on
//! drop. The raw value comes back only through [`Secret::expose`], which is
//! easy to grep for.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string (a token, a secret access key, a session token).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

/// What `Debug` prints in place of any secret.
pub const REDACTED: &str = "** redacted **";

// === impl Secret ===

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The raw value. Only for the wire: never log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns true if and only if the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("wJalrXUtnFEMI");
        assert_eq!(format!("{s:?}"), "** redacted **");
        assert_eq!(format!("{:?}", Some(&s)), "Some(** redacted **)");
        assert_eq!(s.expose(), "wJalrXUtnFEMI");
        assert_eq!(s.len(), 13);
    }
}
