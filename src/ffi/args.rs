//! Converting C arguments: NULL and UTF-8 checks, JSON parsing and shape.
//! Each error names the argument. Length and emptiness rules live in the core
//! (`validate`), where Rust callers get them too.

use std::ffi::{c_char, CStr};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::wire::type_name;

/// A required string. `p` must be NULL or NUL-terminated and valid for the call.
pub fn string<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::invalid_argument(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the C contract makes it NUL-terminated and live.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|e| Error::invalid_argument(format!("{what} is not valid UTF-8 ({e})")))
}

/// An optional string: NULL is `None`.
pub fn opt_string<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        string(p, what).map(Some)
    }
}

/// Any JSON value. NULL is an argument error; bytes that are not UTF-8 are
/// not JSON text, so they are a JSON error like any other malformed input.
pub fn json(p: *const c_char, what: &str) -> Result<Value> {
    let text = string(p, what).map_err(|e| match p.is_null() {
        true => e,
        false => Error::invalid_json(e.message),
    })?;
    serde_json::from_str(text)
        .map_err(|e| Error::invalid_json(format!("{what} is not valid JSON: {e}")))
}

/// A JSON object.
pub fn json_object(p: *const c_char, what: &str) -> Result<Map<String, Value>> {
    match json(p, what)? {
        Value::Object(m) => Ok(m),
        other => Err(Error::invalid_json(format!(
            "{what} must be a JSON object, got {}",
            type_name(&other)
        ))),
    }
}

/// A JSON object, or NULL.
pub fn opt_json_object(p: *const c_char, what: &str) -> Result<Option<Map<String, Value>>> {
    if p.is_null() {
        Ok(None)
    } else {
        json_object(p, what).map(Some)
    }
}

/// A JSON array.
pub fn json_array(p: *const c_char, what: &str) -> Result<Vec<Value>> {
    match json(p, what)? {
        Value::Array(a) => Ok(a),
        other => Err(Error::invalid_json(format!(
            "{what} must be a JSON array, got {}",
            type_name(&other)
        ))),
    }
}

/// `count` strings from a C array of strings.
pub fn string_array<'a>(p: *const *const c_char, count: usize, what: &str) -> Result<Vec<&'a str>> {
    if p.is_null() {
        return Err(Error::invalid_argument(format!("{what} is NULL")));
    }
    (0..count)
        .map(|i| {
            // SAFETY: non-NULL, and the caller promises `count` readable elements.
            let item = unsafe { *p.add(i) };
            string(item, &format!("{what}[{i}]"))
        })
        .collect()
}
