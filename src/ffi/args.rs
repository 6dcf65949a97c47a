//! Converting C arguments: NULL and UTF-8 checks, JSON parsing and shape.
//! Each error names the argument. Length and emptiness rules live in the core
//! (`validate`), where Rust callers get them too.

use std::ffi::{c_char, CStr};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::json;

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

/// JSON text. NULL is an argument error; bytes that are not UTF-8 are not
/// JSON text, so they are a JSON error like any other malformed input.
pub fn json_text<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    string(p, what).map_err(|e| match p.is_null() {
        true => e,
        false => Error::invalid_json(e.message),
    })
}

/// JSON text, or NULL.
pub fn opt_json_text<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        json_text(p, what).map(Some)
    }
}

/// Any JSON value.
pub fn json(p: *const c_char, what: &str) -> Result<Value> {
    json::value(json_text(p, what)?, what)
}

/// A JSON object.
pub fn json_object(p: *const c_char, what: &str) -> Result<Map<String, Value>> {
    json::object(json_text(p, what)?, what)
}

/// A JSON object, or NULL.
pub fn opt_json_object(p: *const c_char, what: &str) -> Result<Option<Map<String, Value>>> {
    opt_json_text(p, what)?
        .map(|text| json::object(text, what))
        .transpose()
}

/// A JSON array.
pub fn json_array(p: *const c_char, what: &str) -> Result<Vec<Value>> {
    json::array(json_text(p, what)?, what)
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
