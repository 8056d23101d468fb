import MeshTestSupport
import MeshCore
import NIOCore
import Testing
@testable import MeshWire

@Suite struct ClientConnectionStateMachineTests {
    typealias Action = ClientConnectionStateMachine.Action

    static let welcome = Welcome(version: 1, serverName: "node-a", maxFrameLength: WireProtocol.defaultMaxFrameLength,
                                 heartbeatIntervalMilliseconds: 1_000, maxInFlightPublishes: 20_000)

    static func connected(_ welcome: Welcome = welcome) throws -> ClientConnectionStateMachine {
        var m = ClientConnectionStateMachine(configuration: .init(clientName: "test"))
        _ = try m.start()
        #expect(m.received(.welcome(welcome)) == [.connected(welcome)])
        return m
    }

    @Test func handshake() throws {
        var m = ClientConnectionStateMachine(configuration: .init(clientName: "cli", token: "tok"))
        #expect(try m.start() == .hello(Hello(minVersion: 1, maxVersion: 1, clientName: "cli", token: "tok")))
        #expect(throws: WireError.self) { try m.publish(Fixtures.event()) }
        _ = m.received(.welcome(Self.welcome))
        #expect(m.isReady)
        #expect(m.welcome == Self.welcome)
    }

    @Test func welcomeWithAVersionWeDoNotSpeakCloses() throws {
        var m = ClientConnectionStateMachine(configuration: .init(clientName: "cli"))
        _ = try m.start()
        var welcome = Self.welcome
        welcome.version = 9
        let actions = m.received(.welcome(welcome))
        #expect(actions.last == .close(WireError(.unsupportedVersion, "server chose version 9, outside 1...1")))
    }

    @Test func refusedHandshakeCloses() throws {
        var m = ClientConnectionStateMachine(configuration: .init(clientName: "cli"))
        _ = try m.start()
        let error = WireError(.authenticationFailed, "bad token", inReplyTo: .hello, isFatal: true)
        #expect(m.received(.error(error)) == [.close(error)])
    }

    static func receipt(_ id: UInt32) -> PublishReceipt { PublishReceipt(partition: id % 4, offset: UInt64(id)) }

