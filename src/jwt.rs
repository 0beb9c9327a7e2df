//! JWT shape checks and claim decoding, without signature verification.
//!
//! The upstream verifies the signature; the agent only needs to know that a
//! value is shaped like a JWT (so it never sends junk upstream) and what its
//! `exp`, `iat`, `sub`, `aud` and `iss` say, for logs, metrics and the
//! poll interval. Errors never quote the token.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// Largest token accepted (kubelet's are ~1 KiB; 16 KiB leaves room for
/// large custom claims and stays far below header limits).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The claims the agent reads from a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Issuer.
    pub iss: Option<String>,
    /// Subject, e.g. `system:serviceaccount:NS:SA`.
    pub sub: Option<String>,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: Option<i64>,
    /// Issued at, Unix seconds.
    pub iat: Option<i64>,
    /// Not before, Unix seconds.
    pub nbf: Option<i64>,
    /// The Pod's namespace (`kubernetes.io.namespace`), for logs.
    pub namespace: Option<String>,
    /// The Pod's name (`kubernetes.io.pod.name`), for logs.
    pub pod: Option<String>,
    /// The Pod's UID (`kubernetes.io.pod.uid`).
    pub pod_uid: Option<String>,
    /// The ServiceAccount's name (`kubernetes.io.serviceaccount.name`).
    pub service_account: Option<String>,
    /// The node's name (`kubernetes.io.node.name`, Kubernetes 1.30 and later).
    pub node: Option<String>,
}

/// Why a value is not a usable token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Nothing there.
    #[error("the token is empty")]
    Empty,
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("the token is {0} bytes, over the {MAX_TOKEN_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not three base64url segments with JSON header and payload.
    #[error("the token is not a JWT: {0}")]
    Malformed(&'static str),
}

// === impl JwtError ===

impl JwtError {
    /// A short, bounded label for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge(_) => "too_large",
            Self::Malformed(_) => "malformed",
        }
    }
}

// === impl Claims ===

impl Claims {
    /// The token's intended lifetime, `exp - iat`, if both are known.
    pub fn ttl(&self) -> Option<Duration> {
        match (self.exp, self.iat) {
            (Some(exp), Some(iat)) if exp > iat => Some(Duration::from_secs(exp.abs_diff(iat))),
            _ => None,
        }
    }
}

/// Checks that `token` is shaped like a compact JWS and decodes its claims.
pub fn decode(token: &str) -> Result<Claims, JwtError> {
    if token.is_empty() {
        return Err(JwtError::Empty);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLarge(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    };
    if signature.is_empty() {
        return Err(JwtError::Malformed("the signature is empty"));
    }
    if !signature.bytes().all(is_base64url) {
        return Err(JwtError::Malformed("the signature is not base64url"));
    }
    let header = json_object(header, "header")?;
    if !header.get("alg").is_some_and(Value::is_string) {
        return Err(JwtError::Malformed("the header has no alg"));
    }
    let payload = json_object(payload, "payload")?;
    let k8s = payload.get("kubernetes.io");
    let aud = match payload.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Claims {
        iss: payload
            .get("iss")
            .and_then(Value::as_str)
            .map(str::to_owned),
        sub: payload
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_owned),
        aud,
        exp: numeric_date(payload.get("exp")),
        iat: numeric_date(payload.get("iat")),
        nbf: numeric_date(payload.get("nbf")),
        namespace: k8s
            .and_then(|k| k.get("namespace"))
            .and_then(Value::as_str)
            .map(short),
        pod: nested(k8s, "pod", "name"),
        pod_uid: nested(k8s, "pod", "uid"),
        service_account: nested(k8s, "serviceaccount", "name"),
        node: nested(k8s, "node", "name"),
    })
}

/// `kubernetes.io.OBJECT.FIELD`, shortened.
fn nested(k8s: Option<&Value>, object: &str, field: &str) -> Option<String> {
    k8s?.get(object)?.get(field)?.as_str().map(short)
}

