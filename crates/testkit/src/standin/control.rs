//! The control API under `/_standin/`: plain JSON with no authentication, for a rig that runs the
//! stand-in as a separate process (Python, Node, shell). Loopback test use only.
//!
//! | request | body | effect |
//! |---|---|---|
//! | `POST /_standin/token` | optional `{"namespace","service_account","audience","lifetime_secs","issuer"}` | 200 `text/plain`: a fresh token from the stand-in's own issuer (no trailing newline) |
//! | `POST /_standin/keys` | `{"access_key_id","secret_access_key","session_token"}` | switch the credentials handed out |
//! | `POST /_standin/fault` | `{"status":503}` (+ `"body":"…"` for a raw body), `{"throttle_retry_after":"2"}` or `{"throttle":true}`, `{"hang":true}`, `{"delay_ms":500}`, `{"close":true}`; add `"sticky":true` to apply it to every request; `{"clear":true}` clears all | queue (or stick) a [`Fault`] |
//! | `POST /_standin/lifetime` | `{"secs":900}` and/or `{"post_max_secs":600}` (`null`: no cap) | set the lifetime the GET grants (and the POST for `durationSeconds` 0); cap what the POST grants |
//! | `POST /_standin/post_exchange` | `{"mode":"offered"}`, `{"mode":"not-found"}` or `{"mode":"method-not-allowed"}` | offer the POST exchange, or refuse it with 404 or 405 |
//! | `GET /_standin/stats` | | the counts, records and settings below |
//!
//! `stats` answers `{"calls":N,"calls_get":N,"calls_post":N,"successes":N,"successes_get":N,
//! "successes_post":N,"last_sub":…,"last_post":…,"lifetime_secs":N,"post_max_secs":N|null,
//! "post_exchange":"offered"}`. `calls` counts every credential request (any method or outcome),
//! `calls_get`/`calls_post` those by method; `successes*` count normal 200 answers by exchange;
//! `last_sub` is the `sub` of the token behind the last success, or null; `last_post` is null or
//! what the last well-formed POST asked for: `{"durationSeconds":N,"orgId":"…","attributes":{…},
//! "contentType":"…"|null}` (its body without the `oidcToken`).
//!
//! Control requests are not counted as calls and faults do not apply to them. Error messages
//! never repeat request bodies, which may hold secrets.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use serde::{de::DeserializeOwned, Deserialize};

use super::handle::StandIn;
use super::respond::{error, json_response, with_date, Resp};
use super::state::{now, Shared};
use super::types::{Fault, PostExchange, CONTROL_PATH_PREFIX};
use crate::jwt::TokenSpec;

/// Control bodies are tiny; anything bigger is a mistake.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    namespace: Option<String>,
    service_account: Option<String>,
    audience: Option<String>,
    lifetime_secs: Option<u64>,
    issuer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysRequest {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    #[serde(default)]
    sticky: bool,
    #[serde(default)]
    clear: bool,
    status: Option<u16>,
    body: Option<String>,
    throttle_retry_after: Option<String>,
    #[serde(default)]
    throttle: bool,
    #[serde(default)]
    hang: bool,
    delay_ms: Option<u64>,
    #[serde(default)]
    close: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifetimeRequest {
    secs: Option<u64>,
    /// Absent: unchanged; `null`: no cap; a number: the cap.
    #[serde(default, deserialize_with = "present")]
    post_max_secs: Option<Option<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostExchangeRequest {
    mode: PostExchange,
}

/// Serves one `/_standin/…` request.
pub(super) async fn handle(
    shared: &std::sync::Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Resp {
    let handle = StandIn {
        shared: shared.clone(),
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let route = path.trim_start_matches(CONTROL_PATH_PREFIX);
    let want = match route {
        "token" | "keys" | "fault" | "lifetime" | "post_exchange" => Method::POST,
        "stats" => Method::GET,
        _ => return error(StatusCode::NOT_FOUND, "no such control route"),
    };
    if method != want {
        let mut resp = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "wrong method for this control route",
        );
        let allow = HeaderValue::from_static(if want == Method::GET { "GET" } else { "POST" });
        resp.headers_mut().insert(header::ALLOW, allow);
        return resp;
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "body unreadable or larger than 64 KiB",
            )
        }
    };
    let result = match route {
        "token" => parse(&body).and_then(|r| token(&handle, r)),
        "keys" => parse(&body).map(|r: KeysRequest| {
            handle.set_keys(&r.access_key_id, &r.secret_access_key, &r.session_token);
            ok()
        }),
        "fault" => parse(&body).and_then(|r| fault(&handle, r)),
        "lifetime" => parse(&body).and_then(|r| lifetime(&handle, r)),
        "post_exchange" => parse(&body).map(|r: PostExchangeRequest| {
            handle.set_post_exchange(r.mode);
            ok()
        }),
        _ => Ok(stats(&handle)),
    };
    result.unwrap_or_else(|Reject(status, message)| error(status, &message))
}

/// A control request that cannot be carried out: the status and a message that never quotes the
/// request body.
struct Reject(StatusCode, String);

/// Parses a JSON body; an empty body is the type's default where that is allowed.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Reject> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        // Not `e.to_string()`: serde may quote the offending value, which can be a secret.
        let message = format!(
            "invalid JSON body ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        );
        Reject(StatusCode::BAD_REQUEST, message)
    })
}

