import Foundation
import Logging
import MeshBroker
import MeshCore
import MeshLog
import Synchronization
import Testing

final class BrokerFixture {
    let path: String
    let log: DurableLog
    let broker: Broker

    init(_ name: String = #function) throws {
        path = NSTemporaryDirectory() + "meshgate-broker-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        var options = LogOptions()
        options.retentionCheckMicros = nil
        log = try DurableLog(directory: path, options: options, logger: quiet)
        var brokerOptions = BrokerOptions()
        brokerOptions.node = "test-node"
        broker = Broker(log: log, options: brokerOptions, logger: quiet)
    }

    deinit {
        log.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}

func event(_ topic: String, _ data: String, key: String? = nil) -> Event {
    Event(topic: try! Topic(topic), partitionKey: key, data: Array(data.utf8))
}

/// Reads from a subscription until `count` deliveries arrived; a watchdog closes the subscription
/// after 5 s so a missing event fails the test instead of hanging it.
func take(_ sub: Subscription, _ count: Int) async -> [Delivery] {
    let watchdog = Task {
        try? await Task.sleep(for: .seconds(5))
        if !Task.isCancelled { sub.close() }
    }
    defer { watchdog.cancel() }
    var out: [Delivery] = []
    while out.count < count {
        let batch = await sub.next(max: count - out.count)
        if batch.isEmpty { break }
        out += batch
    }
    return out
}

@Suite struct PublishTests {
    @Test func publishFillsDefaultsAndRoundTrips() async throws {
        let f = try BrokerFixture()
        var e = event("orders/eu", "hello")
        e.extensions["region"] = "eu"
        let receipts = try await f.broker.publish([e], ingress: "http")
        #expect(receipts.count == 1)
        #expect(receipts[0].topic == "orders/eu" && receipts[0].offset == 0)
        let (got, next) = try await f.broker.fetch(topic: try Topic("orders/eu"), partition: 0, from: 0, max: 10)
        #expect(next == 1)
        let stored = try got[0].decode()
        #expect(stored.data == Array("hello".utf8))
        #expect(stored.id == receipts[0].id)
        #expect(stored.source == "meshgate://test-node/http")
        #expect(stored.type == "meshgate.publish")
        #expect(stored.time != nil)
        #expect(stored.extensions["region"] == "eu")
    }

    @Test func batchReceiptsComeBackInRequestOrderAcrossPartitions() async throws {
        let f = try BrokerFixture()
        try f.log.createTopic(try Topic("multi"), config: TopicConfig(partitions: 4))
        let events = (0..<50).map { event("multi", "e\($0)", key: "k\($0 % 7)") }
        let receipts = try await f.broker.publish(events, ingress: "tcp")
        #expect(receipts.count == 50)
        for (i, r) in receipts.enumerated() {
            let (got, _) = try await f.broker.fetch(topic: try Topic("multi"), partition: r.partition, from: r.offset, max: 1)
            #expect(try got[0].decode().data == Array("e\(i)".utf8))
        }
        // One key, one partition.
        let k0 = Set(receipts.enumerated().filter { $0.offset % 7 == 0 }.map(\.element.partition))
        #expect(k0.count == 1)
    }

    @Test func oversizedAndInvalidEventsAreRefusedWithTheirReason() async throws {
        let f = try BrokerFixture()
        let big = Event(topic: try Topic("big"), data: [UInt8](repeating: 0, count: (1 << 20) + 1))
        await #expect(throws: BrokerError.self) { try await f.broker.publish([big], ingress: "http") }
        do {
            _ = try await f.broker.publish([big], ingress: "http")
        } catch {
            #expect(error.kind == .tooLarge)
        }
        var bad = event("ok", "x")
        bad.extensions["Bad-Name"] = "v"
        do {
            _ = try await f.broker.publish([event("ok", "fine"), bad], ingress: "http")
            Issue.record("an invalid extension name was accepted")
        } catch {
            #expect(error.kind == .invalidEvent)
        }
        // Nothing of the refused batch was stored.
        let ok = try Topic("ok")
        #expect((f.log.topic(ok)?.partitions[0].endOffset ?? 0) == 0)
    }

