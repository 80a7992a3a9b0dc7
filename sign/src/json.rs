//! JSON the way the Go tools see it: a value tree that keeps duplicate keys (so strict parsers can
//! refuse them, as containers/image does), and an encoder that writes what Go's
//! `encoding/json.Marshal` writes (HTML-safe escapes, map keys sorted by byte value).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A parsed JSON value whose objects keep every member, in order, duplicates included.
#[derive(Debug, Clone)]
pub(crate) enum StrictValue {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<StrictValue>),
    Object(Vec<(String, StrictValue)>),
}

impl StrictValue {
    /// The first duplicated key anywhere in the tree, with the dotted path of its object.
    pub(crate) fn first_duplicate(&self, path: &str) -> Option<(String, String)> {
        match self {
            StrictValue::Object(members) => {
                for (i, (key, value)) in members.iter().enumerate() {
                    if members[..i].iter().any(|(k, _)| k == key) {
                        return Some((path.to_string(), key.clone()));
                    }
                    if let Some(found) = value.first_duplicate(&format!("{path}.{key}")) {
                        return Some(found);
                    }
                }
                None
            }
            StrictValue::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| v.first_duplicate(&format!("{path}[{i}]"))),
            _ => None,
        }
    }

    /// Convert to a `serde_json::Value`. Call only after [`StrictValue::first_duplicate`] found
    /// none, or later duplicates silently win.
    pub(crate) fn into_value(self) -> Value {
        match self {
            StrictValue::Null => Value::Null,
            StrictValue::Bool(b) => Value::Bool(b),
            StrictValue::Number(n) => Value::Number(n),
            StrictValue::String(s) => Value::String(s),
            StrictValue::Array(items) => {
                Value::Array(items.into_iter().map(StrictValue::into_value).collect())
            }
            StrictValue::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<StrictValue, E> {
        Ok(StrictValue::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
        Number::from_f64(v)
            .map(StrictValue::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, StrictValue>()? {
            members.push((key, value));
        }
        Ok(StrictValue::Object(members))
    }
}

/// Parse one JSON document (trailing whitespace allowed, anything else after it refused).
pub(crate) fn parse(bytes: &[u8]) -> Result<StrictValue, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Append `s` as a JSON string exactly as Go's `encoding/json` (escapeHTML on, Go 1.22+) does.
pub(crate) fn write_go_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32 as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Append a number as Go formats a float64 / int64 (`strconv.FormatFloat(f, 'f' or 'e', -1, 64)`
/// with Go's exponent cut-offs).
fn write_go_number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go: shortest mantissa, exponent with an explicit sign; json trims `e-07` to `e-7`, and
        // positive exponents here are always at least 21, so no padding is ever needed.
        let formatted = format!("{f:e}");
        let (mantissa, exp) = formatted.split_once('e').unwrap_or((&formatted, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        out.push_str(mantissa);
        out.push('e');
        out.push(sign);
        out.push_str(digits);
    } else if f.fract() == 0.0 {
        out.push_str(&format!("{f:.0}"));
    } else {
        out.push_str(&format!("{f}"));
    }
}

/// Append `v` as Go's `json.Marshal` of the equivalent `interface{}` value: compact, object keys
/// sorted by byte value (Go marshals maps in sorted order).
pub(crate) fn write_go_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_go_number(out, n),
        Value::String(s) => write_go_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_go_object(out, map),
    }
}

/// Append an object with keys sorted by byte value, as Go marshals a `map[string]…`.
pub(crate) fn write_go_object(out: &mut String, map: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_go_string(out, key);
        out.push(':');
        write_go_value(out, value);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn go(v: Value) -> String {
        let mut out = String::new();
        write_go_value(&mut out, &v);
        out
    }

    #[test]
    fn go_escapes() {
        // Expected strings are what Go 1.22's json.Marshal prints for the same values.
        assert_eq!(
            go(Value::String("a<b>&c".into())),
            r#""a\u003cb\u003e\u0026c""#
        );
        assert_eq!(go(Value::String("q\"\\/".into())), r#""q\"\\/""#);
        assert_eq!(
            go(Value::String("\n\r\t\u{8}\u{c}\u{1}\u{7f}".into())),
            "\"\\n\\r\\t\\b\\f\\u0001\u{7f}\""
        );
        assert_eq!(go(Value::String("\u{2028}é".into())), "\"\\u2028é\"");
    }

    #[test]
    fn go_numbers_and_sorting() {
        let v: Value = serde_json::from_str(
            r#"{"z":1,"a":[1.5,2.0,1e21,1e-7,-3,0.000001],"B":true,"é":null}"#,
        )
        .unwrap();
        assert_eq!(
            go(v),
            r#"{"B":true,"a":[1.5,2,1e+21,1e-7,-3,0.000001],"z":1,"é":null}"#
        );
    }

    #[test]
    fn duplicates_are_found_at_any_depth() {
        let v = parse(br#"{"a":{"b":[{"c":1,"c":2}]}}"#).unwrap();
        assert_eq!(
            v.first_duplicate("top"),
            Some(("top.a.b[0]".into(), "c".into()))
        );
        let v = parse(br#"{"a":1,"b":{"a":1}}"#).unwrap();
        assert_eq!(v.first_duplicate("top"), None);
        assert!(parse(b"{} x").is_err());
        assert!(parse(b"{} \n").is_ok());
    }
}
