import MeshCore
import Testing
@testable import MeshWire

@Suite struct ServerConnectionStateMachineTests {
    typealias Action = ServerConnectionStateMachine.Action

    static func machine(_ configure: (inout ServerConnectionStateMachine.Configuration) -> Void = { _ in }) -> ServerConnectionStateMachine {
        var configuration = ServerConnectionStateMachine.Configuration(nodeName: "node-a")
        configure(&configuration)
        return ServerConnectionStateMachine(configuration: configuration)
    }

    static func ready(_ configure: (inout ServerConnectionStateMachine.Configuration) -> Void = { _ in }) -> ServerConnectionStateMachine {
        var m = machine(configure)
        _ = m.received(.hello(Hello(clientName: "test")))
        precondition(m.isReady)
        return m
    }

    static func sentError(_ actions: [Action]) -> WireError? {
        for case .send(.error(let e)) in actions { return e }
        return nil
    }

    static func closes(_ actions: [Action]) -> Bool {
        actions.contains { if case .close = $0 { true } else { false } }
    }

    // MARK: Handshake

    @Test func helloGetsWelcome() {
        var m = Self.machine { $0.heartbeatIntervalMilliseconds = 5_000; $0.maxInFlightPublishes = 7 }
        let actions = m.received(.hello(Hello(clientName: "cli")))
        #expect(actions == [.send(.welcome(Welcome(version: 1, serverName: "node-a", maxFrameLength: WireProtocol.defaultMaxFrameLength,
                                                   heartbeatIntervalMilliseconds: 5_000, maxInFlightPublishes: 7)))])
        #expect(m.isReady)
    }

    @Test(arguments: [
        Frame.ping(nonce: 1), .goodbye, .publish(requestID: 1, event: Fixtures.event()),
        .subscribe(Subscribe(subscriptionID: 1, pattern: Fixtures.pattern("#"), initialCredit: 1)), .credit(subscriptionID: 1, count: 1),
    ])
    func anythingBeforeHelloIsAViolation(_ frame: Frame) {
        var m = Self.machine()
        let actions = m.received(frame)
        let error = Self.sentError(actions)
        #expect(error?.code == .protocolViolation)
        #expect(error?.isFatal == true)
        #expect(Self.closes(actions))
        #expect(m.isClosed)
        // A closed machine does nothing more, not even for a HELLO.
        #expect(m.received(.hello(Hello(clientName: "late"))).isEmpty)
    }

    @Test func secondHelloIsAViolation() {
        var m = Self.ready()
        let actions = m.received(.hello(Hello(clientName: "again")))
        #expect(Self.sentError(actions)?.code == .protocolViolation)
        #expect(Self.closes(actions))
    }

    @Test func versionNegotiationPicksTheHighestCommonVersion() {
        var m = Self.machine { $0.supportedVersions = 2...5 }
        _ = m.received(.hello(Hello(minVersion: 1, maxVersion: 4, clientName: "c")))
        #expect(m.negotiatedVersion == 4)

        var n = Self.machine { $0.supportedVersions = 2...5 }
        _ = n.received(.hello(Hello(minVersion: 3, maxVersion: 9, clientName: "c")))
        #expect(n.negotiatedVersion == 5)

        var o = Self.machine { $0.supportedVersions = 2...5 }
        _ = o.received(.hello(Hello(minVersion: 1, maxVersion: 2, clientName: "c")))
        #expect(o.negotiatedVersion == 2)
    }

    @Test(arguments: [(6 as UInt16, 9 as UInt16), (1, 1), (4, 3)])
    func noCommonVersionIsRefused(_ range: (UInt16, UInt16)) {
        var m = Self.machine { $0.supportedVersions = 2...5 }
        let actions = m.received(.hello(Hello(minVersion: range.0, maxVersion: range.1, clientName: "c")))
        #expect(Self.sentError(actions)?.code == .unsupportedVersion)
        #expect(Self.closes(actions))
        #expect(m.negotiatedVersion == nil)
    }

    @Test func authentication() {
        var noToken = Self.machine { $0.requiresAuthentication = true }
        #expect(Self.sentError(noToken.received(.hello(Hello(clientName: "c"))))?.code == .authenticationFailed)
        #expect(noToken.isClosed)

        var good = Self.machine { $0.requiresAuthentication = true }
        let hello = Hello(clientName: "c", token: "t0k")
        #expect(good.received(.hello(hello)) == [.authenticate(hello)])
        // Nothing may come before WELCOME.
        var eager = good
        #expect(Self.sentError(eager.received(.ping(nonce: 1)))?.code == .protocolViolation)
        let welcome = good.authenticationSucceeded()
        guard case .send(.welcome)? = welcome.first else {
            Issue.record("expected WELCOME, got \(welcome)")
            return
        }
        #expect(good.isReady)

        var bad = Self.machine { $0.requiresAuthentication = true }
        _ = bad.received(.hello(hello))
        let refused = bad.authenticationFailed("unknown token")
        #expect(Self.sentError(refused)?.code == .authenticationFailed)
        #expect(Self.closes(refused))
    }

    // MARK: Publishing

    @Test func publishesArePipelinedUpToTheLimit() {
        var m = Self.ready { $0.maxInFlightPublishes = 3; $0.overloadRetryAfterMilliseconds = 40 }
        let event = Fixtures.event()
        for id in 1...3 as ClosedRange<UInt32> {
            #expect(m.received(.publish(requestID: id, event: event)) == [.publish(requestID: id, events: [event])])
        }
        let refused = m.received(.publishBatch(requestID: 4, events: [event, event]))
        let error = Self.sentError(refused)
        #expect(error?.code == .overloaded)
        #expect(error?.streamID == 4)
        #expect(error?.inReplyTo == .publishBatch)
        #expect(error?.retryAfterMilliseconds == 40)
        #expect(error?.isFatal == false)
        #expect(!Self.closes(refused))
        #expect(m.inFlightPublishCount == 3)

        // Completing one (out of order) makes room again.
        #expect(m.publishCompleted(requestID: 2, result: .success([PublishReceipt(partition: 0, offset: 10)]))
                == [.send(.publishAck(requestID: 2, receipts: [PublishReceipt(partition: 0, offset: 10)]))])
        #expect(m.received(.publishBatch(requestID: 4, events: [event, event])) == [.publish(requestID: 4, events: [event, event])])
        let failed = m.publishCompleted(requestID: 1, result: .failure(WireError(.storageUnavailable, "disk full")))
        #expect(Self.sentError(failed) == WireError(.storageUnavailable, "disk full", streamID: 1, inReplyTo: .publish))
        #expect(m.inFlightPublishCount == 2)
        // A completion for something not in flight is ignored.
        #expect(m.publishCompleted(requestID: 1, result: .success([])).isEmpty)
    }

    @Test func reusingAnInFlightRequestIDCloses() {
        var m = Self.ready()
        _ = m.received(.publish(requestID: 5, event: Fixtures.event()))
        let actions = m.received(.publish(requestID: 5, event: Fixtures.event()))
        #expect(Self.sentError(actions)?.code == .protocolViolation)
        #expect(Self.closes(actions))
    }

    @Test func oversizedEventsAreRefusedWithoutClosing() {
        var m = Self.ready { $0.maxEventSize = 100 }
        let big = Fixtures.event(data: String(repeating: "x", count: 200))
        let actions = m.received(.publishBatch(requestID: 9, events: [Fixtures.event(), big]))
        #expect(Self.sentError(actions)?.code == .eventTooLarge)
        #expect(!Self.closes(actions))
        #expect(m.inFlightPublishCount == 0)
    }

    @Test func wrongReceiptCountBecomesAnInternalError() {
        var m = Self.ready()
        _ = m.received(.publishBatch(requestID: 1, events: [Fixtures.event(), Fixtures.event()]))
        let actions = m.publishCompleted(requestID: 1, result: .success([PublishReceipt(partition: 0, offset: 0)]))
        #expect(Self.sentError(actions)?.code == .internalError)
    }

    // MARK: Subscriptions and credit

    static func subscribed(credit: UInt32, group: String? = nil) -> ServerConnectionStateMachine {
        var m = ready()
        let request = Subscribe(subscriptionID: 1, pattern: Fixtures.pattern("orders/#"), group: group, initialCredit: credit, ackMode: .explicit)
        precondition(m.received(.subscribe(request)) == [.subscribe(request)])
        precondition(m.subscribeCompleted(subscriptionID: 1, result: .success(())) == [.send(.subscribed(subscriptionID: 1))])
        return m
    }

    @Test func noDeliveryWithoutCredit() {
        var m = Self.subscribed(credit: 2)
        let event = Fixtures.event()
        #expect(m.canDeliver(1))
        #expect(m.deliver(subscriptionID: 1, partition: 0, offset: 0, event: event)
                == .event(EventDelivery(subscriptionID: 1, partition: 0, offset: 0, event: event)))
        let took = m.consumeCredit(1)
        #expect(took)
        #expect(!m.canDeliver(1))
        #expect(m.deliver(subscriptionID: 1, partition: 0, offset: 2, event: event) == nil)
        let tookMore = m.consumeCredit(1)
        #expect(!tookMore)
        #expect(m.credit(for: 1) == 0)

        #expect(m.received(.credit(subscriptionID: 1, count: 5)) == [.grantCredit(subscriptionID: 1, count: 5)])
        var sent = 0
        while m.deliver(subscriptionID: 1, partition: 0, offset: UInt64(sent), event: event) != nil { sent += 1 }
        #expect(sent == 5)
    }

    @Test func zeroInitialCreditDeliversNothing() {
        var m = Self.subscribed(credit: 0)
        #expect(!m.canDeliver(1))
        #expect(m.deliver(subscriptionID: 1, partition: 0, offset: 0, event: Fixtures.event()) == nil)
    }

    @Test func pendingSubscriptionsDeliverNothing() {
        var m = Self.ready()
        _ = m.received(.subscribe(Subscribe(subscriptionID: 3, pattern: Fixtures.pattern("#"), initialCredit: 10)))
        #expect(!m.canDeliver(3))
        // Credit granted while pending is kept for later, without waking anyone.
        #expect(m.received(.credit(subscriptionID: 3, count: 4)).isEmpty)
        _ = m.subscribeCompleted(subscriptionID: 3, result: .success(()))
        #expect(m.credit(for: 3) == 14)
    }

    @Test func creditSaturates() {
        var m = Self.subscribed(credit: .max - 1)
        _ = m.received(.credit(subscriptionID: 1, count: 10))
        #expect(m.credit(for: 1) == .max)
    }

    @Test func unknownSubscriptionsAreReportedNotFatal() {
        var m = Self.ready()
        for frame in [Frame.credit(subscriptionID: 8, count: 1), .unsubscribe(subscriptionID: 8),
                      .ack(Ack(subscriptionID: 8, topic: Fixtures.topic("a"), partition: 0, offset: 0))] {
            let actions = m.received(frame)
            #expect(Self.sentError(actions)?.code == .unknownSubscription)
            #expect(Self.sentError(actions)?.streamID == 8)
            #expect(!Self.closes(actions))
        }
    }

    @Test func duplicateSubscriptionIDCloses() {
        var m = Self.subscribed(credit: 1)
        let actions = m.received(.subscribe(Subscribe(subscriptionID: 1, pattern: Fixtures.pattern("#"), initialCredit: 1)))
        #expect(Self.sentError(actions)?.code == .protocolViolation)
        #expect(Self.closes(actions))
    }

    @Test func acksCommitForGroupsOnly() {
        var grouped = Self.subscribed(credit: 1, group: "billing")
        let ack = Ack(subscriptionID: 1, topic: Fixtures.topic("orders/eu"), partition: 2, offset: 41)
        #expect(grouped.received(.ack(ack)) == [.commit(subscriptionID: 1, group: "billing", topic: ack.topic, partition: 2, offset: 41)])

        var alone = Self.subscribed(credit: 1)
        let actions = alone.received(.ack(ack))
        #expect(Self.sentError(actions)?.code == .protocolViolation)
        #expect(!Self.closes(actions))
    }

    @Test func unsubscribeStopsDeliveryAtOnce() {
        var m = Self.subscribed(credit: 10)
        #expect(m.received(.unsubscribe(subscriptionID: 1)) == [.unsubscribe(subscriptionID: 1), .send(.unsubscribed(subscriptionID: 1))])
        #expect(!m.canDeliver(1))
        // The id is free again.
        let request = Subscribe(subscriptionID: 1, pattern: Fixtures.pattern("#"), initialCredit: 1)
        #expect(m.received(.subscribe(request)) == [.subscribe(request)])
    }

    @Test func unsubscribeWhilePendingWaitsForTheOutcome() {
        var m = Self.ready()
        _ = m.received(.subscribe(Subscribe(subscriptionID: 2, pattern: Fixtures.pattern("#"), initialCredit: 1)))
        #expect(m.received(.unsubscribe(subscriptionID: 2)).isEmpty)
        #expect(m.subscribeCompleted(subscriptionID: 2, result: .success(()))
                == [.unsubscribe(subscriptionID: 2), .send(.unsubscribed(subscriptionID: 2))])
        #expect(!m.canDeliver(2))
    }

    @Test func failedSubscribeIsReported() {
        var m = Self.ready()
        _ = m.received(.subscribe(Subscribe(subscriptionID: 2, pattern: Fixtures.pattern("secret/#"), initialCredit: 1)))
        let actions = m.subscribeCompleted(subscriptionID: 2, result: .failure(WireError(.forbidden, "no subscribe on secret/#")))
        #expect(Self.sentError(actions) == WireError(.forbidden, "no subscribe on secret/#", streamID: 2, inReplyTo: .subscribe))
        #expect(!m.canDeliver(2))
    }

    @Test func assignmentsGoToGroupMembers() {
        var m = Self.subscribed(credit: 1, group: "g")
        let assignment = Assignment(subscriptionID: 1, generation: 2, partitions: [TopicPartition(topic: Fixtures.topic("orders/eu"), partition: 0)])
        #expect(m.assignmentChanged(assignment) == [.send(.assignment(assignment))])
        var alone = Self.subscribed(credit: 1)
        #expect(alone.assignmentChanged(assignment).isEmpty)
    }

    // MARK: Heartbeats and closing

    @Test func idleConnectionsAreClosed() {
        var m = Self.ready { $0.idleTimeoutTicks = 3 }
        // WELCOME went out during the first interval, so it needs no PING.
        #expect(m.heartbeatTick().isEmpty)
        #expect(m.heartbeatTick() == [.send(.ping(nonce: 1))])
        _ = m.received(.pong(nonce: 1))
        #expect(m.heartbeatTick() == [.send(.ping(nonce: 2))])
        #expect(m.heartbeatTick() == [.send(.ping(nonce: 3))])
        let actions = m.heartbeatTick()
        #expect(Self.sentError(actions)?.code == .idleTimeout)
        #expect(Self.closes(actions))
    }

    @Test func noPingWhenSomethingWasSent() {
        var m = Self.subscribed(credit: 5)
        _ = m.heartbeatTick()  // clears the sends of the handshake
        _ = m.deliver(subscriptionID: 1, partition: 0, offset: 0, event: Fixtures.event())
        #expect(m.heartbeatTick().isEmpty)
    }

    @Test func helloMustArriveBeforeTheIdleTimeout() {
        var m = Self.machine { $0.idleTimeoutTicks = 2 }
        #expect(m.heartbeatTick().isEmpty)
        #expect(Self.sentError(m.heartbeatTick())?.code == .idleTimeout)
    }

    @Test func clientGoodbyeDrainsInFlightPublishes() {
        var m = Self.subscribed(credit: 5)
        _ = m.received(.publish(requestID: 1, event: Fixtures.event()))
        #expect(m.received(.goodbye) == [.unsubscribe(subscriptionID: 1)])
        #expect(!m.canDeliver(1))
        // Frames after the client's GOODBYE are ignored.
        #expect(m.received(.publish(requestID: 2, event: Fixtures.event())).isEmpty)
        let receipt = PublishReceipt(partition: 0, offset: 1)
        #expect(m.publishCompleted(requestID: 1, result: .success([receipt]))
                == [.send(.publishAck(requestID: 1, receipts: [receipt])), .send(.goodbye), .close(nil)])
        #expect(m.isClosed)
    }

    @Test func serverShutdownRefusesNewWorkAndWaitsForTheClient() {
        var m = Self.subscribed(credit: 5, group: "g")
        _ = m.received(.publish(requestID: 1, event: Fixtures.event()))
        #expect(m.shutdown() == [.send(.goodbye), .unsubscribe(subscriptionID: 1)])
        #expect(Self.sentError(m.received(.publish(requestID: 2, event: Fixtures.event())))?.code == .notReady)
        // Commits still go through so the client can record its progress before leaving.
        let ack = Ack(subscriptionID: 1, topic: Fixtures.topic("orders/eu"), partition: 0, offset: 3)
        #expect(m.received(.ack(ack)) == [.commit(subscriptionID: 1, group: "g", topic: ack.topic, partition: 0, offset: 3)])
        _ = m.publishCompleted(requestID: 1, result: .success([PublishReceipt(partition: 0, offset: 0)]))
        #expect(m.received(.goodbye) == [.close(nil)])
    }

    @Test func decodingFailureSendsAFatalErrorAndCloses() {
        var m = Self.subscribed(credit: 1)
        let error = WireError(.frameTooLarge, "too big")
        let actions = m.decodingFailed(error)
        #expect(actions == [.unsubscribe(subscriptionID: 1), .send(.error(error.fatal())), .close(error.fatal())])
    }
}
