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
        apiBase: String? = nil, storageDirectory: String? = nil, flushAt: Int? = nil,
        flushInterval: Double? = nil, timeout: Double? = nil, maxQueueItems: Int? = nil,
        maxQueueBytes: Int? = nil, durability: Durability? = nil, persistInterval: Double? = nil,
        gzip: Bool? = nil, appVersion: String? = nil, caFile: String? = nil, proxy: String? = nil, debug: Bool? = nil,
        userLanes: Int? = nil
    ) {
        self.apiBase = apiBase
        self.storageDirectory = storageDirectory
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
