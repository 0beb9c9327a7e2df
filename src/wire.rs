//! Every wire format credentials leave the agent in, and the `Expiration`
//! format they all share.
//!
//! - the ECS container-credentials body (what every SDK's container provider
//!   reads, and what `credential-process` reads back from a running agent);
//! - the EC2 instance-metadata (IMDS) credentials body;
//! - the `credential_process` JSON of AWS config profiles;
//! - the AWS shared credentials file.
//!
//! This module depends on [`crate::credentials`] and nothing above it.
//! Bodies that hold a secret are rendered into buffers that are zeroized when
//! the last response using them is dropped.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::credentials::Credentials;
use crate::secret::Secret;

/// Why a credentials body could not be read. Never quotes a field's value:
/// it may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);

/// Formats `t` as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole seconds): the
/// one form every SDK parses (JS and Rust reject offsets, botocore rejects
/// naive times, some reject fractions).
pub fn format_expiration(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.replace_nanosecond(0)
        .unwrap_or(utc)
        .format(&Rfc3339)
        // Only a year outside 0000-9999 cannot be formatted; such
        // credentials are refused as expired long before they are served.
        .unwrap_or_else(|_| "0000-01-01T00:00:00Z".to_owned())
}

/// Owns a rendered body so that its bytes are zeroized when the last
/// response using it is dropped.
struct ZeroizingBody(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for ZeroizingBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn zeroizing_json(value: &impl Serialize) -> Bytes {
    // Serializing a struct of strings into a Vec cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Bytes::from_owner(ZeroizingBody(Zeroizing::new(bytes)))
}

/// The ECS container-credentials body.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EcsBody<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

/// Renders the ECS body: `AccessKeyId`, `SecretAccessKey`, `Token` (always a
/// string, possibly empty: a missing or null `Token` breaks botocore,
/// object_store and the JS SDK), `Expiration` as [`format_expiration`], and
/// `AccountId` only when known.
pub fn ecs_body(credentials: &Credentials) -> Bytes {
    let expiration = format_expiration(credentials.expiration);
    zeroizing_json(&EcsBody {
        access_key_id: &credentials.access_key_id,
        secret_access_key: credentials.secret_access_key.expose(),
        token: credentials.session_token.expose(),
        expiration: &expiration,
        account_id: credentials.account_id.as_deref(),
    })
}

/// The IMDS credentials body (what EC2 serves at
/// `/latest/meta-data/iam/security-credentials/ROLE`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImdsBody<'a> {
    code: &'a str,
    last_updated: &'a str,
    #[serde(rename = "Type")]
    kind: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: &'a str,
}

/// Renders the IMDS body; `LastUpdated` is when the upstream issued them
/// (`Expiration` minus their `lifetime`).
pub fn imds_body(credentials: &Credentials, lifetime: Duration) -> Bytes {
    let issued = credentials.expiration - lifetime;
    zeroizing_json(&ImdsBody {
        code: "Success",
        last_updated: &format_expiration(issued),
        kind: "AWS-HMAC",
        access_key_id: &credentials.access_key_id,
        secret_access_key: credentials.secret_access_key.expose(),
        token: credentials.session_token.expose(),
        expiration: &format_expiration(credentials.expiration),
    })
}

/// The `credential_process` output.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessBody<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: &'a str,
}

/// Renders the `credential_process` JSON: `Version` 1, the keys, the
/// session token and `Expiration`.
pub fn credential_process_json(credentials: &Credentials) -> Zeroizing<String> {
    let expiration = format_expiration(credentials.expiration);
    let body = ProcessBody {
        version: 1,
        access_key_id: &credentials.access_key_id,
        secret_access_key: credentials.secret_access_key.expose(),
        session_token: credentials.session_token.expose(),
        expiration: &expiration,
    };
    Zeroizing::new(serde_json::to_string(&body).unwrap_or_default())
}

