import Foundation
import Logging
import MeshBroker
import MeshCore
import MeshLog
import MeshTestSupport
import MeshWire
import Synchronization
import Testing
@testable import MeshBridge

/// The receiving side's pass-through (docs/bridging.md): events that arrive in their encoding are
/// stored as those bytes with this site's hop appended — the same bytes the decoding path stores —
/// and are checked for loops and duplicates alike.
@Suite struct PassThroughTests {
    final class Receiver: Sendable {
        let root: String
        let log: DurableLog
        let broker: Broker
        let ingress: BridgeIngressService

        init(_ label: String, durability: Durability = .none, topic: BridgeTopicTemplate? = nil) throws {
            root = try temporaryRoot(label)
            var o = LogOptions()
            o.retentionCheckMicros = nil
            o.defaultTopic = TopicConfig(partitions: 3, durability: durability)
            var quiet = Logger(label: "test")
            quiet.logLevel = .critical
            log = try DurableLog(directory: root + "/data", options: o, logger: quiet)
            var b = BrokerOptions()
            b.node = "site-b"
            broker = Broker(log: log, options: b, logger: quiet)
            var options = BridgeIngressService.Options()
            options.topic = topic
            ingress = BridgeIngressService(site: "site-b", broker: broker, dataDirectory: root, options: options, logger: quiet)
        }

        func publish(_ events: [Event], encoded: Bool) async throws -> [MeshWire.PublishReceipt] {
            let envelopes = encoded ? try events.map { try EventEnvelope(EventCodec.encode($0)) } : []
            let result: Result<[MeshWire.PublishReceipt], WireError> = await withCheckedContinuation { cont in
                if encoded {
                    ingress.publish(encoded: envelopes, from: "site-a") { cont.resume(returning: $0) }
                } else {
                    ingress.publish(events, from: "site-a") { cont.resume(returning: $0) }
                }
            }
            return try result.get()
        }

        /// Every stored record of `topic`, partition by partition.
        func stored(_ topic: String) throws -> [[[UInt8]]] {
            guard let t = log.topic(try Topic(topic)) else { return [] }
            return try t.partitions.map { p in try p.read(from: 0, maxRecords: 10_000, maxBytes: 64 << 20).map(\.payload) }
        }