    @Test func aBurstAppendsOncePerPartitionAndABadRequestFailsAlone() async throws {
        let f = try BrokerFixture()
        try f.log.createTopic(try Topic("burst"), config: TopicConfig(partitions: 2))
        var bad = event("burst", "bad")
        bad.extensions["Bad-Name"] = "v"
        // Four requests read in one burst: two interleaved across both partitions, one with an
        // invalid event between them, and one for a topic of its own.
        let batches: [[Event]] = [
            [event("burst", "a0", key: "p"), event("burst", "a1", key: "q")],
            [event("burst", "b0", key: "p"), bad],
            [event("burst", "c0", key: "q"), event("burst", "c1", key: "p")],
            [event("other", "d0")],
        ]
        let results = Mutex<[Int: Result<[PublishReceipt], BrokerError>]>([:])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let requests = batches.enumerated().map { i, events in
                PublishRequest(events: events) { result in
                    let all = results.withLock { r -> Bool in
                        r[i] = result
                        return r.count == batches.count
                    }
                    if all { done.resume() }
                }
            }
            f.broker.publish(requests, ingress: "tcp")
        }
        let r = results.withLock { $0 }
        #expect((try? r[1]!.get()) == nil)
        if case .failure(let error) = r[1]! { #expect(error.kind == .invalidEvent) }
        let a = try r[0]!.get(), c = try r[2]!.get(), d = try r[3]!.get()
        // Nothing of the refused request was stored: the others hold consecutive offsets per
        // partition in request order.
        #expect(a[0].partition == c[1].partition && a[1].partition == c[0].partition && a[0].partition != a[1].partition)
        #expect(a[0].offset == 0 && c[1].offset == 1 && a[1].offset == 0 && c[0].offset == 1)
        #expect(d == [PublishReceipt(id: d[0].id, topic: "other", partition: 0, offset: 0)])
        for (receipt, data) in zip(a + c, ["a0", "a1", "c0", "c1"]) {
            let (got, _) = try await f.broker.fetch(topic: try Topic("burst"), partition: receipt.partition, from: receipt.offset, max: 1)
            #expect(try got[0].decode().data == Array(data.utf8))
            #expect(try got[0].decode().id == receipt.id)
        }
        let stored = f.log.topic(try Topic("burst"))!.partitions.map(\.endOffset)
        #expect(stored == [2, 2])
    }

    @Test func fetchWaitsForTheFirstEvent() async throws {
        let f = try BrokerFixture()
        _ = try await f.broker.publish([event("wait", "first")], ingress: "t")
        async let fetched = f.broker.fetch(topic: try Topic("wait"), partition: 0, from: 1, max: 5, waitMilliseconds: 5000)
        try await Task.sleep(for: .milliseconds(50))
        _ = try await f.broker.publish([event("wait", "second")], ingress: "t")
        let (got, next) = try await fetched
        #expect(got.map(\.offset) == [1] && next == 2)
        let (none, same) = try await f.broker.fetch(topic: try Topic("wait"), partition: 0, from: 2, max: 5, waitMilliseconds: 20)
        #expect(none.isEmpty && same == 2)
    }
}

@Suite struct SubscriptionTests {
    @Test func aPatternSubscriptionSeesExistingAndNewTopicsInOrder() async throws {
        let f = try BrokerFixture()
        _ = try await f.broker.publish([event("sensors/a/temp", "a0")], ingress: "t")
        let sub = f.broker.subscribe(pattern: try TopicPattern("sensors/+/temp"), start: .earliest)
        defer { sub.close() }
        _ = try await f.broker.publish([event("sensors/b/temp", "b0"), event("sensors/a/temp", "a1"), event("other/x", "no")], ingress: "t")
        let got = await take(sub, 3)
        #expect(got.count == 3)
        let byTopic = Dictionary(grouping: got, by: \.topic).mapValues { $0.map { String(decoding: try! $0.decode().data, as: UTF8.self) } }
        #expect(byTopic["sensors/a/temp"] == ["a0", "a1"])
        #expect(byTopic["sensors/b/temp"] == ["b0"])
        #expect(byTopic["other/x"] == nil)
    }

