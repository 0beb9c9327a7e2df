//! RFC 6902 JSON Patch operations, built one item at a time.
//!
//! The patch is never produced by re-serialising a typed copy of a list: a
//! typed round trip drops every field the type does not know (that is how
//! other injectors lost the `restartPolicy` of native sidecars). Each
//! operation here adds exactly one new item, or creates a list or map that
//! is absent, so everything else in the Pod is left byte for byte as the API
//! server sent it.

use serde::Serialize;
use serde_json::{Map, Value};

/// An RFC 6901 JSON Pointer, built token by token with escaping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pointer(String);

/// One JSON Patch operation. Only `add` is needed: the injector adds and
/// never replaces or removes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    /// Adds `value` at `path`: a new member of a map, an insertion into a
    /// list at an index, or an append when the last token is `-`.
    Add {
        /// Where, as an escaped JSON Pointer.
        path: String,
        /// What.
        value: Value,
    },
}

/// Escapes one reference token: `~` becomes `~0`, then `/` becomes `~1`
/// (in that order, so that `~1` in a key is not mistaken for a `/`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

// === impl Pointer ===

impl Pointer {
    /// The pointer to the whole document (the empty string).
    pub fn root() -> Self {
        Self(String::new())
    }

    /// This pointer extended by one (escaped) member name.
    #[must_use]
    pub fn key(&self, token: &str) -> Self {
        Self(format!("{}/{}", self.0, escape(token)))
    }

    /// This pointer extended by a list index.
    #[must_use]
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}/{i}", self.0))
    }

    /// This pointer extended by `-`: "after the last element" of a list.
    #[must_use]
    pub fn end(&self) -> Self {
        Self(format!("{}/-", self.0))
    }

    /// The pointer as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl Op ===

impl Op {
    /// An `add` of `value` at `path`.
    pub fn add(path: &Pointer, value: Value) -> Self {
        Self::Add {
            path: path.as_str().to_owned(),
            value,
        }
    }

    /// The operation's path.
    pub fn path(&self) -> &str {
        match self {
            Self::Add { path, .. } => path,
        }
    }
}

/// Appends `items` to the list at `list`: one `add …/-` per item when the
/// list `exists`, else a single `add` that creates the list with all of
/// them (an append to a missing list is an error in RFC 6902).
pub fn append_all(ops: &mut Vec<Op>, list: &Pointer, exists: bool, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if exists {
        ops.extend(items.into_iter().map(|item| Op::add(&list.end(), item)));
    } else {
        ops.push(Op::add(list, Value::Array(items)));
    }
}

/// Adds `entries` to the map at `map`: one `add` per member when the map
/// `exists`, else a single `add` that creates the map with all of them.
pub fn insert_all(ops: &mut Vec<Op>, map: &Pointer, exists: bool, entries: Map<String, Value>) {
    if entries.is_empty() {
        return;
    }
    if exists {
        ops.extend(entries.into_iter().map(|(k, v)| Op::add(&map.key(&k), v)));
    } else {
        ops.push(Op::add(map, Value::Object(entries)));
    }
}

/// The operations as the JSON array the API server expects.
pub fn to_json(ops: &[Op]) -> Vec<u8> {
    // Serialising a list of plain enums of strings and values cannot fail;
    // an empty array is the (harmless) fallback if it ever did.
    serde_json::to_vec(ops).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_tilde_before_slash() {
        assert_eq!(escape("credagent.io/status"), "credagent.io~1status");
        assert_eq!(escape("a~b"), "a~0b");
        // A literal "~1" must not come back as "/" when unescaped.
        assert_eq!(escape("x~1/y"), "x~01~1y");
        assert_eq!(escape(""), "");
        let p = Pointer::root()
            .key("metadata")
            .key("annotations")
            .key("credagent.io/status");
        assert_eq!(p.as_str(), "/metadata/annotations/credagent.io~1status");
        assert_eq!(
            Pointer::root()
                .key("spec")
                .key("containers")
                .index(3)
                .key("env")
                .end()
                .to_string(),
            "/spec/containers/3/env/-"
        );
    }

    #[test]
    fn creates_missing_lists_and_maps_whole() {
        let list = Pointer::root().key("spec").key("volumes");
        let mut ops = Vec::new();
        append_all(&mut ops, &list, false, vec![json!(1), json!(2)]);
        append_all(&mut ops, &list, true, vec![json!(3), json!(4)]);
        append_all(&mut ops, &list, true, vec![]);
        let mut entries = Map::new();
        entries.insert("a/b".into(), json!("x"));
        let map = Pointer::root().key("metadata").key("labels");
        insert_all(&mut ops, &map, true, entries.clone());
        insert_all(&mut ops, &map, false, entries);
        let got: Value = serde_json::from_slice(&to_json(&ops)).unwrap();
        assert_eq!(
            got,
            json!([
                {"op": "add", "path": "/spec/volumes", "value": [1, 2]},
                {"op": "add", "path": "/spec/volumes/-", "value": 3},
                {"op": "add", "path": "/spec/volumes/-", "value": 4},
                {"op": "add", "path": "/metadata/labels/a~1b", "value": "x"},
                {"op": "add", "path": "/metadata/labels", "value": {"a/b": "x"}},
            ])
        );
    }
}
