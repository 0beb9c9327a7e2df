//! One-shot operator commands: `credential-process`, `exchange`,
//! `principal` and `doctor`. Each turns a manual step of the CoreWeave
//! set-up guide (curl | jq, jwt.io, hand-built policy principals) into a
//! command that says what is wrong and how to fix it.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

mod check;
pub mod credential_process;
pub mod doctor;
pub mod exchange;
pub mod principal;
mod reach;

/// GETs `url` (plain http: the agent's own loopback listeners) with
/// `authorization`, within `timeout`. Returns the status and a body of at
/// most 64 KiB.
pub async fn local_get(
    url: &Uri,
    authorization: Option<&str>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(timeout));
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(http);
    let mut req = Request::get(url.clone());
    if let Some(auth) = authorization {
        req = req.header(http::header::AUTHORIZATION, auth);
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let call = async {
        let rsp = client
            .request(req)
            .await
            .map_err(|e| crate::outbound::error_chain(&e))?;
        let status = rsp.status();
        let body = Limited::new(rsp.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
}

/// `1h02m`, `59m`, `45s`: a short human duration.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
