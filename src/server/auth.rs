//! The authorization token that callers of the credentials endpoint present.
//!
//! At start the agent creates the token file with 256 random bits
//! (base64url, no trailing newline: every SDK rejects a file ending in `\n`),
//! mode 0644, written atomically; app containers read it through
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`. An existing non-empty file is
//! used as is, so a restarted agent keeps the token apps already hold.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::fsread::{self, FileError, Limit};
use crate::secret::Secret;

pub mod strength;

/// The token callers must send as `Authorization`.
#[derive(Debug, Clone)]
pub struct AuthToken(Secret);

/// Why the auth token file could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthTokenError {
    /// Reading an existing file failed, or it is not a regular file of
    /// at most [`MAX_AUTH_TOKEN_BYTES`].
    #[error("the auth token file: {0}")]
    Read(FileError),
    /// Creating the file failed.
    #[error("cannot write the auth token file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The existing file holds bytes that cannot be an HTTP header value.
    #[error("the auth token file {0} holds characters that cannot be sent in a header (e.g. a newline); remove it to have a new token generated")]
    Unusable(PathBuf),
    /// The existing file's token is too easy to guess ([`strength`]).
    #[error("the auth token in {path} is too weak: about {bits} bits{}, at least {MIN_BITS} are needed (e.g. `head -c 32 /dev/urandom | base64 | tr -d '=+/\\n'`); remove it to have one generated", reason.map(|r| format!(" ({r})")).unwrap_or_default())]
    Weak {
        /// The file.
        path: PathBuf,
        /// Its estimated strength.
        bits: u32,
        /// What made it weak, if not only its length.
        reason: Option<&'static str>,
    },
}

/// The least strength of an auth token, in bits.
pub const MIN_BITS: u32 = 128;

/// The largest auth token file read: 4 KiB. The agent writes 43 bytes; a
/// header value of kilobytes is already unusual for any client.
pub const MAX_AUTH_TOKEN_BYTES: u64 = 4096;

/// The auth token file's cap, for every reader of it (the sidecar,
/// `credential-process`, `doctor`).
pub const AUTH_TOKEN_FILE: Limit = Limit {
    what: "an auth token",
    max: MAX_AUTH_TOKEN_BYTES,
};

// === impl AuthToken ===

impl AuthToken {
    /// Uses the token in `path`, or creates one there; on tokio's blocking
    /// pool.
    pub async fn load_or_create(path: &Path) -> Result<Self, AuthTokenError> {
        let owned = path.to_owned();
        tokio::task::spawn_blocking(move || Self::load_or_create_blocking(&owned))
            .await
            .unwrap_or_else(|e| {
                Err(AuthTokenError::Read(FileError::Io {
                    path: path.to_owned(),
                    source: std::io::Error::other(e),
                }))
            })
    }

    /// [`AuthToken::load_or_create`], blocking the calling thread.
    pub fn load_or_create_blocking(path: &Path) -> Result<Self, AuthTokenError> {
        match fsread::read(path, AUTH_TOKEN_FILE) {
            Ok(bytes) if !bytes.is_empty() => {
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| AuthTokenError::Unusable(path.to_owned()))?;
                if text.bytes().any(|b| b.is_ascii_control()) {
                    return Err(AuthTokenError::Unusable(path.to_owned()));
                }
                let estimate = strength::estimate(text);
                if estimate.bits < f64::from(MIN_BITS) {
                    return Err(AuthTokenError::Weak {
                        path: path.to_owned(),
                        bits: estimate.bits as u32,
                        reason: estimate.reason,
                    });
                }
                tracing::info!(path = %path.display(), "using the existing auth token");
                Ok(Self(Secret::new(text)))
            }
            Ok(_) => Self::create(path),
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => Self::create(path),
            Err(e) => Err(AuthTokenError::Read(e)),
        }
    }

    fn create(path: &Path) -> Result<Self, AuthTokenError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(&mut *bytes);
        let token = Secret::new(URL_SAFE_NO_PAD.encode(*bytes));
        crate::atomic_file::write(path, token.expose().as_bytes(), 0o644).map_err(|source| {
            AuthTokenError::Write {
                path: path.to_owned(),
                source,
            }
        })?;
        tracing::info!(path = %path.display(), "created a new auth token");
        Ok(Self(token))
    }

    /// Returns true if and only if `presented` is the token (constant time).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.expose().as_bytes().ct_eq(presented).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_random_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth-token");
        let a = AuthToken::load_or_create_blocking(&path).unwrap();
        let on_disk = fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), 43, "256 bits as unpadded base64url");
        assert!(on_disk
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(a.matches(&on_disk));
        assert!(!a.matches(b"wrong"));
        assert!(!a.matches(&on_disk[..42]));
        // A second start reuses it.
        let b = AuthToken::load_or_create_blocking(&path).unwrap();
        assert!(b.matches(&on_disk));
        assert_eq!(
            fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1,
            "no temp files left"
        );
        // An empty file is replaced.
        fs::write(&path, b"").unwrap();
        let c = AuthToken::load_or_create_blocking(&path).unwrap();
        assert!(!c.matches(&on_disk));
        assert!(format!("{c:?}").contains("redacted"));
    }

    #[test]
    fn existing_tokens_are_used_as_is_unless_unsendable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-token");
        let chosen = b"q7Rk2PzX9vLmN4wB8sYt0cHe";
        fs::write(&path, chosen).unwrap();
        assert!(AuthToken::load_or_create_blocking(&path)
            .unwrap()
            .matches(chosen));
        fs::write(&path, b"with-newline\n").unwrap();
        let err = AuthToken::load_or_create_blocking(&path).unwrap_err();
        assert!(err.to_string().contains("newline"), "{err}");
        assert!(!err.to_string().contains("with-newline"), "{err}");
    }

    #[test]
    fn weak_tokens_are_refused_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth-token");
        let a128 = "a".repeat(128);
        let ab64 = "ab".repeat(64);
        for weak in [
            "operator-chosen",
            "0123456789abcdef0123456789abcde",
            "password",
            &a128,
            &ab64,
        ] {
            fs::write(&path, weak).unwrap();
            let err = AuthToken::load_or_create_blocking(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("too weak") && msg.contains("128"), "{msg}");
            assert!(!msg.contains(weak), "{msg}");
        }
        let err = AuthToken::load_or_create_blocking(&path).unwrap_err();
        assert!(err.to_string().contains("bits (it repeats itself"), "{err}");
        // 16 random bytes, as hex or as base64: strong enough.
        for strong in [
            "6f1c2a9be04d7783a2c5d1e0f9b84c37",
            "bxK9f0Qz3L+Wm2vT8rYc1A==",
        ] {
            fs::write(&path, strong).unwrap();
            assert!(
                AuthToken::load_or_create_blocking(&path).is_ok(),
                "{strong}"
            );
        }
    }
}
