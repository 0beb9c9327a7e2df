//! The JWS algorithms the stand-in signs and verifies with. Its own module so that the signing
//! half (`jwt`) and the verifying half (`jwt::verify`) both name it without importing each other.

/// A JWS signature algorithm that the stand-in can sign and verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys of 2048 to 8192 bits).
    Rs256,
    /// ECDSA on P-256 with SHA-256, with the fixed-length (r‖s) signature encoding that JWS uses.
    Es256,
}

// === impl Alg ===

impl Alg {
    /// The JOSE name (`"RS256"` or `"ES256"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}
