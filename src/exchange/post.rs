//! The POST exchange ("Create access key from OIDC"): the request body, the
//! attributes every key is tagged with, and the answer.
//!
//! ```text
//! POST …/temporary-credentials/oidc            (no Authorization header)
//! {"durationSeconds": 3600, "orgId": "ORG", "oidcToken": "<JWT>",
//!  "attributes": {"name": "ml/trainer-0", "k8s-namespace": "ml", …}}
//! → 200 {"accessKeyId", "secretKey", "principalName", "expiry", "attributes"}
//! ```
//!
//! # Attributes
//!
//! Every key carries, where the token names them (the `kubernetes.io`
//! claims of a Pod-bound projected token, or its `sub`
//! `system:serviceaccount:NS:SA`):
//!
//! | name | value |
//! |---|---|
//! | `name` | `NS/POD`, else `NS/SA`, else `credagent`: what a person reading a key list recognises |
//! | `agent` | `credagent/VERSION` |
//! | `k8s-namespace`, `k8s-pod`, `k8s-pod-uid` | the Pod that asked |
//! | `k8s-service-account` | its ServiceAccount |
//! | `k8s-node` | its node (Kubernetes 1.30 and later put it in the token) |
//!
//! then every `--key-attribute`, in flag order. Values from the token keep
//! only `A-Z a-z 0-9 . _ : / -` (anything else becomes `_`) and at most 253
//! bytes: Kubernetes names and UIDs pass unchanged. Nothing secret is in
//! them: the token's claims name a workload, not a credential.
//!
//! The claims are read without verifying the token: the upstream verifies
//! it before issuing a key, so a key exists only for a token the issuer
//! signed, and its attributes are as true as the key itself.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::error::ExchangeError;
use crate::config::KeyRequest;
use crate::credentials::Credentials;
use crate::jwt::Claims;
use crate::secret::Secret;
use crate::wire;

/// Longest attribute value taken from a token.
const MAX_CLAIM_VALUE: usize = 253;

/// The JSON body of one POST exchange.
pub(super) fn request_body(
    token: &Secret,
    org_id: &str,
    key: &KeyRequest,
    claims: Option<&Claims>,
) -> Bytes {
    let mut attributes = Map::new();
    for (name, value) in key_attributes(claims, key) {
        attributes.insert(name, Value::String(value));
    }
    let body = serde_json::json!({
        "durationSeconds": key.lifetime.as_secs(),
        "orgId": org_id,
        "oidcToken": token.expose(),
        "attributes": attributes,
    });
    Bytes::from(body.to_string())
}

/// The attributes of a key issued for the token with `claims`: the agent's
/// own (see the module docs), then the operator's.
pub fn key_attributes(claims: Option<&Claims>, key: &KeyRequest) -> Vec<(String, String)> {
    let workload = claims.map(Workload::of).unwrap_or_default();
    let name = match (
        &workload.namespace,
        &workload.pod,
        &workload.service_account,
    ) {
        (Some(ns), Some(pod), _) => format!("{ns}/{pod}"),
        (Some(ns), None, Some(sa)) => format!("{ns}/{sa}"),
        _ => "credagent".to_owned(),
    };
    let mut out = vec![
        ("name".to_owned(), name),
        (
            "agent".to_owned(),
            concat!("credagent/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
    ];
    for (attr, value) in [
        ("k8s-namespace", &workload.namespace),
        ("k8s-pod", &workload.pod),
        ("k8s-pod-uid", &workload.pod_uid),
        ("k8s-service-account", &workload.service_account),
        ("k8s-node", &workload.node),
    ] {
        if let Some(v) = value {
            out.push((attr.to_owned(), v.clone()));
        }
    }
    out.extend(
        key.attributes
            .iter()
            .map(|a| (a.name.clone(), a.value.clone())),
    );
    out
}

/// Who a token names, as key attributes and audit lines show it: each
/// value sanitised ([`sanitise`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// The Pod's namespace.
    pub namespace: Option<String>,
    /// The Pod's name.
    pub pod: Option<String>,
    /// The Pod's UID.
    pub pod_uid: Option<String>,
    /// Its ServiceAccount.
    pub service_account: Option<String>,
    /// Its node.
    pub node: Option<String>,
}

impl Workload {
    /// What `claims` say, falling back to `sub`
    /// (`system:serviceaccount:NS:SA`) for the namespace and ServiceAccount.
    pub fn of(claims: &Claims) -> Self {
        let from_sub = claims
            .sub
            .as_deref()
            .and_then(|s| s.strip_prefix("system:serviceaccount:"))
            .and_then(|rest| rest.split_once(':'));
        let clean = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(sanitise);
        Self {
            namespace: clean(claims.namespace.as_deref().or(from_sub.map(|(ns, _)| ns))),
            pod: clean(claims.pod.as_deref()),
            pod_uid: clean(claims.pod_uid.as_deref()),
            service_account: clean(
                claims
                    .service_account
                    .as_deref()
                    .or(from_sub.map(|(_, sa)| sa)),
            ),
            node: clean(claims.node.as_deref()),
        }
    }
}

/// `value` with every character but `A-Z a-z 0-9 . _ : / -` replaced by
/// `_`, cut to 253 bytes.
pub fn sanitise(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_CLAIM_VALUE)
        .collect()
}

