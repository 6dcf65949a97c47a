import CTrodo
import Foundation

/// Delivery counts, in items (one event, one call), not requests.
public struct TrodoStats: Decodable, Sendable, Equatable {
    /// Waiting, not counting what is in flight.
    public let queued: UInt64
    public let queuedBytes: UInt64
    /// The part of the queue held in memory (a backlog beyond it waits on disk).
    public let queuedMemoryBytes: UInt64
    public let inFlight: UInt64
    public let sent: UInt64
    public let dropped: UInt64
    /// "rejected", "too_large", "gave_up", "queue_full", "opted_out", "unreadable".
    public let droppedByReason: [String: UInt64]
    /// Epoch ms a 429 paused sending until; 0 when not paused.
    public let pausedUntilMs: UInt64
    public let corruptBytes: UInt64
    /// Records not yet durable (the queue file's mapped tail was full or
    /// could not be mapped).
    public let memoryOnlyBytes: UInt64
    /// Internal errors the delivery thread survived.
    public let workerPanics: UInt64
}

/// The registered handler; read by the C callback, which cannot capture.
private final class ErrorHandlerBox: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var handler: (@Sendable (String) -> Void)?

    func set(_ h: (@Sendable (String) -> Void)?) {
        lock.lock()
        handler = h
        lock.unlock()
    }

    func get() -> (@Sendable (String) -> Void)? {
        lock.lock()
        defer { lock.unlock() }
        return handler
    }
}

private let errorHandler = ErrorHandlerBox()

extension Trodo {
    /// Delivery counts since start and what is queued now.
    public static func stats() throws -> TrodoStats {
        let text = try take(trodo_get_stats())
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(TrodoStats.self, from: Data(text.utf8))
    }

    /// Turns opt-out on (discarding what is queued) or off; survives restarts.
    public static func setOptOut(_ optedOut: Bool) throws {
        try check(trodo_set_opt_out(optedOut))
    }

    /// Whether opt-out is on (false when not initialized).
    public static var isOptedOut: Bool { trodo_is_opted_out() }

    /// Called with a message whenever data is dropped or a request fails for
    /// good, on libtrodo's delivery thread; nil turns it off. The handler must
    /// not call back into Trodo.
    public static func setErrorHandler(_ handler: (@Sendable (String) -> Void)?) {
        errorHandler.set(handler)
        if handler == nil {
            trodo_set_error_callback(nil, nil)
        } else {
            trodo_set_error_callback({ message, _ in
                guard let message = message else { return }
                errorHandler.get()?(String(cString: message))
            }, nil)
        }
    }
}
