import Foundation

/// `Trodo.initialize`'s options, typed. Every field left nil takes the
/// library's default (the README's options table); durations are seconds.
public struct TrodoOptions: Sendable, Equatable {
    /// `"batched"` (the default) writes the queue on a background thread;
    /// `"sync"` makes each call durable before it returns.
    public enum Durability: String, Sendable {
        case batched, sync
    }

    public var apiBase: String?
    public var storageDirectory: String?
    /// An App Group identifier (`"group.com.example.app"`): the app and its
    /// extensions then share one identity and queue, in the group's
    /// container. Apple platforms only; resolved by `Trodo.initialize`.
    public var appGroup: String?
    /// A shared container's directory, given as a path (what `appGroup`
    /// resolves to); state lives in its `Library/Application Support/trodo`.
    public var appGroupDirectory: String?
    public var flushAt: Int?
    public var flushInterval: Double?
    public var timeout: Double?
    public var maxQueueItems: Int?
    public var maxQueueBytes: Int?
    public var durability: Durability?
    public var persistInterval: Double?
    public var gzip: Bool?
    public var appVersion: String?
    public var caFile: String?
    /// `"http://host:port"`, `"socks5://..."` (credentials allowed); `""`: none; nil: the environment's.
    public var proxy: String?
    public var debug: Bool?
    public var userLanes: Int?

    public init(
        apiBase: String? = nil, storageDirectory: String? = nil, appGroup: String? = nil,
        appGroupDirectory: String? = nil, flushAt: Int? = nil,
        flushInterval: Double? = nil, timeout: Double? = nil, maxQueueItems: Int? = nil,
        maxQueueBytes: Int? = nil, durability: Durability? = nil, persistInterval: Double? = nil,
        gzip: Bool? = nil, appVersion: String? = nil, caFile: String? = nil, proxy: String? = nil, debug: Bool? = nil,
        userLanes: Int? = nil
    ) {
        self.apiBase = apiBase
        self.storageDirectory = storageDirectory
        self.appGroup = appGroup
        self.appGroupDirectory = appGroupDirectory
        self.flushAt = flushAt
        self.flushInterval = flushInterval
        self.timeout = timeout
        self.maxQueueItems = maxQueueItems
        self.maxQueueBytes = maxQueueBytes
        self.durability = durability
        self.persistInterval = persistInterval
        self.gzip = gzip
        self.appVersion = appVersion
        self.caFile = caFile
        self.proxy = proxy
        self.debug = debug
        self.userLanes = userLanes
    }

    /// These options with `appGroup` resolved to its container's path.
    func resolvingAppGroup() throws -> TrodoOptions {
        guard let group = appGroup else { return self }
        var out = self
        out.appGroup = nil
        #if canImport(Darwin)
        guard let url = FileManager.default.containerURL(forSecurityApplicationGroupIdentifier: group) else {
            throw TrodoError(status: .invalidArgument,
                             message: "no App Group container for \"\(group)\" (is it in the app's entitlements?)")
        }
        out.appGroupDirectory = url.path
        return out
        #else
        throw TrodoError(status: .invalidArgument,
                         message: "appGroup \"\(group)\": App Groups exist on Apple platforms only")
        #endif
    }

    /// The C API's option keys and values.
    var properties: TrodoProperties {
        var out: TrodoProperties = [:]
        func put(_ key: String, _ value: TrodoValue?) {
            if let value = value { out[key] = value }
        }
        func ms(_ seconds: Double?) -> TrodoValue? {
            seconds.map { .int(Int64(max(0, ($0 * 1000).rounded()))) }
        }
        put("api_base", apiBase.map { .string($0) })
        put("storage_dir", storageDirectory.map { .string($0) })
        put("app_group_dir", appGroupDirectory.map { .string($0) })
        put("flush_at", flushAt.map { .int(Int64($0)) })
        put("flush_interval_ms", ms(flushInterval))
        put("timeout_ms", ms(timeout))
        put("max_queue_items", maxQueueItems.map { .int(Int64($0)) })
        put("max_queue_bytes", maxQueueBytes.map { .int(Int64($0)) })
        put("durability", durability.map { .string($0.rawValue) })
        put("persist_interval_ms", ms(persistInterval))
        put("gzip", gzip.map { .bool($0) })
        put("app_version", appVersion.map { .string($0) })
        put("ca_file", caFile.map { .string($0) })
        put("proxy", proxy.map { .string($0) })
        put("debug", debug.map { .bool($0) })
        put("user_lanes", userLanes.map { .int(Int64($0)) })
        return out
    }
}
