#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MeshBroker
@testable import MeshClient
import MeshCore
import MeshLog
import MeshTestSupport
import MeshWire
import NIOCore
import Synchronization
import Testing
@testable import MeshTCP

@Suite(.serialized) struct TCPServerTests {
    static func richEvent(_ topicName: String, _ n: Int) -> Event {
        Event(topic: topic(topicName), id: "evt-\(n)", source: "test://source", type: "order.created",
              subject: "order-\(n)", time: Timestamp(microsecondsSinceEpoch: 1_700_000_000_000_000 + Int64(n)),
              datacontenttype: "application/octet-stream", dataschema: "https://example.com/schema",
              extensions: ["region": "eu-\(n)", "tenant": "acme"], partitionKey: "key-\(n % 3)",
              traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate: "vendor=1",
              hops: ["site-a"], data: (0..<(50 + n)).map { UInt8(($0 * 7 + n) & 0xFF) } + [0, 255, 10, 13])
    }

    @Test func publishSingleAndBatchRoundTripExactly() async throws {
        let server = try await TestServer()
        defer { server.remove() }
        let client = try await MeshClient.connect(port: server.port, name: "roundtrip")
        let sub = try await client.subscribe(pattern("orders/#"), from: .earliest)

        let single = Self.richEvent("orders/eu", 1)
        let receipt = try await client.publish(single)
        #expect(receipt.id == "evt-1" && receipt.topic == topic("orders/eu") && receipt.offset == 0)
        let batch = (2...4).map { Self.richEvent("orders/us", $0) }
        let receipts = try await client.publish(batch: batch)
        #expect(receipts.map(\.offset) == [0, 1, 2])
        #expect(receipts.map(\.id) == ["evt-2", "evt-3", "evt-4"])

        var received: [Event] = []
        for try await delivery in sub {
            received.append(delivery.event)
            if received.count == 4 { break }
        }
        let byID = Dictionary(uniqueKeysWithValues: received.map { ($0.id, $0) })
        for event in [single] + batch { #expect(byID[event.id] == event) }

        // Missing attributes are filled at ingest; the client names the id.
        let plain = try await client.publish(Event(topic: topic("orders/plain"), data: Array("hi".utf8)))
        #expect(!plain.id.isEmpty)
        var iterator = sub.makeAsyncIterator()
        let filled = try #require(try await iterator.next()).event
        #expect(filled.id == plain.id && filled.source == "meshgate://test-node/tcp" && filled.type == "meshgate.publish")
        #expect(filled.time != nil && filled.data == Array("hi".utf8))

        await client.close()
        await server.stop()
    }

    @Test func tenThousandPipelinedPublishesKeepOrderPerKey() async throws {
        let server = try await TestServer { $0.connection.maxInFlightPublishes = 16_384 }
        defer { server.remove() }
        try server.createTopic("pipe", partitions: 4)
        var configuration = MeshClient.Configuration(name: "pipeline")
        configuration.mergePublishes = false  // 10,000 PUBLISH frames, not batches
        let client = try await MeshClient.connect(port: server.port, configuration: configuration)
        #expect(client.welcome?.maxInFlightPublishes == 16_384)

        let total = 10_000
        let results = Locked<[Int: MeshReceipt]>([:])
        let failures = Locked(0)
        let done = Locked(0)
        for n in 0..<total {
            let event = Event(topic: topic("pipe"), id: "p-\(n)", source: "test", type: "t", partitionKey: "k\(n % 8)", data: [UInt8(n & 0xFF)])
            client.publish(event) { result in
                switch result {
                case .success(let receipt): results.withLock { $0[n] = receipt }
                case .failure: failures.withLock { $0 += 1 }
                }
                done.withLock { $0 += 1 }
            }
        }
        #expect(await eventually(30) { done.withLock { $0 } == total })
        #expect(failures.withLock { $0 } == 0)
        let receipts = results.withLock { $0 }
        for key in 0..<8 {
            let mine = (0..<total).filter { $0 % 8 == key }.map { receipts[$0]! }
            #expect(Set(mine.map(\.partition)).count == 1, "one key, one partition")
            #expect(zip(mine, mine.dropFirst()).allSatisfy { $0.offset < $1.offset }, "offsets follow request order for key \(key)")
        }
        await client.close()
        await server.stop()
    }

    @Test func groupMembersSplitPartitionsAndRebalanceOnJoin() async throws {
        let server = try await TestServer()
        defer { server.remove() }
        try server.createTopic("jobs", partitions: 4)
        let a = try await MeshClient.connect(port: server.port, name: "a")
        let b = try await MeshClient.connect(port: server.port, name: "b")
        let c = try await MeshClient.connect(port: server.port, name: "c")
        let subA = try await a.subscribe(pattern("jobs"), group: "workers", from: .earliest)
        #expect(await eventually { subA.assignment?.partitions.count == 4 })
        let subB = try await b.subscribe(pattern("jobs"), group: "workers", from: .earliest)
        #expect(await eventually { subA.assignment?.partitions.count == 2 && subB.assignment?.partitions.count == 2 })
        let firstGeneration = try #require(subB.assignment?.generation)
        let subC = try await c.subscribe(pattern("jobs"), group: "workers", from: .earliest)
        let subs = [subA, subB, subC]
        // Each member hears of the rebalance in its own time: wait until all three hold the same,
        // newer generation (a mix of old and new assignments may overlap for a moment).
        #expect(await eventually {
            let generations = Set(subs.map { $0.assignment?.generation ?? 0 })
            let counts = subs.map { $0.assignment?.partitions.count ?? -1 }
            return generations.count == 1 && generations.first! > firstGeneration
                && counts.reduce(0, +) == 4 && counts.allSatisfy { $0 >= 1 }
        })
        let owned = subs.flatMap { $0.assignment?.partitions ?? [] }
        #expect(Set(owned).count == 4 && owned.count == 4, "each partition has exactly one owner")
        #expect(subs.allSatisfy { ($0.assignment?.generation ?? 0) > firstGeneration })