/// Parses the POST exchange's 200 body: `accessKeyId`, `secretKey`,
/// `expiry`, and `principalName` as the role.
pub(super) fn parse_answer(
    body: &[u8],
    server_date: Option<std::time::SystemTime>,
) -> Result<Credentials, ExchangeError> {
    let mut obj = wire::json_object(body)?;
    let mut credentials =
        wire::credentials_with(&mut obj, wire::POST_EXCHANGE_FIELDS, server_date)?;
    credentials.role = obj
        .get("principalName")
        .and_then(Value::as_str)
        .map(wire::label);
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_key_attribute, KeyRequest};
    use std::time::Duration;

    fn key(attrs: &[&str]) -> KeyRequest {
        KeyRequest {
            lifetime: Duration::from_secs(3600),
            attributes: attrs
                .iter()
                .map(|a| parse_key_attribute(a).unwrap())
                .collect(),
        }
    }

    fn pod_claims() -> Claims {
        Claims {
            sub: Some("system:serviceaccount:ml:trainer-sa".into()),
            namespace: Some("ml".into()),
            pod: Some("trainer-0".into()),
            pod_uid: Some("0f6b6a4e-1c1e-4d7b-9a0e-5d2a8f8f4b11".into()),
            service_account: Some("trainer-sa".into()),
            node: Some("gpu-node-7".into()),
            ..Claims::default()
        }
    }

    #[test]
    fn a_pod_bound_token_tags_the_key_with_its_pod() {
        let attrs = key_attributes(Some(&pod_claims()), &key(&["cluster=prod-1"]));
        let get = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("name"), Some("ml/trainer-0"));
        assert_eq!(get("k8s-namespace"), Some("ml"));
        assert_eq!(get("k8s-pod"), Some("trainer-0"));
        assert_eq!(
            get("k8s-pod-uid"),
            Some("0f6b6a4e-1c1e-4d7b-9a0e-5d2a8f8f4b11")
        );
        assert_eq!(get("k8s-service-account"), Some("trainer-sa"));
        assert_eq!(get("k8s-node"), Some("gpu-node-7"));
        assert_eq!(get("cluster"), Some("prod-1"));
        assert!(get("agent").unwrap().starts_with("credagent/"));
        assert_eq!(attrs.last().map(|(k, _)| k.as_str()), Some("cluster"));
    }

    #[test]
    fn a_legacy_token_is_named_by_its_subject() {
        let claims = Claims {
            sub: Some("system:serviceaccount:ns:sa".into()),
            ..Claims::default()
        };
        let attrs = key_attributes(Some(&claims), &key(&[]));
        assert_eq!(attrs[0], ("name".to_owned(), "ns/sa".to_owned()));
        assert!(!attrs.iter().any(|(k, _)| k == "k8s-pod"));
        let none = key_attributes(None, &key(&[]));
        assert_eq!(none[0].1, "credagent");
        assert_eq!(none.len(), 2);
    }

    #[test]
    fn hostile_claims_are_sanitised() {
        let claims = Claims {
            namespace: Some("ns\n{\"evil\":1}".into()),
            pod: Some("p".repeat(1000)),
            ..Claims::default()
        };
        let w = Workload::of(&claims);
        assert_eq!(w.namespace.as_deref(), Some("ns___evil_:1_"));
        assert_eq!(w.pod.as_ref().map(String::len), Some(253));
    }

    #[test]
    fn the_body_is_the_documented_request() {
        let token = Secret::new("h.p.s");
        let body = request_body(&token, "org-1", &key(&["team=ml"]), Some(&pod_claims()));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["durationSeconds"], 3600);
        assert_eq!(v["orgId"], "org-1");
        assert_eq!(v["oidcToken"], "h.p.s");
        assert_eq!(v["attributes"]["name"], "ml/trainer-0");
        assert_eq!(v["attributes"]["team"], "ml");
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    #[test]
    fn parses_the_documented_answer() {
        let body = br#"{"accessKeyId":"CWAKIAPOST0000000001","secretKey":"S3CR3T","principalName":"role/https://oidc.example:system:serviceaccount:ml:sa","expiry":"2026-03-14T21:44:43Z","attributes":{"name":"ml/p"}}"#;
        let c = parse_answer(body, None).unwrap();
        assert_eq!(c.access_key_id, "CWAKIAPOST0000000001");
        assert_eq!(c.secret_access_key.expose(), "S3CR3T");
        assert!(c.session_token.is_empty());
        assert_eq!(c.expiration.unix_timestamp(), 1_773_524_683);
        assert_eq!(
            c.role.as_deref(),
            Some("role/https://oidc.example:system:serviceaccount:ml:sa")
        );
        let e = parse_answer(
            br#"{"accessKeyId":"A","secretKey":"TOPSECRET","expiry":"soon"}"#,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("expiry is not an RFC 3339"), "{e}");
        assert!(!e.to_string().contains("TOPSECRET"));
        let e = parse_answer(
            br#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"2026-03-14T21:44:43Z"}"#,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("accessKeyId is missing"), "{e}");
    }
}