        func close() {
            log.close()
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    /// What site A forwards: filled, with hops ending in site-a; some with keys, extensions, unicode.
    static func forwarded(_ count: Int) throws -> [Event] {
        try (0..<count).map { i in
            var e = Event(topic: try Topic(i % 7 == 0 ? "orders/ü/\(i % 3)" : "orders/new"), id: EventIDGenerator.shared.next().description,
                          source: "meshgate://site-a/tcp", type: "order.created")
            e.time = Timestamp(microsecondsSinceEpoch: 1_709_210_096_000_000 + Int64(i))
            e.partitionKey = i % 3 == 0 ? nil : "k\(i % 5)"
            if i % 4 == 0 { e.extensions["tenant"] = "acme-\(i)" }
            if i % 5 == 0 { e.subject = "sujet \(i) — ü" }
            e.hops = i % 6 == 0 ? ["site-c", "site-a"] : ["site-a"]
            e.data = Array(#"{"n":\#(i)}"#.utf8)
            return e
        }
    }

    @Test func aPassThroughForwardStoresWhatTheDecodingPathStores() async throws {
        let decoding = try Receiver("decoding"), passing = try Receiver("passing")
        defer { decoding.close(); passing.close() }
        let events = try Self.forwarded(600)
        for batch in stride(from: 0, to: events.count, by: 200).map({ Array(events[$0..<min($0 + 200, events.count)]) }) {
            let a = try await decoding.publish(batch, encoded: false)
            let b = try await passing.publish(batch, encoded: true)
            #expect(a == b)
        }
        for topic in ["orders/new", "orders/ü/0", "orders/ü/1", "orders/ü/2"] {
            let a = try decoding.stored(topic), b = try passing.stored(topic)
            #expect(a.joined().count > 0 && a == b, "\(topic)")
        }
        // Each stored event names the receiving site last, after the hops it came with.
        let stored = try passing.stored("orders/new").joined().map { try EventCodec.decode($0) }
        #expect(stored.allSatisfy { $0.hops.last == "site-b" && $0.hops.first != "site-b" })
    }

    @Test func aPassThroughForwardAnswersDuplicatesAndLoopsWithoutStoringThem() async throws {
        let receiver = try Receiver("answers")
        defer { receiver.close() }
        let events = try Self.forwarded(50)
        let first = try await receiver.publish(events, encoded: true)
        #expect(first.allSatisfy { $0 != .duplicate && $0 != .loop })
        // The retry of a batch (or its stored prefix) is answered duplicate; one that has been
        // through this site already is answered loop; neither is stored again.
        var looped = events[0]
        looped.id = EventIDGenerator.shared.next().description
        looped.hops = ["site-a", "site-b", "site-c"]
        let again = try await receiver.publish(Array(events[..<20]) + [looped], encoded: true)
        #expect(again.prefix(20).allSatisfy { $0 == .duplicate } && again.last == .loop)
        // The same for the decoding path: one dedupe record for both.
        let decoded = try await receiver.publish(Array(events[20...]), encoded: false)
        #expect(decoded.allSatisfy { $0 == .duplicate })
        let total = try ["orders/new", "orders/ü/0", "orders/ü/1", "orders/ü/2"].map { try receiver.stored($0).joined().count }.reduce(0, +)
        #expect(total == 50)
    }

    @Test func aRepeatWithinABatchIsStoredOnceAndARefusedBatchLeavesNothingInFlight() async throws {
        // `always`: a batch stays in flight for an fdatasync, long enough for the next to find it.
        let receiver = try Receiver("repeats", durability: .always)
        defer { receiver.close() }
        let events = try Self.forwarded(200)
        // The same event twice in one batch: the second is answered duplicate, stored once.
        let answers = try await receiver.publish(Array(events[0..<10]) + [events[3]] + Array(events[10..<20]), encoded: true)
        #expect(answers[10] == .duplicate)
        #expect(answers.enumerated().allSatisfy { $0.offset == 10 || ($0.element != .duplicate && $0.element != .loop) })
        // Two batches sharing events, the second sent while the first is being stored: it is
        // refused (retry later) and takes none of its ids into flight, so its retry stores every
        // event the first did not.
        var refusals = 0
        for round in 0..<9 {
            let first = Array(events[(20 + 20 * round)..<(30 + 20 * round)])
            // New events first, so the refusal comes after some ids of its own were admitted.
            let second = Array(events[(30 + 20 * round)..<(40 + 20 * round)] + events[(25 + 20 * round)..<(30 + 20 * round)])
            let envelopes = try [first, second].map { try $0.map { try EventEnvelope(EventCodec.encode($0)) } }
            let results: [Result<[MeshWire.PublishReceipt], WireError>] = await withCheckedContinuation { done in
                let answers = Mutex<[Int: Result<[MeshWire.PublishReceipt], WireError>]>([:])
                for (i, batch) in envelopes.enumerated() {
                    receiver.ingress.publish(encoded: batch, from: "site-a") { result in
                        let all = answers.withLock { a -> [Result<[MeshWire.PublishReceipt], WireError>]? in
                            a[i] = result
                            return a.count == 2 ? [a[0]!, a[1]!] : nil
                        }
                        if let all { done.resume(returning: all) }
                    }
                }
            }
            #expect(try results[0].get().allSatisfy { $0 != .duplicate })
            switch results[1] {
            case .failure(let error):
                #expect(error.code == .overloaded)
                refusals += 1
                let retry = try await receiver.publish(second, encoded: true)
                #expect(retry.prefix(10).allSatisfy { $0 != .duplicate } && retry.suffix(5).allSatisfy { $0 == .duplicate })
            case .success(let receipts):
                #expect(receipts.prefix(10).allSatisfy { $0 != .duplicate } && receipts.suffix(5).allSatisfy { $0 == .duplicate })
            }
        }
        #expect(refusals > 0, "the second batch never found the first in flight")
        let total = try ["orders/new", "orders/ü/0", "orders/ü/1", "orders/ü/2"].map { try receiver.stored($0).joined().count }.reduce(0, +)
        #expect(total == 200)
    }

    /// A batch's checks go by runs of one origin: origins that alternate, loops at the start of
    /// the batch and inside a run, and duplicates of each origin all get their own answer.
    @Test func interleavedOriginsAndLoopsEachGetTheirOwnAnswer() async throws {
        let receiver = try Receiver("interleaved")
        defer { receiver.close() }
        func event(_ hops: [String]) throws -> Event {
            var e = try Self.forwarded(1)[0]
            e.id = EventIDGenerator.shared.next().description
            e.hops = hops
            return e
        }
        let a1 = try event(["site-a"]), c1 = try event(["site-c", "site-a"]), a2 = try event(["site-a"])
        let c2 = try event(["site-c", "site-a"]), looped = try event(["site-a", "site-b", "site-c"])
        let first = try await receiver.publish([a1, c1], encoded: true)
        #expect(first.allSatisfy { $0 != .duplicate && $0 != .loop })
        // Origins a, c, a, c; loops first and between two events of one origin's run.
        let batch = [looped, a1, c1, a2, looped, a2, c2, c1]
        let answers = try await receiver.publish(batch, encoded: true)
        #expect(answers[0] == .loop && answers[4] == .loop)
        #expect(answers[1] == .duplicate && answers[2] == .duplicate && answers[5] == .duplicate && answers[7] == .duplicate)
        #expect([answers[3], answers[6]].allSatisfy { $0 != .duplicate && $0 != .loop })
        let stored = try ["orders/new", "orders/ü/0"].flatMap { try receiver.stored($0).joined() }.map { try EventCodec.decode($0).id }
        #expect(Set(stored) == Set([a1, c1, a2, c2].map(\.id)) && stored.count == 4)
    }

    /// A receiving topic template places each event by its topic, the sending site and its
    /// origin; an event it cannot place refuses its batch whole, before any id goes in flight.
    @Test func aReceivingTopicTemplatePlacesEachEventAndRefusesWhatItCannotPlace() async throws {
        let receiver = try Receiver("mapped", topic: try BridgeTopicTemplate(parsing: "from/{peer}/{origin}/{topic}"))
        defer { receiver.close() }
        let events = try Self.forwarded(12)
        let answers = try await receiver.publish(events, encoded: true)
        #expect(answers.allSatisfy { $0 != .duplicate && $0 != .loop })
        // Events 0 and 6 come from site-c; 0 and 7 have topics orders/ü/0 and orders/ü/1.
        let expected = ["from/site-a/site-a/orders/new": 9, "from/site-a/site-a/orders/ü/1": 1,
                        "from/site-a/site-c/orders/new": 1, "from/site-a/site-c/orders/ü/0": 1]
        for (topic, count) in expected {
            let stored = try receiver.stored(topic).joined().map { try EventCodec.decode($0) }
            #expect(stored.count == count, "\(topic)")
            #expect(stored.allSatisfy { $0.hops.last == "site-b" && $0.topic.name == topic })
        }
        #expect(try receiver.stored("orders/new").isEmpty)
        // The same ids again, under the template: duplicates, stored nowhere else.
        #expect(try await receiver.publish(events, encoded: true).allSatisfy { $0 == .duplicate })
        // An origin that is no topic level ("a+b") refuses the batch; its ids stay free, so the
        // batch without that event stores the rest.
        var fresh = try Self.forwarded(3)
        fresh[1].hops = ["a+b", "site-a"]
        do {
            _ = try await receiver.publish(fresh, encoded: true)
            Issue.record("a batch with an unplaceable event was taken")
        } catch let error as WireError {
            #expect(error.code == .invalidTopic && error.message.contains("from/{peer}/{origin}/{topic}"), "\(error.message)")
        }
        let rest = try await receiver.publish([fresh[0], fresh[2]], encoded: true)
        #expect(rest.allSatisfy { $0 != .duplicate && $0 != .loop })
    }

    @Test func anEventFillingWouldChangeTakesTheDecodingPath() async throws {
        let decoding = try Receiver("unfilled-d"), passing = try Receiver("unfilled-p")
        defer { decoding.close(); passing.close() }
        // No hops (published at a site from before hop lists), no time: filled on store.
        var e = try Self.forwarded(2)[1]
        e.hops = []
        e.time = nil
        _ = try await passing.publish([e], encoded: true)
        let stored = try EventCodec.decode(try #require(passing.stored("orders/new").joined().first))
        #expect(stored.hops == ["site-a", "site-b"] && stored.time != nil && stored.id == e.id)
        _ = try await decoding.publish([e], encoded: false)
        var expected = try EventCodec.decode(try #require(decoding.stored("orders/new").joined().first))
        expected.time = stored.time
        #expect(EventCodec.encode(expected) == EventCodec.encode(stored))
    }
}
