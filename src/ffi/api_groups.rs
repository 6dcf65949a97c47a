use std::ffi::c_char;

use super::args;
use super::guard;
use super::handle::{self, TrodoGroup};
use super::status::TrodoStatus;
use crate::error::Result;
use crate::global;
use crate::groups::Group;
use crate::profile::GroupProfileOp;

/// Makes `group_id` the user's active context for `group_key`, replacing the
/// ids it had, and attaches the user to the group on the server. Events
/// tracked from now on carry it; earlier events are never changed.
#[no_mangle]
pub unsafe extern "C" fn trodo_set_group(
    group_key: *const c_char,
    group_id: *const c_char,
) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        let key = args::string(group_key, "group_key")?;
        client.set_group(key, args::string(group_id, "group_id")?)
    })
}

/// As trodo_set_group with several ids (`count` >= 1; duplicates are kept once).
#[no_mangle]
pub unsafe extern "C" fn trodo_set_groups(
    group_key: *const c_char,
    group_ids: *const *const c_char,
    count: usize,
) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        let key = args::string(group_key, "group_key")?;
        client.set_groups(key, &args::string_array(group_ids, count, "group_ids")?)
    })
}

/// Adds `group_id` to the user's ids for `group_key`, keeping the others.
/// Adding an id already present changes nothing locally (it is still sent,
/// so the server is sure to have it).
#[no_mangle]
pub unsafe extern "C" fn trodo_add_group(
    group_key: *const c_char,
    group_id: *const c_char,
) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        let key = args::string(group_key, "group_key")?;
        client.add_group(key, args::string(group_id, "group_id")?)
    })
}

/// Removes `group_id` from the user's ids for `group_key`, locally and on the server.
#[no_mangle]
pub unsafe extern "C" fn trodo_remove_group(
    group_key: *const c_char,
    group_id: *const c_char,
) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        let key = args::string(group_key, "group_key")?;
        client.remove_group(key, args::string(group_id, "group_id")?)
    })
}

/// The current memberships as a JSON object, group key -> array of ids, e.g.
/// {"team":["a","b"],"active_team":["a"]}; "{}" when there are none. Free it
/// with trodo_string_free. NULL when not initialized.
#[must_use]
#[no_mangle]
pub extern "C" fn trodo_get_groups() -> *mut c_char {
    guard::pointer(|| guard::string_out(global::current()?.groups()?.to_json().to_string()))
}

/// A handle for profile operations on one group; free it with
/// trodo_group_free. NULL when group_key or group_id is NULL, empty or
/// invalid, or the library is not initialized: trodo_last_error() says which.
/// The handle has no effect on event attribution. It stays valid across
/// shutdown and re-init (its calls act on the current client, or give
/// TRODO_ERR_NOT_INITIALIZED).
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn trodo_get_group(
    group_key: *const c_char,
    group_id: *const c_char,
) -> *mut TrodoGroup {
    guard::pointer(|| {
        global::current()?;
        let key = args::string(group_key, "group_key")?;
        let id = args::string(group_id, "group_id")?;
        Ok(handle::into_raw(TrodoGroup {
            group: Group::new(key, id)?,
        }))
    })
}

/// Runs one profile operation: initialized first, then the handle, then `op`'s arguments.
fn group_op(group: *const TrodoGroup, op: impl FnOnce() -> Result<GroupProfileOp>) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        let group = &handle::borrow(group)?.group;
        client.group_profile(group, op()?)
    })
}

/// Sets (overwrites) properties on the group's profile; `properties_json` is a JSON object.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_set(
    group: *const TrodoGroup,
    properties_json: *const c_char,
) -> TrodoStatus {
    group_op(group, || {
        Ok(GroupProfileOp::Set(args::json_object(
            properties_json,
            "properties_json",
        )?))
    })
}

/// Sets properties only where the profile does not have them yet.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_set_once(
    group: *const TrodoGroup,
    properties_json: *const c_char,
) -> TrodoStatus {
    group_op(group, || {
        Ok(GroupProfileOp::SetOnce(args::json_object(
            properties_json,
            "properties_json",
        )?))
    })
}

/// Adds the values of the JSON array `values_json` to the list property
/// `list_name`, skipping values already in it.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_union(
    group: *const TrodoGroup,
    list_name: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    group_op(group, || {
        Ok(GroupProfileOp::Union {
            list_name: args::string(list_name, "list_name")?.to_string(),
            values: args::json_array(values_json, "values_json")?,
        })
    })
}

/// Removes one value (any JSON value) from the list property `list_name`.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_remove(
    group: *const TrodoGroup,
    list_name: *const c_char,
    value_json: *const c_char,
) -> TrodoStatus {
    group_op(group, || {
        Ok(GroupProfileOp::Remove {
            list_name: args::string(list_name, "list_name")?.to_string(),
            value: args::json(value_json, "value_json")?,
        })
    })
}

/// Appends one value (any JSON value) to the list property `property`; duplicates allowed.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_append(
    group: *const TrodoGroup,
    property: *const c_char,
    value_json: *const c_char,
) -> TrodoStatus {
    group_op(group, || {
        Ok(GroupProfileOp::Append {
            property: args::string(property, "property")?.to_string(),
            value: args::json(value_json, "value_json")?,
        })
    })
}

/// Adds `value` (finite) to the numeric property `property`.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_increment(
    group: *const TrodoGroup,
    property: *const c_char,
    value: f64,
) -> TrodoStatus {
    group_op(group, || {
        Ok(GroupProfileOp::Increment {
            property: args::string(property, "property")?.to_string(),
            value,
        })
    })
}

/// Removes the property `property` from the group's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_unset(
    group: *const TrodoGroup,
    property: *const c_char,
) -> TrodoStatus {
    group_op(group, || {
        Ok(GroupProfileOp::Unset {
            property: args::string(property, "property")?.to_string(),
        })
    })
}

/// Deletes the group's whole profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_delete(group: *const TrodoGroup) -> TrodoStatus {
    group_op(group, || Ok(GroupProfileOp::Delete))
}

/// Frees a handle from trodo_get_group. NULL is fine.
#[no_mangle]
pub unsafe extern "C" fn trodo_group_free(group: *mut TrodoGroup) {
    guard::value((), || {
        handle::free(group);
        Ok(())
    })
}
