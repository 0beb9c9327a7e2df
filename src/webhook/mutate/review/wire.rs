//! The AdmissionReview's fields as read off the wire: only those the
//! injector uses are kept (the envelope's strings, `request.object` as a
//! `Value`); every other value (`userInfo`, `oldObject`, `options`, and
//! whatever else a body holds) is skipped without being built.
//!
//! Each field is read as loosely as a generic `Value` would be looked at:
//! a field of the wrong type reads as absent (or as "not a boolean" for
//! `dryRun`), a repeated key keeps its last value, and a skipped value is
//! still checked as JSON exactly as serde_json checks any value (strings
//! decoded, numbers in range), so a body is refused as not JSON if and only
//! if a generic parse would refuse it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The body: the AdmissionReview's fields if it is a JSON object, `None`
/// for any other JSON value.
#[derive(Debug, Default)]
pub struct Body(pub Option<Review>);

/// The AdmissionReview's own fields.
#[derive(Debug, Default)]
pub struct Review {
    /// `apiVersion`, if a string.
    pub api_version: Option<String>,
    /// `kind`, if a string.
    pub kind: Option<String>,
    /// `request`, if an object.
    pub request: Option<Request>,
}

/// The fields of `request` the injector reads.
#[derive(Debug, Default)]
pub struct Request {
    /// `uid`, if a string.
    pub uid: Option<String>,
    /// `kind`, if an object: its `group`, `version`, `kind` if strings.
    pub kind: Option<[Option<String>; 3]>,
    /// `resource`, if an object: its `group`, `version`, `resource`.
    pub resource: Option<[Option<String>; 3]>,
    /// `subResource`, if a string.
    pub sub_resource: Option<String>,
    /// `operation`, if a string.
    pub operation: Option<String>,
    /// `namespace`, if a string.
    pub namespace: Option<String>,
    /// `name`, if a string.
    pub name: Option<String>,
    /// `dryRun`.
    pub dry_run: DryRun,
    /// `object`, as sent.
    pub object: Option<Value>,
}

/// `request.dryRun` as sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Absent or `null`.
    #[default]
    Absent,
    /// A boolean.
    Bool(bool),
    /// Anything else.
    Other,
}

/// Any JSON value, checked and dropped.
struct Skip;

/// A string, or any other value (skipped) as `None`.
struct Text(Option<String>);

/// An object read by `F`, or any other value (skipped) as `None`.
struct Object<F>(Option<F>);

/// An object's member name, decoded but never kept.
struct Key(KeyName);

/// The names the injector reads (the others are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyName {
    ApiVersion,
    Kind,
    Request,
    Uid,
    Resource,
    SubResource,
    Operation,
    Namespace,
    Name,
    DryRun,
    Object,
    Group,
    Version,
    Other,
}

/// How a field reads each kind of JSON value: every kind it does not take
/// reads as [`Loose::other`], after being checked and skipped.
trait Loose: Sized {
    /// What to expect, for serde's messages.
    const WHAT: &'static str = "any JSON value";
    /// A value of a kind not taken.
    fn other() -> Self;
    /// A string.
    fn string(_: &str) -> Self {
        Self::other()
    }
    /// `true` or `false`.
    fn boolean(_: bool) -> Self {
        Self::other()
    }
    /// `null`.
    fn null() -> Self {
        Self::other()
    }
    /// An object.
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Self::other())
    }
}

/// Reads an object's members into `Self`.
trait Fields: Default {
    /// Reads the value of member `key`, skipping it if unused.
    fn member<'de, A: MapAccess<'de>>(&mut self, key: KeyName, map: &mut A)
        -> Result<(), A::Error>;
}

struct LooseVisitor<T>(PhantomData<T>);

impl<'de, T: Loose> Visitor<'de> for LooseVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::WHAT)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<T, E> {
        Ok(T::boolean(b))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Ok(T::other())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Ok(T::other())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok(T::other())
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        Ok(T::string(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::null())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(T::other())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }
}

/// `deserialize_any`, never `deserialize_ignored_any`: serde_json checks a
/// value it ignores less than one it reads (it does not decode its
/// strings), and a skipped value must be refused exactly when a read one
/// would be.
fn loose<'de, T: Loose, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(LooseVisitor(PhantomData))
}

