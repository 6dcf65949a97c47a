// A loopback fake Trodo server for the XCTest suite: records every request
// (path, parsed body), keeps server-side memberships per user so identify can
// answer with group_memberships, and can answer identify late.
#if canImport(Glibc)
import Glibc
let sockStream = Int32(SOCK_STREAM.rawValue)
#else
import Darwin
let sockStream = SOCK_STREAM
#endif
import Foundation

final class FakeTrodo: @unchecked Sendable {
    struct Request {
        let path: String
        let body: [String: Any]
        /// Lowercased names.
        var headers: [String: String] = [:]
    }

    private let lock = NSLock()
    private var recorded: [Request] = []
    private var memberships: [String: [String: [String]]] = [:]
    private var delay: TimeInterval = 0
    private let listener: Int32
    let port: UInt16

    init() {
        let fd = socket(AF_INET, sockStream, 0)
        listener = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        listen(fd, 64)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = UInt16(bigEndian: addr.sin_port)
        Thread.detachNewThread { [weak self] in
            while true {
                let conn = accept(fd, nil, nil)
                if conn < 0 { return }
                guard let self = self else { close(conn); return }
                Thread.detachNewThread { self.serve(conn) }
            }
        }
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    var identifyDelay: TimeInterval {
        get { lock.lock(); defer { lock.unlock() }; return delay }
        set { lock.lock(); delay = newValue; lock.unlock() }
    }

    var requests: [Request] {
        lock.lock(); defer { lock.unlock() }
        return recorded
    }

    func toPath(_ path: String) -> [Request] { requests.filter { $0.path == path } }

    /// Events sent alone or in bulk, in arrival order.
    var events: [[String: Any]] {
        requests.flatMap { r -> [[String: Any]] in
            switch r.path {
            case "/api/events": return [r.body]
            case "/api/events/bulk": return r.body["events"] as? [[String: Any]] ?? []
            default: return []
            }
        }
    }

    func event(_ name: String) -> [String: Any]? {
        events.first { $0["event_name"] as? String == name }
    }

    private func serve(_ conn: Int32) {
        defer { close(conn) }
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = read(conn, &chunk, chunk.count)
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            var headerEnd: Int? = nil
            while headerEnd == nil {
                if buffer.count >= 4 {
                    for i in 0...(buffer.count - 4) where Array(buffer[i..<i + 4]) == separator {
                        headerEnd = i
                        break
                    }
                }
                if headerEnd == nil && !fill() { return }
            }
            let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
            let lines = head.components(separatedBy: "\r\n")
            let path = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            var length = 0
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let value = parts[1].trimmingCharacters(in: .whitespaces)
                headers[parts[0].lowercased()] = value
                if parts[0].lowercased() == "content-length" {
                    length = Int(value) ?? 0
                }
            }
            let bodyStart = headerEnd! + 4
            while buffer.count < bodyStart + length {
                if !fill() { return }
            }
            let raw = Data(buffer[bodyStart..<bodyStart + length])
            buffer.removeFirst(bodyStart + length)
            let body = (try? JSONSerialization.jsonObject(with: raw)) as? [String: Any] ?? [:]
            let (answer, wait) = handle(path, body, headers)
            if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            let data = (try? JSONSerialization.data(withJSONObject: answer)) ?? Data("{}".utf8)
            var reply = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(data.count)\r\n\r\n".utf8)
            reply.append(contentsOf: data)
            if write(conn, reply, reply.count) < 0 { return }
        }
    }

    private func handle(_ path: String, _ body: [String: Any], _ headers: [String: String]) -> ([String: Any], TimeInterval) {
        lock.lock()
        defer { lock.unlock() }
        recorded.append(Request(path: path, body: body, headers: headers))
        let user = body["userId"] as? String ?? ""
        let key = body["groupKey"] as? String ?? ""
        let ids: [String] = (body["groupId"] as? [String]) ?? [(body["groupId"] as? String) ?? ""]
        switch path {
        case "/api/sdk/groups/set_group", "/api/sdk/groups/add_group":
            var list = memberships[user, default: [:]][key, default: []]
            for id in ids where !list.contains(id) { list.append(id) }
            memberships[user, default: [:]][key] = list
        case "/api/sdk/groups/remove_group":
            memberships[user]?[key]?.removeAll { ids.contains($0) }
        case "/api/sdk/identify":
            let who = body["identifyId"] as? String ?? ""
            return (["group_memberships": memberships[who] ?? [:]], delay)
        default:
            break
        }
        return (["ok": true], 0)
    }
}
