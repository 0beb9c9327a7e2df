//! Minting and verifying service-account-shaped JWTs (JWS compact form) with `ring`.
//!
//! This is just enough JOSE for a test double. It handles `RS256` and `ES256`, a
//! `{"alg","kid","typ":"JWT"}` header, and claims shaped like a Kubernetes projected token
//! (token-watch.md §2.2). Verifying (the signature, then the claims) is in `verify`;
//! the algorithm names are in `alg`, which both halves use. It does no
//! `crit` and no other algorithms; a [`Verifier`] renders its ES256 key as a JWK, for a key set to serve.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{
    digest,
    rand::{SecureRandom, SystemRandom},
    signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair},
};
use serde_json::{json, Value};

use crate::error::StandInError;

mod alg;
mod verify;

pub use self::alg::Alg;
pub use self::verify::Verifier;
pub(crate) use self::verify::{check_claims, Identity};

/// Signs service-account-shaped JWTs (JWS compact, header `{"alg","kid","typ":"JWT"}`) with ring.
///
/// `Debug` prints only the algorithm and the key id, never key material. Cloning is cheap
/// because the key pair sits behind an `Arc`.
#[derive(Clone)]
pub struct Issuer {
    kid: String,
    key: SigningKey,
    rng: SystemRandom,
}

#[derive(Clone)]
enum SigningKey {
    Rsa(Arc<RsaKeyPair>),
    Ec(Arc<EcdsaKeyPair>),
}

/// What a JWT should claim. Used by [`Issuer::service_account_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    /// The `iss` claim (the cluster's service-account issuer URL).
    pub issuer: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The service account's name.
    pub service_account: String,
    /// The only entry of the `aud` array.
    pub audience: String,
    /// `exp - iat`.
    pub lifetime: Duration,
}

// === impl Issuer ===

