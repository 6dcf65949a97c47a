//! Per-user calls (server mode): the `TrodoUser` handle.

use std::ffi::c_char;

use super::api_people::op;
use super::args;
use super::guard;
use super::handle::{self, TrodoUser};
use super::status::TrodoStatus;
use crate::client::Client;
use crate::error::Result;
use crate::global;
use crate::profile::PeopleOp;
use crate::user::User;

/// A handle for calls on behalf of the user `distinct_id`, for programs that
/// act for many users at once (servers); free it with trodo_user_free. It
/// never changes the process's current user, memberships or session, and
/// nothing about its user is kept on disk except the queued requests.
/// `groups_json` (nullable) is the group context events tracked through the
/// handle are stamped with: a JSON object of group key -> array of ids, e.g.
/// {"active_team":["team-a"]}; a key with an empty array is left out; it is
/// not sent to the server. NULL (see trodo_last_error) when not initialized,
/// when distinct_id is invalid (TRODO_ERR_INVALID_ARGUMENT), when
/// groups_json is not such an object (TRODO_ERR_INVALID_JSON) or holds a key
/// or id that breaks the id rules (TRODO_ERR_INVALID_ARGUMENT). The handle
/// may be shared between threads, and stays valid across shutdown and
/// re-init (its calls then act on the current client, or return
/// TRODO_ERR_NOT_INITIALIZED). Its server session is "server:<distinct_id>",
/// registered with the server once per user per client before its first
/// event or identify, without making any call wait.
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn trodo_user_new(
    distinct_id: *const c_char,
    groups_json: *const c_char,
) -> *mut TrodoUser {
    guard::pointer(|| {
        global::current()?;
        let id = args::string(distinct_id, "distinct_id")?;
        let groups = args::opt_json_text(groups_json, "groups_json")?;
        Ok(handle::into_raw(TrodoUser {
            user: User::from_json(id, groups)?,
        }))
    })
}

/// Frees a handle from trodo_user_new. NULL is fine. Requests already made
/// through it are still sent.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_free(user: *mut TrodoUser) {
    guard::value((), || {
        handle::free(user);
        Ok(())
    })
}

/// Runs one per-user call: initialized first, then the handle, then `f`
/// (which converts and checks the other arguments).
fn user_call(user: *const TrodoUser, f: impl FnOnce(&Client, &User) -> Result<()>) -> TrodoStatus {
    guard::status(|| {
        let client = global::current()?;
        f(&client, &handle::borrow(user)?.user)
    })
}

fn user_people(user: *const TrodoUser, op: impl FnOnce() -> Result<PeopleOp>) -> TrodoStatus {
    user_call(user, |client, user| client.user_people(user, op()?))
}

/// Tracks an event for the handle's user, stamped with the handle's group
/// context (a property the caller sets under a group key wins).
/// `properties_json` is NULL or a JSON object.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_track(
    user: *const TrodoUser,
    event_name: *const c_char,
    properties_json: *const c_char,
) -> TrodoStatus {
    trodo_user_track_with_category(user, event_name, properties_json, std::ptr::null())
}

/// As trodo_user_track, with an event category (NULL means "custom").
#[no_mangle]
pub unsafe extern "C" fn trodo_user_track_with_category(
    user: *const TrodoUser,
    event_name: *const c_char,
    properties_json: *const c_char,
    category: *const c_char,
) -> TrodoStatus {
    user_call(user, |client, user| {
        let name = args::string(event_name, "event_name")?;
        let properties = args::opt_json_text(properties_json, "properties_json")?;
        let category = args::opt_string(category, "category")?;
        client.user_track_json(user, name, properties, category)
    })
}

/// Sends identify for the handle's user (its distinct id and server
/// session); the handle then uses `identify_id` as its distinct id, and a
/// newDistinctId in the server's answer replaces it later. The server
/// session stays "server:<the id the handle was made with>".
#[no_mangle]
pub unsafe extern "C" fn trodo_user_identify(
    user: *const TrodoUser,
    identify_id: *const c_char,
) -> TrodoStatus {
    user_call(user, |client, user| {
        client.user_identify(user, args::string(identify_id, "identify_id")?)
    })
}

