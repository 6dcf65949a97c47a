//! JSON text from callers and into request bodies. A properties object on
//! the hot path (`track`) is checked and copied into the body in one pass,
//! without building a `serde_json::Value` tree: by the byte scanner in
//! `scan.rs` when it can, else through serde's visitor below; anything
//! unusual goes the ordinary way (parse into a map), which also explains
//! what is wrong.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

mod scan;

/// A JSON object given as text, checked and re-encoded compactly.
#[derive(Debug)]
pub struct RawObject<'a> {
    /// The members, `"key":value` separated by commas, without the braces.
    pub members: Vec<u8>,
    /// The top-level keys, distinct, in the order given.
    pub keys: Vec<Cow<'a, str>>,
}

impl RawObject<'_> {
    pub fn contains_key(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }
}

/// Checks that `text` is a JSON object with distinct top-level keys and
/// re-encodes it. `None` for anything else, valid or not: the caller then
/// parses it with [`object`], which keeps the last of repeated keys and
/// words the error.
pub fn raw_object(text: &str) -> Option<RawObject<'_>> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let mut out = RawObject {
        members: Vec::with_capacity(text.len()),
        keys: Vec::with_capacity(8),
    };
    if scan::object(text, &mut out.members, &mut out.keys).is_none() {
        out.members.clear();
        out.keys.clear();
        let mut de = serde_json::Deserializer::from_str(text);
        TopLevel(&mut out).deserialize(&mut de).ok()?;
        de.end().ok()?;
    }
    let distinct = if out.keys.len() <= 16 {
        (1..out.keys.len()).all(|i| !out.keys[..i].contains(&out.keys[i]))
    } else {
        let mut sorted: Vec<&str> = out.keys.iter().map(|k| k.as_ref()).collect();
        sorted.sort_unstable();
        sorted.windows(2).all(|w| w[0] != w[1])
    };
    distinct.then_some(out)
}

/// Parses any JSON value; `what` names the argument in the error.
pub fn value(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::invalid_json(format!("{what} is not valid JSON: {e}")))
}

/// Parses a JSON object; `what` names the argument in the error.
pub fn object(text: &str, what: &str) -> Result<Map<String, Value>> {
    match value(text, what)? {
        Value::Object(m) => Ok(m),
        other => Err(Error::invalid_json(format!(
            "{what} must be a JSON object, got {}",
            type_name(&other)
        ))),
    }
}

/// Parses a JSON array; `what` names the argument in the error.
pub fn array(text: &str, what: &str) -> Result<Vec<Value>> {
    match value(text, what)? {
        Value::Array(a) => Ok(a),
        other => Err(Error::invalid_json(format!(
            "{what} must be a JSON array, got {}",
            type_name(&other)
        ))),
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Appends a JSON string. Most strings here (ids, names, timestamps) need no
/// escaping: they are copied in one go instead of byte by byte.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // No early exit, so the scan vectorizes.
    let needs_escape = s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escape {
        write_json(out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Appends `value` as JSON (serializing into a Vec cannot fail).
pub fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

/// The top-level object: its members are written and its keys kept.
struct TopLevel<'o, 'a>(&'o mut RawObject<'a>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for TopLevel<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for TopLevel<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<(), A::Error> {
        let RawObject { members, keys } = self.0;
        copy_members(map, members, |key| keys.push(key))
    }
}

/// Writes an object's members (`"key":value,...`, no braces) to `out`,
/// handing each key to `seen` after its value.
fn copy_members<'de, A: MapAccess<'de>>(
    mut map: A,
    out: &mut Vec<u8>,
    mut seen: impl FnMut(Cow<'de, str>),
) -> std::result::Result<(), A::Error> {
    let start = out.len();
    while let Some(Key(key)) = map.next_key()? {
        if out.len() > start {
            out.push(b',');
        }
        write_str(out, &key);
        out.push(b':');
        map.next_value_seed(Copy(&mut *out))?;
        seen(key);
    }
    Ok(())
}

/// A key, borrowed from the text unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Writes the value it deserializes as compact JSON.
struct Copy<'o>(&'o mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Copy<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Copy<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<(), E> {
        self.0.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<(), E> {
        write_json(self.0, &v);
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<(), E> {
        write_json(self.0, &v);
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<(), E> {
        if !v.is_finite() {
            return Err(E::custom("number out of range"));
        }
        write_json(self.0, &v);
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<(), E> {
        write_str(self.0, v);
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            // A separator is written ahead and taken back if the array ended.
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(Copy(&mut *self.0))?.is_none() {
                if !first {
                    self.0.pop();
                }
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<(), A::Error> {
        self.0.push(b'{');
        copy_members(map, self.0, |_| {})?;
        self.0.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn members(text: &str) -> Option<String> {
        raw_object(text).map(|r| String::from_utf8(r.members).unwrap())
    }

    #[test]
    fn an_object_is_copied_compactly_and_means_what_its_parse_means() {
        let text = r#" { "plan" : "pro", "n": -3, "big": 18446744073709551615, "x": 1.5e3,
            "ok": true, "no": null, "list": [1, "two", [], {}, {"a": [false]}],
            "esc\u00e9": "line\nbreak \"q\" \u0001", "nested": {"k": {"l": 2}} } "#;
        let raw = raw_object(text).unwrap();
        let keys: Vec<&str> = raw.keys.iter().map(|k| k.as_ref()).collect();
        assert_eq!(
            keys,
            ["plan", "n", "big", "x", "ok", "no", "list", "escé", "nested"]
        );
        assert!(raw.contains_key("list") && !raw.contains_key("lis"));
        let copied = format!("{{{}}}", String::from_utf8(raw.members).unwrap());
        assert!(!copied.contains(' ') || copied.contains("break \\\"q"));
        let reparsed: Value = serde_json::from_str(&copied).unwrap();
        assert_eq!(reparsed, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(members("{}").unwrap(), "");
        assert_eq!(members(r#"{"a":[]}"#).unwrap(), r#""a":[]"#);
    }

    #[test]
    fn anything_unusual_is_left_to_the_ordinary_parse() {
        for text in [
            "[1]",
            "\"s\"",
            "{\"a\":1,\"a\":2}", // repeated key: the parse keeps the last
            "{\"a\":1e999}",     // out of f64 range
            "{\"a\":}",
            "{\"a\":1} x",
            "{\"a\":1",
            "",
        ] {
            assert!(raw_object(text).is_none(), "{text}");
        }
        assert_eq!(object("{\"a\":1,\"a\":2}", "p").unwrap()["a"], json!(2));
        let e = object("{\"a\":1e999}", "properties_json").unwrap_err();
        assert!(e.message.contains("properties_json"), "{e}");
        let e = object("[1]", "p").unwrap_err();
        assert!(
            e.message.contains("must be a JSON object, got an array"),
            "{e}"
        );
    }
}