    @Test(arguments: [false, true])
    func tenThousandPipelinedPublishes(outOfOrder: Bool) throws {
        var m = try Self.connected()
        let event = Fixtures.event()
        var ids: [UInt32] = []
        for _ in 0..<10_000 {
            let (id, frame) = try m.publish(event)
            #expect(frame == .publish(requestID: id, event: event))
            ids.append(id)
        }
        #expect(Set(ids).count == 10_000)
        #expect(m.outstandingPublishCount == 10_000)

        var answerOrder = ids
        if outOfOrder {
            var rng = SeededRandom(seed: 0xACC5)
            answerOrder.shuffle(using: &rng)
        }
        var acknowledged = Set<UInt32>()
        var failed = Set<UInt32>()
        for (n, id) in answerOrder.enumerated() {
            // Every 7th answer is an error, to show errors match requests just as acks do.
            if n % 7 == 3 {
                let error = WireError(.storageUnavailable, "try later", streamID: id, inReplyTo: .publish)
                #expect(m.received(.error(error)) == [.publishFailed(requestID: id, error: error)])
                failed.insert(id)
            } else {
                #expect(m.received(.publishAck(requestID: id, receipts: [Self.receipt(id)]))
                        == [.publishAcknowledged(requestID: id, receipts: [Self.receipt(id)])])
                acknowledged.insert(id)
            }
            #expect(!m.isOutstanding(id))
        }
        #expect(m.outstandingPublishCount == 0)
        #expect(acknowledged.union(failed) == Set(ids))
        #expect(acknowledged.isDisjoint(with: failed))
    }

    @Test func ackForAnUnknownRequestIsAViolation() throws {
        var m = try Self.connected()
        let (id, _) = try m.publish(Fixtures.event())
        let actions = m.received(.publishAck(requestID: id &+ 1, receipts: [Self.receipt(1)]))
        #expect(actions.first == .publishFailed(requestID: id, error: actions.last.flatMap {
            if case .close(let e?) = $0 { e } else { nil }
        }!))
        guard case .close(let error?)? = actions.last else {
            Issue.record("expected a close, got \(actions)")
            return
        }
        #expect(error.code == .protocolViolation)
        #expect(m.isClosed)
    }

    @Test func receiptCountMustMatchTheBatch() throws {
        var m = try Self.connected()
        let (id, _) = try m.publish(batch: [Fixtures.event(), Fixtures.event()])
        let actions = m.received(.publishAck(requestID: id, receipts: [Self.receipt(1)]))
        guard case .close(let error?)? = actions.last else {
            Issue.record("expected a close")
            return
        }
        #expect(error.code == .protocolViolation)
    }

    @Test func requestIDsWrapSkippingZeroAndOutstandingIDs() throws {
        var m = try Self.connected()
        let (first, _) = try m.publish(Fixtures.event())
        #expect(first == 1)
        m.nextRequestID = .max
        let (last, _) = try m.publish(Fixtures.event())
        #expect(last == .max)
        // 0 is never used and 1 is still outstanding.
        let (wrapped, _) = try m.publish(Fixtures.event())
        #expect(wrapped == 2)
    }

    @Test func clientEnforcesTheServersInFlightLimit() throws {
        var welcome = Self.welcome
        welcome.maxInFlightPublishes = 2
        var m = try Self.connected(welcome)
        _ = try m.publish(Fixtures.event())
        let (second, _) = try m.publish(Fixtures.event())
        do {
            _ = try m.publish(Fixtures.event())
            Issue.record("a third publish was allowed")
        } catch {
            #expect(error.code == .overloaded)
        }
        _ = m.received(.publishAck(requestID: second, receipts: [Self.receipt(second)]))
        _ = try m.publish(Fixtures.event())
    }

    @Test func framesLargerThanTheServerAcceptsAreRefusedLocally() throws {
        var welcome = Self.welcome
        welcome.maxFrameLength = 200
        var m = try Self.connected(welcome)
        do {
            _ = try m.publish(Fixtures.event(data: String(repeating: "x", count: 300)))
            Issue.record("an oversized publish was allowed")
        } catch {
            #expect(error.code == .frameTooLarge)
        }
        #expect(m.outstandingPublishCount == 0)
    }

    @Test func aBatchSizeSummedByTheCallerIsCheckedLikeOneSummedHere() throws {
        var welcome = Self.welcome
        welcome.maxFrameLength = 400
        let events = [Fixtures.event(data: String(repeating: "x", count: 120)), Fixtures.event(data: String(repeating: "y", count: 120))]
        let summed = events.reduce(0) { $0 + EventCodec.encodedSize($1) }
        var m = try Self.connected(welcome)
        _ = try m.publish(batch: events, encodedSize: summed)
        #expect(m.outstandingPublishCount == 1)
        let more = events + [Fixtures.event(data: String(repeating: "z", count: 120))]
        for size in [nil, more.reduce(0) { $0 + EventCodec.encodedSize($1) }] {
            do {
                _ = try m.publish(batch: more, encodedSize: size)
                Issue.record("an oversized batch was allowed (size given: \(size != nil))")
            } catch {
                #expect(error.code == .frameTooLarge)
            }
        }
        #expect(m.outstandingPublishCount == 1)
    }

    // MARK: Subscriptions

    @Test func creditIsReplenishedWhenHalfTheWindowIsConsumed() throws {
        var m = try Self.connected()
        let (id, frame) = try m.subscribe(Fixtures.pattern("orders/#"), window: 10)
        guard case .subscribe(let request) = frame else {
            Issue.record("expected SUBSCRIBE")
            return
        }
        #expect(request.initialCredit == 10)
        #expect(m.received(.subscribed(subscriptionID: id)) == [.subscribed(subscriptionID: id)])

        let event = Fixtures.event()
        for offset in 0..<10 as Range<UInt64> {
            let delivery = EventDelivery(subscriptionID: id, partition: 0, offset: offset, event: event)
            #expect(m.received(.event(delivery)) == [.deliver(delivery)])
        }
        #expect(m.serverCredit(for: id) == 0)
        // An 11th event would exceed the credit the server was given.
        let extra = EventDelivery(subscriptionID: id, partition: 0, offset: 10, event: event)
        var strict = m
        guard case .close(let error?)? = strict.received(.event(extra)).last else {
            Issue.record("an event beyond credit was accepted")
            return
        }
        #expect(error.code == .protocolViolation)

        // Consuming: nothing for the first four, a CREDIT of 5 at the fifth.
        for _ in 0..<4 { #expect(m.consumed(subscriptionID: id) == nil) }
        #expect(m.consumed(subscriptionID: id) == .credit(subscriptionID: id, count: 5))
        #expect(m.serverCredit(for: id) == 5)
        #expect(m.consumed(subscriptionID: id, count: 5) == .credit(subscriptionID: id, count: 5))
        #expect(m.serverCredit(for: id) == 10)
    }

    @Test func manualCreditWithAZeroWindow() throws {
        var m = try Self.connected()
        let (id, _) = try m.subscribe(Fixtures.pattern("#"), window: 0)
        #expect(m.consumed(subscriptionID: id, count: 100) == nil)
        #expect(try m.grantCredit(subscriptionID: id, count: 3) == .credit(subscriptionID: id, count: 3))
        #expect(m.serverCredit(for: id) == 3)
    }

    @Test func eventsAfterUnsubscribeAreDropped() throws {
        var m = try Self.connected()
        let (id, _) = try m.subscribe(Fixtures.pattern("#"), window: 4)
        _ = m.received(.subscribed(subscriptionID: id))
        #expect(try m.unsubscribe(subscriptionID: id) == .unsubscribe(subscriptionID: id))
        let late = EventDelivery(subscriptionID: id, partition: 0, offset: 0, event: Fixtures.event())
        #expect(m.received(.event(late)).isEmpty)
        #expect(m.received(.unsubscribed(subscriptionID: id)) == [.subscriptionEnded(subscriptionID: id, error: nil)])
        #expect(m.received(.event(late)).isEmpty)
    }

    @Test func subscribeErrorsEndTheSubscription() throws {
        var m = try Self.connected()
        let (id, _) = try m.subscribe(Fixtures.pattern("secret/#"))
        let error = WireError(.forbidden, "no", streamID: id, inReplyTo: .subscribe)
        #expect(m.received(.error(error)) == [.subscriptionEnded(subscriptionID: id, error: error)])
        #expect(throws: WireError.self) { try m.unsubscribe(subscriptionID: id) }
    }

    @Test func acknowledgeNeedsAGroup() throws {
        var m = try Self.connected()
        let (alone, _) = try m.subscribe(Fixtures.pattern("#"))
        #expect(throws: WireError.self) { try m.acknowledge(subscriptionID: alone, topic: Fixtures.topic("a"), partition: 0, offset: 1) }
        let (grouped, _) = try m.subscribe(Fixtures.pattern("#"), group: "g", ackMode: .explicit)
        #expect(try m.acknowledge(subscriptionID: grouped, topic: Fixtures.topic("a"), partition: 0, offset: 1)
                == .ack(Ack(subscriptionID: grouped, topic: Fixtures.topic("a"), partition: 0, offset: 1)))
    }

    // MARK: Closing and heartbeats

    @Test func fatalErrorFailsEverythingOutstanding() throws {
        var m = try Self.connected()
        let (p1, _) = try m.publish(Fixtures.event())
        let (p2, _) = try m.publish(Fixtures.event())
        let (s1, _) = try m.subscribe(Fixtures.pattern("#"))
        let error = WireError(.internalError, "boom", isFatal: true)
        #expect(m.received(.error(error)) == [
            .publishFailed(requestID: p1, error: error), .publishFailed(requestID: p2, error: error),
            .subscriptionEnded(subscriptionID: s1, error: error), .close(error),
        ])
    }

    @Test func serverGoodbyeIsAnsweredOnceAllAcksAreIn() throws {
        var m = try Self.connected()
        let (id, _) = try m.publish(Fixtures.event())
        #expect(m.received(.goodbye).isEmpty)
        #expect(throws: WireError.self) { try m.publish(Fixtures.event()) }
        #expect(m.received(.publishAck(requestID: id, receipts: [Self.receipt(id)]))
                == [.publishAcknowledged(requestID: id, receipts: [Self.receipt(id)]), .send(.goodbye), .close(nil)])
    }

    @Test func clientGoodbye() throws {
        var m = try Self.connected()
        #expect(m.close() == [.send(.goodbye)])
        #expect(m.received(.goodbye) == [.close(nil)])
        #expect(m.isClosed)
    }

    @Test func heartbeats() throws {
        var m = try Self.connected()
        #expect(m.heartbeatTick().isEmpty)  // HELLO was sent in this interval
        #expect(m.heartbeatTick() == [.send(.ping(nonce: 1))])
        #expect(m.received(.ping(nonce: 9)) == [.send(.pong(nonce: 9))])
        #expect(m.heartbeatTick().isEmpty)  // the PONG counts as sending
        #expect(m.heartbeatTick() == [.send(.ping(nonce: 2))])
        guard case .close(let error?)? = m.heartbeatTick().last else {
            Issue.record("expected an idle close")
            return
        }
        #expect(error.code == .idleTimeout)
    }
}

