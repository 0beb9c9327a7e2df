//! Reading the projected token: one validated read through the
//! user-visible path, retried briefly over the transient failures of a
//! kubelet swap.

use std::path::Path;
use std::time::Duration;

use tokio::time::sleep;

use crate::fsread::{self, FileError, Limit};
use crate::jwt::{self, Claims, JwtError, MAX_TOKEN_BYTES};
use crate::secret::Secret;

/// A validated projected token and what it says about itself.
pub struct Token {
    /// The raw JWT, exactly as sent upstream.
    pub raw: Secret,
    /// Its decoded (unverified) claims.
    pub claims: Claims,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("raw", &self.raw)
            .field("claims", &self.claims)
            .finish()
    }
}

/// Retry delays for one read that hits a transient error.
const READ_RETRIES: [Duration; 5] = [
    Duration::from_millis(10),
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
    Duration::from_millis(160),
];

/// Why one read of the token file gave no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// `ENOENT`, possibly transient during a swap.
    #[error("the token file does not exist (check the projected volume's mountPath and path)")]
    Missing,
    /// Another I/O error, e.g. `EACCES`.
    #[error(
        "cannot read the token file: {0} (check runAsUser/fsGroup and the volume's defaultMode)"
    )]
    Unreadable(String),
    /// Read fine, but not a usable token.
    #[error(transparent)]
    Invalid(#[from] JwtError),
}

impl ReadError {
    /// A short, bounded label for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unreadable(_) => "unreadable",
            Self::Invalid(e) => e.class(),
        }
    }

    fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Missing | Self::Unreadable(_) | Self::Invalid(JwtError::Empty)
        )
    }
}

/// Reads and validates the token, retrying transient failures briefly.
pub(super) async fn read_with_retry(path: &Path) -> Result<Secret, ReadError> {
    let mut last = ReadError::Missing;
    for delay in std::iter::once(Duration::ZERO).chain(READ_RETRIES) {
        if !delay.is_zero() {
            sleep(delay).await;
        }
        match read_once(path).await {
            Ok(token) => return Ok(token),
            Err(e) if e.is_transient() => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The projected token file's cap: a token over [`MAX_TOKEN_BYTES`] is
/// refused before a byte of it is read.
const TOKEN_FILE: Limit = Limit {
    what: "a projected token",
    max: MAX_TOKEN_BYTES as u64,
};

async fn read_once(path: &Path) -> Result<Secret, ReadError> {
    let buf = fsread::read_async(path, TOKEN_FILE)
        .await
        .map_err(file_error)?;
    let text = std::str::from_utf8(&buf).map_err(|_| JwtError::Malformed("not UTF-8"))?;
    // kubelet writes no newline; a hand-made file often ends in one.
    let text = text.trim_end_matches(|c: char| c.is_ascii_whitespace());
    jwt::decode(text)?;
    Ok(Secret::new(text))
}

fn file_error(e: FileError) -> ReadError {
    if let Some(size) = e.too_large() {
        return JwtError::TooLarge(usize::try_from(size).unwrap_or(usize::MAX)).into();
    }
    match e.io_kind() {
        Some(std::io::ErrorKind::NotFound) => ReadError::Missing,
        Some(kind) => ReadError::Unreadable(kind.to_string()),
        // A FIFO, a device, a directory: named, never opened for a
        // blocking read.
        None => ReadError::Unreadable(e.reason()),
    }
}

/// Reads and validates the token at `path` once (with the same brief
/// retries as the watcher), for one-shot commands.
pub async fn read_token(path: &Path) -> Result<Token, ReadError> {
    let raw = read_with_retry(path).await?;
    let claims = jwt::decode(raw.expose())?;
    Ok(Token { raw, claims })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_is_redacted() {
        let raw = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let token = Token {
            raw: Secret::new(raw),
            claims: jwt::decode(raw).unwrap(),
        };
        let out = format!("{token:?}");
        assert!(
            out.contains("** redacted **") && out.contains("sub: Some(\"x\")"),
            "{out}"
        );
        assert!(
            !out.contains("c2lnbmF0dXJl") && !out.contains("eyJ"),
            "{out}"
        );
    }
}
