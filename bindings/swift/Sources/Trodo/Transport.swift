import CTrodo
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// How libtrodo sends its requests: its built-in HTTP client, or the app's
/// own `URLSession` (system proxy settings, App Transport Security, one TLS
/// stack in the app). libtrodo keeps the queue, retries and backoff either way.
public enum TrodoTransport: Sendable {
    case builtIn
    case urlSession(URLSession)
}

/// The session a send function sends through.
private final class SessionBox: @unchecked Sendable {
    let session: URLSession
    init(_ session: URLSession) { self.session = session }
}

/// Every session handed to the library, kept for the life of the process:
/// a client left stopping by a timed-out shutdown may still send through one.
private final class Sessions: @unchecked Sendable {
    private let lock = NSLock()
    private var kept: [SessionBox] = []

    func keep(_ box: SessionBox) {
        lock.lock()
        kept.append(box)
        lock.unlock()
    }
}

private let sessions = Sessions()

/// A request in flight, carried to URLSession's completion handler.
private struct InFlight: @unchecked Sendable {
    let request: OpaquePointer
}

extension Trodo {
    /// Starts the client, sending through `transport`.
    public static func initialize(siteID: String, options: TrodoOptions = TrodoOptions(),
                                  transport: TrodoTransport) throws {
        try setTransport(transport)
        try initialize(siteID: siteID, options: options)
    }

    /// Sets how later `initialize` calls send (before `initialize`, or after
    /// `shutdown`).
    public static func setTransport(_ transport: TrodoTransport) throws {
        switch transport {
        case .builtIn:
            try check(trodo_set_transport(nil, nil))
        case .urlSession(let session):
            let box = SessionBox(session)
            sessions.keep(box)
            try check(trodo_set_transport({ request, userData in
                guard let request = request, let userData = userData else { return }
                let box = Unmanaged<SessionBox>.fromOpaque(userData).takeUnretainedValue()
                send(request, through: box.session)
            }, Unmanaged.passUnretained(box).toOpaque()))
        }
    }
}

/// Sends one request with `session` and completes it from the session's
/// completion handler (status 0 when no response came).
private func send(_ request: OpaquePointer, through session: URLSession) {
    guard let url = URL(string: String(cString: trodo_request_url(request))) else {
        trodo_request_complete(request, 0, nil, nil, 0)
        return
    }
    var post = URLRequest(url: url)
    post.httpMethod = "POST"
    for i in 0..<trodo_request_header_count(request) {
        post.setValue(String(cString: trodo_request_header_value(request, i)),
                      forHTTPHeaderField: String(cString: trodo_request_header_name(request, i)))
    }
    var length = 0
    if let body = trodo_request_body(request, &length) {
        post.httpBody = Data(bytes: body, count: length)
    }
    post.timeoutInterval = Double(trodo_request_timeout_ms(request)) / 1000
    let inFlight = InFlight(request: request)
    session.dataTask(with: post) { data, response, _ in
        let http = response as? HTTPURLResponse
        let status = Int32(http?.statusCode ?? 0)
        let retryAfter = http?.allHeaderFields.first {
            ($0.key as? String)?.lowercased() == "retry-after"
        }?.value as? String
        let body = data ?? Data()
        body.withUnsafeBytes { bytes in
            let start = bytes.bindMemory(to: UInt8.self).baseAddress
            if let retryAfter = retryAfter {
                retryAfter.withCString {
                    trodo_request_complete(inFlight.request, status, $0, start, bytes.count)
                }
            } else {
                trodo_request_complete(inFlight.request, status, nil, start, bytes.count)
            }
        }
    }.resume()
}