// === impl Body ===

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let review: Object<Review> = loose(d)?;
        Ok(Self(review.0))
    }
}

impl Fields for Review {
    fn member<'de, A: MapAccess<'de>>(
        &mut self,
        key: KeyName,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            KeyName::ApiVersion => self.api_version = map.next_value::<Text>()?.0,
            KeyName::Kind => self.kind = map.next_value::<Text>()?.0,
            KeyName::Request => self.request = map.next_value::<Object<Request>>()?.0,
            _ => map.next_value::<Skip>().map(drop)?,
        }
        Ok(())
    }
}

impl Fields for Request {
    fn member<'de, A: MapAccess<'de>>(
        &mut self,
        key: KeyName,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let text = |map: &mut A| map.next_value::<Text>().map(|t| t.0);
        match key {
            KeyName::Uid => self.uid = text(map)?,
            KeyName::Kind => {
                self.kind = map.next_value::<Object<Triple<true>>>()?.0.map(|t| t.0);
            }
            KeyName::Resource => {
                self.resource = map.next_value::<Object<Triple<false>>>()?.0.map(|t| t.0);
            }
            KeyName::SubResource => self.sub_resource = text(map)?,
            KeyName::Operation => self.operation = text(map)?,
            KeyName::Namespace => self.namespace = text(map)?,
            KeyName::Name => self.name = text(map)?,
            KeyName::DryRun => self.dry_run = map.next_value()?,
            KeyName::Object => self.object = Some(map.next_value()?),
            _ => map.next_value::<Skip>().map(drop)?,
        }
        Ok(())
    }
}

/// `{group, version, kind}` (`KIND`) or `{group, version, resource}`.
#[derive(Default)]
struct Triple<const KIND: bool>([Option<String>; 3]);

impl<const KIND: bool> Fields for Triple<KIND> {
    fn member<'de, A: MapAccess<'de>>(
        &mut self,
        key: KeyName,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let slot = match key {
            KeyName::Group => 0,
            KeyName::Version => 1,
            KeyName::Kind if KIND => 2,
            KeyName::Resource if !KIND => 2,
            _ => return map.next_value::<Skip>().map(drop),
        };
        self.0[slot] = map.next_value::<Text>()?.0;
        Ok(())
    }
}

// === impl Loose ===

impl Loose for Skip {
    fn other() -> Self {
        Self
    }
}

impl Loose for Text {
    fn other() -> Self {
        Self(None)
    }
    fn string(s: &str) -> Self {
        Self(Some(s.to_owned()))
    }
}

impl Loose for DryRun {
    fn other() -> Self {
        Self::Other
    }
    fn boolean(b: bool) -> Self {
        Self::Bool(b)
    }
    fn null() -> Self {
        Self::Absent
    }
}

impl<F: Fields> Loose for Object<F> {
    const WHAT: &'static str = "a JSON object";
    fn other() -> Self {
        Self(None)
    }
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut fields = F::default();
        while let Some(Key(key)) = map.next_key()? {
            fields.member(key, &mut map)?;
        }
        Ok(Self(Some(fields)))
    }
}

macro_rules! deserialize_loose {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                loose(d)
            }
        }
    )*};
}
deserialize_loose!(Skip, Text, DryRun);

impl<'de, F: Fields> Deserialize<'de> for Object<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        loose(d)
    }
}

// === impl Key ===

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(Key(match s {
                    "apiVersion" => KeyName::ApiVersion,
                    "kind" => KeyName::Kind,
                    "request" => KeyName::Request,
                    "uid" => KeyName::Uid,
                    "resource" => KeyName::Resource,
                    "subResource" => KeyName::SubResource,
                    "operation" => KeyName::Operation,
                    "namespace" => KeyName::Namespace,
                    "name" => KeyName::Name,
                    "dryRun" => KeyName::DryRun,
                    "object" => KeyName::Object,
                    "group" => KeyName::Group,
                    "version" => KeyName::Version,
                    _ => KeyName::Other,
                }))
            }
        }
        d.deserialize_str(V)
    }
}