/// As trodo_set_group, for the handle's user and group context.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_set_group(
    user: *const TrodoUser,
    group_key: *const c_char,
    group_id: *const c_char,
) -> TrodoStatus {
    user_call(user, |client, user| {
        let key = args::string(group_key, "group_key")?;
        client.user_set_group(user, key, args::string(group_id, "group_id")?)
    })
}

/// As trodo_set_groups, for the handle's user and group context.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_set_groups(
    user: *const TrodoUser,
    group_key: *const c_char,
    group_ids: *const *const c_char,
    count: usize,
) -> TrodoStatus {
    user_call(user, |client, user| {
        let key = args::string(group_key, "group_key")?;
        let ids = args::string_array(group_ids, count, "group_ids")?;
        client.user_set_groups(user, key, &ids)
    })
}

/// As trodo_add_group, for the handle's user and group context.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_add_group(
    user: *const TrodoUser,
    group_key: *const c_char,
    group_id: *const c_char,
) -> TrodoStatus {
    user_call(user, |client, user| {
        let key = args::string(group_key, "group_key")?;
        client.user_add_group(user, key, args::string(group_id, "group_id")?)
    })
}

/// As trodo_remove_group, for the handle's user and group context.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_remove_group(
    user: *const TrodoUser,
    group_key: *const c_char,
    group_id: *const c_char,
) -> TrodoStatus {
    user_call(user, |client, user| {
        let key = args::string(group_key, "group_key")?;
        client.user_remove_group(user, key, args::string(group_id, "group_id")?)
    })
}

/// The handle's group context as a JSON object, as trodo_get_groups gives
/// the current user's; free it with trodo_string_free. NULL when not
/// initialized or `user` is NULL.
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn trodo_user_get_groups(user: *const TrodoUser) -> *mut c_char {
    guard::pointer(|| {
        global::current()?;
        let groups = handle::borrow(user)?.user.groups();
        guard::string_out(groups.to_json().to_string())
    })
}

/// The handle's distinct id (after trodo_user_identify, the identify id or
/// the server's answer to it); free it with trodo_string_free. NULL when not
/// initialized or `user` is NULL.
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn trodo_user_get_distinct_id(user: *const TrodoUser) -> *mut c_char {
    guard::pointer(|| {
        global::current()?;
        guard::string_out(handle::borrow(user)?.user.distinct_id())
    })
}

/// As trodo_people_set, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_set(
    user: *const TrodoUser,
    properties_json: *const c_char,
) -> TrodoStatus {
    user_people(user, || op::set(properties_json))
}

/// As trodo_people_set_once, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_set_once(
    user: *const TrodoUser,
    properties_json: *const c_char,
) -> TrodoStatus {
    user_people(user, || op::set_once(properties_json))
}

/// As trodo_people_unset, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_unset(
    user: *const TrodoUser,
    key: *const c_char,
) -> TrodoStatus {
    user_people(user, || op::unset(key))
}

/// As trodo_people_increment, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_increment(
    user: *const TrodoUser,
    key: *const c_char,
    amount: f64,
) -> TrodoStatus {
    user_people(user, || op::increment(key, amount))
}

/// As trodo_people_append, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_append(
    user: *const TrodoUser,
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    user_people(user, || op::append(key, values_json))
}

/// As trodo_people_union, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_union(
    user: *const TrodoUser,
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    user_people(user, || op::union(key, values_json))
}

/// As trodo_people_remove, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_remove(
    user: *const TrodoUser,
    key: *const c_char,
    values_json: *const c_char,
) -> TrodoStatus {
    user_people(user, || op::remove(key, values_json))
}

/// As trodo_people_track_charge, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_track_charge(
    user: *const TrodoUser,
    amount: f64,
    properties_json: *const c_char,
) -> TrodoStatus {
    user_people(user, || op::track_charge(amount, properties_json))
}

/// As trodo_people_clear_charges, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_clear_charges(user: *const TrodoUser) -> TrodoStatus {
    user_people(user, || Ok(PeopleOp::ClearCharges))
}

/// As trodo_people_delete_user, on the handle's user's profile.
#[no_mangle]
pub unsafe extern "C" fn trodo_user_people_delete_user(user: *const TrodoUser) -> TrodoStatus {
    user_people(user, || Ok(PeopleOp::DeleteUser))
}
