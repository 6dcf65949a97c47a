import CTrodo
import Foundation

/// A failed libtrodo call: the status and the library's message.
public struct TrodoError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Status: Int32, Sendable {
        case notInitialized = 1, alreadyInitialized = 2, invalidArgument = 3,
             invalidJSON = 4, storage = 5, timeout = 6, `internal` = 99, unknown = -1
    }

    public let status: Status
    public let message: String

    public var description: String { "TrodoError.\(status): \(message)" }

    init(status: Status, message: String) {
        self.status = status
        self.message = message
    }

    /// The error behind `raw`, with this thread's last message.
    init(raw: TrodoStatus) {
        self.status = Status(rawValue: raw) ?? .unknown
        self.message = String(cString: trodo_last_error())
    }
}

@inline(__always)
func check(_ status: TrodoStatus) throws {
    if status != TRODO_OK { throw TrodoError(raw: status) }
}

/// Copies and frees a string returned by the library; throws when it is NULL.
func take(_ ptr: UnsafeMutablePointer<CChar>?) throws -> String {
    guard let ptr = ptr else { throw TrodoError(raw: trodo_last_error_code()) }
    defer { trodo_string_free(ptr) }
    return String(cString: ptr)
}

func millis(_ seconds: Double) -> UInt32 {
    UInt32(max(0, min(seconds * 1000, Double(UInt32.max))))
}

/// Runs blocking `work` on a thread of its own and waits for it without
/// holding a thread of the concurrency pool (whose few threads must never
/// wait on the network).
func offThePool(_ work: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
        Thread.detachNewThread {
            do {
                try work()
                done.resume()
            } catch {
                done.resume(throwing: error)
            }
        }
    }
}

/// Calls `body` with `strings` as an array of C strings, valid for the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) throws -> R) rethrows -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers = copies.map { UnsafePointer<CChar>($0) }
    return try pointers.withUnsafeBufferPointer(body)
}

func decodeGroups(_ text: String) throws -> [String: [String]] {
    try JSONDecoder().decode([String: [String]].self, from: Data(text.utf8))
}

/// The libtrodo client. Everything is safe to call from any thread or task:
/// the C library serialises access itself.
public enum Trodo {
    /// Starts the client with typed options.
    public static func initialize(siteID: String, options: TrodoOptions = TrodoOptions()) throws {
        try initialize(siteID: siteID, options: options.resolvingAppGroup().properties)
    }

    /// Starts the client. `options` are the C API's keys, e.g.
    /// `["api_base": "...", "storage_dir": "...", "debug": true]` (for keys
    /// newer than this wrapper; `TrodoOptions` covers the rest).
    public static func initialize(siteID: String, options: TrodoProperties) throws {
        let opts = options.isEmpty ? nil : try jsonObject(options, "options")
        try check(trodo_init(siteID, opts))
    }

    /// Waits up to `timeout` seconds until everything accepted so far is
    /// sent. Blocks the calling thread: from async code use the `async` one.
    public static func flush(timeout: Double = 10) throws {
        try check(trodo_flush(millis(timeout)))
    }

    /// Flushes for at most `timeout` seconds, then stops (throws `.timeout`
    /// if the flush did not finish; it stops anyway). Blocks the calling
    /// thread: from async code use the `async` one.
    public static func shutdown(timeout: Double = 10) throws {
        try check(trodo_shutdown(millis(timeout)))
    }

    /// As `flush(timeout:)`, waiting on a thread of its own, so no thread of
    /// the concurrency pool is blocked meanwhile.
    public static func flush(timeout: Double = 10) async throws {
        try await offThePool { try flush(timeout: timeout) }
    }

    /// As `shutdown(timeout:)`, waiting on a thread of its own.
    public static func shutdown(timeout: Double = 10) async throws {
        try await offThePool { try shutdown(timeout: timeout) }
    }

    public static var version: String { String(cString: trodo_version()) }

    /// Links the current user to `id`; memberships are hydrated from the answer.
    public static func identify(_ id: String) throws {
        try check(trodo_identify(id))
    }

    /// New anonymous id, new session, no groups.
    public static func reset() throws {
        try check(trodo_reset())
    }

    /// The current distinct id.
    public static var distinctID: String {
        get throws { try take(trodo_get_distinct_id()) }
    }

    /// Tracks an event, stamped with the current group memberships.
    public static func track(_ name: String, properties: TrodoProperties? = nil, category: String? = nil) throws {
        let props = try properties.map { try jsonObject($0, "properties") }
        try check(trodo_track_with_category(name, props, category))
    }