impl Issuer {
    /// Generates a fresh P-256 key pair (kept only in memory) and signs with ES256.
    pub fn generate_es256(kid: &str) -> Result<Self, StandInError> {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| StandInError::KeyGeneration)?;
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng)
            .map_err(|e| StandInError::KeyRejected(e.to_string()))?;
        Ok(Self {
            kid: kid.to_owned(),
            key: SigningKey::Ec(Arc::new(pair)),
            rng,
        })
    }

    /// Signs with RS256, using an RSA private key in PKCS#8 DER form (such as
    /// `tests/fixtures/rs256-test-key.pk8`).
    pub fn from_rsa_pkcs8_der(kid: &str, der: &[u8]) -> Result<Self, StandInError> {
        let pair =
            RsaKeyPair::from_pkcs8(der).map_err(|e| StandInError::KeyRejected(e.to_string()))?;
        Ok(Self {
            kid: kid.to_owned(),
            key: SigningKey::Rsa(Arc::new(pair)),
            rng: SystemRandom::new(),
        })
    }

    /// The signing algorithm.
    pub fn alg(&self) -> Alg {
        match self.key {
            SigningKey::Rsa(_) => Alg::Rs256,
            SigningKey::Ec(_) => Alg::Es256,
        }
    }

    /// The `kid` header value.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JSON Web Key (RFC 7517), with `kid`, `alg` and
    /// `use: sig`: what an issuer's `/openid/v1/jwks` lists.
    pub fn jwk(&self) -> Value {
        match &self.key {
            SigningKey::Rsa(pair) => {
                let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                json!({
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": "RS256",
                    "use": "sig",
                    "n": URL_SAFE_NO_PAD.encode(&public.n),
                    "e": URL_SAFE_NO_PAD.encode(&public.e),
                })
            }
            SigningKey::Ec(pair) => {
                // An uncompressed SEC1 point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC",
                    "kid": self.kid,
                    "alg": "ES256",
                    "use": "sig",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                })
            }
        }
    }

    /// Signs `claims` (which must be a JSON object) and returns the compact JWS.
    pub fn mint(&self, claims: &Value) -> Result<String, StandInError> {
        if !claims.is_object() {
            return Err(StandInError::ClaimsNotObject);
        }
        let header = json!({"alg": self.alg().as_str(), "kid": self.kid, "typ": "JWT"});
        let mut jws = encode_json(&header)?;
        jws.push('.');
        jws.push_str(&encode_json(claims)?);
        let sig = match &self.key {
            SigningKey::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    jws.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| StandInError::Sign)?;
                sig
            }
            SigningKey::Ec(pair) => pair
                .sign(&self.rng, jws.as_bytes())
                .map_err(|_| StandInError::Sign)?
                .as_ref()
                .to_vec(),
        };
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(jws)
    }

    /// Mints a token shaped like a Kubernetes projected service-account token (token-watch.md §2.2):
    /// `iss`, `sub` = `system:serviceaccount:NS:SA`, `aud` = `[audience]`, `iat` = `nbf` = `now`,
    /// `exp` = `now + lifetime`, a fresh random `jti` on every call (so no two mints have the same
    /// bytes), and `kubernetes.io` with `namespace`, `pod {name, uid}` and `serviceaccount {name, uid}`.
    pub fn service_account_token(
        &self,
        spec: &TokenSpec,
        now: SystemTime,
    ) -> Result<String, StandInError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| StandInError::TimeBeforeEpoch)?
            .as_secs();
        let (ns, sa) = (&spec.namespace, &spec.service_account);
        let pod = format!("{sa}-standin");
        let claims = json!({
            "aud": [spec.audience],
            "exp": iat.saturating_add(spec.lifetime.as_secs()),
            "iat": iat,
            "nbf": iat,
            "iss": spec.issuer,
            "jti": self.random_uuid()?,
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
            "kubernetes.io": {
                "namespace": ns,
                "pod": {"name": pod, "uid": stable_uuid(&["pod", ns, &pod])},
                "serviceaccount": {"name": sa, "uid": stable_uuid(&["serviceaccount", ns, sa])},
            },
        });
        self.mint(&claims)
    }

    /// The matching public half, for [`StandInConfig::verifiers`](crate::standin::StandInConfig::verifiers).
    pub fn verifier(&self) -> Verifier {
        let public_key: Arc<[u8]> = match &self.key {
            SigningKey::Rsa(pair) => pair.public_key().as_ref().into(),
            SigningKey::Ec(pair) => pair.public_key().as_ref().into(),
        };
        Verifier::from_public_key(self.alg(), &self.kid, &public_key)
    }

    fn random_uuid(&self) -> Result<String, StandInError> {
        let mut b = [0u8; 16];
        self.rng
            .fill(&mut b)
            .map_err(|_| StandInError::KeyGeneration)?;
        Ok(format_uuid(b))
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

// === impl TokenSpec ===

impl Default for TokenSpec {
    /// Issuer `https://oidc.standin.invalid/cluster`, `default:app`, audience
    /// `https://coreweave.com/iam`, 3600 s.
    fn default() -> Self {
        Self {
            issuer: "https://oidc.standin.invalid/cluster".to_owned(),
            namespace: "default".to_owned(),
            service_account: "app".to_owned(),
            audience: "https://coreweave.com/iam".to_owned(),
            lifetime: Duration::from_secs(3600),
        }
    }
}

fn encode_json(v: &Value) -> Result<String, StandInError> {
    let bytes = serde_json::to_vec(v).map_err(StandInError::Encode)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A UUID-shaped id derived from `parts`, so that one pod or service account keeps one uid.
fn stable_uuid(parts: &[&str]) -> String {
    let d = digest::digest(&digest::SHA256, parts.join("\0").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    format_uuid(b)
}

/// Formats 16 bytes as an RFC 9562 version-4 UUID (the version and variant bits are overwritten).
fn format_uuid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests;
