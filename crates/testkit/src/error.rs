//! The stand-in's error type.

/// Errors from minting, verifying, key handling and TLS setup. Displays never contain a token,
/// a key or a secret.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    /// ring refused a private key (the message is ring's fixed reason, e.g. `InvalidEncoding`).
    #[error("signing key rejected: {0}")]
    KeyRejected(String),
    /// ring could not generate a key or random bytes.
    #[error("key or random generation failed")]
    KeyGeneration,
    /// ring could not sign.
    #[error("signing failed")]
    Sign,
    /// [`Issuer::mint`](crate::Issuer::mint) was given claims that are not a JSON object.
    #[error("JWT claims must be a JSON object")]
    ClaimsNotObject,
    /// Serializing a JWT header or claims failed.
    #[error("encoding JWT JSON")]
    Encode(#[source] serde_json::Error),
    /// The token is not a well-formed JWS.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is not the verifier's (this covers `none`).
    #[error("token algorithm not accepted")]
    Algorithm,
    /// The signature does not verify.
    #[error("token signature is not valid")]
    Signature,
    /// `exp` is not after now.
    #[error("token has expired")]
    Expired,
    /// `nbf` is after now.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `aud` does not contain the configured audience.
    #[error("token audience not accepted")]
    Audience,
    /// A required claim is missing or has the wrong type.
    #[error("token claim `{0}` missing or invalid")]
    MissingClaim(&'static str),
    /// The clock reads before 1970.
    #[error("system time is before the Unix epoch")]
    TimeBeforeEpoch,
    /// Building the TLS server configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// An I/O error (binding, reading PEM files).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
