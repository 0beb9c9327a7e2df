//! Reading an `admission.k8s.io/v1` AdmissionReview request.
//!
//! The body is read as a generic JSON value and picked apart by hand (as in
//! [`crate::exchange`]): no typed Pod exists anywhere, so nothing the API
//! server sent can be dropped on the way to the patch, and no error message
//! quotes the body. Any input, however broken, gives a [`Request`] or a
//! [`ReviewError`]; none panics.

use serde_json::{Map, Value};

/// The only AdmissionReview version served (the API server sends the first
/// of the webhook's `admissionReviewVersions` it supports; list just `v1`).
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The AdmissionReview kind.
pub const KIND: &str = "AdmissionReview";
/// Longest `request.uid` accepted (real ones are 36-character UUIDs); it is
/// echoed back, so it is bounded.
pub const MAX_UID: usize = 128;

/// One admission request: the parts the injector uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// `request.kind`: the type of `object` (after any matchPolicy conversion).
    pub kind: GroupVersionKind,
    /// `request.resource`.
    pub resource: GroupVersionResource,
    /// `request.subResource`, if any (e.g. `binding`, `ephemeralcontainers`).
    pub sub_resource: Option<String>,
    /// `request.operation`.
    pub operation: Operation,
    /// `request.namespace`: where the Pod is created (a controller's Pods
    /// carry no `metadata.namespace`; this is the only place it is).
    pub namespace: Option<String>,
    /// `request.name`, `None` when empty (a `generateName` Pod has none yet).
    pub name: Option<String>,
    /// `request.dryRun`: true if nothing will be persisted. The injector has
    /// no side effects either way; a server that adds any must skip them.
    pub dry_run: bool,
    /// `request.object` as sent (`Null` when absent, e.g. on DELETE).
    pub object: Value,
}

/// A `{group, version, kind}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersionKind {
    /// `""` for the core group.
    pub group: String,
    /// e.g. `v1`.
    pub version: String,
    /// e.g. `Pod`.
    pub kind: String,
}

/// A `{group, version, resource}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersionResource {
    /// `""` for the core group.
    pub group: String,
    /// e.g. `v1`.
    pub version: String,
    /// e.g. `pods`.
    pub resource: String,
}

/// `request.operation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `CREATE`.
    Create,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `CONNECT`.
    Connect,
    /// Anything else (kept, shortened, for logs).
    Other(String),
}

/// Why a body is not an AdmissionReview request; the server answers HTTP 400.
/// Display never quotes the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON at all.
    #[error("the body is not JSON (line {line}, column {column})")]
    NotJson {
        /// Where parsing stopped.
        line: usize,
        /// Where parsing stopped.
        column: usize,
    },
    /// JSON, but not an `admission.k8s.io/v1` AdmissionReview.
    #[error("the body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    NotAReview(&'static str),
    /// An AdmissionReview whose request lacks a field or has the wrong type.
    #[error("the AdmissionReview request is invalid: {0}")]
    Invalid(&'static str),
}

/// Parses an AdmissionReview request body.
pub fn parse(body: &[u8]) -> Result<Request, ReviewError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ReviewError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(mut review) = value else {
        return Err(ReviewError::NotAReview("not a JSON object"));
    };
    match review.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        Some(_) => {
            return Err(ReviewError::NotAReview(
                "apiVersion is not admission.k8s.io/v1",
            ))
        }
        None => return Err(ReviewError::NotAReview("apiVersion is missing")),
    }
    if review.get("kind").and_then(Value::as_str) != Some(KIND) {
        return Err(ReviewError::NotAReview("kind is not AdmissionReview"));
    }
    let Some(Value::Object(mut request)) = review.remove("request") else {
        return Err(ReviewError::NotAReview(
            "request is missing or not an object",
        ));
    };
    let uid = match request.get("uid").and_then(Value::as_str) {
        Some(u)
            if !u.is_empty() && u.len() <= MAX_UID && u.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            u.to_owned()
        }
        _ => {
            return Err(ReviewError::Invalid(
                "request.uid is missing or not a short printable string",
            ))
        }
    };
    let kind = request
        .get("kind")
        .and_then(Value::as_object)
        .and_then(|m| {
            Some(GroupVersionKind {
                group: string(m, "group")?,
                version: string(m, "version")?,
                kind: string(m, "kind")?,
            })
        })
        .ok_or(ReviewError::Invalid(
            "request.kind is not a {group, version, kind}",
        ))?;
    let resource = request
        .get("resource")
        .and_then(Value::as_object)
        .and_then(|m| {
            Some(GroupVersionResource {
                group: string(m, "group")?,
                version: string(m, "version")?,
                resource: string(m, "resource")?,
            })
        })
        .ok_or(ReviewError::Invalid(
            "request.resource is not a {group, version, resource}",
        ))?;
    let operation = match request.get("operation").and_then(Value::as_str) {
        Some("CREATE") => Operation::Create,
        Some("UPDATE") => Operation::Update,
        Some("DELETE") => Operation::Delete,
        Some("CONNECT") => Operation::Connect,
        Some(other) => {
            Operation::Other(other.chars().filter(|c| !c.is_control()).take(32).collect())
        }
        None => {
            return Err(ReviewError::Invalid(
                "request.operation is missing or not a string",
            ))
        }
    };
    let dry_run = match request.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ReviewError::Invalid("request.dryRun is not a boolean")),
    };
    let non_empty = |key: &str| {
        request
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(Request {
        sub_resource: non_empty("subResource"),
        namespace: non_empty("namespace"),
        name: non_empty("name"),
        object: request.remove("object").unwrap_or(Value::Null),
        uid,
        kind,
        resource,
        operation,
        dry_run,
    })
}

