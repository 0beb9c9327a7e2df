//! What a listener serves: the [`Routes`] trait, and the answers every
//! route shares (JSON errors, plain text).

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

/// A response body.
pub type Body = Full<Bytes>;

/// An answer and the route label it is counted under.
pub type Answer = (&'static str, Response<Body>);

/// Answers requests for one listener, with the route label for metrics.
pub trait Routes: Send + Sync + 'static {
    /// The answer; `std::future::Ready` for routes that answer from memory.
    type Future: Future<Output = Answer> + Send + 'static;

    /// Starts answering `req`, which came from `peer`. Only what the answer
    /// needs is copied out of the request.
    fn route(&self, req: &Request<Incoming>, peer: SocketAddr) -> Self::Future;

    /// Starts answering `req`, which the server has no further use for, so
    /// a route may take parts of it for the answer. The server calls this;
    /// by default it is [`Self::route`].
    fn route_owned(&self, req: Request<Incoming>, peer: SocketAddr) -> Self::Future {
        self.route(&req, peer)
    }
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    text_owned(status, Bytes::from_static(body.as_bytes()))
}

/// A plain-text answer with a body built at run time.
pub fn text_owned(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| internal_error())
}

/// 405 with `Allow: GET`.
pub fn method_not_allowed() -> Response<Body> {
    let mut rsp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "only GET is supported",
    );
    rsp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET"));
    rsp
}

/// A JSON error body. `Code`/`Message` are what the JS SDK reads; the
/// lowercase pair is what the Go and Java SDKs read. Neither ever holds a
/// secret: both come from fixed strings.
pub fn error(status: StatusCode, code: &'static str, message: &'static str) -> Response<Body> {
    let body = serde_json::json!({
        "Code": code, "Message": message, "code": code, "message": message,
    });
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| internal_error())
}

/// [`error`] with a `Retry-After` of `seconds` (at least 1): what a caller
/// that should come back later is told.
pub fn retry_later(
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    seconds: u64,
) -> Response<Body> {
    let mut rsp = error(status, code, message);
    rsp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    rsp
}

/// The answer when building an answer failed (it cannot, for fixed headers).
pub fn internal_error() -> Response<Body> {
    let mut rsp = Response::new(Full::new(Bytes::from_static(
        b"{\"Code\":\"InternalError\",\"Message\":\"internal error\"}",
    )));
    *rsp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    rsp
}
