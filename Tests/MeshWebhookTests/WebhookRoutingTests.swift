import MeshTestSupport
import Foundation
import MeshConfig
import MeshCore
import MeshLog
import MeshRouting
import Synchronization
import Testing
@testable import MeshWebhook

/// Webhooks as route destinations: the route engine, its durable cursors and delivery policy,
/// the webhook connector, and a receiver that misbehaves.
@Suite(.serialized) struct WebhookRoutingTests {
    /// Appends events with ids `prefix0..prefixN-1` to a two-partition topic.
    func publish(_ log: DurableLog, _ topic: String, count: Int, prefix: String, data: String = #"{"n":1}"#) async throws -> [String] {
        let t = try log.createTopic(try Topic(topic), config: TopicConfig(partitions: 2, durability: .none))
        var ids: [String] = []
        for i in 0..<count {
            let e = Event(topic: t.topic, id: "\(prefix)\(i)", source: "test", type: "load", datacontenttype: "application/json", data: Array(data.utf8))
            _ = try await t.append(EventCodec.encode(e), key: nil)
            ids.append(e.id)
        }
        return ids
    }

    @Test func tenThousandEventsSurviveErrorsRateLimitsHangsAndDrops() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        // The first 9,000 requests misbehave in every way the connector must survive; after that
        // the receiver is healthy, so the test ends.
        let outage = 2000..<2600
        let receiver = try TestReceiver { r in
            let n = r.number
            guard n < 9000 else { return .respond(status: 200) }
            if outage.contains(n) { return .respond(status: 500, body: "down for a while") }
            if n % 10 == 3 { return .respond(status: 500) }
            if n % 10 == 6 { return .respond(status: 503) }
            if n % 97 == 5 { return .respond(status: 429, headers: ["Retry-After": "1"]) }
            if n % 89 == 7 { return .hang(.milliseconds(800)) }
            if n % 83 == 9 { return .drop }
            return .respond(status: 200)
        }
        defer { receiver.stop() }
        let webhooks = WebhookConnectors(logger: quietLogger)
        let engine = RouteEngine(log: log, provider: webhooks, logger: quietLogger)
        await engine.apply(try table("""
        version: 1
        connectors:
          sink: {type: webhook, url: "\(receiver.url)/events", timeout: 250ms, concurrency: 64}
        routes:
          - name: out
            from: "load/#"
            to:
              - connector: sink
                retry: {backoff: 10ms, max_backoff: 200ms}
                in_flight: 64
                buffer: 1000
        """))
        let published = try await publish(log, "load/a", count: 10_000, prefix: "ev")
        let done = await eventually(120) { receiver.acknowledged.count == published.count && engine.status.allSatisfy { $0.lag == 0 } }
        #expect(done, "\(receiver.acknowledged.count) of \(published.count) acknowledged")
        #expect(receiver.acknowledged == Set(published))
        let requests = receiver.requests
        #expect(requests.contains { $0.number == 2100 })  // the outage happened
        // Retries mean more requests than events; the engine counted the failures.
        let counters = try #require(engine.status.first).counters
        #expect(counters.failedAttempts > 600 && counters.delivered >= 10_000 && counters.deadLettered == 0)
        // A rate limit's Retry-After held back the retry of that event by at least a second.
        let limited = requests.filter { n in
            let k = n.number
            return k < 9000 && !outage.contains(k) && k % 10 != 3 && k % 10 != 6 && k % 97 == 5
        }
        #expect(!limited.isEmpty)
        for first in limited.prefix(5) {
            let retry = try #require(requests.first { $0.number > first.number && $0.ceID == first.ceID })
            #expect(retry.at - first.at >= .seconds(1), "retried \(retry.at - first.at) after a 429 with Retry-After: 1")
        }
        await engine.stop()
        await webhooks.stop()
    }

    @Test func a400DeadLettersAtOnceWithItsContextAndAFailingWebhookNeverSlowsAHealthyOne() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let receiver = try TestReceiver { r in
            switch r.path {
            case "/reject": .respond(status: 400, headers: ["Content-Type": "application/json"], body: #"{"error":"unknown customer","id":"\#(r.ceID ?? "")"}"#)
            case "/stuck": .hang(.seconds(3))
            default: .respond(status: 204)
            }
        }
        defer { receiver.stop() }
        let webhooks = WebhookConnectors(logger: quietLogger)
        let engine = RouteEngine(log: log, provider: webhooks, logger: quietLogger)
        await engine.apply(try table("""
        version: 1
        connectors:
          billing: {type: webhook, url: "\(receiver.url)/reject"}
          stuck:   {type: webhook, url: "\(receiver.url)/stuck", timeout: 2s}
          healthy: {type: webhook, url: "\(receiver.url)/ok"}
        routes:
          - name: orders
            from: "orders/#"
            to:
              - connector: billing
                retry: {attempts: 5, backoff: 1s}
                dead_letter: dlq/billing
              - connector: stuck
              - connector: healthy
        """))
        let clock = ContinuousClock()
        let started = clock.now
        let ids = try await publish(log, "orders/eu", count: 200, prefix: "o")
        // The healthy webhook gets everything while the stuck one has not answered even once.
        #expect(await eventually(10) { Set(receiver.requests.filter { $0.path == "/ok" }.compactMap(\.ceID)) == Set(ids) })
        #expect(clock.now - started < .seconds(2), "the healthy webhook waited \(clock.now - started)")
        // Every event was dead-lettered after one attempt (400 is not retried), with its context.
        #expect(try await eventually(10) { try events(log, "dlq/billing").count == 200 })
        #expect(clock.now - started < .seconds(2))
        let dead = try events(log, "dlq/billing")
        #expect(Set(dead.map(\.id)) == Set(ids))
        let first = try #require(dead.first)
        #expect(first.extensions["deadletterstatus"] == "400")
        #expect(first.extensions["deadletterattempts"] == "1")
        #expect(first.extensions["deadletterresponse"] == #"{"error":"unknown customer","id":"\#(first.id)"}"#)
        #expect(first.extensions["deadletterreason"]?.hasPrefix("HTTP 400 from http://127.0.0.1:") == true)
        #expect(first.extensions["deadletterdest"] == "connector billing ({topic})")
        #expect(first.extensions["deadletterroute"] == "orders" && first.extensions["deadlettertopic"] == "orders/eu")
        #expect(first.data == Array(#"{"n":1}"#.utf8) && first.type == "load")
        // The status page tells the three apart.
        let status = Dictionary(uniqueKeysWithValues: webhooks.status.map { ($0.name, $0) })
        #expect(status["billing"]?.state == .failing && status["billing"]?.lastStatus == 400)
        #expect(status["healthy"]?.delivered == 200 && status["healthy"]?.state == .idle)
        #expect(status["stuck"]?.inFlight ?? 0 > 0 && status["stuck"]?.delivered == 0)
        await engine.stop()
        await webhooks.stop()
    }

    @Test func aReloadThatChangesTheURLMovesDeliveryToTheNewEndpoint() async throws {
        let dir = ScratchDirectory()
        let log = try openLog(dir.path)
        defer { log.close() }
        let receiver = try TestReceiver()
        defer { receiver.stop() }
        let webhooks = WebhookConnectors(logger: quietLogger)
        let engine = RouteEngine(log: log, provider: webhooks, logger: quietLogger)
        func routes(_ path: String) throws -> RouteTable {
            try table("""
            version: 1
            connectors:
              hook: {type: webhook, url: "\(receiver.url)\(path)"}
            routes:
              - {name: r, from: "in/#", to: [{connector: hook}]}
            """)
        }
        await engine.apply(try routes("/v1"))
        _ = try await publish(log, "in/a", count: 10, prefix: "a")
        #expect(await eventually { receiver.requests.count == 10 })
        await engine.apply(try routes("/v2"))
        _ = try await publish(log, "in/a", count: 10, prefix: "b")
        #expect(await eventually { receiver.requests.count == 20 })
        #expect(receiver.requests.suffix(10).allSatisfy { $0.path == "/v2" })
        #expect(webhooks.status.map(\.url) == ["\(receiver.url)/v2"])
        await engine.stop()
        await webhooks.stop()
    }
}