/// Both machines talking through the codec, as they will over a socket.
@Suite struct ClientServerConversationTests {
    /// Encodes and decodes a frame, as the wire would.
    static func overTheWire(_ frame: Frame) throws -> Frame {
        var buffer = frame.encoded()
        return try #require(try Frame.decode(from: &buffer))
    }

    @Test func publishAndSubscribe() throws {
        var client = ClientConnectionStateMachine(configuration: .init(clientName: "cli"))
        var server = ServerConnectionStateMachine(configuration: .init(nodeName: "node-a", maxInFlightPublishes: 4))

        var toClient: [Frame] = []
        func serverSends(_ actions: [ServerConnectionStateMachine.Action]) {
            for case .send(let f) in actions { toClient.append(f) }
        }

        serverSends(server.received(try Self.overTheWire(try client.start())))
        for frame in toClient { _ = client.received(try Self.overTheWire(frame)) }
        toClient.removeAll()
        #expect(client.isReady && server.isReady)

        // Four pipelined publishes fill the server's limit, which WELCOME told the client: the
        // client refuses a fifth itself instead of sending it to be refused.
        var started: [UInt32] = []
        for n in 0..<4 {
            let (_, frame) = try client.publish(Fixtures.event(data: "\(n)"))
            for case .publish(let id, let events) in server.received(try Self.overTheWire(frame)) {
                started.append(id)
                #expect(events.count == 1)
            }
        }
        #expect(started == [1, 2, 3, 4])
        #expect(throws: WireError.self) { try client.publish(Fixtures.event()) }
        for id in started.reversed() {
            serverSends(server.publishCompleted(requestID: id, result: .success([PublishReceipt(partition: 0, offset: UInt64(id))])))
        }
        var acknowledged: [UInt32] = []
        for frame in toClient {
            for case .publishAcknowledged(let id, let receipts) in client.received(try Self.overTheWire(frame)) {
                #expect(receipts == [PublishReceipt(partition: 0, offset: UInt64(id))])
                acknowledged.append(id)
            }
        }
        toClient.removeAll()
        #expect(acknowledged == [4, 3, 2, 1])
        #expect(client.outstandingPublishCount == 0)

        // Subscribe with a window of 2; the server may deliver two, then must wait.
        let (sub, subscribe) = try client.subscribe(Fixtures.pattern("orders/#"), window: 2)
        #expect(server.received(try Self.overTheWire(subscribe)).count == 1)
        serverSends(server.subscribeCompleted(subscriptionID: sub, result: .success(())))
        var offset: UInt64 = 0
        while let frame = server.deliver(subscriptionID: sub, partition: 0, offset: offset, event: Fixtures.event()) {
            toClient.append(frame)
            offset += 1
        }
        #expect(offset == 2)
        var credit: Frame?
        for frame in toClient {
            for case .deliver(let d) in client.received(try Self.overTheWire(frame)) {
                credit = client.consumed(subscriptionID: d.subscriptionID) ?? credit
            }
        }
        toClient.removeAll()
        let grant = try #require(credit)
        #expect(server.received(try Self.overTheWire(grant)) == [.grantCredit(subscriptionID: sub, count: 1)])
        #expect(server.canDeliver(sub))

        // Clean close from the client.
        for case .send(let frame) in client.close() {
            serverSends(server.received(try Self.overTheWire(frame)))
        }
        #expect(server.isClosed)
        for frame in toClient { _ = client.received(try Self.overTheWire(frame)) }
        #expect(client.isClosed)
    }
}
