//! The POST exchange (`CreateAccessKeyFromOIDC`): the token, the org and the lifetime asked for
//! travel in a JSON body, with no `Authorization` (one that is sent is ignored), and the 200 body
//! is camelCase with no session token.
//!
//! The body is checked before anything else, each field with a 400 `invalid_argument` that names
//! it. The stand-in is stricter than a protobuf JSON parser on purpose (which would also take
//! `"3600"` and the `duration_seconds` spelling), so that a client sends the documented form. The
//! `Content-Type` is recorded, not checked.
//! - `durationSeconds`: required, a JSON integer from 0 to 43200 (12 h); `"3600"`, `1.5`,
//!   `3600.0`, negatives and `null` are refused. 0 asks for the stand-in's default lifetime (the
//!   GET's); the grant is capped by the POST's maximum lifetime when one is set.
//! - `orgId`, `oidcToken`: required non-empty strings.
//! - `attributes`: optional (absent or `null` is `{}`); an object of at most 64 entries whose keys
//!   (non-empty) and string values are at most 1024 bytes each. Echoed in the 200 as received.
//! - other fields are ignored (a choice: whether CoreWeave refuses unknown fields is unverified).
//!
//! The body is at most 64 KiB (413 `resource_exhausted` beyond). Then, as the GET does: a wrong
//! `orgId` gets 404 `not_found` (the GET's answer for a wrong org in its path), and the token goes
//! through the same verifiers with the same 401s. Error messages never quote the token or an
//! attribute value.

use std::{collections::BTreeMap, sync::atomic::Ordering, time::Duration};

use http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::{authenticate, principal};
use super::respond::{error, expiration, json_response, Resp};
use super::state::{now, Shared};
use super::types::PostRequest;
use crate::secret::Secret;

/// The largest body accepted.
pub(super) const MAX_BODY: usize = 64 * 1024;
/// The largest `durationSeconds` (12 h), as CoreWeave's API reference states.
pub(super) const MAX_DURATION_SECONDS: u32 = 43_200;
/// The most attributes accepted.
pub(super) const MAX_ATTRIBUTES: usize = 64;
/// The longest attribute key or value, in bytes.
pub(super) const MAX_ATTRIBUTE_BYTES: usize = 1024;
/// Keys up to this long are named in error messages; longer ones only by their length.
const NAMED_KEY_BYTES: usize = 64;

/// A well-formed POST body. `Debug` redacts the token.
#[derive(Debug)]
pub(super) struct PostBody {
    /// What it asked for, as recorded for tests.
    pub(super) request: PostRequest,
    oidc_token: Secret,
    /// The attributes in the order received, for the echo.
    attributes: Map<String, Value>,
}

/// Why a POST body is refused: the status and a message that never quotes the token.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal(pub(super) StatusCode, pub(super) String);

/// The 200 body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsBody<'a> {
    access_key_id: &'a str,
    secret_key: &'a str,
    principal_name: String,
    expiry: String,
    attributes: &'a Map<String, Value>,
}

/// Reads and checks the body of a POST on the exchange path.
pub(super) async fn read(
    headers: &HeaderMap,
    body: hyper::body::Incoming,
) -> Result<PostBody, Refusal> {
    let too_large = || {
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {} KiB", MAX_BODY / 1024),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(too_large()),
        Err(_) => return Err(bad("body unreadable")),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    parse(&bytes, content_type)
}

/// Checks a POST body (see the module docs for the rules).
pub(super) fn parse(bytes: &[u8], content_type: Option<String>) -> Result<PostBody, Refusal> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        // Not `e.to_string()`: serde may quote the offending text, which can be the token.
        bad(format!(
            "body is not JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut fields) = value else {
        return Err(bad("body must be a JSON object"));
    };
    let duration_seconds = match fields.get("durationSeconds") {
        None | Some(Value::Null) => {
            return Err(bad(
                "durationSeconds is required: an integer from 0 to 43200",
            ))
        }
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= MAX_DURATION_SECONDS)
            .ok_or_else(|| bad("durationSeconds must be an integer from 0 to 43200"))?,
    };
    let org_id = required_string(&mut fields, "orgId")?;
    let oidc_token = Secret::new(required_string(&mut fields, "oidcToken")?);
    let attributes = match fields.remove("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(attributes)) => attributes,
        Some(_) => {
            return Err(bad(
                "attributes must be a JSON object of strings to strings",
            ))
        }
    };
    let recorded = check_attributes(&attributes)?;
    Ok(PostBody {
        request: PostRequest {
            duration_seconds,
            org_id,
            attributes: recorded,
            content_type,
        },
        oidc_token,
        attributes,
    })
}

/// The normal answer to a POST on the exchange path, once its body was read.
pub(super) fn answer(shared: &Shared, body: Result<PostBody, Refusal>) -> Resp {
    let body = match body {
        Ok(body) => body,
        Err(Refusal(status, message)) => return error(status, &message),
    };
    if body.request.org_id != shared.org_id {
        return error(StatusCode::NOT_FOUND, "no such organization");
    }
    let now = now();
    let identity = match authenticate(shared, body.oidc_token.expose(), now) {
        Ok(identity) => identity,
        // The same fixed messages as the GET's; they never contain the token.
        Err(e) => return error(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    let mut state = shared.state();
    let asked = match body.request.duration_seconds {
        0 => state.lifetime,
        secs => Duration::from_secs(secs.into()),
    };
    let granted = state.post.max_lifetime.map_or(asked, |max| asked.min(max));
    let Some(expiry) = expiration(now, granted) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "credential lifetime out of range",
        );
    };
    let answer = CredentialsBody {
        access_key_id: &state.access_key_id,
        secret_key: state.secret_access_key.expose(),
        principal_name: principal(&identity),
        expiry,
        attributes: &body.attributes,
    };
    match serde_json::to_vec(&answer) {
        Ok(answer) => {
            state.last_subject = Some(identity.sub);
            shared.successes_post.fetch_add(1, Ordering::SeqCst);
            json_response(StatusCode::OK, answer.into())
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding credentials failed",
        ),
    }
}

/// Takes the non-empty string `name` out of `fields`.
fn required_string(fields: &mut Map<String, Value>, name: &str) -> Result<String, Refusal> {
    match fields.remove(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(bad(format!("{name} is required: a non-empty string"))),
    }
}

/// Checks the attributes' bounds and types, and returns them as strings.
fn check_attributes(attributes: &Map<String, Value>) -> Result<BTreeMap<String, String>, Refusal> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(bad(format!(
            "attributes has {} entries; at most {MAX_ATTRIBUTES} are accepted",
            attributes.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (key, value) in attributes {
        if key.is_empty() {
            return Err(bad("attributes: a key is empty"));
        }
        if key.len() > MAX_ATTRIBUTE_BYTES {
            return Err(bad(format!(
                "attributes: {} is longer than {MAX_ATTRIBUTE_BYTES} bytes",
                key_name(key)
            )));
        }
        let Value::String(value) = value else {
            return Err(bad(format!(
                "attributes: the value of {} must be a string",
                key_name(key)
            )));
        };
        if value.len() > MAX_ATTRIBUTE_BYTES {
            return Err(bad(format!(
                "attributes: the value of {} is longer than {MAX_ATTRIBUTE_BYTES} bytes",
                key_name(key)
            )));
        }
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

/// A key as an error message names it: quoted if short, else by its length only.
fn key_name(key: &str) -> String {
    if key.len() <= NAMED_KEY_BYTES {
        format!("key {key:?}")
    } else {
        format!("a key of {} bytes", key.len())
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}