    /// Makes `id` the active context for `key`.
    public static func setGroup(_ key: String, id: String) throws {
        try check(trodo_set_group(key, id))
    }

    /// Makes several ids the active context for `key` (at least one).
    public static func setGroup(_ key: String, ids: [String]) throws {
        try withCStrings(ids) { try check(trodo_set_groups(key, $0.baseAddress, $0.count)) }
    }

    /// Adds one id to the user's memberships for `key`.
    public static func addGroup(_ key: String, id: String) throws {
        try check(trodo_add_group(key, id))
    }

    /// Removes one id from the user's memberships for `key`.
    public static func removeGroup(_ key: String, id: String) throws {
        try check(trodo_remove_group(key, id))
    }

    /// The current memberships: group key -> ids.
    public static var groups: [String: [String]] {
        get throws { try decodeGroups(try take(trodo_get_groups())) }
    }

    /// A handle for profile operations on one group, or nil when the key or
    /// id is missing (nil or empty), as Trodo's documentation says. Throws
    /// for other failures (not initialized, over-long).
    public static func getGroup(_ key: String?, id: String?) throws -> TrodoGroup? {
        guard let key = key, !key.isEmpty, let id = id, !id.isEmpty else { return nil }
        guard let handle = trodo_get_group(key, id) else {
            throw TrodoError(raw: trodo_last_error_code())
        }
        return TrodoGroup(handle: handle, key: key, id: id)
    }

    /// Profile operations on the current user.
    public static let people = People()
}

/// Profile operations on one group. The handle is freed in `deinit`; it has
/// no effect on event attribution.
public final class TrodoGroup: @unchecked Sendable {
    // Immutable after init, and libtrodo's handle calls are thread-safe.
    private let handle: OpaquePointer
    public let key: String
    public let id: String

    init(handle: OpaquePointer, key: String, id: String) {
        self.handle = handle
        self.key = key
        self.id = id
    }

    deinit { trodo_group_free(handle) }

    public func set(_ properties: TrodoProperties) throws {
        try check(trodo_group_set(handle, try jsonObject(properties, "properties")))
    }

    public func setOnce(_ properties: TrodoProperties) throws {
        try check(trodo_group_set_once(handle, try jsonObject(properties, "properties")))
    }

    public func union(_ listName: String, _ values: [TrodoValue]) throws {
        try check(trodo_group_union(handle, listName, try TrodoValue.array(values).json(at: "values")))
    }

    public func remove(_ listName: String, _ value: TrodoValue) throws {
        try check(trodo_group_remove(handle, listName, try value.json()))
    }

    public func append(_ property: String, _ value: TrodoValue) throws {
        try check(trodo_group_append(handle, property, try value.json()))
    }

    public func increment(_ property: String, by value: Double = 1) throws {
        try check(trodo_group_increment(handle, property, value))
    }

    public func unset(_ property: String) throws {
        try check(trodo_group_unset(handle, property))
    }

    public func delete() throws {
        try check(trodo_group_delete(handle))
    }
}

/// `Trodo.people`: the current user's profile.
public struct People: Sendable {
    public func set(_ properties: TrodoProperties) throws {
        try check(trodo_people_set(try jsonObject(properties, "properties")))
    }

    public func setOnce(_ properties: TrodoProperties) throws {
        try check(trodo_people_set_once(try jsonObject(properties, "properties")))
    }

    public func unset(_ key: String) throws {
        try check(trodo_people_unset(key))
    }

    public func increment(_ key: String, by amount: Double = 1) throws {
        try check(trodo_people_increment(key, amount))
    }

    public func append(_ key: String, _ values: [TrodoValue]) throws {
        try check(trodo_people_append(key, try TrodoValue.array(values).json(at: "values")))
    }

    public func union(_ key: String, _ values: [TrodoValue]) throws {
        try check(trodo_people_union(key, try TrodoValue.array(values).json(at: "values")))
    }

    public func remove(_ key: String, _ values: [TrodoValue]) throws {
        try check(trodo_people_remove(key, try TrodoValue.array(values).json(at: "values")))
    }

    public func trackCharge(_ amount: Double, properties: TrodoProperties? = nil) throws {
        let props = try properties.map { try jsonObject($0, "properties") }
        try check(trodo_people_track_charge(amount, props))
    }

    public func clearCharges() throws {
        try check(trodo_people_clear_charges())
    }

    public func deleteUser() throws {
        try check(trodo_people_delete_user())
    }
}
