use std::ffi::c_char;

use super::args;
use super::guard;
use super::status::TrodoStatus;
use crate::error::Result;
use crate::global;
use crate::profile::PeopleOp;

/// Runs one people operation: initialized first, then `op`'s arguments.
fn people_op(op: impl FnOnce() -> Result<PeopleOp>) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        client.people(op()?)
    })
}

/// Sets (overwrites) properties on the current user's profile (a JSON object).
#[no_mangle]
pub extern "C" fn trodo_people_set(properties_json: *const c_char) -> TrodoStatus {
    people_op(|| {
        Ok(PeopleOp::Set(args::json_object(
            properties_json,
            "properties_json",
        )?))
    })
}

/// Sets properties only where the user's profile does not have them yet.
#[no_mangle]
pub extern "C" fn trodo_people_set_once(properties_json: *const c_char) -> TrodoStatus {
    people_op(|| {
        Ok(PeopleOp::SetOnce(args::json_object(
            properties_json,
            "properties_json",
        )?))
    })
}

/// Removes the property `key` from the user's profile.
#[no_mangle]
pub extern "C" fn trodo_people_unset(key: *const c_char) -> TrodoStatus {
    people_op(|| {
        Ok(PeopleOp::Unset {
            key: args::string(key, "key")?.to_string(),
        })
    })
}

/// Adds `amount` (finite) to the numeric property `key`.
#[no_mangle]
pub extern "C" fn trodo_people_increment(key: *const c_char, amount: f64) -> TrodoStatus {
    people_op(|| {
        Ok(PeopleOp::Increment {
            key: args::string(key, "key")?.to_string(),
            amount,
        })
    })
}

/// Appends the values of the JSON array `values_json` to the list property `key`.
#[no_mangle]
pub extern "C" fn trodo_people_append(
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    people_op(|| {
        Ok(PeopleOp::Append {
            key: args::string(key, "key")?.to_string(),
            values: args::json_array(values_json, "values_json")?,
        })
    })
}

/// Adds the values of the JSON array `values_json` to the list property
/// `key`, skipping values already in it.
#[no_mangle]
pub extern "C" fn trodo_people_union(
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    people_op(|| {
        Ok(PeopleOp::Union {
            key: args::string(key, "key")?.to_string(),
            values: args::json_array(values_json, "values_json")?,
        })
    })
}

/// Removes the values of the JSON array `values_json` from the list property `key`.
#[no_mangle]
pub extern "C" fn trodo_people_remove(
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    people_op(|| {
        Ok(PeopleOp::Remove {
            key: args::string(key, "key")?.to_string(),
            values: args::json_array(values_json, "values_json")?,
        })
    })
}

/// Records a charge of `amount` (finite) with optional properties (NULL or a JSON object).
#[no_mangle]
pub extern "C" fn trodo_people_track_charge(
    amount: f64,
    properties_json: *const c_char,
) -> TrodoStatus {
    people_op(|| {
        Ok(PeopleOp::TrackCharge {
            amount,
            properties: args::opt_json_object(properties_json, "properties_json")?
                .unwrap_or_default(),
        })
    })
}

/// Clears the user's charges.
#[no_mangle]
pub extern "C" fn trodo_people_clear_charges() -> TrodoStatus {
    people_op(|| Ok(PeopleOp::ClearCharges))
}

/// Deletes the user's profile.
#[no_mangle]
pub extern "C" fn trodo_people_delete_user() -> TrodoStatus {
    people_op(|| Ok(PeopleOp::DeleteUser))
}