/// Names end up in logs: keep them short and printable (Kubernetes names
/// are at most 253 characters).
fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(253).collect()
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn json_object(
    segment: &str,
    what: &'static str,
) -> Result<serde_json::Map<String, Value>, JwtError> {
    if segment.is_empty() || !segment.bytes().all(is_base64url) {
        return Err(JwtError::Malformed(match what {
            "header" => "the header is not base64url",
            _ => "the payload is not base64url",
        }));
    }
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        JwtError::Malformed(match what {
            "header" => "the header is not base64url",
            _ => "the payload is not base64url",
        })
    })?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(match what {
            "header" => "the header is not a JSON object",
            _ => "the payload is not a JSON object",
        })),
    }
}

/// A JWT NumericDate: integer or fractional seconds.
fn numeric_date(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","kid":"k"}"#),
            b64(payload),
            b64("sig")
        )
    }

    #[test]
    fn decodes_kubernetes_claims() {
        let t = jwt(
            r#"{"aud":["https://coreweave.com/iam"],"exp":1729605240,"iat":1729601640,"nbf":1729601640,"iss":"https://oidc.example","sub":"system:serviceaccount:ns:sa","kubernetes.io":{"namespace":"ns"}}"#,
        );
        let c = decode(&t).unwrap();
        assert_eq!(c.aud, ["https://coreweave.com/iam"]);
        assert_eq!(c.namespace.as_deref(), Some("ns"));
        assert_eq!(c.pod, None);
        let with_pod = decode(&jwt(
            r#"{"kubernetes.io":{"namespace":"ns","pod":{"name":"app-7d9f","uid":"u"}}}"#,
        ))
        .unwrap();
        assert_eq!(with_pod.pod.as_deref(), Some("app-7d9f"));
        assert_eq!(with_pod.pod_uid.as_deref(), Some("u"));
        let full = decode(&jwt(
            r#"{"kubernetes.io":{"namespace":"ns","node":{"name":"gpu-1","uid":"n"},"pod":{"name":"p","uid":"pu"},"serviceaccount":{"name":"sa","uid":"su"}}}"#,
        ))
        .unwrap();
        assert_eq!(
            (full.service_account.as_deref(), full.node.as_deref()),
            (Some("sa"), Some("gpu-1"))
        );
        assert_eq!(c.exp, Some(1_729_605_240));
        assert_eq!(c.sub.as_deref(), Some("system:serviceaccount:ns:sa"));
        assert_eq!(c.iss.as_deref(), Some("https://oidc.example"));
        assert_eq!(c.ttl(), Some(Duration::from_secs(3600)));
        let single = decode(&jwt(r#"{"aud":"a","exp":10.5}"#)).unwrap();
        assert_eq!(
            (single.ttl(), single.exp, single.aud),
            (None, Some(10), vec!["a".to_owned()])
        );
    }

    #[test]
    fn extreme_claims_do_not_overflow() {
        // Found by fuzzing: exp - iat overflowed i64.
        let c = decode(&jwt(r#"{"exp":9223372036854775807,"iat":-1}"#)).unwrap();
        assert_eq!(c.ttl(), Some(Duration::from_secs(1u64 << 63)));
        let c = decode(&jwt(r#"{"exp":20092368547758000005,"iat":-9}"#)).unwrap();
        assert!(c.ttl().is_some());
    }

    #[test]
    fn rejects_what_is_not_a_jwt() {
        let h = b64(r#"{"alg":"RS256"}"#);
        let p = b64(r#"{"sub":"x"}"#);
        let cases = [
            (String::new(), "empty"),
            ("x".repeat(MAX_TOKEN_BYTES + 1), "too_large"),
            ("not-a-jwt".to_owned(), "malformed"),
            (format!("{h}.{p}"), "malformed"),
            (format!("{h}.{p}.sig.extra"), "malformed"),
            (format!("{h}.{p}."), "malformed"),
            (format!("{h}.{p}.s+g"), "malformed"),
            (format!("{}.{p}.sig", b64(r#"{"typ":"JWT"}"#)), "malformed"),
            (format!("{h}.{}.sig", b64("[1,2]")), "malformed"),
            (format!("{h}.!!!.sig"), "malformed"),
            (format!("Bearer {h}.{p}.sig"), "malformed"),
        ];
        for (token, class) in cases {
            let err = decode(&token).unwrap_err();
            assert_eq!(err.class(), class, "{token:.40}");
        }
    }
}
