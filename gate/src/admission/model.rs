//! The parts of an `AdmissionReview` the webhook reads, deserialised straight from the body
//! (or from a `serde_json::Value`, which is a deserialiser too), borrowing its strings where they
//! have no escapes.
//!
//! The webhook used to walk a `serde_json::Value`, where a field of the wrong JSON type reads as
//! absent (`Value::as_str`, `Value::get`, `Value::pointer`). A typed model must keep that
//! meaning, not fail with a type error, so every field here is [`Lenient`]: a value of a type the
//! field does not read becomes `Field(None)`. Everything the webhook does not read is read
//! through with [`Skip`], which refuses exactly what the `Value` parser refused.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// A JSON value read through and dropped. Not `serde::de::IgnoredAny`: on serde_json that skips
/// without checking UTF-8, number range or nesting depth, and a body the `Value` parser refused
/// must stay refused (`deserialize_any` runs the checks `Value` ran, without building anything).
pub(crate) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Skip, A::Error> {
        skip_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Skip, A::Error> {
        skip_map(map)
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Skip, A::Error> {
    while seq.next_element::<Skip>()?.is_some() {}
    Ok(Skip)
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Skip, A::Error> {
    while map.next_entry::<Skip, Skip>()?.is_some() {}
    Ok(Skip)
}

/// A type read leniently from JSON: each hook is given a JSON value of one type and returns
/// `None` for a type it does not read, which then reads as absent. The hooks not overridden
/// read their value through and return `None`; scalars (numbers, booleans) are never read.
pub(crate) trait Lenient<'de>: Sized {
    /// A JSON string.
    fn from_str(_text: Cow<'de, str>) -> Option<Self> {
        None
    }

    /// JSON `null`.
    fn from_null() -> Option<Self> {
        None
    }

    /// A JSON array.
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        skip_seq(seq).map(|_| None)
    }

    /// A JSON object.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        skip_map(map).map(|_| None)
    }
}

/// A JSON value present: `Some` when `T` reads its type, `None` otherwise (what `Value::as_str`
/// or a `Value::pointer` through a non-object made of it).
pub(crate) struct Field<T>(pub(crate) Option<T>);

