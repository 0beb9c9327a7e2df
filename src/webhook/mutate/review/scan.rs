//! A pre-scan of an AdmissionReview body: one pass over its bytes, no
//! allocation, that finds how deep it nests and what reading it will cost
//! in memory, before anything is built from it.
//!
//! Only `request.object` becomes a `serde_json::Value` (the patch is
//! computed on the raw Pod); the envelope is read into a few strings and
//! everything else is skipped. So the cost counted here is that of the Pod
//! as a `Value`, modelled allocation by allocation: a slot per array
//! element, an entry and an index per object member, a buffer per
//! non-empty string, each container's capacity grown as serde_json and
//! indexmap grow it (the largest buffer being copied counted once more,
//! since the old and the new one are both alive while it is), plus the
//! envelope's strings, serde_json's scratch buffer for escaped strings,
//! and what answering costs per container of the Pod (the patch and the
//! answer grow with the number of containers, not with their size). It is
//! an upper bound for any body serde_json accepts (a unit test checks it
//! against a counting allocator); on a body it refuses, it still bounds
//! what was built before the error.
//!
//! The scan trusts nothing: any byte string gives a [`Shape`] or
//! [`TooDeep`], and anything it misreads is refused by the parser after it.

use std::mem::size_of;

use serde_json::Value;

/// The deepest nesting scanned (the AdmissionReview is level 1; a Pod's
/// deepest fields, managedFields included, are below level 25).
pub const MAX_DEPTH: usize = 64;

/// A `Value` in an array (and the size of one).
const SLOT: u64 = size_of::<Value>() as u64;
/// An indexmap entry of a JSON object: hash, key, value.
const ENTRY: u64 = (size_of::<usize>() + size_of::<String>() + size_of::<Value>()) as u64;
/// One bucket of an object's hash index, and its control byte.
const INDEX: u64 = size_of::<usize>() as u64 + 1;
/// A hash index's control bytes beyond one per bucket (a SIMD group).
const INDEX_GROUP: u64 = 16;
/// What the allocator adds to an allocation at most (header and rounding).
const ALLOCATION: u64 = 32;
/// Answering, whatever the Pod: the sidecar, the volumes, the markers,
/// the answer's envelope.
const ANSWER_BASE: u64 = 32 * 1024;
/// Answering, per container of the Pod: its view, its patch operations
/// (up to seven env entries and a mount), their share of the patch, of its
/// base64 and of the answer, and a warning (about 8 KiB measured).
const ANSWER_PER_CONTAINER: u64 = 16 * 1024;
/// How many times the Pod's strings may be copied while deciding and
/// answering: names quoted in the view (`secret NAME`), in warnings (a
/// container's name at most twice) and in the log line.
const STRING_COPIES: u64 = 3;

/// The body nests deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body nests deeper than {MAX_DEPTH} levels")]
pub struct TooDeep;

/// What the scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// The deepest nesting.
    pub depth: usize,
    /// Values and members inside `request.object` (the Pod).
    pub pod_values: u64,
    /// Elements of the Pod's `spec.containers` and `spec.initContainers`.
    pub containers: u64,
    /// Bytes of the Pod's strings, member names included (as sent).
    pub pod_string_bytes: u64,
    /// Bytes the Pod as a `Value` and the envelope's strings take at most.
    pub parse_bytes: u64,
    /// Bytes deciding and answering take at most.
    pub answer_bytes: u64,
}

// === impl Shape ===

impl Shape {
    /// Bytes reading and answering this body take at most, beyond the body.
    pub fn cost(&self) -> u64 {
        self.parse_bytes + self.answer_bytes
    }
}

/// Where a container sits in the review, as far as the cost is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Skipped by the parser: costs nothing.
    Skipped,
    /// The AdmissionReview.
    Review,
    /// `request`: its direct strings are kept.
    Request,
    /// A field of `request` (`kind`, `resource`, …): its strings are kept.
    RequestField,
    /// `request.object`.
    Pod,
    /// `request.object.spec`.
    Spec,
    /// `spec.containers` or `spec.initContainers`.
    Containers,
    /// Anything else inside the Pod.
    InPod,
}

// === impl Role ===

impl Role {
    /// Whether this container is built as a `Value`.
    fn built(self) -> bool {
        matches!(
            self,
            Self::Pod | Self::Spec | Self::Containers | Self::InPod
        )
    }

    /// Whether its direct string values are kept.
    fn keeps_strings(self) -> bool {
        self.built() || matches!(self, Self::Request | Self::RequestField)
    }

    /// The role of a container that is this one's element or the value of
    /// its member `key` (raw bytes; a key with an escape may decode to any
    /// name, so it is taken to match every name).
    fn child(self, key: Option<&[u8]>) -> Self {
        let is = |names: &[&[u8]]| key.is_some_and(|k| k.contains(&b'\\') || names.contains(&k));
        match self {
            Self::Review if is(&[b"request"]) => Self::Request,
            Self::Request if is(&[b"object"]) => Self::Pod,
            Self::Request => Self::RequestField,
            Self::Pod if is(&[b"spec"]) => Self::Spec,
            Self::Spec if is(&[b"containers", b"initContainers"]) => Self::Containers,
            Self::Pod | Self::Spec | Self::Containers | Self::InPod => Self::InPod,
            _ => Self::Skipped,
        }
    }
}

/// One open container.
#[derive(Debug, Clone, Copy)]
struct Level {
    object: bool,
    role: Role,
    /// In an object: the next string is a key.
    expect_key: bool,
    /// In an object: the role of the current member's value.
    member: Role,
    /// Elements or members so far.
    count: u64,
    /// Capacity of its buffers as modelled so far.
    capacity: u64,
}

