import CTrodo
import Foundation

extension Trodo {
    /// A handle for calls on behalf of `distinctID` (server mode: a program
    /// acting for many users at once). It never changes the process's
    /// current user. `groups` is the group context its events are stamped
    /// with, e.g. `["active_team": ["team-a"]]`; it is not sent to the server.
    public static func user(_ distinctID: String, groups: [String: [String]]? = nil) throws -> TrodoUser {
        let groupsJSON = try groups.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        guard let handle = trodo_user_new(distinctID, groupsJSON) else {
            throw TrodoError(raw: trodo_last_error_code())
        }
        return TrodoUser(handle: handle)
    }
}

/// Calls on behalf of one user; from `Trodo.user(_:groups:)`. The handle is
/// freed in `deinit`; it may be shared between threads and tasks.
public final class TrodoUser: @unchecked Sendable {
    // Immutable after init, and libtrodo's handle calls are thread-safe.
    private let handle: OpaquePointer

    init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit { trodo_user_free(handle) }

    /// The id requests are made for (after `identify`, the new one).
    public var distinctID: String {
        get throws { try take(trodo_user_get_distinct_id(handle)) }
    }

    /// Tracks an event for this user, stamped with its group context.
    public func track(_ name: String, properties: TrodoProperties? = nil, category: String? = nil) throws {
        let props = try properties.map { try jsonObject($0, "properties") }
        try check(trodo_user_track_with_category(handle, name, props, category))
    }

    /// Sends identify for this user; it then goes by `id`.
    public func identify(_ id: String) throws {
        try check(trodo_user_identify(handle, id))
    }

    /// Makes `id` this user's context for `key`.
    public func setGroup(_ key: String, id: String) throws {
        try check(trodo_user_set_group(handle, key, id))
    }

    /// Makes several ids this user's context for `key` (at least one).
    public func setGroup(_ key: String, ids: [String]) throws {
        try withCStrings(ids) { try check(trodo_user_set_groups(handle, key, $0.baseAddress, $0.count)) }
    }

    /// Adds one id to this user's context for `key`.
    public func addGroup(_ key: String, id: String) throws {
        try check(trodo_user_add_group(handle, key, id))
    }

    /// Removes one id from this user's context for `key`.
    public func removeGroup(_ key: String, id: String) throws {
        try check(trodo_user_remove_group(handle, key, id))
    }

    /// This user's group context: group key -> ids.
    public var groups: [String: [String]] {
        get throws { try decodeGroups(try take(trodo_user_get_groups(handle))) }
    }

    /// Profile operations on this user.
    public var people: UserPeople { UserPeople(user: self) }

    /// `user.people`: one user's profile.
    public struct UserPeople {
        let user: TrodoUser

        public func set(_ properties: TrodoProperties) throws {
            try check(trodo_user_people_set(user.handle, try jsonObject(properties, "properties")))
        }

        public func setOnce(_ properties: TrodoProperties) throws {
            try check(trodo_user_people_set_once(user.handle, try jsonObject(properties, "properties")))
        }

        public func unset(_ key: String) throws {
            try check(trodo_user_people_unset(user.handle, key))
        }

        public func increment(_ key: String, by amount: Double = 1) throws {
            try check(trodo_user_people_increment(user.handle, key, amount))
        }

        public func append(_ key: String, _ values: [TrodoValue]) throws {
            try check(trodo_user_people_append(user.handle, key, try TrodoValue.array(values).json(at: "values")))
        }

        public func union(_ key: String, _ values: [TrodoValue]) throws {
            try check(trodo_user_people_union(user.handle, key, try TrodoValue.array(values).json(at: "values")))
        }

        public func remove(_ key: String, _ values: [TrodoValue]) throws {
            try check(trodo_user_people_remove(user.handle, key, try TrodoValue.array(values).json(at: "values")))
        }

        public func trackCharge(_ amount: Double, properties: TrodoProperties? = nil) throws {
            let props = try properties.map { try jsonObject($0, "properties") }
            try check(trodo_user_people_track_charge(user.handle, amount, props))
        }

        public func clearCharges() throws {
            try check(trodo_user_people_clear_charges(user.handle))
        }

        public func deleteUser() throws {
            try check(trodo_user_people_delete_user(user.handle))
        }
    }
}
