//! What the Kubernetes API sends about ServiceAccounts, read down to what
//! the cache keeps: the errors, one account's state, a list page, and the
//! watch stream's events (newline-delimited JSON).

use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::webhook::mutate::names;

/// Largest line of a watch stream (one event: one ServiceAccount).
pub const MAX_EVENT_BYTES: usize = 2 * 1024 * 1024;

/// A Kubernetes API call failed. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// No in-cluster configuration.
    #[error("no in-cluster Kubernetes configuration: {0}")]
    Config(String),
    /// The token file.
    #[error("cannot read the service-account token {0}")]
    Token(String),
    /// The request did not get an answer.
    #[error("Kubernetes API: {0}")]
    Transport(String),
    /// 410 Gone: the resource version is too old; list again.
    #[error("Kubernetes API: 410 Gone (resource version too old)")]
    Gone,
    /// Another status than expected.
    #[error("Kubernetes API: HTTP {status} for {what}")]
    Status {
        /// The status code.
        status: u16,
        /// What was asked.
        what: &'static str,
    },
    /// The answer is not what the API documents.
    #[error("Kubernetes API: unexpected answer: {0}")]
    Decode(String),
}

/// One ServiceAccount as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Whether `caios.coreweave.com/inject` is `"true"`.
    pub opted_in: bool,
}

/// One page of `GET /api/v1/serviceaccounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// The accounts on this page.
    pub items: Vec<AccountState>,
    /// The list's resourceVersion (watch from it).
    pub resource_version: String,
    /// The next page's token, if any.
    pub continue_token: Option<String>,
}

/// One event of a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// ADDED or MODIFIED.
    Upsert(AccountState, String),
    /// DELETED.
    Delete(AccountState, String),
    /// BOOKMARK: only a newer resourceVersion.
    Bookmark(String),
}

#[derive(Deserialize)]
struct Object {
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
    #[serde(default)]
    annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    items: Vec<Object>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: Value,
}

/// A watch's event stream: newline-delimited JSON.
#[derive(Debug)]
pub struct WatchStream {
    body: Incoming,
    buf: Vec<u8>,
}

// === impl WatchStream ===

impl WatchStream {
    /// The stream of the watch answer `body`.
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: Vec::new(),
        }
    }

    /// The next event; `Ok(None)` when the server ends the stream, waiting
    /// at most `idle` for a byte.
    pub async fn next(&mut self, idle: Duration) -> Result<Option<WatchEvent>, KubeError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_event(&line).map(Some);
            }
            if self.buf.len() > MAX_EVENT_BYTES {
                return Err(KubeError::Decode(format!(
                    "a watch event over {MAX_EVENT_BYTES} bytes"
                )));
            }
            let frame = match tokio::time::timeout(idle, self.body.frame()).await {
                Err(_) => {
                    return Err(KubeError::Transport(format!(
                        "the watch was silent for {} s",
                        idle.as_secs()
                    )))
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(KubeError::Transport(e.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

fn parse_event(line: &[u8]) -> Result<WatchEvent, KubeError> {
    let raw: RawEvent =
        serde_json::from_slice(line).map_err(|e| KubeError::Decode(e.to_string()))?;
    if raw.kind == "ERROR" {
        let code = raw.object.get("code").and_then(Value::as_u64).unwrap_or(0);
        return Err(if code == 410 {
            KubeError::Gone
        } else {
            KubeError::Status {
                status: u16::try_from(code).unwrap_or(0),
                what: "watch event",
            }
        });
    }
    let object: Object =
        serde_json::from_value(raw.object).map_err(|e| KubeError::Decode(e.to_string()))?;
    let rv = object.metadata.resource_version.clone();
    Ok(match raw.kind.as_str() {
        "ADDED" | "MODIFIED" => WatchEvent::Upsert(account(object.metadata), rv),
        "DELETED" => WatchEvent::Delete(account(object.metadata), rv),
        "BOOKMARK" => WatchEvent::Bookmark(rv),
        _ => return Err(KubeError::Decode("unknown watch event type".into())),
    })
}

fn account(m: Metadata) -> AccountState {
    let opted_in = m
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::COREWEAVE_SA_INJECT))
        .and_then(Value::as_str)
        == Some("true");
    AccountState {
        namespace: m.namespace,
        name: m.name,
        opted_in,
    }
}

/// One ServiceAccount (the answer of a GET).
pub fn parse_account(body: &[u8]) -> Result<AccountState, KubeError> {
    let object: Object =
        serde_json::from_slice(body).map_err(|e| KubeError::Decode(e.to_string()))?;
    Ok(account(object.metadata))
}

/// One page of a LIST.
pub fn parse_list(body: &[u8]) -> Result<ListPage, KubeError> {
    let list: List = serde_json::from_slice(body).map_err(|e| KubeError::Decode(e.to_string()))?;
    Ok(ListPage {
        items: list
            .items
            .into_iter()
            .map(|o| account(o.metadata))
            .collect(),
        resource_version: list.metadata.resource_version,
        continue_token: list.metadata.continue_token.filter(|c| !c.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        let e = parse_event(br#"{"type":"ADDED","object":{"metadata":{"namespace":"a","name":"b","resourceVersion":"7","annotations":{"caios.coreweave.com/inject":"true"}}}}"#).unwrap();
        assert_eq!(
            e,
            WatchEvent::Upsert(
                AccountState {
                    namespace: "a".into(),
                    name: "b".into(),
                    opted_in: true
                },
                "7".into()
            )
        );
        let e = parse_event(br#"{"type":"BOOKMARK","object":{"kind":"ServiceAccount","metadata":{"resourceVersion":"9"}}}"#).unwrap();
        assert_eq!(e, WatchEvent::Bookmark("9".into()));
        let e = parse_event(
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}"#,
        );
        assert_eq!(e, Err(KubeError::Gone));
        assert!(parse_event(b"{").is_err());
    }
}