fn token(handle: &StandIn, r: TokenRequest) -> Result<Resp, Reject> {
    let Some(issuer) = handle.issuer() else {
        return Err(Reject(
            StatusCode::CONFLICT,
            "this stand-in has no issuer".into(),
        ));
    };
    let defaults = TokenSpec::default();
    let spec = TokenSpec {
        issuer: r.issuer.unwrap_or(defaults.issuer),
        namespace: r.namespace.unwrap_or(defaults.namespace),
        service_account: r.service_account.unwrap_or(defaults.service_account),
        audience: r
            .audience
            .or_else(|| handle.shared.audience.clone())
            .unwrap_or(defaults.audience),
        lifetime: r
            .lifetime_secs
            .map_or(defaults.lifetime, Duration::from_secs),
    };
    let token = issuer
        .service_account_token(&spec, now())
        .map_err(|e| Reject(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut resp = with_date(Response::new(Full::new(Bytes::from(token))));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

fn fault(handle: &StandIn, r: FaultRequest) -> Result<Resp, Reject> {
    if r.clear {
        handle.clear_faults();
        return Ok(ok());
    }
    if r.body.is_some() && r.status.is_none() {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "`body` needs `status`".into(),
        ));
    }
    let throttle = (r.throttle || r.throttle_retry_after.is_some()).then_some(Fault::Throttle {
        retry_after: r.throttle_retry_after,
    });
    let status = r.status.map(|status| match r.body {
        Some(body) => Fault::Body { status, body },
        None => Fault::Status(status),
    });
    let candidates = [
        status,
        throttle,
        r.hang.then_some(Fault::Hang),
        r.delay_ms.map(|ms| Fault::Delay(Duration::from_millis(ms))),
        r.close.then_some(Fault::CloseConnection),
    ];
    let mut faults = candidates.into_iter().flatten();
    let (Some(fault), None) = (faults.next(), faults.next()) else {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "give exactly one fault kind, or `clear`".into(),
        ));
    };
    if r.sticky {
        handle.set_sticky_fault(Some(fault));
    } else {
        handle.push_fault(fault);
    }
    Ok(ok())
}

fn lifetime(handle: &StandIn, r: LifetimeRequest) -> Result<Resp, Reject> {
    if r.secs.is_none() && r.post_max_secs.is_none() {
        return Err(Reject(
            StatusCode::BAD_REQUEST,
            "give `secs`, `post_max_secs` or both".into(),
        ));
    }
    if let Some(secs) = r.secs {
        handle.set_lifetime(Duration::from_secs(secs));
    }
    if let Some(max) = r.post_max_secs {
        handle.set_post_max_lifetime(max.map(Duration::from_secs));
    }
    Ok(ok())
}

fn stats(handle: &StandIn) -> Resp {
    let stats = serde_json::json!({
        "calls": handle.calls(),
        "calls_get": handle.calls_get(),
        "calls_post": handle.calls_post(),
        "successes": handle.successes(),
        "successes_get": handle.successes_get(),
        "successes_post": handle.successes_post(),
        "last_sub": handle.last_subject(),
        "last_post": handle.last_post(),
        "lifetime_secs": handle.lifetime().as_secs(),
        "post_max_secs": handle.post_max_lifetime().map(|max| max.as_secs()),
        "post_exchange": handle.post_exchange(),
    });
    json_response(StatusCode::OK, stats.to_string().into())
}

/// Tells a field that is present (even as `null`, which is `Some(None)`) from one that is absent
/// (`None`, with `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

fn ok() -> Resp {
    json_response(StatusCode::OK, Bytes::from_static(br#"{"ok":true}"#))
}