fn string(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key).and_then(Value::as_str).map(str::to_owned)
}

// === impl Request ===

impl Request {
    /// Returns true if and only if this is the creation of a core/v1 Pod
    /// itself (not of a subresource such as `pods/binding`).
    pub fn is_pod_create(&self) -> bool {
        self.operation == Operation::Create
            && self.kind.group.is_empty()
            && self.kind.version == "v1"
            && self.kind.kind == "Pod"
            && self.resource.group.is_empty()
            && self.resource.resource == "pods"
            && self.sub_resource.is_none()
    }
}

// === impl Operation ===

impl Operation {
    /// The wire spelling (`CREATE`, …).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
            Self::Other(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}))
            .unwrap()
    }

    fn pod_create() -> Value {
        json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ns", "name": "", "operation": "CREATE",
            "userInfo": {"username": "u"}, "object": {"spec": {}}, "oldObject": null,
            "dryRun": true, "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        })
    }

    #[test]
    fn reads_a_pod_create() {
        let r = parse(&review(pod_create())).unwrap();
        assert_eq!(r.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert!(r.is_pod_create() && r.dry_run);
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        assert_eq!(r.name, None);
        assert_eq!(r.object, json!({"spec": {}}));
        assert_eq!(r.operation.as_str(), "CREATE");
    }

    #[test]
    fn tells_pod_create_from_the_rest() {
        let with = |key: &str, v: Value| {
            let mut req = pod_create();
            req[key] = v;
            parse(&review(req)).unwrap()
        };
        assert!(!with("operation", json!("UPDATE")).is_pod_create());
        assert!(!with("subResource", json!("binding")).is_pod_create());
        assert!(with("subResource", json!("")).is_pod_create());
        assert!(!with(
            "kind",
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        )
        .is_pod_create());
        assert!(!with(
            "resource",
            json!({"group": "", "version": "v1", "resource": "configmaps"})
        )
        .is_pod_create());
        assert_eq!(
            with("operation", json!("PATCH\n")).operation,
            Operation::Other("PATCH".into())
        );
        assert!(!with("dryRun", json!(null)).dry_run);
    }

    #[test]
    fn refuses_what_is_not_a_review() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "not JSON"),
            (b"{\"apiVersion\":".to_vec(), "not JSON"),
            (b"[]".to_vec(), "not a JSON object"),
            (br#"{"kind":"AdmissionReview"}"#.to_vec(), "apiVersion is missing"),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#.to_vec(), "not admission.k8s.io/v1"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(), "kind is not AdmissionReview"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), "request is missing"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"x","allowed":true}}"#.to_vec(), "request is missing"),
        ];
        for (body, want) in cases {
            let e = parse(&body).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(&body));
        }
        let broken = |key: &str, v: Value, want: &str| {
            let mut req = pod_create();
            req[key] = v;
            let e = parse(&review(req)).unwrap_err();
            assert!(matches!(e, ReviewError::Invalid(_)), "{e}");
            assert!(e.to_string().contains(want), "{key}: {e}");
        };
        broken("uid", json!(""), "request.uid");
        broken("uid", json!("a b"), "request.uid");
        broken("uid", json!("x".repeat(MAX_UID + 1)), "request.uid");
        broken("uid", json!(7), "request.uid");
        broken("kind", json!("Pod"), "request.kind");
        broken(
            "kind",
            json!({"group": "", "version": "v1"}),
            "request.kind",
        );
        broken("resource", json!(null), "request.resource");
        broken("operation", json!(1), "request.operation");
        broken("dryRun", json!("false"), "request.dryRun");
    }
}