/// Renders an AWS shared credentials file holding one `profile` section
/// (and a comment saying when the keys expire).
pub fn credentials_file(profile: &str, credentials: &Credentials) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(256));
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "# Written by credagent; rewritten on every refresh. Do not edit."
    );
    let _ = writeln!(
        out,
        "# Expires {}",
        format_expiration(credentials.expiration)
    );
    let _ = writeln!(out, "[{profile}]");
    let _ = writeln!(out, "aws_access_key_id = {}", credentials.access_key_id);
    let _ = writeln!(
        out,
        "aws_secret_access_key = {}",
        credentials.secret_access_key.expose()
    );
    if !credentials.session_token.is_empty() {
        let _ = writeln!(
            out,
            "aws_session_token = {}",
            credentials.session_token.expose()
        );
    }
    out
}

/// Parses a JSON object body (an ECS answer, or the upstream's, which shares
/// its shape). The error names the position, never the content.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, WireError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(malformed("the answer is not a JSON object")),
        Err(e) => Err(malformed(format!(
            "not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// The field names of one answer shape that carries credentials.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The access key id.
    pub access_key_id: &'static str,
    /// The secret access key.
    pub secret_access_key: &'static str,
    /// The session token, if the shape has one (absent or null is empty).
    pub session_token: Option<&'static str>,
    /// The expiry, RFC 3339 with a zone.
    pub expiration: &'static str,
}

/// The ECS container-credentials shape, which the upstream's GET exchange
/// shares: `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`.
pub const ECS_FIELDS: Fields = Fields {
    access_key_id: "AccessKeyId",
    secret_access_key: "SecretAccessKey",
    session_token: Some("Token"),
    expiration: "Expiration",
};

/// The upstream's POST exchange ("Create access key from OIDC"):
/// `accessKeyId`, `secretKey`, `expiry`, and no session token.
pub const POST_EXCHANGE_FIELDS: Fields = Fields {
    access_key_id: "accessKeyId",
    secret_access_key: "secretKey",
    session_token: None,
    expiration: "expiry",
};

/// Takes the ECS fields out of `obj`: `AccessKeyId`, `SecretAccessKey`,
/// `Token` (absent or null is empty), `Expiration` (RFC 3339 with a zone,
/// held in UTC from here on) and `AccountId`. `role` is left unset.
pub fn credentials_from(
    obj: &mut Map<String, Value>,
    server_date: Option<SystemTime>,
) -> Result<Credentials, WireError> {
    credentials_with(obj, ECS_FIELDS, server_date)
}

/// Takes the credentials named by `fields` out of `obj`, as
/// [`credentials_from`] does for the ECS shape.
pub fn credentials_with(
    obj: &mut Map<String, Value>,
    fields: Fields,
    server_date: Option<SystemTime>,
) -> Result<Credentials, WireError> {
    let access_key_id = required(obj, fields.access_key_id)?;
    let secret_access_key = Secret::new(required(obj, fields.secret_access_key)?);
    let session_token = match fields.session_token.and_then(|f| obj.remove(f)) {
        None | Some(Value::Null) => Secret::new(String::new()),
        Some(Value::String(s)) => Secret::new(s),
        Some(_) => return Err(malformed("Token is not a string")),
    };
    let raw_expiration = Zeroizing::new(required(obj, fields.expiration)?);
    // A time whose UTC date falls outside years 1-9999 is refused here, so
    // no later conversion or formatting can fail.
    let expiration = OffsetDateTime::parse(&raw_expiration, &Rfc3339)
        .ok()
        .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
        .filter(|t| t.year() >= 1)
        .ok_or_else(|| {
            malformed(format!(
                "{} is not an RFC 3339 time with a zone (e.g. 2026-03-14T21:44:43Z)",
                fields.expiration
            ))
        })?;
    let account_id = obj.get("AccountId").and_then(Value::as_str).map(label);
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
        role: None,
        account_id,
        server_date,
    })
}

