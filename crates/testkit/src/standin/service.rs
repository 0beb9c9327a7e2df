//! The credential endpoint: every request outside the control API goes through the same steps,
//! so that faults, counting and records apply to the GET and the POST exchange alike:
//! 1. route it (the GET's path, the POST's path, or nothing);
//! 2. read a POST's body and record what it asks for, and record the `Authorization` length;
//! 3. count it (after the records, so a test woken by `wait_for_calls` sees them);
//! 4. answer with the next fault if there is one, else normally (`get`, `post`, 404 or 405).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, request::Parts, HeaderValue, Method, Request, StatusCode};
use tokio_util::sync::CancellationToken;

use super::respond::{error, json_response, Dropped, Resp};
use super::state::Shared;
use super::types::{Fault, PostExchange, POST_EXCHANGE_PATH};
use super::{get, post};

/// Where a credential request goes.
#[derive(Debug)]
enum Route {
    /// A GET on the GET exchange's path.
    Get,
    /// A POST on the POST exchange's path, while it is offered, with its body read and checked.
    Post(Result<post::PostBody, post::Refusal>),
    /// 404.
    NotFound,
    /// 405 with this `Allow` value.
    MethodNotAllowed(&'static str),
}

/// Serves one credential request (anything outside the control API).
pub(super) async fn handle(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    req: Request<hyper::body::Incoming>,
) -> Result<Resp, Dropped> {
    let (parts, body) = req.into_parts();
    let auth = parts.headers.get(header::AUTHORIZATION).map(|v| {
        let bytes = v.as_bytes();
        let bearer = bytes.len() >= 7 && bytes[..7].eq_ignore_ascii_case(b"bearer ");
        (bytes.len(), bearer)
    });
    let route = route(&shared, &parts, body).await;
    {
        let mut state = shared.state();
        state.last_authorization = auth;
        if let Route::Post(Ok(post)) = &route {
            state.last_post = Some(post.request.clone());
        }
    }
    shared.count(&parts.method);

    if let Some(fault) = shared.next_fault() {
        let is_post = matches!(route, Route::Post(_));
        if let Some(resp) = inject(fault, is_post, &shutdown).await? {
            return Ok(resp);
        }
    }
    Ok(match route {
        Route::Get => get::answer(&shared, &parts.headers),
        Route::Post(body) => post::answer(&shared, body),
        Route::NotFound => error(StatusCode::NOT_FOUND, "no such route or organization"),
        Route::MethodNotAllowed(allow) => {
            let message = match allow {
                "" => "no method is allowed here".to_owned(),
                allow => format!("only {allow} is allowed"),
            };
            let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, &message);
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            resp
        }
    })
}

/// Routes a request, reading the body of a POST on the POST's path. That path refuses as
/// configured when the POST is not offered; other bodies are never read.
async fn route(shared: &Shared, parts: &Parts, body: hyper::body::Incoming) -> Route {
    let (method, path) = (&parts.method, parts.uri.path());
    if path == shared.path {
        return match *method {
            Method::GET => Route::Get,
            _ => Route::MethodNotAllowed("GET"),
        };
    }
    if path != POST_EXCHANGE_PATH {
        return Route::NotFound;
    }
    let offered = shared.state().post.exchange;
    match (offered, method) {
        (PostExchange::Offered, &Method::POST) => {
            Route::Post(post::read(&parts.headers, body).await)
        }
        (PostExchange::Offered, _) => Route::MethodNotAllowed("POST"),
        (PostExchange::NotFound, _) => Route::NotFound,
        (PostExchange::MethodNotAllowed, _) => Route::MethodNotAllowed(""),
    }
}

/// Carries out `fault`: `Ok(Some)` answers instead of the normal answer, `Ok(None)` goes on to
/// the normal answer (after a delay), `Err` drops the connection.
async fn inject(
    fault: Fault,
    is_post: bool,
    shutdown: &CancellationToken,
) -> Result<Option<Resp>, Dropped> {
    let status_or_500 =
        |status| StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match fault {
        Fault::Status(status) => Ok(Some(error(status_or_500(status), "injected fault"))),
        Fault::Throttle { retry_after } => {
            let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "injected throttle");
            match retry_after.as_deref().map(HeaderValue::from_str) {
                None => {}
                Some(Ok(value)) => {
                    resp.headers_mut().insert(header::RETRY_AFTER, value);
                }
                Some(Err(_)) => tracing::warn!("stand-in: Retry-After value is not a valid header"),
            }
            Ok(Some(resp))
        }
        Fault::Delay(delay) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => Ok(None),
                () = shutdown.cancelled() => Err(Dropped),
            }
        }
        Fault::Hang => {
            shutdown.cancelled().await;
            Err(Dropped)
        }
        Fault::Body { status, body } => Ok(Some(json_response(status_or_500(status), body.into()))),
        Fault::CloseConnection => Err(Dropped),
        Fault::TruncatedBody => {
            // The start of the body this route would send, cut short.
            let start: &'static [u8] = if is_post {
                b"{\"accessKeyId\":\"A"
            } else {
                b"{\"AccessKeyId\":\"A"
            };
            let mut resp = json_response(StatusCode::OK, Bytes::from_static(start));
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("4096"));
            Ok(Some(resp))
        }
    }
}