        // Events reach only the owner of their partition, and every event arrives once.
        let events = (0..<40).map { Event(topic: topic("jobs"), id: "j-\($0)", source: "t", type: "t", partitionKey: "k\($0)") }
        _ = try await a.publish(batch: events)
        let seen = Locked<[String: MeshWire.TopicPartition]>([:])
        let readers = subs.map { sub in
            Task {
                for try await d in sub {
                    seen.withLock { $0[d.event.id] = MeshWire.TopicPartition(topic: d.topic, partition: d.partition) }
                    #expect(sub.assignment?.partitions.contains(MeshWire.TopicPartition(topic: d.topic, partition: d.partition)) == true)
                }
            }
        }
        #expect(await eventually { seen.withLock { $0.count } == 40 })
        for sub in subs { sub.cancel() }
        for reader in readers { _ = try? await reader.value }
        for client in [a, b, c] { await client.close() }
        await server.stop()
    }

    @Test func serverNeverSendsBeyondCredit() async throws {
        let server = try await TestServer()
        defer { server.remove() }
        let publisher = try await MeshClient.connect(port: server.port)
        _ = try await publisher.publish(batch: (0..<50).map { Event(topic: topic("credit"), id: "c\($0)", source: "t", type: "t") })

        let raw = try RawSocket(port: server.port)
        #expect(raw.handshake() != nil)
        raw.send(.subscribe(Subscribe(subscriptionID: 9, pattern: pattern("credit"), start: .earliest, initialCredit: 5)))
        let first = raw.readFor(seconds: 0.5, atLeast: 6)
        #expect(first.first == .subscribed(subscriptionID: 9))
        #expect(first.filter { $0.type == .event }.count == 5)
        raw.send(.credit(subscriptionID: 9, count: 3))
        let second = raw.readFor(seconds: 0.5, atLeast: 3)
        let offsets = (first + second).compactMap { frame -> UInt64? in
            if case .event(let d) = frame { d.offset } else { nil }
        }
        #expect(offsets == Array(0..<8))

        // The Swift client never holds more than its window either.
        let sub = try await publisher.subscribe(pattern("credit"), from: .earliest, window: 10)
        try await Task.sleep(for: .milliseconds(300))
        var iterator = sub.makeAsyncIterator()
        var count = 0
        while count < 50, try await iterator.next() != nil { count += 1 }
        #expect(count == 50)
        await publisher.close()
        await server.stop()
    }

    @Test func badInputGetsThePreciseErrorAndACloseWhileOthersAreServed() async throws {
        let server = try await TestServer()
        defer { server.remove() }
        let bystander = try await MeshClient.connect(port: server.port, name: "bystander")
        _ = try await bystander.publish(Event(topic: topic("ok"), id: "before", source: "t", type: "t"))

        func expectError(_ code: WireErrorCode, inReplyTo: FrameType?, afterHello: Bool = false, _ bytes: [UInt8]) throws {
            let raw = try RawSocket(port: server.port)
            if afterHello { #expect(raw.handshake() != nil) }
            raw.send(bytes)
            let (frames, closed) = raw.readUntilClosed()
            #expect(closed, "the server closes after a fatal error")
            guard case .error(let error)? = frames.last else {
                Issue.record("expected an ERROR frame, got \(frames)")
                return
            }
            #expect(error.code == code)
            #expect(error.isFatal)
            #expect(error.inReplyTo == inReplyTo)
        }
        // A HELLO whose body stops after the min version.
        try expectError(.badFrame, inReplyTo: .hello, [0, 0, 0, 8, 0x01, 0, 0, 0, 0, 0, 0, 1])
        // A PUBLISH after the handshake whose event is cut off.
        try expectError(.invalidEvent, inReplyTo: .publish, afterHello: true, [0, 0, 0, 7, 0x10, 0, 0, 0, 0, 1, 1])
        // A PUBLISH_BATCH whose one event's topic is cut off: its events are read from their
        // encoding, not decoded, and still refused as decoding refuses them.
        try expectError(.invalidEvent, inReplyTo: .publishBatch, afterHello: true,
                        [0, 0, 0, 24, 0x11, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 10, 1, 0, 0, 0, 0, 5, 0x61, 0x62, 0x63, 0x64])
        // Text where a frame should be: "GET " read as a length is far over the limit.
        try expectError(.frameTooLarge, inReplyTo: nil, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        // An unknown frame type.
        try expectError(.badFrame, inReplyTo: nil, [0, 0, 0, 6, 0x7F, 0, 0, 0, 0, 0])
        // A 2 GiB length prefix, with no body: rejected before anything is allocated.
        try expectError(.frameTooLarge, inReplyTo: nil, [0x80, 0, 0, 0])
        // Frames before HELLO.
        var ping = ByteBuffer()
        Frame.ping(nonce: 7).encode(into: &ping)
        try expectError(.protocolViolation, inReplyTo: .ping, Array(ping.readableBytesView))
        var publish = ByteBuffer()
        Frame.publish(requestID: 1, event: Event(topic: topic("ok"), id: "x", source: "t", type: "t")).encode(into: &publish)
        try expectError(.protocolViolation, inReplyTo: .publish, Array(publish.readableBytesView))

        let after = try await bystander.publish(Event(topic: topic("ok"), id: "after", source: "t", type: "t"))
        #expect(after.offset == 1)
        await bystander.close()
        await server.stop()
    }

    @Test func overloadIsAnErrorWithRetryAfterNotAClose() async throws {
        let server = try await TestServer { $0.connection.maxInFlightPublishes = 2; $0.connection.overloadRetryAfterMilliseconds = 250 }
        defer { server.remove() }
        let raw = try RawSocket(port: server.port)
        #expect(raw.handshake()?.maxInFlightPublishes == 2)
        for id in UInt32(1)...6 {
            raw.send(.publish(requestID: id, event: Event(topic: topic("load"), id: "o\(id)", source: "t", type: "t")))
        }
        let frames = raw.readFor(seconds: 0.5)
        let acks = frames.filter { $0.type == .publishAck }.count
        let overloaded = frames.compactMap { frame -> WireError? in if case .error(let e) = frame { e } else { nil } }
        #expect(acks + overloaded.count == 6)
        #expect(acks >= 2)
        #expect(overloaded.allSatisfy { $0.code == .overloaded && !$0.isFatal && $0.retryAfterMilliseconds == 250 })
        raw.send(.ping(nonce: 5))
        #expect(raw.readFrame() == .pong(nonce: 5), "the connection is still open")
        await server.stop()
    }

    @Test func aClientThatStopsReadingDoesNotStallOthers() async throws {
        let server = try await TestServer { $0.writeBufferHighWaterMark = 256 << 10 }
        defer { server.remove() }
        let raw = try RawSocket(port: server.port)
        raw.shrinkReceiveBuffer()
        #expect(raw.handshake() != nil)
        raw.send(.subscribe(Subscribe(subscriptionID: 1, pattern: pattern("bulk"), start: .earliest, initialCredit: .max)))

        let publisher = try await MeshClient.connect(port: server.port, name: "publisher")
        let reader = try await MeshClient.connect(port: server.port, name: "reader")
        let sub = try await reader.subscribe(pattern("bulk"), from: .earliest)
        let total = 4_000
        let payload = [UInt8](repeating: 0x5A, count: 4096)  // 16 MB in all
        let received = Task {
            var n = 0
            for try await _ in sub {
                n += 1
                if n == total { break }
            }
            return n
        }
        for chunk in stride(from: 0, to: total, by: 100) {
            _ = try await publisher.publish(batch: (chunk..<chunk + 100).map {
                Event(topic: topic("bulk"), id: "b\($0)", source: "t", type: "t", data: payload)
            })
        }
        #expect(try await received.value == total, "the reading subscriber got everything")

        // The stalled connection stopped pulling: its count stays put, well short of the total.
        let stalled = { await server.server.connectionStats().filter { $0.eventsWritten > 0 }.min { $0.eventsWritten < $1.eventsWritten }! }
        let before = await stalled()
        try await Task.sleep(for: .milliseconds(300))
        let later = await stalled()
        #expect(!later.writable)
        #expect(later.eventsWritten == before.eventsWritten)
        // What was written is what the kernel's socket buffers (a few MB on loopback) and the
        // channel's high-water mark hold, plus one pulled batch: not the 16 MB published.
        #expect(later.eventsWritten * payload.count < 8 << 20, "only about the buffers' worth was written: \(later.eventsWritten)")
        await publisher.close()
        await reader.close()
        await server.stop()
    }

    @Test func batchesGoOutInOrderOnOneConnectionOrAllFail() async throws {
        let server = try await TestServer()
        defer { server.remove() }
        var configuration = MeshClient.Configuration(name: "batches")
        configuration.initialBackoff = .seconds(30)
        let client = try await MeshClient.connect(port: server.port, configuration: configuration)
        let frames = (0..<6).map { f in (0..<50).map { Event(topic: topic("b/x"), partitionKey: "k", data: Array("\(f):\($0)".utf8)) } }
        let stored = Mutex<[Int: Result<[MeshReceipt], WireError>]>([:])
        client.publish(batches: frames) { i, result in stored.withLock { $0[i] = result } }
        #expect(await eventually { stored.withLock { $0.count } == frames.count })
        let offsets = try stored.withLock { r in try (0..<frames.count).flatMap { try r[$0]!.get().map(\.offset) } }
        #expect(offsets == (0..<300).map { UInt64($0) }, "the frames were appended in the order given")

        // With the connection gone (and the next attempt far away), every batch fails at once:
        // none is held back to go out later on another connection.
        await server.stop()
        #expect(await eventually { !client.isConnected })
        let failed = Mutex<[Int: Result<[MeshReceipt], WireError>]>([:])
        client.publish(batches: frames) { i, result in failed.withLock { $0[i] = result } }
        let results = failed.withLock { $0 }
        #expect(results.count == frames.count && results.values.allSatisfy { (try? $0.get()) == nil })
        await client.close()
    }

    @Test func mergedPublishesWithABadEventFailItAloneAndStoreTheRestInOrder() async throws {
        let server = try await TestServer()
        defer { server.remove() }
        let client = try await MeshClient.connect(port: server.port, name: "merged")
        let results = Mutex<[Int: Result<MeshReceipt, WireError>]>([:])
        // Published from a completion, which runs on the connection's event loop: all eight land in
        // one turn of the loop and go out merged into one PUBLISH_BATCH.
        client.publish(Event(topic: topic("m/x"), partitionKey: "k", data: Array("first".utf8))) { _ in
            for n in 0..<8 {
                var event = Event(topic: topic("m/x"), partitionKey: "k", data: Array("\(n)".utf8))
                if n == 3 { event.extensions = ["Not-Valid": "x"] }
                client.publish(event) { result in results.withLock { $0[n] = result } }
            }
        }
        #expect(await eventually { results.withLock { $0.count } == 8 })
        let all = results.withLock { $0 }
        if case .failure(let error) = all[3] {
            #expect(error.code == .invalidEvent)
        } else {
            Issue.record("the event with an invalid extension name was stored")
        }
        let offsets = [0, 1, 2, 4, 5, 6, 7].compactMap { try? all[$0]?.get().offset }
        #expect(offsets.count == 7, "the other seven were stored")
        #expect(offsets == offsets.sorted(), "retried one by one, they keep the order they were published in")
        await client.close()
        await server.stop()
    }

    @Test func singlesAndBatchesOfOneTurnAreStoredInTheOrderTheyWerePublished() async throws {
        let server = try await TestServer()
        defer { server.remove() }
        let client = try await MeshClient.connect(port: server.port, name: "turn")
        let offsets = Mutex<[Int: UInt64]>([:])
        @Sendable func record(_ n: Int) -> @Sendable (Result<MeshReceipt, WireError>) -> Void {
            { result in if let receipt = try? result.get() { offsets.withLock { $0[n] = receipt.offset } } }
        }
        // From a completion, which runs on the connection's event loop: all in one turn, more
        // single publishes than one merged batch holds, with a batch of the caller's own between them.
        client.publish(Event(topic: topic("turn/x"), partitionKey: "k", data: Array("first".utf8))) { _ in
            for n in 0..<300 { client.publish(Event(topic: topic("turn/x"), partitionKey: "k", data: Array("\(n)".utf8)), completion: record(n)) }
            let batch = [300, 301].map { Event(topic: topic("turn/x"), partitionKey: "k", data: Array("\($0)".utf8)) }
            client.publish(batch: batch) { result in
                if let receipts = try? result.get() { offsets.withLock { for (i, r) in receipts.enumerated() { $0[300 + i] = r.offset } } }
            }
            for n in 302..<310 { client.publish(Event(topic: topic("turn/x"), partitionKey: "k", data: Array("\(n)".utf8)), completion: record(n)) }
        }
        #expect(await eventually { offsets.withLock { $0.count } == 310 })
        let stored = offsets.withLock { $0 }
        let inCallOrder = (0..<310).compactMap { stored[$0] }
        #expect(inCallOrder.count == 310)
        #expect(inCallOrder == inCallOrder.sorted(), "stored in the order the calls were made")
        await client.close()
        await server.stop()
    }

    @Test func clientResumesAfterTheServerRestarts() async throws {
        let first = try await TestServer()
        defer { first.remove() }
        var configuration = MeshClient.Configuration(name: "resumer")
        configuration.initialBackoff = .milliseconds(50)
        let client = try await MeshClient.connect(port: first.port, configuration: configuration)
        let sub = try await client.subscribe(pattern("r/#"), from: .earliest)
        for n in 0..<5 { _ = try await client.publish(Event(topic: topic("r/x"), id: "r\(n)", source: "t", type: "t")) }
        var iterator = sub.makeAsyncIterator()
        var ids: [String] = []
        for _ in 0..<5 { ids.append(try #require(try await iterator.next()).event.id) }

        await first.stop()
        #expect(await eventually { !client.isConnected })
        let second = try await TestServer(directory: first.directory, port: first.port)
        #expect(await eventually(10) { client.isConnected })
        var n = 5
        while n < 10 {
            do {
                _ = try await client.publish(Event(topic: topic("r/x"), id: "r\(n)", source: "t", type: "t"))
                n += 1
            } catch let error as WireError where error.isRetryable {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        for _ in 5..<10 { ids.append(try #require(try await iterator.next()).event.id) }
        #expect(ids == (0..<10).map { "r\($0)" }, "no gap and no repeat across the restart")
        await client.close()
        await second.stop()
    }

    /// A subscriber waiting for data must be woken by every append, also when the log's sync
    /// thread makes records readable while the subscription is arming its notification.
    @Test func aWaitingSubscriberMissesNoWakeUpUnderGroupCommit() async throws {
        let server = try await TestServer(durability: .always)
        defer { server.remove() }
        let publisher = try await MeshClient.connect(port: server.port)
        let subscriber = try await MeshClient.connect(port: server.port)
        let sub = try await subscriber.subscribe(pattern("wake"), from: .earliest, window: 4096)
        let total = 20_000
        let received = Task {
            var n = 0
            for try await _ in sub {
                n += 1
                if n == total { break }
            }
            return n
        }
        let start = ContinuousClock.now
        for n in 0..<total {
            // A steady trickle, so the subscriber keeps going back to waiting.
            publisher.publish(Event(topic: topic("wake"), id: "w\(n)", source: "t", type: "t")) { _ in }
            if n % 20 == 19 { try await Task.sleep(until: start + .microseconds(50 * n)) }
        }
        let outcome = Task {
            try await Task.sleep(for: .seconds(20))
            sub.cancel()
        }
        #expect(try await received.value == total)
        outcome.cancel()
        await publisher.close()
        await subscriber.close()
        await server.stop()
    }

    /// SUBSCRIBED (and first events) can be handled on the event loop before the task that sent
    /// SUBSCRIBE resumes and binds the subscription; binding must not forget them, or
    /// `subscribe` waits forever and the consumed events' credit never goes back.
    @Test func aSubscribedThatArrivesBeforeTheBindingIsKept() async throws {
        let server = try await TestServer()
        defer { server.remove() }
        let client = try await MeshClient.connect(port: server.port)
        let sub = MeshSubscription(client: client, pattern: pattern("race/#"), group: nil, start: .earliest, ackMode: .autoCommit, window: 8)
        // The event loop's side first: SUBSCRIBED, then an event the consumer takes at once.
        sub.markSubscribed()
        sub.enqueue(EventDelivery(subscriptionID: 1, partition: 0, offset: 0, event: Event(topic: topic("race/a"), id: "r0", source: "t", type: "t")))
        let first = try await sub.next()
        #expect(first?.event.id == "r0")
        // Then the subscribing task binds it to the connection.
        sub.bind(.init(connection: try client.connection(), id: 1))
        #expect(sub.isSubscribed)
        #expect(sub.unreportedCredit == 1)
        try await sub.waitSubscribed()
        // A lost connection does reset both: the next one starts afresh.
        sub.bind(nil)
        #expect(!sub.isSubscribed && sub.unreportedCredit == 0)
        sub.finish(nil)
        await client.close()
        await server.stop()
    }

    /// A peer that accepts and closes at once, or accepts and never answers HELLO (a stalled link,
    /// a hung server): connecting fails with an error in bounded time, and never crashes or hangs.
    @Test func connectingToAPeerThatClosesAtOnceOrSaysNothingFailsCleanly() async throws {
        var configuration = MeshClient.Configuration(name: "handshake")
        configuration.connectTimeout = .milliseconds(500)
        configuration.reconnect = false
        let silent = try RawListener(acceptAndClose: false)
        defer { silent.stop() }
        do {
            _ = try await MeshClient.connect(port: silent.port, configuration: configuration)
            Issue.record("connected to a peer that never sent WELCOME")
        } catch let error as WireError {
            #expect(error.message.contains("WELCOME"), "\(error)")
        }
        let closing = try RawListener(acceptAndClose: true)
        defer { closing.stop() }
        for _ in 0..<50 {
            await #expect(throws: (any Error).self) { try await MeshClient.connect(port: closing.port, configuration: configuration) }
        }
        #expect(closing.accepted >= 50)
    }
}

/// A loopback listening socket that either accepts and closes every connection at once, or never
/// accepts (the kernel still completes each TCP handshake, so the peer sees a silent server).
final class RawListener: Sendable {
    let port: Int
    private let fd: Int32
    private let count = Atomic<Int>(0)

    init(acceptAndClose: Bool) throws {
        let (fd, port) = try listenOnLoopback()
        self.fd = fd
        self.port = port
        if acceptAndClose {
            Thread { [self] in
                while true {
                    let c = accept(fd, nil, nil)
                    if c < 0 { if errno == EINTR { continue } else { return } }
                    count.add(1, ordering: .relaxed)
                    close(c)
                }
            }.start()
        }
    }

    var accepted: Int { count.load(ordering: .relaxed) }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)) }

    deinit { close(fd) }
}
