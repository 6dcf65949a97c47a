import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest

@testable import Trodo

/// JSON text with sorted keys, for comparing bodies.
func canon(_ any: Any) -> String {
    let data = try! JSONSerialization.data(withJSONObject: any, options: [.sortedKeys, .fragmentsAllowed])
    return String(decoding: data, as: UTF8.self)
}

/// The status `body` threw, nil when it did not throw.
func status(_ body: () throws -> Void) -> TrodoError.Status? {
    do { try body(); return nil } catch let e as TrodoError { return e.status } catch { return .unknown }
}

func canon(json: String) -> String {
    canon(try! JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed]))
}

final class TrodoTests: XCTestCase {
    var server: FakeTrodo!
    var dir: URL!

    override func setUp() {
        server = FakeTrodo()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("trodo-swift-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? Trodo.shutdown(timeout: 10)
        try? FileManager.default.removeItem(at: dir)
        server = nil
    }

    func start(_ name: String = "storage", _ extra: TrodoProperties = [:]) throws {
        var options: TrodoProperties = [
            "api_base": .string(server.url),
            "storage_dir": .string(dir.appendingPathComponent(name).path),
            "persist_interval_ms": 10,
            "gzip": false,  // the test server reads plain bodies
        ]
        options.merge(extra) { _, new in new }
        try Trodo.initialize(siteID: "site-swift", options: options)
    }

    func testMultiTeamPatternStampsEventsFromTheSwitchOn() throws {
        try start()
        try Trodo.track("opened_app")
        try Trodo.addGroup("team", id: "team-a")
        try Trodo.addGroup("team", id: "team-b")
        try Trodo.setGroup("active_team", id: "team-a")
        try Trodo.track("worked_in_a", properties: ["doc": "d1", "seats": 12])
        try Trodo.setGroup("active_team", id: "team-b")
        try Trodo.track("worked_in_b", category: "editor")
        XCTAssertEqual(try Trodo.groups, ["team": ["team-a", "team-b"], "active_team": ["team-b"]])
        try Trodo.flush()

        XCTAssertEqual(canon(server.event("opened_app")!["custom_properties"]!), "{}")
        XCTAssertEqual(canon(server.event("worked_in_a")!["custom_properties"]!),
                       canon(json: #"{"doc":"d1","seats":12,"team":["team-a","team-b"],"active_team":["team-a"]}"#))
        let b = server.event("worked_in_b")!
        XCTAssertEqual(canon(b["custom_properties"]!),
                       canon(json: #"{"team":["team-a","team-b"],"active_team":["team-b"]}"#))
        XCTAssertEqual(b["event_category"] as? String, "editor")
    }

    func testSetGroupWithSeveralIds() throws {
        try start()
        try Trodo.setGroup("company", ids: ["acme", "globex"])
        try Trodo.removeGroup("company", id: "acme")
        XCTAssertEqual(try Trodo.groups, ["company": ["globex"]])
        try Trodo.flush()
        XCTAssertEqual(canon(server.toPath("/api/sdk/groups/set_group")[0].body["groupId"]!), #"["acme","globex"]"#)
    }

    func testEveryProfileOperationSendsItsDocumentedBody() throws {
        try start()
        try Trodo.identify("user-s")
        let g = try XCTUnwrap(try Trodo.getGroup("company", id: "acme"))
        try g.set(["plan": "pro"])
        try g.setOnce(["founded": 1999])
        try g.union("tags", ["b2b", 2])
        try g.remove("tags", "old")
        try g.append("events", ["x": 1])
        try g.increment("seats", by: 3)
        try g.unset("legacy")
        try g.delete()
        try Trodo.flush()
        let base = #""siteId":"site-swift","userId":"user-s","groupKey":"company","groupId":"acme""#
        let expected: [(String, String)] = [
            ("set", #"{\#(base),"properties":{"plan":"pro"}}"#),
            ("set_once", #"{\#(base),"properties":{"founded":1999}}"#),
            ("union", #"{\#(base),"listName":"tags","values":["b2b",2]}"#),
            ("remove", #"{\#(base),"listName":"tags","value":"old"}"#),
            ("append", #"{\#(base),"property":"events","value":{"x":1}}"#),
            ("increment", #"{\#(base),"property":"seats","value":3}"#),
            ("unset", #"{\#(base),"property":"legacy"}"#),
            ("delete", #"{\#(base)}"#),
        ]
        let got = server.requests.filter { $0.path.contains("/groups/profile/") }
        XCTAssertEqual(got.count, expected.count)
        for (request, (op, body)) in zip(got, expected) {
            XCTAssertEqual(request.path, "/api/sdk/groups/profile/\(op)")
            XCTAssertEqual(canon(request.body), canon(json: body), op)
        }
        XCTAssertEqual(try Trodo.groups, [:], "a handle has no effect on attribution")
    }

    func testPeopleOperations() throws {
        try start()
        try Trodo.identify("user-s")
        try Trodo.people.set(["name": "Ada"])
        try Trodo.people.increment("logins")
        try Trodo.people.union("roles", ["admin"])
        try Trodo.people.trackCharge(9.5)
        try Trodo.flush()
        XCTAssertEqual(canon(server.toPath("/api/sdk/people/set")[0].body),
                       canon(json: #"{"siteId":"site-swift","userId":"user-s","properties":{"name":"Ada"}}"#))
        XCTAssertEqual(canon(server.toPath("/api/sdk/people/increment")[0].body),
                       canon(json: #"{"siteId":"site-swift","userId":"user-s","key":"logins","amount":1}"#))
        XCTAssertEqual(canon(server.toPath("/api/sdk/people/union")[0].body["values"]!), #"["admin"]"#)
        XCTAssertEqual(canon(server.toPath("/api/sdk/people/track_charge")[0].body["amount"]!), "9.5")
    }

    func testBadInputThrowsTheRightError() throws {
        XCTAssertEqual(status { try Trodo.track("e") }, .notInitialized)
        XCTAssertEqual(status { _ = try Trodo.getGroup("company", id: "acme") }, .notInitialized)
        XCTAssertEqual(status {
            try Trodo.initialize(siteID: "s", options: ["flush_att": 1])
        }, .invalidJSON)
        try start()
        XCTAssertEqual(status { try Trodo.initialize(siteID: "s") }, .alreadyInitialized)
        do {
            try Trodo.track("")
            XCTFail("expected a throw")
        } catch let e as TrodoError {
            XCTAssertEqual(e.status, .invalidArgument)
            XCTAssertTrue(e.message.contains("event_name"), e.message)
        }
        XCTAssertEqual(status { try Trodo.addGroup(String(repeating: "k", count: 256), id: "a") }, .invalidArgument)
        XCTAssertEqual(status { try Trodo.setGroup("team", ids: [String]()) }, .invalidArgument)
        XCTAssertEqual(status { try Trodo.people.increment("k", by: .nan) }, .invalidArgument)
        do {
            try Trodo.track("e", properties: ["ratio": .double(.infinity)])
            XCTFail("expected a throw")
        } catch let e as TrodoError {
            XCTAssertTrue(e.message.contains("ratio"), e.message)
        }
        XCTAssertNil(try Trodo.getGroup(nil, id: "acme"))
        XCTAssertNil(try Trodo.getGroup("company", id: ""))
        XCTAssertEqual(status { _ = try Trodo.getGroup(String(repeating: "k", count: 256), id: "a") }, .invalidArgument)
        try Trodo.track("kept")
        try Trodo.flush()
        XCTAssertEqual(server.events.count, 1, "only the accepted event was sent")
    }

    func testPersistenceAcrossShutdownAndInit() throws {
        try start("p")
        try Trodo.identify("user-x")
        try Trodo.addGroup("team", id: "a")
        try Trodo.setGroup("active_team", ids: ["a", "b"])
        try Trodo.shutdown()
        try start("p")
        XCTAssertEqual(try Trodo.distinctID, "user-x")
        XCTAssertEqual(try Trodo.groups, ["team": ["a"], "active_team": ["a", "b"]])
    }

    func testIdentifyHydratesAndKeepsCallsMadeInFlight() throws {
        try start("device-1")
        try Trodo.identify("user-1")
        try Trodo.addGroup("team", id: "a")
        try Trodo.addGroup("team", id: "b")
        try Trodo.shutdown()

        server.identifyDelay = 0.3
        try start("device-2")
        try Trodo.addGroup("team", id: "local-only")
        try Trodo.identify("user-1")
        try Trodo.addGroup("team", id: "c")
        try Trodo.flush()
        XCTAssertEqual(try Trodo.groups, ["team": ["a", "b", "c"]])
        try Trodo.reset()
        XCTAssertEqual(try Trodo.groups, [:])
    }

    func testCallsFromManyThreads() throws {
        try start()
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<50 {
                try? Trodo.track("threaded", properties: ["t": .int(Int64(t)), "i": .int(Int64(i))])
            }
            try? Trodo.addGroup("team", id: "team-\(t)")
        }
        try Trodo.flush(timeout: 30)
        XCTAssertEqual(server.events.count, 400)
        XCTAssertEqual(try Trodo.groups["team"]?.count, 8)
    }

    func testStatsErrorHandlerAndOptOut() throws {
        final class Messages: @unchecked Sendable {
            let lock = NSLock()
            var all: [String] = []
        }
        let messages = Messages()
        Trodo.setErrorHandler { m in
            messages.lock.lock()
            messages.all.append(m)
            messages.lock.unlock()
        }
        defer { Trodo.setErrorHandler(nil) }
        try start("d", ["max_queue_items": 3, "flush_interval_ms": 600000])
        try Trodo.track("first")
        try Trodo.flush()
        for i in 0..<10 {
            try Trodo.track("overflow_\(i)")
        }
        let stats = try Trodo.stats()
        XCTAssertEqual(stats.droppedByReason["queue_full"], 7)
        XCTAssertEqual(stats.dropped, 7)
        XCTAssertEqual(stats.queued + stats.inFlight, 3)
        messages.lock.lock()
        XCTAssertTrue(messages.all.contains { $0.contains("queue_full") }, "\(messages.all)")
        messages.lock.unlock()

        try Trodo.setOptOut(true)
        XCTAssertTrue(Trodo.isOptedOut)
        try Trodo.track("while_opted_out")
        try Trodo.shutdown()
        try start("d")
        XCTAssertTrue(Trodo.isOptedOut)
        try Trodo.setOptOut(false)
        try Trodo.track("back")
        try Trodo.flush()
        XCTAssertNil(server.event("while_opted_out"))
        XCTAssertNotNil(server.event("back"))
    }

    func testAnAppGroupContainerHoldsTheState() throws {
        // What `appGroup` resolves to on Apple platforms, given as a path.
        let options = TrodoOptions(apiBase: server.url, appGroupDirectory: dir.path, persistInterval: 0.01)
        try Trodo.initialize(siteID: "site-group", options: options)
        try Trodo.track("in_the_group")
        try Trodo.shutdown()
        let state = dir.appendingPathComponent("Library/Application Support/trodo/site-group/state.json")
        XCTAssertTrue(FileManager.default.fileExists(atPath: state.path), state.path)
        #if !canImport(Darwin)
        // No App Groups here: said plainly, not ignored.
        XCTAssertEqual(status { try Trodo.initialize(siteID: "s", options: TrodoOptions(appGroup: "group.x")) },
                       .invalidArgument)
        #endif
    }

    func testTypedOptionsReachTheLibrary() throws {
        let options = TrodoOptions(apiBase: server.url, storageDirectory: dir.path, flushAt: 2,
                                   persistInterval: 0.01, gzip: false, appVersion: "9.9")
        XCTAssertEqual(options.properties["persist_interval_ms"], .int(10))
        try Trodo.initialize(siteID: "site-swift", options: options)
        try Trodo.track("typed")
        try Trodo.flush()
        XCTAssertNotNil(server.event("typed"))
        let session = server.toPath("/api/sdk/track").first?.body["sessionData"] as? [String: Any]
        XCTAssertEqual(session?["app_version"] as? String, "9.9")
        try Trodo.shutdown()
        // Every option the library knows has a typed field (it lists them
        // when it refuses an unknown one).
        let all = TrodoOptions(apiBase: "a", storageDirectory: "d", appGroupDirectory: "g", flushAt: 1,
                               flushInterval: 1, timeout: 1,
                               maxQueueItems: 1, maxQueueBytes: 1, durability: .sync, persistInterval: 1,
                               gzip: true, appVersion: "v", caFile: "c", proxy: "", debug: false, userLanes: 1)
        var known: Set<String> = []
        do {
            try Trodo.initialize(siteID: "s", options: ["not_an_option": 1])
        } catch let e as TrodoError {
            let list = e.message.components(separatedBy: "known keys: ").last ?? ""
            known = Set(list.components(separatedBy: ", "))
        }
        XCTAssertEqual(Set(all.properties.keys), known)
        // A value the library refuses is refused through the typed options too.
        XCTAssertEqual(status { try Trodo.initialize(siteID: "s", options: TrodoOptions(userLanes: 99)) },
                       .invalidJSON)
    }

    func testAsyncFlushWaitsWithoutHoldingThePoolsThreads() async throws {
        final class Stamp: @unchecked Sendable {
            private let lock = NSLock()
            private var stamped: Date?
            func stamp() { lock.lock(); stamped = Date(); lock.unlock() }
            var at: Date? { lock.lock(); defer { lock.unlock() }; return stamped }
        }
        try start()
        server.identifyDelay = 2  // each flush waits this long for the answer
        try Trodo.identify("slow")
        // More waiting flushes than the pool has threads: were each to hold
        // one, the marker task below could run only once they all ended.
        let waiting = ProcessInfo.processInfo.activeProcessorCount * 2 + 4
        let started = Date()
        let marker = Stamp()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<waiting {
                group.addTask { try await Trodo.flush(timeout: 30) }
            }
            try await Task.sleep(nanoseconds: 200_000_000)
            group.addTask { marker.stamp() }
            try await group.waitForAll()
        }
        let finished = Date().timeIntervalSince(started)
        let markerRan = try XCTUnwrap(marker.at).timeIntervalSince(started)
        XCTAssertGreaterThanOrEqual(finished, 1.9, "the flushes waited for the slow answer")
        XCTAssertLessThan(markerRan, 1.5, "a task ran while \(waiting) flushes waited")
        try await Trodo.shutdown(timeout: 10)
        XCTAssertEqual(status { try Trodo.flush() }, .notInitialized)
    }

    func testURLSessionTransportSendsEverything() throws {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpAdditionalHeaders = ["X-Sent-By": "URLSession"]
        let session = URLSession(configuration: configuration)
        try Trodo.initialize(
            siteID: "site-swift",
            options: TrodoOptions(apiBase: server.url, storageDirectory: dir.path, persistInterval: 0.01,
                                  gzip: false),
            transport: .urlSession(session))
        XCTAssertEqual(status { try Trodo.setTransport(.builtIn) }, .alreadyInitialized)
        try Trodo.identify("user-u")
        try Trodo.addGroup("team", id: "t1")
        try Trodo.track("through_urlsession", properties: ["n": 1])
        try Trodo.flush()
        let event = try XCTUnwrap(server.event("through_urlsession"))
        XCTAssertEqual(event["user_id"] as? String, "user-u")
        let requests = server.requests
        XCTAssertFalse(requests.isEmpty)
        for request in requests {
            XCTAssertEqual(request.headers["x-sent-by"], "URLSession", request.path)
            XCTAssertEqual(request.headers["x-trodo-site-id"], "site-swift", request.path)
        }
        try Trodo.shutdown()
        // Back to the built-in client for the next start.
        try Trodo.setTransport(.builtIn)
        try start("b")
        try Trodo.track("built_in")
        try Trodo.flush()
        XCTAssertNotNil(server.event("built_in"))
        XCTAssertNil(server.requests.last?.headers["x-sent-by"])
    }

    func testTheErrorHandlerMayReplaceItselfFromInside() throws {
        final class Counts: @unchecked Sendable {
            private let lock = NSLock()
            private var counts = [0, 0]
            func add(_ i: Int) { lock.lock(); counts[i] += 1; lock.unlock() }
            var all: [Int] { lock.lock(); defer { lock.unlock() }; return counts }
        }
        let counts = Counts()
        Trodo.setErrorHandler { _ in
            counts.add(0)
            // From inside: returns at once; the next reports go to the new one.
            Trodo.setErrorHandler { _ in counts.add(1) }
        }
        defer { Trodo.setErrorHandler(nil) }
        try start("d", ["max_queue_items": 1, "flush_interval_ms": 600000])
        for i in 0..<4 {
            try Trodo.track("overflow_\(i)")
        }
        let dropped = try Trodo.stats().droppedByReason["queue_full"] ?? 0
        XCTAssertGreaterThanOrEqual(dropped, 3)
        XCTAssertEqual(counts.all, [1, Int(dropped) - 1])
    }

    func testStatsHaveEveryField() throws {
        try start()
        let stats = try Trodo.stats()
        XCTAssertEqual(stats.memoryOnlyBytes, 0)
        XCTAssertEqual(stats.workerPanics, 0)
        XCTAssertEqual(stats.queuedMemoryBytes, stats.queuedBytes)
        XCTAssertEqual(Set(stats.droppedByReason.keys),
                       ["rejected", "too_large", "gave_up", "queue_full", "opted_out", "unreadable"])
    }

    // Server mode --------------------------------------------------------------

    func testUserCallsCarryTheirIdSessionAndGroupContext() throws {
        try start()
        let anon = try Trodo.distinctID
        let user = try Trodo.user("u-1", groups: ["active_team": ["team-a"]])
        XCTAssertEqual(try user.distinctID, "u-1")
        try user.track("report_viewed", properties: ["n": 1])
        try user.addGroup("team", id: "t1")
        try user.setGroup("workspace", ids: ["w1", "w2"])
        try user.removeGroup("team", id: "t1")
        try user.setGroup("active_team", id: "team-b")
        XCTAssertEqual(try user.groups, ["active_team": ["team-b"], "workspace": ["w1", "w2"]])
        try user.identify("u-known")
        XCTAssertEqual(try user.distinctID, "u-known")
        try user.track("after", category: "editor")
        try user.people.set(["plan": "pro"])
        try user.people.increment("logins")
        try Trodo.flush()

        let sessions = server.toPath("/api/sdk/track")
        XCTAssertEqual(sessions.count, 1)
        let data = sessions[0].body["sessionData"] as? [String: Any]
        XCTAssertEqual(data?["session_id"] as? String, "server:u-1")
        XCTAssertEqual(data?["is_server_session"] as? Bool, true)
        let viewed = try XCTUnwrap(server.event("report_viewed"))
        XCTAssertEqual(viewed["user_id"] as? String, "u-1")
        XCTAssertEqual(viewed["session_id"] as? String, "server:u-1")
        XCTAssertEqual(canon(viewed["custom_properties"]!), canon(json: #"{"n":1,"active_team":["team-a"]}"#))
        let after = try XCTUnwrap(server.event("after"))
        XCTAssertEqual(after["user_id"] as? String, "u-known")
        XCTAssertEqual(canon(after["custom_properties"]!),
                       canon(json: #"{"active_team":["team-b"],"workspace":["w1","w2"]}"#))
        XCTAssertEqual(server.toPath("/api/sdk/people/set")[0].body["userId"] as? String, "u-known")
        XCTAssertEqual(try Trodo.distinctID, anon, "the current user is untouched")
        XCTAssertEqual(try Trodo.groups, [:])
    }

    func testUserBadInputAndManyThreads() throws {
        XCTAssertThrowsError(try Trodo.user("early")) { error in
            XCTAssertEqual((error as? TrodoError)?.status, .notInitialized)
        }
        try start()
        XCTAssertThrowsError(try Trodo.user("")) { error in
            XCTAssertEqual((error as? TrodoError)?.status, .invalidArgument)
        }
        XCTAssertThrowsError(try Trodo.user("u", groups: ["team": [""]])) { error in
            XCTAssertEqual((error as? TrodoError)?.status, .invalidArgument)
        }
        let user = try Trodo.user("u-2")
        XCTAssertThrowsError(try user.track("")) { error in
            XCTAssertEqual((error as? TrodoError)?.status, .invalidArgument)
        }
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<50 {
                let id = "t\(t)u\(i)"
                if let u = try? Trodo.user(id, groups: ["team": ["team-\(id)"]]) {
                    try? u.track("many", properties: ["who": .string(id)])
                }
            }
        }
        try Trodo.flush(timeout: 30)
        XCTAssertEqual(server.events.count, 400)
        for event in server.events {
            let props = event["custom_properties"] as? [String: Any]
            let who = try XCTUnwrap(props?["who"] as? String)
            XCTAssertEqual(event["user_id"] as? String, who)
            XCTAssertEqual(props?["team"] as? [String], ["team-\(who)"])
        }
        XCTAssertEqual(server.toPath("/api/sdk/track").count, 400)
    }
}
