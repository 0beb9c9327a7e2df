//! Building answers: the JSON error body with its gRPC-style code, JSON responses with a `Date`
//! header, and the expiry timestamp format. Both the credential endpoint and the control API use
//! them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use time::{macros::format_description, OffsetDateTime};

use super::state::now;

/// The response type of every stand-in route.
pub(super) type Resp = Response<Full<Bytes>>;

/// Returned to hyper to drop the connection without answering (`Fault::CloseConnection`, or a
/// `Fault::Hang`/`Fault::Delay` cut short by shutdown).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose by the stand-in")]
pub(super) struct Dropped;

/// `now + lifetime` as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds), or `None` if out of range.
pub(super) fn expiration(now: SystemTime, lifetime: Duration) -> Option<String> {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs()
        .checked_add(lifetime.as_secs())?;
    let at = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .ok()
}

/// A JSON error body `{"code","message"}` with a gRPC-style code name for `status`.
pub(super) fn error(status: StatusCode, message: &str) -> Resp {
    let code = match status.as_u16() {
        400 => "invalid_argument",
        401 => "unauthenticated",
        403 => "permission_denied",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "failed_precondition",
        413 => "resource_exhausted",
        429 => "resource_exhausted",
        500 => "internal",
        501 => "unimplemented",
        503 => "unavailable",
        504 => "deadline_exceeded",
        _ => "unknown",
    };
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    json_response(status, body.into())
}

/// `status` with `body` as `application/json` and a `Date` header.
pub(super) fn json_response(status: StatusCode, body: Bytes) -> Resp {
    let mut resp = with_date(Response::new(Full::new(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Adds a `Date` header (IMF-fixdate) from the stand-in's clock.
pub(super) fn with_date(mut resp: Resp) -> Resp {
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(now())) {
        resp.headers_mut().insert(header::DATE, date);
    }
    resp
}
