//! Reading an AdmissionReview's body: `application/json` only, bounded in size (`--max-body-bytes`,
//! checked against `Content-Length` before reading and while reading), in
//! time (`--body-timeout`) and in the memory all bodies in flight share
//! (the [`Budget`]'s body pool, reserved before a byte is read).
//!
//! The body is read into one buffer of its declared length, so it is held
//! once (collecting frames and joining them would hold it twice).

use std::time::Duration;

use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::Request;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::budget::{Budget, Busy, Reservation};

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not sent as `application/json`.
    #[error("the body must be an AdmissionReview sent as application/json")]
    NotJson,
    /// Larger than the limit (declared, or found while reading).
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// Not received in time.
    #[error("the body did not arrive within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The connection failed while reading it.
    #[error("the body could not be read")]
    Unreadable,
    /// No room in the body pool in time.
    #[error(transparent)]
    Busy(#[from] Busy),
}

/// A body read whole, and its share of the body pool.
#[derive(Debug)]
pub struct Read {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Given back when dropped.
    pub reservation: Reservation,
}

/// Reads the body of `req`: at most `max` bytes, within `timeout` once its
/// share of `budget` is reserved.
pub async fn read(
    req: Request<Incoming>,
    max: usize,
    timeout: Duration,
    budget: &Budget,
) -> Result<Read, BodyError> {
    if !is_json(req.headers().get(CONTENT_TYPE)) {
        return Err(BodyError::NotJson);
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let capacity = match declared {
        Some(n) if n > max as u64 => return Err(BodyError::TooLarge(max)),
        // hyper delivers exactly the declared length, or fails.
        Some(n) => n as usize,
        // Chunked: the whole limit, since it may all come.
        None => max,
    };
    let reservation = budget.body(capacity).await?;
    let mut bytes = Vec::with_capacity(capacity);
    let mut body = req.into_body();
    let collect = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Unreadable)?;
            if let Some(data) = frame.data_ref() {
                if bytes.len() + data.len() > max {
                    return Err(BodyError::TooLarge(max));
                }
                bytes.extend_from_slice(data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(BodyError::Timeout(timeout)),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) => Ok(Read { bytes, reservation }),
    }
}

/// `application/json`, with or without parameters.
fn is_json(value: Option<&HeaderValue>) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let v = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(is_json(v("application/json").as_ref()));
        assert!(is_json(v("Application/JSON; charset=utf-8").as_ref()));
        assert!(!is_json(v("text/plain").as_ref()));
        assert!(!is_json(v("application/json-patch+json").as_ref()));
        assert!(!is_json(None));
    }
}