impl<'de, T: Lenient<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient<'de>> Visitor<'de> for FieldVisitor<T> {
    type Value = Field<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Field<T>, E> {
        Ok(Field(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Field<T>, E> {
        Ok(Field(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Field<T>, E> {
        Ok(Field(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Field<T>, E> {
        Ok(Field(None))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Field<T>, E> {
        Ok(Field(T::from_str(Cow::Borrowed(text))))
    }

    fn visit_str<E>(self, text: &str) -> Result<Field<T>, E> {
        Ok(Field(T::from_str(Cow::Owned(text.to_owned()))))
    }

    fn visit_string<E>(self, text: String) -> Result<Field<T>, E> {
        Ok(Field(T::from_str(Cow::Owned(text))))
    }

    fn visit_unit<E>(self) -> Result<Field<T>, E> {
        Ok(Field(T::from_null()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<T>, A::Error> {
        T::from_seq(seq).map(Field)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<T>, A::Error> {
        T::from_map(map).map(Field)
    }
}

/// A string, borrowed from the body unless it has escapes.
pub(crate) type Str<'de> = Field<Cow<'de, str>>;

impl<'de> Lenient<'de> for Cow<'de, str> {
    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        Some(text)
    }
}

impl<'de, T: Lenient<'de>> Lenient<'de> for Box<T> {
    fn from_str(text: Cow<'de, str>) -> Option<Self> {
        T::from_str(text).map(Box::new)
    }

    fn from_null() -> Option<Self> {
        T::from_null().map(Box::new)
    }

    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        Ok(T::from_seq(seq)?.map(Box::new))
    }

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        Ok(T::from_map(map)?.map(Box::new))
    }
}

/// A list that may be `null` (a Kubernetes client writes an empty list either way).
pub(crate) enum List<T> {
    /// `null`.
    Null,
    /// The items, each `Field(None)` when not of a type `T` reads.
    Items(Vec<Field<T>>),
}

impl<'de, T: Lenient<'de>> Lenient<'de> for List<T> {
    fn from_null() -> Option<Self> {
        Some(List::Null)
    }

    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(List::Items(items)))
    }
}

/// The string a field holds, if it is present and a string.
pub(crate) fn text<'a>(field: &'a Option<Str<'_>>) -> Option<&'a str> {
    field.as_ref().and_then(|f| f.0.as_deref())
}

/// A JSON object of which the listed keys are read, each into an `Option` (`None`: absent).
/// Other keys are read through ([`Skip`]). A listed key given twice is refused, with serde's
/// "duplicate field" error: JSON parsers disagree on which of the two counts, so an object
/// that says two things about what the webhook judges is not read at all.
macro_rules! object {
    ($(#[$doc:meta])* $name:ident { $($(#[$field_doc:meta])* $field:ident: $ty:ty = $key:literal,)* }) => {
        $(#[$doc])*
        #[derive(Default)]
        pub(crate) struct $name<'de> {
            $($(#[$field_doc])* pub(crate) $field: Option<$ty>,)*
        }

        impl<'de> Lenient<'de> for $name<'de> {
            fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
                let mut this = Self::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.0.as_deref() {
                        $(Some($key) => {
                            if this.$field.is_some() {
                                return Err(A::Error::duplicate_field($key));
                            }
                            this.$field = Some(map.next_value()?);
                        })*
                        _ => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                Ok(Some(this))
            }
        }
    };
}

object! {
    /// An `AdmissionReview`.
    Review {
        api_version: Str<'de> = "apiVersion",
        kind: Str<'de> = "kind",
        request: Field<Request<'de>> = "request",
    }
}

object! {
    /// Its `request`.
    Request {
        uid: Str<'de> = "uid",
        kind: Field<GroupVersionKind<'de>> = "kind",
        operation: Str<'de> = "operation",
        object: Field<Node<'de>> = "object",
        old_object: Field<Node<'de>> = "oldObject",
    }
}

object! {
    /// `request.kind`.
    GroupVersionKind {
        kind: Str<'de> = "kind",
    }
}

object! {
    /// An object, or an object inside it on the way to its pod spec. One type for every step,
    /// so that the object is read whatever its kind (which may come after it in the body) and
    /// the pod spec picked by kind afterwards; every step on every kind's path is read
    /// (`spec`, `template`, `jobTemplate`), each with the container lists a pod spec has.
    Node {
        spec: Field<Box<Node<'de>>> = "spec",
        template: Field<Box<Node<'de>>> = "template",
        job_template: Field<Box<Node<'de>>> = "jobTemplate",
        containers: Field<List<Container<'de>>> = "containers",
        init_containers: Field<List<Container<'de>>> = "initContainers",
        ephemeral_containers: Field<List<Container<'de>>> = "ephemeralContainers",
    }
}

object! {
    /// A container of a pod spec.
    Container {
        name: Str<'de> = "name",
        image: Str<'de> = "image",
    }
}

impl<'de> Node<'de> {
    /// The step `key` of a JSON pointer, if this node reads it.
    pub(crate) fn child(&self, key: &str) -> Option<&Field<Box<Node<'de>>>> {
        match key {
            "spec" => self.spec.as_ref(),
            "template" => self.template.as_ref(),
            "jobTemplate" => self.job_template.as_ref(),
            _ => None,
        }
    }

    /// The container list `name` (one of `CONTAINER_LISTS`).
    pub(crate) fn list(&self, name: &str) -> Option<&Field<List<Container<'de>>>> {
        match name {
            "containers" => self.containers.as_ref(),
            "initContainers" => self.init_containers.as_ref(),
            "ephemeralContainers" => self.ephemeral_containers.as_ref(),
            _ => None,
        }
    }
}
