//! Checking JWTs the [`Issuer`](super::Issuer) made: the signature (one key),
//! then the time and audience claims.

use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::signature::{self, UnparsedPublicKey};
use serde_json::{json, Value};

use super::alg::Alg;
use crate::error::StandInError;

/// Checks JWT signatures made by one key: the algorithm, the key id and the public key bytes.
///
/// The bytes are those ring's `UnparsedPublicKey` takes: a DER `RSAPublicKey` for RS256, or an
/// uncompressed SEC1 point for ES256.
#[derive(Clone)]
pub struct Verifier {
    alg: Alg,
    kid: String,
    public_key: Arc<[u8]>,
}

/// The identity that a verified, currently valid token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) iss: String,
    pub(crate) sub: String,
}

// === impl Verifier ===

impl Verifier {
    /// A verifier for a public key from elsewhere (see the type docs for the byte format).
    pub fn from_public_key(alg: Alg, kid: &str, public_key: &[u8]) -> Self {
        Self {
            alg,
            kid: kid.to_owned(),
            public_key: public_key.into(),
        }
    }

    /// The algorithm that this verifier accepts.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key id (informational: the signature alone decides).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JSON Web Key (`kty` `EC`, `crv` `P-256`), for a
    /// key set to serve; `None` for RS256 keys.
    pub fn jwk(&self) -> Option<Value> {
        let point = &*self.public_key;
        if self.alg != Alg::Es256 || point.len() != 65 || point[0] != 4 {
            return None;
        }
        Some(json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }))
    }

    /// Checks the header's `alg` (so `none` and other algorithms fail) and the signature, then
    /// returns the claims object. It does **not** check `exp`, `nbf` or `aud`; the stand-in
    /// server does that itself. Errors never contain any part of the token.
    pub fn verify(&self, jwt: &str) -> Result<Value, StandInError> {
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(StandInError::Malformed("not three dot-separated parts"));
        };
        let header =
            decode_json(h).ok_or(StandInError::Malformed("header is not base64url JSON"))?;
        if header.get("alg").and_then(Value::as_str) != Some(self.alg.as_str()) {
            return Err(StandInError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| StandInError::Malformed("signature is not base64url"))?;
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        // The signing input is the first two parts exactly as sent, dot included.
        let signed = &jwt[..h.len() + 1 + p.len()];
        UnparsedPublicKey::new(alg, &*self.public_key)
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| StandInError::Signature)?;
        match decode_json(p) {
            Some(claims) if claims.is_object() => Ok(claims),
            _ => Err(StandInError::Malformed(
                "payload is not a base64url JSON object",
            )),
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("public_key_len", &self.public_key.len())
            .finish()
    }
}

/// Checks the time and audience claims of a verified token: `exp` (required) must be after `now`,
/// `nbf` (if present) not after `now`, `aud` (string or array) must contain `audience` when that is
/// set, and `iss` and `sub` must be strings.
pub(crate) fn check_claims(
    claims: &Value,
    now: SystemTime,
    audience: Option<&str>,
) -> Result<Identity, StandInError> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StandInError::TimeBeforeEpoch)?
        .as_secs_f64();
    let exp = claims.get("exp").and_then(Value::as_f64);
    match exp {
        None => return Err(StandInError::MissingClaim("exp")),
        Some(exp) if exp <= now => return Err(StandInError::Expired),
        Some(_) => {}
    }
    if claims
        .get("nbf")
        .and_then(Value::as_f64)
        .is_some_and(|nbf| nbf > now)
    {
        return Err(StandInError::NotYetValid);
    }
    if let Some(want) = audience {
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == want,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(want)),
            _ => false,
        };
        if !ok {
            return Err(StandInError::Audience);
        }
    }
    let string = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(StandInError::MissingClaim(name))
    };
    Ok(Identity {
        iss: string("iss")?,
        sub: string("sub")?,
    })
}

pub(super) fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}
