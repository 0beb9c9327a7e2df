//! The GET exchange (`CreateAccessKeyFromContainerCreds`): the raw JWT is the whole
//! `Authorization` value, and the 200 body is PascalCase, field for field as CoreWeave sends it.

use std::sync::atomic::Ordering;

use http::{header, HeaderMap, StatusCode};
use serde::Serialize;

use super::auth::{authenticate, principal};
use super::respond::{error, expiration, json_response, Resp};
use super::state::{now, Shared};

/// The 200 body.
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

/// The normal answer to a GET on the exchange path (the route and method are already checked).
pub(super) fn answer(shared: &Shared, headers: &HeaderMap) -> Resp {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
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
            cw_role: principal(&identity),
        },
    };
    match serde_json::to_vec(&body) {
        Ok(body) => {
            state.last_subject = Some(identity.sub);
            shared.successes_get.fetch_add(1, Ordering::SeqCst);
            json_response(StatusCode::OK, body.into())
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding credentials failed",
        ),
    }
}
