//! Argument rules shared by every caller, Rust or C: names, keys and ids are
//! not empty, not only white space, and at most [`MAX_NAME_BYTES`] bytes;
//! numbers are finite.

use crate::error::{Error, Result};

/// Longest accepted name, key or id, in bytes (`docs/c-conventions.md`, "Arguments").
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a required name, key or id; `what` names the argument in the message.
pub fn name<'a>(value: &'a str, what: &str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(Error::invalid_argument(format!("{what} must not be empty")));
    }
    // "   " is no id a person meant (and a site id like it became a
    // directory named "___").
    if value.trim().is_empty() {
        return Err(Error::invalid_argument(format!(
            "{what} must not be only white space"
        )));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid_argument(format!(
            "{what} is {} bytes long; the limit is {MAX_NAME_BYTES}",
            value.len()
        )));
    }
    Ok(value)
}

/// Checks a number argument is neither NaN nor infinite.
pub fn finite(value: f64, what: &str) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::invalid_argument(format!(
            "{what} must be a finite number, got {value}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_non_empty() {
        assert!(name("", "group_key")
            .unwrap_err()
            .message
            .contains("group_key"));
        assert!(name(&"x".repeat(255), "k").is_ok());
        let long = name(&"x".repeat(256), "group_id").unwrap_err();
        assert!(long.message.contains("group_id") && long.message.contains("256"));
        // The limit is in bytes: 128 two-byte characters are 256 bytes.
        assert!(name(&"é".repeat(128), "k").is_err());
    }

    #[test]
    fn white_space_alone_is_no_name_but_around_one_it_is_kept() {
        for blank in [" ", "   ", "\t\n", "\u{3000}"] {
            let e = name(blank, "distinct_id").unwrap_err();
            assert!(e.message.contains("white space"), "{blank:?}: {e:?}");
        }
        assert_eq!(name(" a ", "k").unwrap(), " a ");
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        assert!(finite(1.5, "v").is_ok());
        assert!(finite(f64::NAN, "amount")
            .unwrap_err()
            .message
            .contains("amount"));
        assert!(finite(f64::INFINITY, "v").is_err());
        assert!(finite(f64::NEG_INFINITY, "v").is_err());
    }
}
