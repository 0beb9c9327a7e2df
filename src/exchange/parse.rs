//! Parsing the upstream's answer.
//!
//! The body is first read as a generic JSON value and then picked apart by
//! hand ([`crate::wire::credentials_from`]), so that no error message can
//! quote a field's value: serde's own messages may echo what they found, and
//! what they found may be a secret.

use std::time::SystemTime;

use serde_json::Value;

use super::error::ExchangeError;
use crate::credentials::Credentials;
use crate::wire;

/// Largest upstream answer read (bigger answers are malformed).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Parses a 200 body into credentials. `server_date` is the upstream's
/// `Date` header, if any. `attributes["cw-role"]` names the role.
pub fn parse_credentials(
    body: &[u8],
    server_date: Option<SystemTime>,
) -> Result<Credentials, ExchangeError> {
    let mut obj = wire::json_object(body)?;
    let mut credentials = wire::credentials_from(&mut obj, server_date)?;
    credentials.role = match obj.get("attributes") {
        Some(Value::Object(attrs)) => attrs
            .get("cw-role")
            .and_then(Value::as_str)
            .map(wire::label),
        _ => None,
    };
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"AccessKeyId":"CWAKIAEXAMPLE1234567","SecretAccessKey":"wJalrXUtnFEMIK7MDENG","Token":"","Expiration":"2026-03-14T21:44:43Z","attributes":{"cw-role":"https://oidc.example/abc:system:serviceaccount:default:sa"},"multiAttributes":{}}"#;

    #[test]
    fn parses_the_documented_answer() {
        let c = parse_credentials(OK.as_bytes(), None).unwrap();
        assert_eq!(c.access_key_id, "CWAKIAEXAMPLE1234567");
        assert_eq!(c.secret_access_key.expose(), "wJalrXUtnFEMIK7MDENG");
        assert!(c.session_token.is_empty());
        assert_eq!(c.expiration.unix_timestamp(), 1_773_524_683);
        assert_eq!(
            c.role.as_deref(),
            Some("https://oidc.example/abc:system:serviceaccount:default:sa")
        );
    }

    #[test]
    fn accepts_offsets_fractions_and_session_tokens() {
        let body = r#"{"AccessKeyId":"A","SecretAccessKey":"S","Token":"T","Expiration":"2026-03-14T23:44:43.5+02:00"}"#;
        let c = parse_credentials(body.as_bytes(), None).unwrap();
        assert_eq!(c.session_token.expose(), "T");
        assert_eq!(c.expiration.unix_timestamp(), 1_773_524_683);
        let no_token =
            r#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2026-03-14T21:44:43Z"}"#;
        assert!(parse_credentials(no_token.as_bytes(), None)
            .unwrap()
            .session_token
            .is_empty());
    }

    #[test]
    fn bad_answers_are_malformed_and_not_quoted() {
        let body = r#"{"AccessKeyId":"A","SecretAccessKey":"TOPSECRET","Expiration":"2026-03-14 21:44:43"}"#;
        let err = parse_credentials(body.as_bytes(), None).unwrap_err();
        assert_eq!(err.class(), "malformed");
        let msg = err.to_string();
        assert!(msg.contains("Expiration is not an RFC 3339"), "{msg}");
        assert!(!msg.contains("TOPSECRET"), "{msg}");
        assert_eq!(
            parse_credentials(b"[]", None).unwrap_err().to_string(),
            "malformed upstream answer: the answer is not a JSON object"
        );
    }
}
