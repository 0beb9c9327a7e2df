//! The credential endpoint: routing, fault injection, token checks and the PascalCase answer.

use std::{sync::atomic::Ordering, sync::Arc, time::SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::respond::{error, expiration, json_response, Dropped, Resp};
use super::state::{now, Shared};
use super::types::Fault;
use crate::error::StandInError;
use crate::jwt;

/// The 200 body, field for field as CoreWeave sends it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsBody<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: String,
    #[serde(rename = "attributes")]
    attributes: Attributes,
}

#[derive(Serialize)]
struct Attributes {
    #[serde(rename = "cw-role")]
    cw_role: String,
}

/// Serves one credential request (anything outside the control API).
pub(super) async fn handle(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    req: Request<hyper::body::Incoming>,
) -> Result<Resp, Dropped> {
    let auth = req.headers().get(header::AUTHORIZATION).map(|v| {
        let bytes = v.as_bytes();
        let bearer = bytes.len() >= 7 && bytes[..7].eq_ignore_ascii_case(b"bearer ");
        (bytes.len(), bearer)
    });
    // Record before counting, so a test woken by `wait_for_calls` sees this request's header.
    shared.state().last_authorization = auth;
    shared.calls.send_modify(|calls| *calls += 1);

    match shared.next_fault() {
        None => {}
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(error(status, "injected fault"));
        }
        Some(Fault::Throttle { retry_after }) => {
            let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "injected throttle");
            match retry_after.as_deref().map(HeaderValue::from_str) {
                None => {}
                Some(Ok(value)) => {
                    resp.headers_mut().insert(header::RETRY_AFTER, value);
                }
                Some(Err(_)) => tracing::warn!("stand-in: Retry-After value is not a valid header"),
            }
            return Ok(resp);
        }
        Some(Fault::Delay(delay)) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return Err(Dropped),
            }
        }
        Some(Fault::Hang) => {
            shutdown.cancelled().await;
            return Err(Dropped);
        }
        Some(Fault::Body { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(json_response(status, body.into()));
        }
        Some(Fault::CloseConnection) => return Err(Dropped),
        Some(Fault::TruncatedBody) => {
            let mut resp =
                json_response(StatusCode::OK, Bytes::from_static(b"{\"AccessKeyId\":\"A"));
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("4096"));
            return Ok(resp);
        }
    }
    Ok(exchange(&shared, &req))
}

/// The normal answer to a credential request.
fn exchange<B>(shared: &Shared, req: &Request<B>) -> Resp {
    if req.uri().path() != shared.path {
        return error(StatusCode::NOT_FOUND, "no such route or organization");
    }
    if req.method() != Method::GET {
        let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "only GET is allowed");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return resp;
    }
    let Some(auth) = req.headers().get(header::AUTHORIZATION) else {
        return error(StatusCode::UNAUTHORIZED, "missing Authorization header");
    };
    let Ok(token) = auth.to_str() else {
        return error(
            StatusCode::UNAUTHORIZED,
            "Authorization header is not a token",
        );
    };
    let now = now();
    let identity = match authenticate(shared, token, now) {
        Ok(identity) => identity,
        // The message is a fixed string per failure kind; it never contains the token.
        Err(e) => return error(StatusCode::UNAUTHORIZED, &e.to_string()),
    };
    let mut state = shared.state();
    let Some(expiration) = expiration(now, state.lifetime) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "credential lifetime out of range",
        );
    };
    let body = CredentialsBody {
        access_key_id: &state.access_key_id,
        secret_access_key: state.secret_access_key.expose(),
        token: state.session_token.expose(),
        expiration,
        attributes: Attributes {
            cw_role: format!("{}:{}", identity.iss, identity.sub),
        },
    };
    match serde_json::to_vec(&body) {
        Ok(body) => {
            state.last_subject = Some(identity.sub.clone());
            shared.successes.fetch_add(1, Ordering::SeqCst);
            json_response(StatusCode::OK, body.into())
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding credentials failed",
        ),
    }
}

/// Accepts `token` if one verifier verifies it and its claims are valid now. A failure against
/// one verifier is not final. If every verifier fails, the error is `Signature` when at least one
/// verifier had the token's algorithm, and `Algorithm` otherwise.
fn authenticate(
    shared: &Shared,
    token: &str,
    now: SystemTime,
) -> Result<jwt::Identity, StandInError> {
    // Verifiers are cheap to clone (an `Arc` of key bytes); no lock is held while verifying.
    let verifiers = shared.state().verifiers.clone();
    let mut failure = StandInError::Algorithm;
    for verifier in &verifiers {
        match verifier.verify(token) {
            Ok(claims) => return jwt::check_claims(&claims, now, shared.audience.as_deref()),
            Err(e @ StandInError::Malformed(_)) => return Err(e),
            Err(StandInError::Algorithm) => {}
            Err(e) => failure = e,
        }
    }
    Err(failure)
}
