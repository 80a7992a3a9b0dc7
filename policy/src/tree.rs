//! A Signet policy document as a plain value tree, read before the typed document, so that every
//! diagnostic code comes from the document's structure or from the *kind* of error serde reports
//! (unknown field, unknown variant, missing field, wrong type) — never from the wording of a
//! parser's message, which a dependency update may change.
//!
//! The tree keeps every mapping entry in order, duplicates included (maps in `serde_json` and
//! `serde_yaml_ng` silently keep the last), so duplicates are found here, by structure. The typed
//! [`PolicyDocument`] is then deserialized from the tree by [`NodeDeserializer`], whose error type
//! records which of serde's constructors made it and the field path where it arose.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::document::PolicyDocument;

/// One value of a YAML or JSON document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `null`, `~` or an empty YAML value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A non-negative integer.
    U64(u64),
    /// A negative integer.
    I64(i64),
    /// A floating-point number.
    F64(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, entries in document order, duplicates kept.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A mapping key as written (non-string keys rendered as their value).
    pub(crate) fn key_text(&self) -> String {
        match self {
            Node::Str(s) => s.clone(),
            Node::Null => "null".into(),
            Node::Bool(b) => b.to_string(),
            Node::U64(n) => n.to_string(),
            Node::I64(n) => n.to_string(),
            Node::F64(n) => n.to_string(),
            Node::Seq(_) => "[…]".into(),
            Node::Map(_) => "{…}".into(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML or JSON value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::U64(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(match u64::try_from(v) {
                    Ok(u) => Node::U64(u),
                    Err(_) => Node::I64(v),
                })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::F64(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    entries.push((k, v));
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Which kind of problem serde reported, by the constructor that made the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A field the type does not define.
    UnknownField {
        /// The fields it does define.
        expected: &'static [&'static str],
    },
    /// A name that is not one of the type's variants; `identity` when the type is the identity
    /// rule (its variant list names `matchRepository`).
    UnknownVariant {
        /// The name as written (to place the diagnostic).
        variant: String,
        /// Whether the expected names are the identity rules.
        identity: bool,
    },
    /// A required field is absent.
    MissingField,
    /// A field given twice.
    DuplicateField,
    /// A value of the wrong type, out of range, or refused by a type's own check.
    InvalidValue,
}

/// A deserialization error with its kind and where in the document it arose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeError {
    pub(crate) kind: Kind,
    pub(crate) message: String,
    /// Keys and `[i]` indices from the root, outermost first.
    pub(crate) path: Vec<String>,
}

impl DeError {
    fn new(kind: Kind, message: String) -> DeError {
        DeError {
            kind,
            message,
            path: Vec::new(),
        }
    }

    fn within(mut self, segment: String) -> DeError {
        self.path.insert(0, segment);
        self
    }

    /// The stable diagnostic code of this error.
    pub(crate) fn code(&self) -> &'static str {
        match &self.kind {
            Kind::UnknownField { .. } => "unknown-field",
            Kind::UnknownVariant { identity: true, .. } => "unknown-identity-rule",
            Kind::UnknownVariant {
                identity: false, ..
            } => "unknown-variant",
            Kind::MissingField => "missing-field",
            Kind::DuplicateField => "duplicate-key",
            Kind::InvalidValue => "invalid-value",
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

fn one_of(names: &'static [&'static str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> DeError {
        DeError::new(Kind::InvalidValue, msg.to_string())
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> DeError {
        DeError::new(
            Kind::InvalidValue,
            format!("invalid type: {unexp}, expected {exp}"),
        )
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> DeError {
        DeError::new(
            Kind::InvalidValue,
            format!("invalid value: {unexp}, expected {exp}"),
        )
    }
    fn invalid_length(len: usize, exp: &dyn de::Expected) -> DeError {
        DeError::new(
            Kind::InvalidValue,
            format!("invalid length {len}, expected {exp}"),
        )
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> DeError {
        DeError::new(
            Kind::UnknownVariant {
                variant: variant.to_string(),
                identity: expected.contains(&"matchRepository"),
            },
            format!(
                "unknown variant `{variant}`, expected one of {}",
                one_of(expected)
            ),
        )
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> DeError {
        DeError::new(
            Kind::UnknownField { expected },
            format!(
                "unknown field `{field}`, expected one of {}",
                one_of(expected)
            ),
        )
    }
    fn missing_field(field: &'static str) -> DeError {
        DeError::new(Kind::MissingField, format!("missing field `{field}`"))
    }
    fn duplicate_field(field: &'static str) -> DeError {
        DeError::new(Kind::DuplicateField, format!("duplicate field `{field}`"))
    }
}

/// A field the typed document does not define: `(path of its mapping, field, expected fields)`.
pub(crate) type UnknownField = (Vec<String>, String, String);

/// Deserializes typed values from a [`Node`], with [`DeError`] as its error. Fields a struct does
/// not define (its field list comes from serde's derive, so it cannot drift from the type) are
/// recorded in `unknown` and skipped, so that every one is reported in one pass and the
/// semantic checks still run.
#[derive(Clone, Copy)]
pub(crate) struct NodeDeserializer<'a> {
    node: &'a Node,
    path: &'a Path<'a>,
    unknown: &'a RefCell<Vec<UnknownField>>,
}

/// Where a node sits: a linked list from the node up to the root, so that descending costs
/// nothing unless a field turns out to be unknown.
pub(crate) enum Path<'a> {
    /// The document itself.
    Root,
    /// A key or `[i]` under a parent.
    Child(&'a Path<'a>, String),
}

impl Path<'_> {
    fn segments(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = self;
        while let Path::Child(parent, segment) = at {
            out.push(segment.clone());
            at = parent;
        }
        out.reverse();
        out
    }
}

/// Most unknown fields removed one at a time (see [`document`]) before giving up.
const MAX_RETRIES: usize = 64;

/// Deserialize the typed document from its tree; also every field it does not define.
///
/// Most structs are seen by [`NodeDeserializer::deserialize_struct`], which skips and records
/// unknown fields in one pass. A struct read through another type's own visitor (an entry of
/// `signed` written as a single map, an identity rule's arguments) refuses its first unknown
/// field with an error instead: that field is recorded, removed from the tree, and the document
/// read again.
pub(crate) fn document(node: &Node) -> (Result<PolicyDocument, DeError>, Vec<UnknownField>) {
    let mut tree: Option<Node> = None;
    let mut found = Vec::new();
    for _ in 0..=MAX_RETRIES {
        let unknown = RefCell::new(Vec::new());
        let result = PolicyDocument::deserialize(NodeDeserializer {
            node: tree.as_ref().unwrap_or(node),
            path: &Path::Root,
            unknown: &unknown,
        });
        let mut unknown = unknown.into_inner();
        match result {
            Err(DeError {
                kind: Kind::UnknownField { expected },
                message,
                mut path,
            }) => {
                let Some(field) = path.pop() else {
                    found.append(&mut unknown);
                    return (
                        Err(DeError::new(Kind::UnknownField { expected }, message)),
                        found,
                    );
                };
                let mut copy = tree.take().unwrap_or_else(|| node.clone());
                if !remove(&mut copy, &path, &field) {
                    found.append(&mut unknown);
                    path.push(field);
                    return (
                        Err(DeError {
                            kind: Kind::UnknownField { expected },
                            message,
                            path,
                        }),
                        found,
                    );
                }
                found.push((path, field, one_of(expected)));
                tree = Some(copy);
            }
            other => {
                // Fields skipped in this pass were skipped in every earlier one too.
                found.append(&mut unknown);
                found.sort();
                found.dedup();
                return (other, found);
            }
        }
    }
    (
        Err(DeError::new(
            Kind::InvalidValue,
            format!("more than {MAX_RETRIES} unknown fields"),
        )),
        found,
    )
}

/// Remove `field` from the mapping at `path`; whether it was there.
fn remove(node: &mut Node, path: &[String], field: &str) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return match node {
            Node::Map(entries) => {
                let before = entries.len();
                entries.retain(|(k, _)| k.key_text() != field);
                entries.len() < before
            }
            _ => false,
        };
    };
    let child = match node {
        Node::Seq(items) => first
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| items.get_mut(i)),
        Node::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.key_text() == *first)
            .map(|(_, v)| v),
        _ => None,
    };
    child.is_some_and(|c| remove(c, rest, field))
}

impl<'de, 'a> IntoDeserializer<'de, DeError> for NodeDeserializer<'a> {
    type Deserializer = NodeDeserializer<'a>;
    fn into_deserializer(self) -> NodeDeserializer<'a> {
        self
    }
}

impl<'de, 'a> Deserializer<'de> for NodeDeserializer<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::U64(n) => visitor.visit_u64(*n),
            Node::I64(n) => visitor.visit_i64(*n),
            Node::F64(n) => visitor.visit_f64(*n),
            Node::Str(s) => visitor.visit_str(s),
            Node::Seq(items) => visitor.visit_seq(Items {
                items: items.iter(),
                at: 0,
                parent: self,
            }),
            Node::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter().collect::<Vec<_>>().into_iter(),
                value: None,
                parent: self,
            }),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let Node::Map(entries) = self.node else {
            return self.deserialize_any(visitor);
        };
        let mut known = Vec::with_capacity(entries.len());
        for entry in entries {
            let name = entry.0.key_text();
            if fields.contains(&name.as_str()) {
                known.push(entry);
            } else {
                self.unknown
                    .borrow_mut()
                    .push((self.path.segments(), name, one_of(fields)));
            }
        }
        visitor.visit_map(Entries {
            entries: known.into_iter(),
            value: None,
            parent: self,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // The document's derived enums (`mode`, `digest`) are plain names.
        match self.node {
            Node::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

struct Items<'a> {
    items: std::slice::Iter<'a, Node>,
    at: usize,
    parent: NodeDeserializer<'a>,
}

impl<'de, 'a> SeqAccess<'de> for Items<'a> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let segment = format!("[{}]", self.at);
        self.at += 1;
        let path = Path::Child(self.parent.path, segment.clone());
        seed.deserialize(NodeDeserializer {
            node: item,
            path: &path,
            unknown: self.parent.unknown,
        })
        .map(Some)
        .map_err(|e| e.within(segment))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Entries<'a> {
    entries: std::vec::IntoIter<&'a (Node, Node)>,
    value: Option<&'a (Node, Node)>,
    parent: NodeDeserializer<'a>,
}

impl<'de, 'a> MapAccess<'de> for Entries<'a> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let key = &entry.0;
        let path = Path::Child(self.parent.path, key.key_text());
        seed.deserialize(NodeDeserializer {
            node: key,
            path: &path,
            unknown: self.parent.unknown,
        })
        .map(Some)
        .map_err(|e| match e.kind {
            // A field refused by name is reported at the field itself.
            Kind::UnknownField { .. } => e.within(key.key_text()),
            _ => e,
        })
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.value.take() else {
            return Err(de::Error::custom(
                "a map value was asked for before its key",
            ));
        };
        let segment = key.key_text();
        let path = Path::Child(self.parent.path, segment.clone());
        seed.deserialize(NodeDeserializer {
            node: value,
            path: &path,
            unknown: self.parent.unknown,
        })
        .map_err(|e| e.within(segment))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A duplicate or non-string key somewhere in the tree: `(code, path, message)`.
pub(crate) type KeyProblem = (&'static str, Vec<String>, String);

/// Every mapping key given twice in the same mapping, and every key that is not a string, with
/// its path (the key itself last).
pub(crate) fn key_problems(node: &Node) -> Vec<KeyProblem> {
    let mut out = Vec::new();
    walk_keys(node, &mut Vec::new(), &mut out);
    out
}

fn walk_keys(node: &Node, path: &mut Vec<String>, out: &mut Vec<KeyProblem>) {
    match node {
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                walk_keys(item, path, out);
                path.pop();
            }
        }
        Node::Map(entries) => {
            for (i, (key, value)) in entries.iter().enumerate() {
                let text = key.key_text();
                let mut here = path.clone();
                here.push(text.clone());
                if !matches!(key, Node::Str(_)) {
                    out.push((
                        "invalid-value",
                        here,
                        format!("key {text} is not a string; quote it"),
                    ));
                } else if entries[..i].iter().any(|(k, _)| k == key) {
                    out.push(("duplicate-key", here, format!("duplicate key {text:?}")));
                }
                path.push(text);
                walk_keys(value, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn yaml(text: &str) -> Node {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn duplicates_are_kept_and_found_by_structure() {
        let tree = yaml("scopes:\n  a.io/x: {accept: true}\n  a.io/x: {reject: no}\n");
        assert_eq!(
            key_problems(&tree),
            vec![(
                "duplicate-key",
                vec!["scopes".to_string(), "a.io/x".to_string()],
                "duplicate key \"a.io/x\"".to_string()
            )]
        );
        let tree: Node = serde_json::from_str(r#"{"mode": "warn", "mode": "audit"}"#).unwrap();
        assert_eq!(key_problems(&tree)[0].0, "duplicate-key");
    }

    /// Unknown fields of every struct are collected, each with where it is and what the type
    /// expects there (from serde's own field list), and the rest is still read.
    #[test]
    fn unknown_fields_are_all_collected_from_the_types_own_field_lists() {
        let (doc, unknown) = document(&yaml(
            "colour: red\nscopes:\n  a.io/x:\n    accept: true\n    bogus: 1\n    signed: [{keys: [k], treshold: 2}]\n",
        ));
        let doc = doc.unwrap();
        assert_eq!(doc.scopes.0.len(), 1);
        let got: Vec<(Vec<String>, String)> = unknown.into_iter().map(|(p, f, _)| (p, f)).collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (s(&[]), "colour".to_string()),
                (s(&["scopes", "a.io/x"]), "bogus".to_string()),
                (
                    s(&["scopes", "a.io/x", "signed", "[0]"]),
                    "treshold".to_string()
                ),
            ]
        );
        // Inside an identity rule's arguments too.
        let (_, unknown) = document(&yaml(
            "scopes: {a.io/x: {signed: {keys: [k], identity: {exactReference: {reference: r, x: 1}}}}}",
        ));
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].1, "x");
    }

    /// The code comes from the kind of error, whatever its message says.
    #[test]
    fn codes_follow_the_kind_of_error_and_carry_the_path() {
        let cases = [
            (
                "scopes: {a.io/x: {accept: true, mode: loud}}",
                "unknown-variant",
                vec!["scopes", "a.io/x", "mode"],
            ),
            (
                "scopes: {a.io/x: {signed: {keys: [k], identity: matchAll}}}",
                "unknown-identity-rule",
                vec!["scopes", "a.io/x", "signed", "identity"],
            ),
            (
                "scopes: {a.io/x: {signed: [{keys: [k]}, {threshold: 1}]}}",
                "missing-field",
                vec!["scopes", "a.io/x", "signed", "[1]"],
            ),
            ("version: -1", "invalid-value", vec!["version"]),
            ("scopes: []", "invalid-value", vec!["scopes"]),
        ];
        for (text, code, path) in cases {
            let err = document(&yaml(text)).0.unwrap_err();
            assert_eq!(err.code(), code, "{text}: {err:?}");
            assert_eq!(err.path, path, "{text}");
        }
        // A type's own refusal (`de::Error::custom`) is an invalid value, never a syntax error.
        let err = document(&yaml(
            "scopes: {a.io/x: {signed: {keys: [k], identity: exactReference}}}",
        ))
        .0
        .unwrap_err();
        assert_eq!(err.kind, Kind::InvalidValue);
    }
}
