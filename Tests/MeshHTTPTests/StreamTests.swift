import Foundation
import MeshCore
import MeshLog
import Testing

@Suite struct StreamTests {
    @Test func deliversInOrderAndResumesAfterADroppedConnection() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        _ = try gw.broker.log.createTopic(Topic("s/a"), config: TopicConfig(partitions: 3))
        // 90 events over three partitions (by key) and a second topic.
        for i in 0..<60 {
            let r = try await gw.post("/v1/publish/s/a", "a\(i)", headers: [("ce-partitionkey", "k\(i % 5)"), ("ce-id", "a\(i)")])
            #expect(r.status == 200)
        }
        for i in 0..<30 { _ = try await gw.post("/v1/publish/s/b", "b\(i)", headers: [("ce-id", "b\(i)")]) }

        var seen: [String] = []
        var lastID: String?
        let first = try await SSEClient(port: gw.port, path: "/v1/stream/s/%2B?from=earliest")
        while seen.count < 40, let e = try await first.next() {
            seen.append(try #require(e.json["id"] as? String))
            lastID = e.id
        }
        await first.close()  // dropped mid-stream
        for i in 60..<70 { _ = try await gw.post("/v1/publish/s/a", "a\(i)", headers: [("ce-partitionkey", "k\(i % 5)"), ("ce-id", "a\(i)")]) }

        let second = try await SSEClient(port: gw.port, path: "/v1/stream/s/%2B?from=earliest", lastEventID: lastID)
        #expect(second.status == 200)
        while seen.count < 100, let e = try await second.next(timeout: .seconds(5)) {
            seen.append(try #require(e.json["id"] as? String))
        }
        await second.close()
        // Nothing lost, nothing twice, and each partition's events in offset order.
        #expect(seen.count == 100)
        #expect(Set(seen).count == 100)
        #expect(Set(seen) == Set((0..<70).map { "a\($0)" } + (0..<30).map { "b\($0)" }))
        let bs = seen.filter { $0.hasPrefix("b") }
        #expect(bs == (0..<30).map { "b\($0)" })
        for key in 0..<5 {
            let ofKey = seen.filter { $0.hasPrefix("a") }.filter { Int($0.dropFirst())! % 5 == key }
            #expect(ofKey == ofKey.sorted { Int($0.dropFirst())! < Int($1.dropFirst())! })
        }
    }

    @Test func badStreamRequestsAreProblems() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        try expectProblem(try await gw.get("/v1/stream/a/%23/b"), 400, "pattern.invalid")
        try expectProblem(try await gw.get("/v1/stream/a?from=yesterday"), 400, "request.invalid", detail: "from")
        try expectProblem(try await gw.get("/v1/stream/a", headers: [("last-event-id", "!!not-a-cursor!!")]), 400, "request.invalid", detail: "Last-Event-ID")
    }

    @Test func groupMembersSplitPartitionsAndAThirdRebalances() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        _ = try gw.broker.log.createTopic(Topic("g/t"), config: TopicConfig(partitions: 4))
        func members() async throws -> [[String]] {
            let g = try json(try await gw.get("/v1/groups/workers"))
            return (g["members"] as? [[String: Any]] ?? []).map { m in
                (m["partitions"] as? [[String: Any]] ?? []).map { "\($0["topic"]!)/\($0["partition"]!)" }
            }
        }
        let a = try await SSEClient(port: gw.port, path: "/v1/stream/g/%23?group=workers&from=earliest")
        let b = try await SSEClient(port: gw.port, path: "/v1/stream/g/%23?group=workers&from=earliest")
        var split = try await members()
        #expect(split.map(\.count) == [2, 2])
        #expect(Set(split.flatMap { $0 }).count == 4)

        // Events go to exactly one member each.
        for i in 0..<40 { _ = try await gw.post("/v1/publish/g/t", "e\(i)", headers: [("ce-partitionkey", "key\(i)"), ("ce-id", "e\(i)")]) }
        var got: [String: Set<String>] = ["a": [], "b": []]
        for (name, client) in [("a", a), ("b", b)] {
            while let e = try await client.next(timeout: .milliseconds(700)) { got[name]!.insert(e.json["id"] as! String) }
        }
        #expect(got["a"]!.isDisjoint(with: got["b"]!))
        #expect(got["a"]!.union(got["b"]!).count == 40)