const CLOSED: Level = Level {
    object: false,
    role: Role::Skipped,
    expect_key: false,
    member: Role::Skipped,
    count: 0,
    capacity: 0,
};

/// Running totals.
#[derive(Debug, Default)]
struct Totals {
    shape: Shape,
    /// Bytes of the largest buffer replaced while growing.
    largest_growth: u64,
    /// The longest string with an escape (serde_json unescapes into a
    /// scratch buffer that grows to it).
    longest_escaped: u64,
}

/// Scans `body`.
pub fn scan(body: &[u8]) -> Result<Shape, TooDeep> {
    let mut levels = [CLOSED; MAX_DEPTH];
    let mut depth: usize = 0;
    let mut t = Totals::default();
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b':' => i += 1,
            b',' => {
                if let Some(top) = depth.checked_sub(1).map(|d| &mut levels[d]) {
                    top.expect_key = top.object;
                }
                i += 1;
            }
            b'"' => {
                let (end, escaped) = string_end(body, i + 1);
                let raw = &body[i + 1..end];
                i = end + 1;
                let len = raw.len() as u64;
                if escaped {
                    t.longest_escaped = t.longest_escaped.max(len);
                }
                let top = depth.checked_sub(1).map(|d| &mut levels[d]);
                match top {
                    Some(top) if top.object && top.expect_key => {
                        top.expect_key = false;
                        top.member = top.role.child(Some(raw));
                        if top.role.built() {
                            grow(top, &mut t);
                            t.shape.pod_values += 1;
                            t.shape.parse_bytes += string(len);
                            t.shape.pod_string_bytes += len;
                        }
                    }
                    top => {
                        let role = top.as_ref().map_or(Role::Skipped, |l| l.role);
                        if let Some(top) = top {
                            element(top, &mut t);
                        }
                        if role.keeps_strings() {
                            t.shape.parse_bytes += string(len);
                        }
                        if role.built() {
                            t.shape.pod_string_bytes += len;
                        }
                    }
                }
            }
            b'{' | b'[' => {
                let role = match depth.checked_sub(1).map(|d| &mut levels[d]) {
                    None if b == b'{' => Role::Review,
                    None => Role::Skipped,
                    Some(top) => {
                        element(top, &mut t);
                        if top.object {
                            top.member
                        } else {
                            top.role.child(None)
                        }
                    }
                };
                if depth == MAX_DEPTH {
                    return Err(TooDeep);
                }
                levels[depth] = Level {
                    object: b == b'{',
                    role,
                    expect_key: b == b'{',
                    ..CLOSED
                };
                depth += 1;
                t.shape.depth = t.shape.depth.max(depth);
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => {
                // A number, a literal, or bytes the parser will refuse.
                while body.get(i).is_some_and(|&c| !is_delimiter(c)) {
                    i += 1;
                }
                if let Some(top) = depth.checked_sub(1).map(|d| &mut levels[d]) {
                    element(top, &mut t);
                }
            }
        }
    }
    let mut shape = t.shape;
    shape.parse_bytes += t.largest_growth + 2 * t.longest_escaped;
    shape.answer_bytes = ANSWER_BASE
        + shape.containers * ANSWER_PER_CONTAINER
        + STRING_COPIES * shape.pod_string_bytes;
    Ok(shape)
}

/// A value starts in `top`: an array element counts (an object's member
/// was counted at its key).
fn element(top: &mut Level, t: &mut Totals) {
    if top.object {
        return;
    }
    if top.role == Role::Containers {
        t.shape.containers += 1;
    }
    if top.role.built() {
        grow(top, t);
        t.shape.pod_values += 1;
    }
}

/// One more element or member in a container built as a `Value`: charges
/// its buffers' growth as `Vec` (capacity 4, then doubling) and indexmap
/// (entries and index: capacity 3 in 4 buckets, then 7 in 8, 14 in 16, …)
/// grow them.
fn grow(level: &mut Level, t: &mut Totals) {
    level.count += 1;
    if level.count <= level.capacity {
        return;
    }
    let (old, new) = (level.capacity, next_capacity(level.object, level.capacity));
    let bytes = |capacity: u64| match (level.object, capacity) {
        (_, 0) => 0,
        (false, c) => c * SLOT + ALLOCATION,
        (true, c) => {
            let buckets = if c == 3 { 4 } else { c / 7 * 8 };
            c * ENTRY + buckets * INDEX + INDEX_GROUP + 2 * ALLOCATION
        }
    };
    t.shape.parse_bytes += bytes(new) - bytes(old);
    t.largest_growth = t.largest_growth.max(bytes(old));
    level.capacity = new;
}

fn next_capacity(object: bool, capacity: u64) -> u64 {
    match (object, capacity) {
        (false, 0) => 4,
        (true, 0) => 3,
        (true, 3) => 7,
        (_, c) => c * 2,
    }
}

/// A string's buffer (none when empty).
fn string(len: u64) -> u64 {
    if len == 0 {
        0
    } else {
        len + ALLOCATION
    }
}

/// The index of the quote closing the string that starts at `from` (the
/// body's length if it never closes), and whether it has an escape.
fn string_end(body: &[u8], from: usize) -> (usize, bool) {
    let mut escaped = false;
    let mut i = from;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => return (i, escaped),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    (body.len(), escaped)
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' | b'"' | b'{' | b'}' | b'[' | b']'
    )
}
