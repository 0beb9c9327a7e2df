//! Minting and verifying service-account-shaped JWTs (JWS compact form) with `ring`.
//!
//! This is just enough JOSE for a test double. It handles `RS256` and `ES256`, a
//! `{"alg","kid","typ":"JWT"}` header, and claims shaped like a Kubernetes projected token
//! (token-watch.md §2.2). It does no JWKS, no `crit` and no other algorithms.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{
    digest,
    rand::{SecureRandom, SystemRandom},
    signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey},
};
use serde_json::{json, Value};

use crate::error::StandInError;

/// A JWS signature algorithm that the stand-in can sign and verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys of 2048 to 8192 bits).
    Rs256,
    /// ECDSA on P-256 with SHA-256, with the fixed-length (r‖s) signature encoding that JWS uses.
    Es256,
}

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
        Verifier {
            alg: self.alg(),
            kid: self.kid.clone(),
            public_key,
        }
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

fn encode_json(v: &Value) -> Result<String, StandInError> {
    let bytes = serde_json::to_vec(v).map_err(StandInError::Encode)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
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
mod tests {
    use super::*;

    const RSA_PK8: &[u8] = include_bytes!("../fixtures/rs256-test-key.pk8");

    fn spec() -> TokenSpec {
        TokenSpec::default()
    }

    fn rsa() -> Issuer {
        Issuer::from_rsa_pkcs8_der("rsa-test", RSA_PK8).expect("fixture key parses")
    }

    fn ec() -> Issuer {
        Issuer::generate_es256("ec-test").expect("P-256 key generation works")
    }

    /// Replaces the payload part with `claims`, keeping the header and the old signature.
    fn with_payload(jwt: &str, claims: &Value) -> String {
        let parts: Vec<&str> = jwt.split('.').collect();
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
        format!("{}.{}.{}", parts[0], p, parts[2])
    }

    fn round_trip(issuer: &Issuer, alg: &str) {
        let now = SystemTime::now();
        let jwt = issuer.service_account_token(&spec(), now).unwrap();
        let header = decode_json(jwt.split('.').next().unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": alg, "kid": issuer.kid(), "typ": "JWT"})
        );
        let claims = issuer.verifier().verify(&jwt).unwrap();
        assert_eq!(claims["sub"], "system:serviceaccount:default:app");
        assert_eq!(claims["aud"], json!(["https://coreweave.com/iam"]));
        assert_eq!(claims["iat"], claims["nbf"]);
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, 3600);
        assert_eq!(claims["kubernetes.io"]["namespace"], "default");
        assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "app");
        assert!(claims["kubernetes.io"]["pod"]["uid"].is_string());
        let id = check_claims(&claims, now, Some("https://coreweave.com/iam")).unwrap();
        assert_eq!(id.iss, "https://oidc.standin.invalid/cluster");
        // A fresh jti every time: two mints in the same second differ.
        let again = issuer.service_account_token(&spec(), now).unwrap();
        assert_ne!(jwt, again);
    }

    #[test]
    fn rs256_round_trip() {
        round_trip(&rsa(), "RS256");
    }

    #[test]
    fn es256_round_trip() {
        round_trip(&ec(), "ES256");
    }

    #[test]
    fn tampered_payload_fails() {
        for issuer in [rsa(), ec()] {
            let jwt = issuer
                .service_account_token(&spec(), SystemTime::now())
                .unwrap();
            let mut claims = issuer.verifier().verify(&jwt).unwrap();
            claims["sub"] = json!("system:serviceaccount:kube-system:admin");
            let forged = with_payload(&jwt, &claims);
            assert!(matches!(
                issuer.verifier().verify(&forged),
                Err(StandInError::Signature)
            ));
        }
    }

    #[test]
    fn wrong_key_fails() {
        let jwt = ec()
            .service_account_token(&spec(), SystemTime::now())
            .unwrap();
        assert!(matches!(
            ec().verifier().verify(&jwt),
            Err(StandInError::Signature)
        ));
        // An RS256 verifier refuses an ES256 token on the header alone.
        assert!(matches!(
            rsa().verifier().verify(&jwt),
            Err(StandInError::Algorithm)
        ));
    }

    #[test]
    fn alg_none_fails() {
        let issuer = rsa();
        let jwt = issuer
            .service_account_token(&spec(), SystemTime::now())
            .unwrap();
        let payload = jwt.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        for forged in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert!(issuer.verifier().verify(&forged).is_err());
        }
    }

    #[test]
    fn malformed_tokens_fail_without_echo() {
        let v = ec().verifier();
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", "Bearer x.y.z"] {
            let err = v.verify(bad).unwrap_err();
            assert!(
                matches!(err, StandInError::Malformed(_)),
                "{bad:?}: {err:?}"
            );
        }
        let err = v
            .verify("eyJzZWNyZXQiOiJ4In0.eyJ9.c2lnbmF0dXJl")
            .unwrap_err();
        assert!(!err.to_string().contains("eyJ"));
    }

    #[test]
    fn check_claims_times_and_audience() {
        let issuer = ec();
        let now = SystemTime::now();
        let claims = issuer
            .verifier()
            .verify(&issuer.service_account_token(&spec(), now).unwrap())
            .unwrap();
        assert!(check_claims(&claims, now, None).is_ok());
        let later = now + Duration::from_secs(3601);
        assert!(matches!(
            check_claims(&claims, later, None),
            Err(StandInError::Expired)
        ));
        let earlier = now - Duration::from_secs(5);
        assert!(matches!(
            check_claims(&claims, earlier, None),
            Err(StandInError::NotYetValid)
        ));
        assert!(matches!(
            check_claims(&claims, now, Some("sts.amazonaws.com")),
            Err(StandInError::Audience)
        ));
        let mut single = claims.clone();
        single["aud"] = json!("sts.amazonaws.com");
        assert!(check_claims(&single, now, Some("sts.amazonaws.com")).is_ok());
        let mut no_exp = claims;
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(matches!(
            check_claims(&no_exp, now, None),
            Err(StandInError::MissingClaim("exp"))
        ));
    }

    #[test]
    fn mint_rejects_non_object_claims() {
        assert!(matches!(
            ec().mint(&json!([1])),
            Err(StandInError::ClaimsNotObject)
        ));
    }

    #[test]
    fn issuer_debug_has_no_key_material() {
        for issuer in [rsa(), ec()] {
            let dbg = format!("{issuer:?} {:?}", issuer.verifier());
            assert!(dbg.contains(issuer.kid()), "{dbg}");
            assert!(!dbg.contains("Arc") && !dbg.contains("["), "{dbg}");
        }
    }

    #[test]
    fn uuid_shape() {
        let u = format_uuid([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(stable_uuid(&["a", "b"]), stable_uuid(&["a", "b"]));
        assert_ne!(stable_uuid(&["a", "b"]), stable_uuid(&["ab"]));
    }
}