/// Parses an ECS container-credentials body (a running agent's answer).
pub fn parse_ecs(body: &[u8]) -> Result<Credentials, WireError> {
    credentials_from(&mut json_object(body)?, None)
}

/// Role names and account ids end up in logs: keep them short and printable.
pub fn label(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(512).collect()
}

fn required(obj: &mut Map<String, Value>, field: &str) -> Result<String, WireError> {
    match obj.remove(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(malformed(format!("{field} is empty"))),
        Some(_) => Err(malformed(format!("{field} is not a string"))),
        None => Err(malformed(format!("{field} is missing"))),
    }
}

fn malformed(reason: impl Into<String>) -> WireError {
    WireError(reason.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    use crate::credentials::sample as creds;

    #[test]
    fn expiration_is_utc_whole_seconds() {
        assert_eq!(
            format_expiration(datetime!(2026-03-14 21:44:43.999 +02:00)),
            "2026-03-14T19:44:43Z"
        );
        assert_eq!(
            format_expiration(datetime!(0001-01-01 00:00:00 UTC)),
            "0001-01-01T00:00:00Z"
        );
    }

    #[test]
    fn ecs_body_is_exact() {
        let body = ecs_body(&creds(""));
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"AccessKeyId":"AKID","SecretAccessKey":"s3cr3t","Token":"","Expiration":"2026-03-14T19:44:43Z"}"#
        );
        let mut c = creds("tok");
        c.account_id = Some("123".into());
        let v: Value = serde_json::from_slice(&ecs_body(&c)).unwrap();
        assert_eq!(v["Token"], "tok");
        assert_eq!(v["AccountId"], "123");
    }

    #[test]
    fn imds_body_is_exact() {
        let body = imds_body(&creds("tok"), Duration::from_secs(3600));
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"Code":"Success","LastUpdated":"2026-03-14T18:44:43Z","Type":"AWS-HMAC","AccessKeyId":"AKID","SecretAccessKey":"s3cr3t","Token":"tok","Expiration":"2026-03-14T19:44:43Z"}"#
        );
    }

    #[test]
    fn credential_process_json_is_exact() {
        assert_eq!(
            credential_process_json(&creds("tok")).as_str(),
            r#"{"Version":1,"AccessKeyId":"AKID","SecretAccessKey":"s3cr3t","SessionToken":"tok","Expiration":"2026-03-14T19:44:43Z"}"#
        );
    }

    #[test]
    fn credentials_file_has_one_profile() {
        let mut c = creds("");
        c.expiration = datetime!(2026-01-01 00:00:00 UTC);
        assert_eq!(
            credentials_file("app", &c).as_str(),
            "# Written by credagent; rewritten on every refresh. Do not edit.\n# Expires 2026-01-01T00:00:00Z\n[app]\naws_access_key_id = AKID\naws_secret_access_key = s3cr3t\n"
        );
        c.session_token = Secret::new("TOK");
        assert!(credentials_file("default", &c).ends_with("aws_session_token = TOK\n"));
    }

    #[test]
    fn ecs_round_trips() {
        let c = parse_ecs(&ecs_body(&creds("tok"))).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.expose()),
            ("AKID", "tok")
        );
        assert_eq!(format_expiration(c.expiration), "2026-03-14T19:44:43Z");
    }

    #[test]
    fn bad_bodies_are_refused_without_quoting_them() {
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
                r#"{"AccessKeyId":"A","SecretAccessKey":"TOPSECRET","Expiration":"0000-01-01T00:30:00+01:00"}"#,
                "Expiration is not an RFC 3339",
            ),
            (
                r#"{"AccessKeyId":"A","SecretAccessKey":"S"}"#,
                "Expiration is missing",
            ),
        ];
        for (body, want) in cases {
            let msg = parse_ecs(body.as_bytes()).unwrap_err().to_string();
            assert!(msg.contains(want), "{body}: {msg}");
            assert!(!msg.contains("TOPSECRET"), "{msg}");
        }
    }
}
