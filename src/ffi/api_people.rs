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

/// The people operations from C arguments, for the current user's calls
/// here and a `TrodoUser`'s in `api_users`.
pub(super) mod op {
    use super::*;

    pub fn set(properties_json: *const c_char) -> Result<PeopleOp> {
        Ok(PeopleOp::Set(args::json_object(
            properties_json,
            "properties_json",
        )?))
    }

    pub fn set_once(properties_json: *const c_char) -> Result<PeopleOp> {
        Ok(PeopleOp::SetOnce(args::json_object(
            properties_json,
            "properties_json",
        )?))
    }

    pub fn unset(key: *const c_char) -> Result<PeopleOp> {
        Ok(PeopleOp::Unset {
            key: args::string(key, "key")?.to_string(),
        })
    }

    pub fn increment(key: *const c_char, amount: f64) -> Result<PeopleOp> {
        Ok(PeopleOp::Increment {
            key: args::string(key, "key")?.to_string(),
            amount,
        })
    }

    pub fn append(key: *const c_char, values_json: *const c_char) -> Result<PeopleOp> {
        Ok(PeopleOp::Append {
            key: args::string(key, "key")?.to_string(),
            values: args::json_array(values_json, "values_json")?,
        })
    }

    pub fn union(key: *const c_char, values_json: *const c_char) -> Result<PeopleOp> {
        Ok(PeopleOp::Union {
            key: args::string(key, "key")?.to_string(),
            values: args::json_array(values_json, "values_json")?,
        })
    }

    pub fn remove(key: *const c_char, values_json: *const c_char) -> Result<PeopleOp> {
        Ok(PeopleOp::Remove {
            key: args::string(key, "key")?.to_string(),
            values: args::json_array(values_json, "values_json")?,
        })
    }

    pub fn track_charge(amount: f64, properties_json: *const c_char) -> Result<PeopleOp> {
        Ok(PeopleOp::TrackCharge {
            amount,
            properties: args::opt_json_object(properties_json, "properties_json")?
                .unwrap_or_default(),
        })
    }
}

/// Sets (overwrites) properties on the current user's profile (a JSON object).
#[no_mangle]
pub unsafe extern "C" fn trodo_people_set(properties_json: *const c_char) -> TrodoStatus {
    people_op(|| op::set(properties_json))
}

/// Sets properties only where the user's profile does not have them yet.
#[no_mangle]
pub unsafe extern "C" fn trodo_people_set_once(properties_json: *const c_char) -> TrodoStatus {
    people_op(|| op::set_once(properties_json))
}

/// Removes the property `key` from the user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_people_unset(key: *const c_char) -> TrodoStatus {
    people_op(|| op::unset(key))
}

/// Adds `amount` (finite) to the numeric property `key`.
#[no_mangle]
pub unsafe extern "C" fn trodo_people_increment(key: *const c_char, amount: f64) -> TrodoStatus {
    people_op(|| op::increment(key, amount))
}

/// Appends the values of the JSON array `values_json` to the list property `key`.
#[no_mangle]
pub unsafe extern "C" fn trodo_people_append(
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    people_op(|| op::append(key, values_json))
}

/// Adds the values of the JSON array `values_json` to the list property
/// `key`, skipping values already in it.
#[no_mangle]
pub unsafe extern "C" fn trodo_people_union(
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    people_op(|| op::union(key, values_json))
}

/// Removes the values of the JSON array `values_json` from the list property `key`.
#[no_mangle]
pub unsafe extern "C" fn trodo_people_remove(
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    people_op(|| op::remove(key, values_json))
}

/// Records a charge of `amount` (finite) with optional properties (NULL or a JSON object).
#[no_mangle]
pub unsafe extern "C" fn trodo_people_track_charge(
    amount: f64,
    properties_json: *const c_char,
) -> TrodoStatus {
    people_op(|| op::track_charge(amount, properties_json))
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
