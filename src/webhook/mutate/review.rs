//! Reading an `admission.k8s.io/v1` AdmissionReview request, within a
//! memory bound fixed before anything is built from the body.
//!
//! [`scan()`] walks the body once without allocating ([`mod@scan`]): it
//! refuses one nested deeper than [`MAX_DEPTH`], and one whose reading and
//! answering would cost more than [`MAX_COST`] ([`ReviewError::TooCostly`]);
//! the server reserves the cost counted ([`Scanned::cost`]) from its memory
//! budget. Then only what the injector uses is read ([`wire`]): the
//! envelope's few strings, and `request.object` as a generic JSON value
//! (the patch is computed on the raw Pod, never on a typed copy, so nothing
//! the API server sent can be dropped on the way to it); everything else is
//! checked as JSON and skipped. No error message quotes the body. Any
//! input, however broken, gives a [`Request`] or a [`ReviewError`]; none
//! panics.

pub mod scan;
pub mod wire;

use serde_json::Value;

pub use self::scan::MAX_DEPTH;
use self::scan::{Shape, TooDeep};
use self::wire::{Body, DryRun};

/// The only AdmissionReview version served (the API server sends the first
/// of the webhook's `admissionReviewVersions` it supports; list just `v1`).
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The AdmissionReview kind.
pub const KIND: &str = "AdmissionReview";
/// Longest `request.uid` accepted (real ones are 36-character UUIDs); it is
/// echoed back, so it is bounded.
pub const MAX_UID: usize = 128;
/// The most memory reading and answering one AdmissionReview may take, by
/// [`Scanned::cost`]: 24 MiB, 3/8 of the webhook's 64 MiB memory limit. A
/// real Pod (many containers, env entries, annotations and the
/// managedFields that list them) costs about 13 bytes per byte of JSON, so
/// Pods of up to about 1.9 MB fit (the API server takes requests of up to
/// 3 MiB; etcd stores objects of up to 1.5 MiB); the densest bodies (lists
/// of tiny values) cost about 130 bytes per byte and are refused from about
/// 190 KB.
pub const MAX_COST: u64 = 24 * 1024 * 1024;

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

/// Why a body is not read; the server answers HTTP 400 (413 for
/// [`ReviewError::TooCostly`]). Display never quotes the body.
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
    /// Nested deeper than [`MAX_DEPTH`] (no Pod comes near).
    #[error("the body nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Would take more than [`MAX_COST`] to read and answer.
    #[error("the AdmissionReview would take {cost_kib} KiB of memory to read and answer ({values} values in its object, {containers} containers), more than the {limit_kib} KiB allowed for one request")]
    TooCostly {
        /// The cost counted, KiB.
        cost_kib: u64,
        /// The limit, KiB.
        limit_kib: u64,
        /// Values and members in `request.object`.
        values: u64,
        /// Containers in its spec.
        containers: u64,
    },
    /// JSON, but not an `admission.k8s.io/v1` AdmissionReview.
    #[error("the body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    NotAReview(&'static str),
    /// An AdmissionReview whose request lacks a field or has the wrong type.
    #[error("the AdmissionReview request is invalid: {0}")]
    Invalid(&'static str),
}

/// A body scanned and within [`MAX_COST`], ready to be read.
#[derive(Debug, Clone, Copy)]
pub struct Scanned<'a> {
    body: &'a [u8],
    shape: Shape,
}

/// Scans a body (no allocation): refuses one nested too deep, or whose
/// reading and answering would cost more than [`MAX_COST`].
pub fn scan(body: &[u8]) -> Result<Scanned<'_>, ReviewError> {
    let shape = scan::scan(body).map_err(|TooDeep| ReviewError::TooDeep)?;
    if shape.cost() > MAX_COST {
        return Err(ReviewError::TooCostly {
            cost_kib: shape.cost().div_ceil(1024),
            limit_kib: MAX_COST / 1024,
            values: shape.pod_values,
            containers: shape.containers,
        });
    }
    Ok(Scanned { body, shape })
}

/// Scans and reads an AdmissionReview request body.
pub fn parse(body: &[u8]) -> Result<Request, ReviewError> {
    scan(body)?.parse()
}

// === impl Scanned ===

impl Scanned<'_> {
    /// The most memory, in bytes, reading and answering this body takes
    /// beyond the body itself (at most [`MAX_COST`]).
    pub fn cost(&self) -> u64 {
        self.shape.cost()
    }

    /// What the scan found.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Reads the request.
    pub fn parse(self) -> Result<Request, ReviewError> {
        let body: Body = serde_json::from_slice(self.body).map_err(|e| ReviewError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        let Body(Some(review)) = body else {
            return Err(ReviewError::NotAReview("not a JSON object"));
        };
        match review.api_version.as_deref() {
            Some(API_VERSION) => {}
            Some(_) => {
                return Err(ReviewError::NotAReview(
                    "apiVersion is not admission.k8s.io/v1",
                ))
            }
            None => return Err(ReviewError::NotAReview("apiVersion is missing")),
        }
        if review.kind.as_deref() != Some(KIND) {
            return Err(ReviewError::NotAReview("kind is not AdmissionReview"));
        }
        let Some(request) = review.request else {
            return Err(ReviewError::NotAReview(
                "request is missing or not an object",
            ));
        };
        let uid = match request.uid {
            Some(u)
                if !u.is_empty()
                    && u.len() <= MAX_UID
                    && u.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                u
            }
            _ => {
                return Err(ReviewError::Invalid(
                    "request.uid is missing or not a short printable string",
                ))
            }
        };
        let kind = match request.kind {
            Some([Some(group), Some(version), Some(kind)]) => GroupVersionKind {
                group,
                version,
                kind,
            },
            _ => {
                return Err(ReviewError::Invalid(
                    "request.kind is not a {group, version, kind}",
                ))
            }
        };
        let resource = match request.resource {
            Some([Some(group), Some(version), Some(resource)]) => GroupVersionResource {
                group,
                version,
                resource,
            },
            _ => {
                return Err(ReviewError::Invalid(
                    "request.resource is not a {group, version, resource}",
                ))
            }
        };
        let operation = match request.operation.as_deref() {
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
        let dry_run = match request.dry_run {
            DryRun::Absent => false,
            DryRun::Bool(b) => b,
            DryRun::Other => return Err(ReviewError::Invalid("request.dryRun is not a boolean")),
        };
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(Request {
            sub_resource: non_empty(request.sub_resource),
            namespace: non_empty(request.namespace),
            name: non_empty(request.name),
            object: request.object.unwrap_or(Value::Null),
            uid,
            kind,
            resource,
            operation,
            dry_run,
        })
    }
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
mod tests;
