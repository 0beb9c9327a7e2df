//! Parsing the upstream's answer.
//!
//! The body is first read as a generic JSON value and then picked apart by
//! hand, so that no error message can quote a field's value: serde's own
//! messages may echo what they found, and what they found may be a secret.

use std::time::SystemTime;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Credentials, ExchangeError};
use crate::secret::Secret;

/// Parses a 200 body into credentials. `server_date` is the upstream's
/// `Date` header, if any.
pub fn parse_credentials(
    body: &[u8],
    server_date: Option<SystemTime>,
) -> Result<Credentials, ExchangeError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ExchangeError::Malformed(format!(
            "not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut obj) = value else {
        return Err(malformed("the answer is not a JSON object"));
    };
    let access_key_id = required(&mut obj, "AccessKeyId")?;
    let secret_access_key = Secret::new(required(&mut obj, "SecretAccessKey")?);
    // `Token` "may be empty for non-session credentials"; treat absent as empty.
    let session_token = match obj.remove("Token") {
        None | Some(Value::Null) => Secret::new(String::new()),
        Some(Value::String(s)) => Secret::new(s),
        Some(_) => return Err(malformed("Token is not a string")),
    };
    let raw_expiration = required(&mut obj, "Expiration")?;
    // Held in UTC from here on, so no later conversion can fail (a time
    // whose UTC date falls outside years 1-9999 is refused here).
    let expiration = OffsetDateTime::parse(&raw_expiration, &Rfc3339)
        .ok()
        .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
        .ok_or_else(|| {
            malformed("Expiration is not an RFC 3339 time with a zone (e.g. 2026-03-14T21:44:43Z)")
        })?;
    let role = match obj.get("attributes") {
        Some(Value::Object(attrs)) => attrs
            .get("cw-role")
            .and_then(Value::as_str)
            .map(bounded_label),
        _ => None,
    };
    let account_id = obj
        .get("AccountId")
        .and_then(Value::as_str)
        .map(bounded_label);
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
        role,
        account_id,
        server_date,
    })
}

fn required(obj: &mut Map<String, Value>, field: &str) -> Result<String, ExchangeError> {
    match obj.remove(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(malformed(format!("{field} is empty"))),
        Some(_) => Err(malformed(format!("{field} is not a string"))),
        None => Err(malformed(format!("{field} is missing"))),
    }
}

fn malformed(reason: impl Into<String>) -> ExchangeError {
    ExchangeError::Malformed(reason.into())
}

/// Role names and account ids end up in logs: keep them short and printable.
fn bounded_label(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(512).collect()
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
    fn rejects_bad_answers_without_quoting_them() {
        let cases = [
            ("", "not JSON"),
            ("[]", "not a JSON object"),
            (
                r#"{"SecretAccessKey":"S","Expiration":"2026-03-14T21:44:43Z"}"#,
                "AccessKeyId is missing",
            ),
            (
                r#"{"AccessKeyId":"","SecretAccessKey":"S","Expiration":"2026-03-14T21:44:43Z"}"#,
                "AccessKeyId is empty",
            ),
            (
                r#"{"AccessKeyId":"A","SecretAccessKey":5,"Expiration":"2026-03-14T21:44:43Z"}"#,
                "SecretAccessKey is not a string",
            ),
            (
                r#"{"AccessKeyId":"A","SecretAccessKey":"S","Token":7,"Expiration":"2026-03-14T21:44:43Z"}"#,
                "Token is not a string",
            ),
            (
                r#"{"AccessKeyId":"A","SecretAccessKey":"TOPSECRET","Expiration":"2026-03-14 21:44:43"}"#,
                "Expiration is not an RFC 3339",
            ),
            (
                r#"{"AccessKeyId":"A","SecretAccessKey":"TOPSECRET","Expiration":"2026-03-14T21:44:43"}"#,
                "Expiration is not an RFC 3339",
            ),
            (
                r#"{"AccessKeyId":"A","SecretAccessKey":"S"}"#,
                "Expiration is missing",
            ),
        ];
        for (body, want) in cases {
            let err = parse_credentials(body.as_bytes(), None).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{body}: {msg}");
            assert!(!msg.contains("TOPSECRET"), "{msg}");
            assert_eq!(err.class(), "malformed");
        }
    }
}
