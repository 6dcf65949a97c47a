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

/// Where to store a result: `p` must not be NULL.
pub fn out_ptr<T>(p: *mut T, what: &str) -> Result<std::ptr::NonNull<T>> {
    std::ptr::NonNull::new(p).ok_or_else(|| Error::invalid_argument(format!("{what} is NULL")))
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

#[cfg(test)]
mod tests {
    //! Run under Miri too (`scripts/test-miri.sh`): the pointer reads here are
    //! the unsafe code every C call goes through.
    use super::*;
    use crate::error::ErrorKind;

    fn c(bytes: &[u8]) -> Vec<c_char> {
        bytes.iter().map(|&b| b as c_char).chain([0]).collect()
    }

    #[test]
    fn strings_are_checked_for_null_and_utf8_and_borrowed_as_they_are() {
        let ok = c("grüße".as_bytes());
        assert_eq!(string(ok.as_ptr(), "x").unwrap(), "grüße");
        assert_eq!(opt_string(std::ptr::null(), "x").unwrap(), None);
        let null = string(std::ptr::null(), "event_name").unwrap_err();
        assert_eq!(null.kind, ErrorKind::InvalidArgument);
        assert!(null.message.contains("event_name is NULL"));
        let bad = c(b"\xff\xfe");
        assert_eq!(
            string(bad.as_ptr(), "x").unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        // Not UTF-8 where JSON is expected: a JSON error, NULL an argument error.
        assert_eq!(
            json_text(bad.as_ptr(), "p").unwrap_err().kind,
            ErrorKind::InvalidJson
        );
        assert_eq!(
            json_text(std::ptr::null(), "p").unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        assert_eq!(opt_json_text(std::ptr::null(), "p").unwrap(), None);
    }

    #[test]
    fn json_arguments_have_their_shape_checked() {
        let obj = c(br#"{"a":[1,2]}"#);
        assert_eq!(json_object(obj.as_ptr(), "p").unwrap()["a"][1], 2);
        assert_eq!(
            json_array(obj.as_ptr(), "v").unwrap_err().kind,
            ErrorKind::InvalidJson
        );
        let arr = c(b"[true]");
        assert_eq!(
            json_array(arr.as_ptr(), "v").unwrap(),
            vec![Value::Bool(true)]
        );
        assert!(opt_json_object(std::ptr::null(), "p").unwrap().is_none());
        assert_eq!(
            json(c(b"nul").as_ptr(), "v").unwrap_err().kind,
            ErrorKind::InvalidJson
        );
    }

    #[test]
    fn string_arrays_read_exactly_count_elements() {
        let (a, b) = (c(b"a"), c(b"b"));
        let items = [a.as_ptr(), b.as_ptr(), std::ptr::null()];
        assert_eq!(string_array(items.as_ptr(), 2, "ids").unwrap(), ["a", "b"]);
        let third = string_array(items.as_ptr(), 3, "ids").unwrap_err();
        assert!(
            third.message.contains("ids[2] is NULL"),
            "{}",
            third.message
        );
        assert!(string_array(std::ptr::null(), 1, "ids").is_err());
        assert!(string_array(items.as_ptr(), 0, "ids").unwrap().is_empty());
    }
}
