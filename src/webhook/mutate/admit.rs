//! The whole webhook minus HTTP and the ServiceAccount lookup: a parsed
//! request to a [`Decision`], and a decision to a [`Response`].
//!
//! ```text
//! body ─▶ review::parse ─▶ Request ─▶ service_account_to_look_up ─▶ (server: GET the SA)
//!                             │                                            │
//!                             └──────────────▶ admit(req, sa, config) ◀────┘
//!                                                   │ Decision (label() for metrics)
//!                                                   ▼
//!                                         respond(req, &decision).to_bytes()
//! ```

use serde_json::{Map, Value};

use crate::cli::InjectArgs;

use super::annotations::Entry;
use super::inject::{self, Decision, SkipReason};
use super::names;
use super::response::Response;
use super::review::Request;

/// The ServiceAccount whose annotations [`admit`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRef {
    /// Its namespace (the request's).
    pub namespace: String,
    /// Its name (`spec.serviceAccountName`, `default` when empty).
    pub name: String,
}

/// The ServiceAccount to look up before calling [`admit`], if its
/// annotations can change the answer: only with `coreweave_compat`, only for
/// a Pod CREATE sent by the Pod entry (the namespace entry's Pods are opted
/// in already), and only if the Pod says nothing itself about
/// `credagent.io/inject` (its own `"true"`/`"false"` decides alone). Reads
/// only the request; `None` also when no namespace is known.
pub fn service_account_to_look_up(
    req: &Request,
    entry: Entry,
    config: &InjectArgs,
) -> Option<ServiceAccountRef> {
    if !config.coreweave_compat || entry != Entry::Pod || !req.is_pod_create() {
        return None;
    }
    let metadata = req.object.get("metadata");
    let says_itself = ["labels", "annotations"].iter().any(|m| {
        metadata
            .and_then(|md| md.get(m))
            .and_then(|m| m.get(names::INJECT))
            .is_some()
    });
    if says_itself {
        return None;
    }
    let namespace = req
        .namespace
        .clone()
        .or_else(|| non_empty(metadata.and_then(|m| m.get("namespace"))))?;
    let spec = req.object.get("spec");
    let name = non_empty(spec.and_then(|s| s.get("serviceAccountName")))
        .or_else(|| non_empty(spec.and_then(|s| s.get("serviceAccount"))))
        .unwrap_or_else(|| "default".to_owned());
    Some(ServiceAccountRef { namespace, name })
}

fn non_empty(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Decides on one request, sent by `entry`. Anything but a Pod CREATE is
/// admitted unchanged; `sa_annotations` are those of
/// [`service_account_to_look_up`]'s answer (`None` if not looked up or not
/// found).
pub fn admit(
    req: &Request,
    entry: Entry,
    sa_annotations: Option<&Map<String, Value>>,
    config: &InjectArgs,
) -> Decision {
    if !req.is_pod_create() {
        return Decision::Skip {
            reason: SkipReason::NotPodCreate,
            warnings: Vec::new(),
        };
    }
    inject::decide(&req.object, entry, sa_annotations, config)
}

/// The response for a decision on `req`.
pub fn respond(req: &Request, decision: &Decision) -> Response {
    match decision {
        Decision::Inject { ops, warnings, .. } => Response::allow(&req.uid)
            .with_patch(ops)
            .with_warnings(warnings),
        Decision::Skip { warnings, .. } => Response::allow(&req.uid).with_warnings(warnings),
        Decision::Refuse { message } => Response::deny(&req.uid, 400, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::mutate::review::parse;
    use serde_json::json;

    fn request(object: Value, namespace: Option<&str>) -> Request {
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": "CREATE", "object": object}});
        parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn looks_up_the_service_account_only_when_it_matters() {
        let flags = ["--sidecar-image", "i", "--org-id", "o"];
        let off = InjectArgs::from_flags(flags).unwrap();
        let on = InjectArgs::from_flags(flags.iter().chain(&["--coreweave-compat"])).unwrap();
        let pod = json!({"metadata": {}, "spec": {"serviceAccountName": "", "containers": []}});
        assert_eq!(
            service_account_to_look_up(&request(pod.clone(), Some("ns")), Entry::Pod, &off),
            None
        );
        assert_eq!(
            service_account_to_look_up(&request(pod.clone(), Some("ns")), Entry::Pod, &on),
            Some(ServiceAccountRef {
                namespace: "ns".into(),
                name: "default".into()
            })
        );
        let named = json!({"metadata": {"namespace": "meta-ns"}, "spec": {"serviceAccountName": "trainer"}});
        assert_eq!(
            service_account_to_look_up(&request(named, None), Entry::Pod, &on),
            Some(ServiceAccountRef {
                namespace: "meta-ns".into(),
                name: "trainer".into()
            })
        );
        let decided = json!({"metadata": {"labels": {"credagent.io/inject": "false"}}, "spec": {}});
        assert_eq!(
            service_account_to_look_up(&request(decided, Some("ns")), Entry::Pod, &on),
            None
        );
        assert_eq!(
            service_account_to_look_up(&request(pod.clone(), None), Entry::Pod, &on),
            None
        );
        // The namespace entry's Pods are opted in by their namespace.
        assert_eq!(
            service_account_to_look_up(&request(pod, Some("ns")), Entry::Namespace, &on),
            None
        );
    }
}
