//! Writing the AdmissionReview response.
//!
//! Always `apiVersion: admission.k8s.io/v1`, `kind: AdmissionReview` and the
//! request's `uid` (API servers reject a response without them). The patch
//! is the JSON array of operations, base64-encoded (how Go encodes `[]byte`,
//! and what the API server decodes), with `patchType: JSONPatch`; both are
//! left out when there is nothing to change.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::patch::{self, Op};
use super::review::{API_VERSION, KIND};

/// Most warnings sent; the rest are summed up in one more.
pub const MAX_WARNINGS: usize = 16;
/// Longest warning sent, in characters (the API server may cut longer ones).
pub const MAX_WARNING_CHARS: usize = 256;
/// Longest refusal message sent, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// An AdmissionReview response under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    uid: String,
    allowed: bool,
    status: Option<(u16, String)>,
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

// === impl Response ===

impl Response {
    /// Allows the request unchanged.
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            patch: None,
            warnings: Vec::new(),
        }
    }

    /// Refuses the request; `code` is the HTTP-like status the API server
    /// reports (400 for a bad annotation) and `message` what the user sees
    /// after "admission webhook … denied the request:".
    pub fn deny(uid: &str, code: u16, message: &str) -> Self {
        Self {
            status: Some((code, clean(message, MAX_MESSAGE_CHARS))),
            allowed: false,
            ..Self::allow(uid)
        }
    }

    /// Adds the JSON Patch (nothing if `ops` is empty).
    #[must_use]
    pub fn with_patch(mut self, ops: &[Op]) -> Self {
        self.patch = (!ops.is_empty()).then(|| patch::to_json(ops));
        self
    }

    /// Adds warnings for the API client: control characters replaced, each
    /// shortened to [`MAX_WARNING_CHARS`], at most [`MAX_WARNINGS`].
    #[must_use]
    pub fn with_warnings(mut self, warnings: &[String]) -> Self {
        let mut out: Vec<String> = warnings
            .iter()
            .take(MAX_WARNINGS)
            .map(|w| clean(w, MAX_WARNING_CHARS))
            .collect();
        if warnings.len() > MAX_WARNINGS {
            out.push(format!(
                "credagent: {} more warnings not shown",
                warnings.len() - MAX_WARNINGS
            ));
        }
        self.warnings = out;
        self
    }

    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The response as a JSON value.
    pub fn to_json(&self) -> Value {
        let mut r = Map::new();
        r.insert("uid".into(), json!(self.uid));
        r.insert("allowed".into(), json!(self.allowed));
        if let Some((code, message)) = &self.status {
            let reason = if *code == 400 {
                "BadRequest"
            } else {
                "Forbidden"
            };
            r.insert(
                "status".into(),
                json!({"status": "Failure", "code": code, "reason": reason, "message": message}),
            );
        }
        if let Some(patch) = &self.patch {
            r.insert("patchType".into(), json!("JSONPatch"));
            r.insert(
                "patch".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(patch)),
            );
        }
        if !self.warnings.is_empty() {
            r.insert("warnings".into(), json!(self.warnings));
        }
        json!({"apiVersion": API_VERSION, "kind": KIND, "response": r})
    }

    /// The response body.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }
}

fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::mutate::patch::Pointer;

    #[test]
    fn allow_has_no_patch_and_echoes_the_uid() {
        let r = Response::allow("u-1").to_json();
        assert_eq!(
            r,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": {"uid": "u-1", "allowed": true}})
        );
        assert_eq!(
            Response::allow("u").with_patch(&[]).to_json(),
            Response::allow("u").to_json()
        );
    }

    #[test]
    fn patch_is_base64_of_the_json_array() {
        let ops = [Op::add(
            &Pointer::root().key("metadata").key("labels"),
            json!({"a": "b"}),
        )];
        let r = Response::allow("u").with_patch(&ops).to_json();
        assert_eq!(r["response"]["patchType"], "JSONPatch");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(r["response"]["patch"].as_str().unwrap())
            .unwrap();
        let got: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            got,
            json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])
        );
    }

    #[test]
    fn deny_and_warnings_are_bounded() {
        let r = Response::deny("u", 400, &format!("bad\n{}", "x".repeat(2000))).to_json();
        let status = &r["response"]["status"];
        assert_eq!(r["response"]["allowed"], false);
        assert_eq!(status["code"], 400);
        assert_eq!(status["reason"], "BadRequest");
        let message = status["message"].as_str().unwrap();
        assert!(message.starts_with("bad x") && message.chars().count() == MAX_MESSAGE_CHARS);
        let many: Vec<String> = (0..20).map(|i| format!("w{i}\u{7}")).collect();
        let r = Response::allow("u").with_warnings(&many).to_json();
        let w = r["response"]["warnings"].as_array().unwrap();
        assert_eq!(w.len(), MAX_WARNINGS + 1);
        assert_eq!(w[0], "w0 ");
        assert_eq!(w[MAX_WARNINGS], "credagent: 4 more warnings not shown");
        assert!(
            Response::allow("u").with_warnings(&[]).to_json()["response"]
                .get("warnings")
                .is_none()
        );
    }
}
