//! The one error configuration validation returns.

/// A configuration value that cannot be used. Names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {flag}: {reason}")]
pub struct ConfigError {
    /// The flag, e.g. `--exchange-url`.
    pub flag: &'static str,
    /// What is wrong with it (never contains a secret).
    pub reason: String,
}

impl ConfigError {
    /// The error for `flag`.
    pub fn new(flag: &'static str, reason: impl Into<String>) -> Self {
        Self {
            flag,
            reason: reason.into(),
        }
    }
}