        let c = try await SSEClient(port: gw.port, path: "/v1/stream/g/%23?group=workers")
        split = try await members()
        #expect(split.map(\.count).sorted() == [1, 1, 2])
        #expect(Set(split.flatMap { $0 }).count == 4)

        // The group committed what it streamed.
        let offsets = try json(try await gw.get("/v1/groups/workers"))["offsets"] as? [[String: Any]] ?? []
        #expect(offsets.reduce(0) { $0 + ($1["offset"] as? Int ?? 0) } == 40)

        // The server notices the closed stream and rebalances; wait for it rather than guess how long.
        await c.close()
        var after = try await members()
        for _ in 0..<200 where after.map(\.count) != [2, 2] {
            try await Task.sleep(for: .milliseconds(50))
            after = try await members()
        }
        #expect(after.map(\.count) == [2, 2])
        await a.close()
        await b.close()
    }

    @Test func groupOffsetsCanBeCommittedAndRead() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        let r = try await gw.post("/v1/groups/billing/offsets", #"{"offsets":[{"topic":"orders/eu","partition":0,"offset":42},{"topic":"orders/us","partition":1,"offset":7}]}"#,
                                  headers: [("content-type", "application/json")])
        #expect(r.status == 200, "\(r.text)")
        let g = try json(try await gw.get("/v1/groups/billing"))
        #expect(g["group"] as? String == "billing")
        let offsets = try #require(g["offsets"] as? [[String: Any]])
        #expect(offsets.count == 2)
        #expect(offsets[0]["topic"] as? String == "orders/eu" && offsets[0]["offset"] as? Int == 42)
        #expect(offsets[1]["topic"] as? String == "orders/us" && offsets[1]["partition"] as? Int == 1 && offsets[1]["offset"] as? Int == 7)
        try expectProblem(try await gw.post("/v1/groups/billing/offsets", #"{"offsets":[{"topic":"a","partition":-1,"offset":1}]}"#), 400, "request.invalid", detail: "partition")
        try expectProblem(try await gw.post("/v1/groups/billing/offsets", #"{"offsets":[{"topic":"a b","partition":0,"offset":1}]}"#), 400, "topic.invalid")
        try expectProblem(try await gw.post("/v1/groups/billing/offsets", #"{"offsets": [}"#), 400, "json.invalid", detail: "byte 13")
    }

    @Test func fetchPagesAndLongPolls() async throws {
        let gw = try await TestGateway()
        defer { Task { try await gw.stop() } }
        for i in 0..<5 { _ = try await gw.post("/v1/publish/f/t", "x\(i)") }
        var r = try json(try await gw.get("/v1/fetch/f/t?offset=1&max=2"))
        #expect((r["events"] as? [[String: Any]])?.map { $0["offset"] as? Int } == [1, 2])
        #expect(r["next_offset"] as? Int == 3)
        // Waits for an event published while it waits.
        let gwRef = gw
        Task { try await Task.sleep(for: .milliseconds(200)); _ = try await gwRef.post("/v1/publish/f/t", "late") }
        let started = ContinuousClock.now
        r = try json(try await gw.get("/v1/fetch/f/t?offset=5&wait_ms=5000"))
        #expect((r["events"] as? [[String: Any]])?.first?["data"] as? String != nil || (r["events"] as? [[String: Any]])?.count == 1)
        #expect(ContinuousClock.now - started < .seconds(4))
        #expect(r["next_offset"] as? Int == 6)
        try expectProblem(try await gw.get("/v1/fetch/nope/never"), 404, "topic.unknown")
        try expectProblem(try await gw.get("/v1/fetch/f/t?partition=3"), 404, "partition.unknown")
        try expectProblem(try await gw.get("/v1/fetch/f/t?max=0"), 400, "request.invalid", detail: "max")
        try expectProblem(try await gw.get("/v1/fetch/f/t?offset=99"), 400, "offset.out_of_range")
    }
}