    @Test func aStreamCursorResumesEveryPartitionWithoutGaps() async throws {
        let f = try BrokerFixture()
        try f.log.createTopic(try Topic("resume"), config: TopicConfig(partitions: 3))
        _ = try await f.broker.publish((0..<30).map { event("resume", "\($0)", key: "k\($0)") }, ingress: "t")
        let first = f.broker.subscribe(pattern: try TopicPattern("resume"), start: .earliest)
        let part1 = await take(first, 10)
        let token = StreamCursor.encode(first.positions)
        first.close()
        let decoded = try #require(StreamCursor.decode(token))
        let second = f.broker.subscribe(pattern: try TopicPattern("resume"), start: .earliest, resume: decoded)
        defer { second.close() }
        let part2 = await take(second, 20)
        let seen = (part1 + part2).map { String(decoding: try! $0.decode().data, as: UTF8.self) }
        #expect(seen.count == 30)
        #expect(Set(seen) == Set((0..<30).map(String.init)))
    }

    @Test func groupMembersSplitPartitionsAndAThirdRebalances() async throws {
        let f = try BrokerFixture()
        try f.log.createTopic(try Topic("jobs"), config: TopicConfig(partitions: 6))
        let pattern = try TopicPattern("jobs")
        let a = f.broker.subscribe(pattern: pattern, group: "workers", start: .earliest)
        let b = f.broker.subscribe(pattern: pattern, group: "workers", start: .earliest)
        #expect(a.assignment.count == 3 && b.assignment.count == 3)
        #expect(Set(a.assignment).isDisjoint(with: Set(b.assignment)))
        let c = f.broker.subscribe(pattern: pattern, group: "workers", start: .earliest)
        #expect([a, b, c].map(\.assignment.count) == [2, 2, 2])
        #expect(Set(a.assignment + b.assignment + c.assignment).count == 6)
        c.close()
        #expect(a.assignment.count + b.assignment.count == 6)
        #expect(Set(a.assignment).isDisjoint(with: Set(b.assignment)), "a: \(a.assignment) b: \(b.assignment)")

        // Every event is delivered to exactly one member.
        _ = try await f.broker.publish((0..<60).map { event("jobs", "\($0)", key: "k\($0)") }, ingress: "t")
        let jobs = f.log.topic(try Topic("jobs"))!
        func held(_ s: Subscription) -> Int { s.assignment.reduce(0) { $0 + Int(jobs.partitions[$1.partition].endOffset) } }
        #expect(held(a) + held(b) == 60)
        async let fromA = take(a, held(a))
        async let fromB = take(b, held(b))
        let all = (await fromA) + (await fromB)
        #expect(all.count == 60)
        #expect(Set(all.map { "\($0.partition):\($0.offset)" }).count == 60)
        a.close()
        b.close()
    }

    @Test func aGroupResumesFromItsCommittedOffsets() async throws {
        let f = try BrokerFixture()
        _ = try await f.broker.publish((0..<10).map { event("ledger", "\($0)") }, ingress: "t")
        let first = f.broker.subscribe(pattern: try TopicPattern("ledger"), group: "audit", start: .earliest)
        let got = await take(first, 4)
        #expect(got.map(\.offset) == [0, 1, 2, 3])
        try await first.commitPositions()
        first.close()
        #expect(f.broker.committed(group: "audit") == [GroupOffset(topic: "ledger", partition: 0, offset: 4)])
        let second = f.broker.subscribe(pattern: try TopicPattern("ledger"), group: "audit", start: .earliest)
        defer { second.close() }
        #expect(await take(second, 6).map(\.offset) == [4, 5, 6, 7, 8, 9])
    }

    @Test func closingWakesAWaitingConsumer() async throws {
        let f = try BrokerFixture()
        let sub = f.broker.subscribe(pattern: try TopicPattern("quiet/#"))
        let waiting = Task { await sub.next() }
        try await Task.sleep(for: .milliseconds(30))
        sub.close()
        #expect(await waiting.value.isEmpty)
    }
}
