import MeshTestSupport
import Foundation
import MeshConfig
import MeshCore
import MeshLog
import MeshRouting
import Testing

private let connectors = """
version: 1
connectors:
  hook: {type: webhook, url: "http://127.0.0.1:9/h"}
  other: {type: webhook, url: "http://127.0.0.1:9/o"}

"""

@Suite(.serialized) struct DeliveryTests {
    @Test func retriesWithExponentialBackoffThenDelivers() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let hook = ScriptedDestination()
        hook.state.withLock { $0.failuresLeft = 3 }
        let engine = RouteEngine(log: log, provider: TestProvider(byConnector: ["hook": hook]), logger: quietLogger)
        await engine.apply(try table(connectors + """
        routes:
          - name: r
            from: "in/#"
            to:
              - connector: hook
                retry: {backoff: 20ms, max_backoff: 1s, jitter: none}
        """))
        try await publish(log, "in/a", id: "e1")
        #expect(try await eventually { hook.received.count == 1 })
        let times = hook.state.withLock { $0.attempts.map(\.at) }
        try #require(times.count == 4)
        // Waits double: 20, 40, 80 ms (no jitter), each at least its ceiling. (Upper bounds are
        // checked on the policy itself below; a loaded machine may sleep longer, never shorter.)
        for (i, expected) in [20, 40, 80].enumerated() {
            let gap = times[i + 1] - times[i]
            #expect(gap >= .milliseconds(expected), "gap \(i) was \(gap)")
        }
        let status = engine.status[0]
        #expect(status.counters.delivered == 1 && status.counters.failedAttempts == 3 && status.counters.lastStatus == 503)
        #expect(try await eventually { log.offsets.committed(group: "route:r:0", topic: "in/a", partition: 0).map { $0 > 0 } ?? false
                                   || log.offsets.committed(group: "route:r:0", topic: "in/a", partition: 1).map { $0 > 0 } ?? false })
        await engine.stop()
    }

    @Test func jitteredBackoffStaysUnderItsCeiling() async throws {
        let policy = DeliveryPolicy(backoff: .milliseconds(100), maxBackoff: .seconds(1))
        #expect(policy.ceiling(afterAttempt: 1) == .milliseconds(100))
        #expect(policy.ceiling(afterAttempt: 3) == .milliseconds(400))
        #expect(policy.ceiling(afterAttempt: 5) == .seconds(1))
        #expect(policy.ceiling(afterAttempt: 60) == .seconds(1))
        #expect(policy.isRetryable(status: 503) && policy.isRetryable(status: 429) && !policy.isRetryable(status: 400))
        #expect(policy.isRetryable(status: nil))
        // Full jitter: every wait lies between zero and the ceiling, and they spread over it.
        var random = SeededRandom(seed: 42)
        for attempt in 1...8 {
            let ceiling = policy.ceiling(afterAttempt: attempt)
            let waits = (0..<500).map { _ in policy.wait(afterAttempt: attempt, using: &random) }
            #expect(waits.allSatisfy { $0 >= .zero && $0 <= ceiling }, "attempt \(attempt)")
            #expect(waits.contains { $0 < ceiling / 4 } && waits.contains { $0 > ceiling * 3 / 4 }, "attempt \(attempt)")
        }
        // A longer Retry-After wins; without jitter the wait is the ceiling itself.
        #expect(policy.wait(afterAttempt: 1, retryAfter: .seconds(7), using: &random) == .seconds(7))
        let steady = DeliveryPolicy(backoff: .milliseconds(100), maxBackoff: .seconds(1), jitter: false)
        #expect(steady.wait(afterAttempt: 2, using: &random) == .milliseconds(200))

        // End to end: a jittered policy retries until the destination takes the event.
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let hook = ScriptedDestination()
        hook.state.withLock { $0.failuresLeft = 6 }
        let engine = RouteEngine(log: log, provider: TestProvider(byConnector: ["hook": hook]), logger: quietLogger)
        await engine.apply(try table(connectors + """
        routes:
          - name: r
            from: "in/#"
            to: [{connector: hook, retry: {backoff: 10ms, max_backoff: 40ms, jitter: full}}]
        """))
        try await publish(log, "in/a", id: "e1")
        #expect(try await eventually { hook.received.count == 1 })
        #expect(hook.state.withLock { $0.attempts.count } == 7)
        await engine.stop()
    }

    @Test func givesUpIntoTheDeadLetterTopicWithContext() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let hook = ScriptedDestination()
        hook.state.withLock { $0.failForever = true }
        let other = ScriptedDestination()
        other.state.withLock { $0.failForever = true; $0.failure = DeliveryError("bad request", status: 400, response: #"{"error":"no such customer"}"#) }
        let engine = RouteEngine(log: log, provider: TestProvider(byConnector: ["hook": hook, "other": other]), logger: quietLogger)
        await engine.apply(try table(connectors + """
        routes:
          - name: billing
            from: "orders/+"
            to:
              - connector: hook
                retry: {attempts: 3, backoff: 5ms, jitter: none}
                dead_letter: dlq/hook
              - connector: other
                dead_letter: dlq/other
        """))
        try await publish(log, "orders/eu", id: "o1", type: "order.created", data: #"{"total": 5}"#)
        #expect(try await eventually { try events(log, "dlq/hook").count == 1 && events(log, "dlq/other").count == 1 })
        let dead = try events(log, "dlq/hook")[0]
        #expect(dead.id == "o1" && dead.type == "order.created" && dead.data == Array(#"{"total": 5}"#.utf8))
        #expect(dead.extensions["deadletterreason"] == "scripted failure")
        #expect(dead.extensions["deadletterattempts"] == "3")
        #expect(dead.extensions["deadletterstatus"] == "503")
        #expect(dead.extensions["deadletterdest"] == "connector hook ({topic})")
        #expect(dead.extensions["deadletterroute"] == "billing")
        #expect(dead.extensions["deadlettertopic"] == "orders/eu")
        #expect(hook.attemptCount == 3)
        // A 400 is not in retry_on (5xx, 429, 425, 408): one attempt, then the dead-letter topic.
        let bad = try events(log, "dlq/other")[0]
        #expect(bad.extensions["deadletterattempts"] == "1" && bad.extensions["deadletterstatus"] == "400")
        #expect(bad.extensions["deadletterresponse"] == #"{"error":"no such customer"}"#)
        #expect(dead.extensions["deadletterresponse"] == nil)
        #expect(other.attemptCount == 1)
        #expect(await eventually { engine.status.map(\.counters.deadLettered) == [1, 1] })
        await engine.stop()
    }

    @Test func respectsRetryAfter() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let hook = ScriptedDestination()
        hook.state.withLock { $0.failuresLeft = 1; $0.failure = DeliveryError("slow down", status: 429, retryAfter: .milliseconds(300)) }
        let engine = RouteEngine(log: log, provider: TestProvider(byConnector: ["hook": hook]), logger: quietLogger)
        await engine.apply(try table(connectors + """
        routes:
          - {name: r, from: "in/#", to: [{connector: hook, retry: {backoff: 1ms}}]}
        """))
        try await publish(log, "in/x", id: "e1")
        #expect(try await eventually { hook.received.count == 1 })
        let times = hook.state.withLock { $0.attempts.map(\.at) }
        #expect(times[1] - times[0] >= .milliseconds(300))
        await engine.stop()
    }

    @Test func aFailingDestinationNeverDelaysAHealthyOne() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let stuck = ScriptedDestination()
        stuck.state.withLock { $0.failForever = true; $0.delay = .milliseconds(50) }
        let engine = RouteEngine(log: log, provider: TestProvider(byConnector: ["hook": stuck]), logger: quietLogger)
        await engine.apply(try table(connectors + """
        routes:
          - name: fan
            from: "in/+"
            to:
              - {connector: hook, retry: {backoff: 10ms, max_backoff: 50ms}}
              - {topic: "copy/{1}"}
        """))
        let started = Date()
        for i in 0..<500 { try await publish(log, "in/a", id: "e\(i)", key: "k\(i % 7)") }
        #expect(try await eventually(10) { try events(log, "copy/a").count == 500 })
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(Set(try events(log, "copy/a").map(\.id)).count == 500)
        #expect(stuck.received.isEmpty && stuck.attemptCount > 0)
        // The counter moves just after the append it counts becomes visible.
        #expect(await eventually { engine.status.first { $0.index == 1 }?.counters.delivered == 500 })
        #expect((engine.status.first { $0.index == 0 }?.lag ?? 0) > 0)
        await engine.stop()
    }

    @Test func orderingPerKeyIsKept() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let hook = ScriptedDestination()
        hook.state.withLock { $0.delay = .milliseconds(1) }
        let engine = RouteEngine(log: log, provider: TestProvider(byConnector: ["hook": hook]), logger: quietLogger)
        await engine.apply(try table(connectors + """
        routes:
          - {name: r, from: "in/#", to: [{connector: hook, ordering: key, in_flight: 8}]}
        """))
        for i in 0..<300 { try await publish(log, "in/a", id: "\(i)", key: "k\(i % 5)") }
        #expect(try await eventually { hook.received.count == 300 })
        var last: [String: Int] = [:]
        for e in hook.received {
            let n = Int(e.id)!
            #expect(n > (last[e.partitionKey!] ?? -1), "key \(e.partitionKey!) out of order")
            last[e.partitionKey!] = n
        }
        await engine.stop()
    }

    /// A log → log route takes each read batch whole: the copies land in the destination topic the
    /// template picks, spread over its partitions by key, each key's events in source order, once.
    @Test func aLogToLogRouteCopiesWholeBatchesInKeyOrder() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        for name in ["out/a", "out/b"] {
            _ = try log.createTopic(try Topic(name), config: TopicConfig(partitions: 3, durability: .always))
        }
        #expect(LogTopicDestination(log: log).acceptsBatches)
        let engine = RouteEngine(log: log, logger: quietLogger)
        await engine.apply(try table("""
        version: 1
        routes:
          - {name: copy, from: "in/+", to: [{topic: "out/{1}"}]}
        """))
        // Seven keys over three destination partitions: every read batch spans several of them.
        for i in 0..<600 { _ = try await publish(log, i % 3 == 0 ? "in/a" : "in/b", id: "\(i)", type: i % 3 == 0 ? "a" : "b", key: "k\(i % 7)") }
        #expect(try await eventually { try events(log, matching: "out/#").count == 600 })
        let copies = try events(log, matching: "out/#")
        #expect(Set(copies.map(\.id)).count == 600, "each event copied once")
        #expect(copies.allSatisfy { $0.topic.name == "out/" + $0.type })
        var last: [String: Int] = [:]
        for e in try events(log, "out/a") + events(log, "out/b") {
            // events() reads partition by partition: within one, each key's events rise.
            let key = e.topic.name + e.partitionKey!
            let n = Int(e.id)!
            #expect(n > (last[key] ?? -1), "\(key) out of order")
            last[key] = n
        }
        let status = engine.status[0]
        #expect(status.counters.delivered == 600 && status.counters.failedAttempts == 0)
        await engine.stop()
    }

    @Test func aPassThroughCopyStoresWhatTheDecodingPathStores() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let engine = RouteEngine(log: log, logger: quietLogger)
        // `plain` re-addresses the stored bytes (no filter, no transform); `decoded` takes the
        // decoding path because of its filter, which every event passes.
        await engine.apply(try table("""
        version: 1
        routes:
          - {name: plain, from: "in/#", to: [{topic: "plain/{topic}"}]}
          - {name: decoded, from: "in/#", where: "type <> 'never'", to: [{topic: "decoded/{topic}"}]}
        """))
        for i in 0..<200 {
            _ = try await publish(log, i % 2 == 0 ? "in/a" : "in/b/c", id: "e\(i)", type: "t\(i % 5)", key: i % 3 == 0 ? nil : "k\(i % 4)",
                                  data: #"{"n":\#(i)}"#)
        }
        #expect(try await eventually { try events(log, matching: "plain/#").count == 200 && events(log, matching: "decoded/#").count == 200 })
        for source in ["in/a", "in/b/c"] {
            // Two source partitions feed each destination concurrently, so compare by id: the same
            // events, byte for byte apart from the topic.
            let plain = Dictionary(uniqueKeysWithValues: try events(log, "plain/" + source).map { ($0.id, $0) })
            let decoded = Dictionary(uniqueKeysWithValues: try events(log, "decoded/" + source).map { ($0.id, $0) })
            #expect(plain.count == 100 && Set(plain.keys) == Set(decoded.keys))
            for (id, p) in plain {
                var retitled = try #require(decoded[id])
                #expect(retitled.topic.name == "decoded/" + source && p.topic.name == "plain/" + source)
                retitled.topic = p.topic
                #expect(EventCodec.encode(p) == EventCodec.encode(retitled))
            }
        }
        let status = engine.status.first { $0.route == "plain" }!
        #expect(status.counters.read == 200 && status.counters.matched == 200 && status.counters.delivered == 200)
        await engine.stop()
    }

    @Test func reloadUnderLoadLosesAndDuplicatesNothingForUnchangedDestinations() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let base = """
        version: 1
        routes:
          - {name: keep, from: "load/#", to: [{topic: "kept/{1}"}]}

        """
        let engine = RouteEngine(log: log, logger: quietLogger)
        await engine.apply(try table(base))
        let producer = Task {
            for i in 0..<2000 {
                try await publish(log, "load/a", id: "e\(i)", key: "k\(i % 3)")
                if i % 100 == 0 { await Task.yield() }
            }
        }
        for round in 0..<10 {
            let extra = round % 2 == 0 ? "  - {name: extra\(round), from: \"load/+\", to: [{topic: \"extra/\(round)\"}]}\n" : ""
            let result = await engine.apply(try table(base + extra))
            #expect(result.kept.contains("route:keep:0"))
            try await Task.sleep(for: .milliseconds(20))
        }
        try await producer.value
        #expect(try await eventually(15) { try events(log, "kept/a").count >= 2000 })
        try await Task.sleep(for: .milliseconds(200))
        let ids = try events(log, "kept/a").map(\.id)
        #expect(ids.count == 2000, "duplicates: \(ids.count - Set(ids).count)")
        #expect(Set(ids) == Set((0..<2000).map { "e\($0)" }))
        await engine.stop()
    }

    @Test func aChangedConnectorRestartsItsPairsAndAMovedOneDoesNot() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let hook = ScriptedDestination()
        let engine = RouteEngine(log: log, provider: TestProvider(byConnector: ["hook": hook]), logger: quietLogger)
        let routes = """
        routes:
          - {name: r, from: "in/#", to: [{connector: hook}]}
        """
        await engine.apply(try table(connectors + routes))
        // The same connector written elsewhere in the file: the pair keeps running.
        let moved = await engine.apply(try table("\n\n" + connectors + routes))
        #expect(moved.kept == ["route:r:0"] && moved.started.isEmpty)
        // A new url: the runtime built from the old one must go.
        let changed = await engine.apply(try table(connectors.replacingOccurrences(of: "9/h", with: "9/h2") + routes))
        #expect(changed.stopped == ["route:r:0"] && changed.started == ["route:r:0"])
        await engine.stop()
    }

    @Test func restartResumesFromCommittedCursors() async throws {
        let dir = ScratchDirectory()
        let routes = try table("""
        version: 1
        routes:
          - {name: copy, from: "src/#", to: [{topic: "dst/{1}"}]}
        """)
        do {
            let log = try openLog(dir.path)
            let engine = RouteEngine(log: log, logger: quietLogger)
            await engine.apply(routes)
            for i in 0..<100 { try await publish(log, "src/a", id: "a\(i)") }
            #expect(try await eventually { try events(log, "dst/a").count == 100 })
            await engine.stop()
            log.close()
        }
        do {
            // Events arrive while no engine runs.
            let log = try openLog(dir.path)
            for i in 100..<200 { try await publish(log, "src/a", id: "a\(i)") }
            for i in 0..<50 { try await publish(log, "src/b", id: "b\(i)") }  // a topic created while down
            log.close()
        }
        let log = try openLog(dir.path)
        defer { log.close() }
        let engine = RouteEngine(log: log, logger: quietLogger)
        await engine.apply(routes)
        #expect(try await eventually { try events(log, "dst/a").count >= 200 && events(log, "dst/b").count >= 50 })
        try await Task.sleep(for: .milliseconds(100))
        #expect(try events(log, "dst/a").map(\.id).sorted() == (0..<200).map { "a\($0)" }.sorted())
        #expect(try events(log, "dst/b").count == 50)
        await engine.stop()
    }

    @Test func aNewRouteStartsAtTheEndOfExistingTopicsUnlessAskedForEarliest() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        for i in 0..<10 { try await publish(log, "old/a", id: "h\(i)") }
        let engine = RouteEngine(log: log, logger: quietLogger)
        await engine.apply(try table("""
        version: 1
        routes:
          - {name: latest, from: "old/#", to: [{topic: "latest/{1}"}]}
          - {name: earliest, from: "old/#", to: [{topic: "earliest/{1}", start: earliest}]}
        """))
        try await publish(log, "old/a", id: "new")
        try await publish(log, "old/fresh", id: "f")
        #expect(try await eventually { try events(log, "latest/a").count == 1 && events(log, "earliest/a").count == 11 && events(log, "latest/fresh").count == 1 })
        await engine.stop()
    }

    @Test func filtersAndTransformsApplyAndErrorsAreCounted() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let engine = RouteEngine(log: log, logger: quietLogger)
        await engine.apply(try table("""
        version: 1
        routes:
          - name: big
            from: "orders/+"
            where: "data.total > 100"
            set: {region: "{1}", type: "big.{type}"}
            to: [{topic: "big/{1}", remove: [subject]}]
        """))
        try await publish(log, "orders/eu", id: "1", type: "order", data: #"{"total": 500}"#)
        try await publish(log, "orders/eu", id: "2", data: #"{"total": 5}"#)
        try await publish(log, "orders/eu", id: "3", data: #"{"no": 1}"#)
        #expect(try await eventually { engine.status.first.map { $0.counters.read == 3 } ?? false })
        #expect(try await eventually { try events(log, "big/eu").count == 1 })
        let e = try events(log, "big/eu")[0]
        #expect(e.id == "1" && e.type == "big.order" && e.extensions["region"] == "eu")
        let c = engine.status[0].counters
        #expect(c.matched == 1 && c.notMatched == 2 && c.filterErrors == 1)
        await engine.stop()
    }
}

