//! A string that never reaches a `Debug` print: the stand-in's secret access key and session
//! token as given on its command line.

use std::fmt;

/// What `Debug` prints in place of a secret.
pub const REDACTED: &str = "** redacted **";

/// A secret string with a redacted `Debug` and no `Display`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

// === impl Secret ===

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns true if and only if the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}
