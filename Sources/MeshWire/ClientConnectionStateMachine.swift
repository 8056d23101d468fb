import MeshCore

/// The client's side of one TCP connection: it builds the frames the client sends, matches every
/// answer to its request (publishes are pipelined and may be answered in any order), and keeps
/// each subscription's credit topped up as the application consumes events.
///
/// Like the server machine it does no I/O: methods that start something return the frame to write
/// (or throw when it may not be sent), and `received(_:)` returns what happened.
public struct ClientConnectionStateMachine: Sendable {
    public struct Configuration: Sendable {
        public var clientName: String
        public var token: String?
        public var supportedVersions: ClosedRange<UInt16>
        /// The connection is closed when nothing arrives for this many heartbeat ticks.
        public var idleTimeoutTicks: Int
        /// Announce a bridge from another site (HELLO flag bit 1); `clientName` is the site name.
        public var bridge = false

        public init(clientName: String, token: String? = nil,
                    supportedVersions: ClosedRange<UInt16> = WireProtocol.supportedVersions, idleTimeoutTicks: Int = 3,
                    bridge: Bool = false) {
            self.bridge = bridge
            self.clientName = clientName
            self.token = token
            self.supportedVersions = supportedVersions
            self.idleTimeoutTicks = idleTimeoutTicks
        }
    }

    public enum Action: Hashable, Sendable {
        case send(Frame)
        /// The handshake finished; the frame decoder should now use `welcome.maxFrameLength` and
        /// ticks should come every `welcome.heartbeatIntervalMilliseconds`.
        case connected(Welcome)
        case publishAcknowledged(requestID: UInt32, receipts: [PublishReceipt])
        case publishFailed(requestID: UInt32, error: WireError)
        case subscribed(subscriptionID: UInt32)
        /// No more events will arrive: UNSUBSCRIBED (error nil), an ERROR about the SUBSCRIBE, or
        /// the connection ending.
        case subscriptionEnded(subscriptionID: UInt32, error: WireError?)
        case deliver(EventDelivery)
        case assignment(Assignment)
        /// A non-fatal error about a CREDIT, ACK or UNSUBSCRIBE.
        case error(WireError)
        /// Close the connection once the frames before this action are written.
        case close(WireError?)
    }

    enum State: Hashable, Sendable {
        case idle
        case awaitingWelcome
        case ready(Welcome)
        /// GOODBYE was sent; waiting for the server's.
        case closing(Welcome)
        case closed
    }

    struct Subscription: Sendable {
        /// The initial credit; CREDIT goes out each time half of it has been consumed. 0 = manual.
        var window: UInt32
        /// Credit the server still holds: granted minus events received.
        var serverCredit: UInt32
        /// Events consumed since the last CREDIT.
        var consumedSinceGrant: UInt32
        var unsubscribing = false
        var group: String?
    }

    public let configuration: Configuration
    private(set) var state: State = .idle
    /// Request id → (frame type, event count) of publishes sent and not yet answered.
    private var outstanding: [UInt32: (type: FrameType, count: Int)] = [:]
    private var subscriptions: [UInt32: Subscription] = [:]
    // Internal so tests can start it near the wrap.
    var nextRequestID: UInt32 = 1
    private var nextSubscriptionID: UInt32 = 1
    private var ticksSinceReceive = 0
    private var sentSinceTick = false
    /// The server said GOODBYE first: reply with ours once every publish is answered.
    private var serverSaidGoodbye = false
    private var nextPingNonce: UInt32 = 1

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: Observations

    public var welcome: Welcome? {
        switch state {
        case .ready(let w), .closing(let w): w
        default: nil
        }
    }

    public var isReady: Bool { if case .ready = state { !serverSaidGoodbye } else { false } }
    public var isClosed: Bool { state == .closed }
    public var outstandingPublishCount: Int { outstanding.count }
    public func isOutstanding(_ requestID: UInt32) -> Bool { outstanding[requestID] != nil }

    /// Credit the server still holds for this subscription.
    public func serverCredit(for subscriptionID: UInt32) -> UInt32 { subscriptions[subscriptionID]?.serverCredit ?? 0 }

    // MARK: Starting things

    /// The HELLO to send first.
    public mutating func start() throws(WireError) -> Frame {
        guard state == .idle else { throw WireError(.protocolViolation, "the connection was already started") }
        guard configuration.clientName.utf8.count <= WireProtocol.maxNameLength else {
            throw WireError(.badFrame, "client name is longer than \(WireProtocol.maxNameLength) bytes")
        }
        if let token = configuration.token, token.utf8.count > WireProtocol.maxStringLength {
            throw WireError(.badFrame, "token is longer than \(WireProtocol.maxStringLength) bytes")
        }
        state = .awaitingWelcome
        sentSinceTick = true
        return .hello(Hello(versions: configuration.supportedVersions, clientName: configuration.clientName, token: configuration.token,
                            bridge: configuration.bridge))
    }

    /// A PUBLISH for one event, with a fresh request id.
    public mutating func publish(_ event: Event) throws(WireError) -> (requestID: UInt32, frame: Frame) {
        let id = try reserveRequest(type: .publish, events: [event])
        return (id, .publish(requestID: id, event: event))
    }

    /// A PUBLISH_BATCH, with a fresh request id. `encodedSize`, when the caller summed it already,
    /// is the events' `EventCodec.encodedSize` total (otherwise it is summed here).
    public mutating func publish(batch events: [Event], encodedSize: Int? = nil) throws(WireError) -> (requestID: UInt32, frame: Frame) {
        guard !events.isEmpty else { throw WireError(.invalidEvent, "a batch needs at least one event") }
        let id = if let encodedSize {
            try reserveRequest(type: .publishBatch, count: events.count, size: encodedSize)
        } else {
            try reserveRequest(type: .publishBatch, events: events)
        }
        return (id, .publishBatch(requestID: id, events: events))
    }

    /// A PUBLISH_BATCH of events already encoded, with a fresh request id.
    public mutating func publish(encoded events: [[UInt8]]) throws(WireError) -> (requestID: UInt32, frame: Frame) {
        guard !events.isEmpty else { throw WireError(.invalidEvent, "a batch needs at least one event") }
        let id = try reserveRequest(type: .publishBatch, count: events.count, size: events.reduce(0) { $0 + $1.count })
        return (id, .publishEncoded(requestID: id, events: events))
    }

    /// A SUBSCRIBE with a fresh subscription id. `window` is the initial credit; the machine grants
    /// more as `consumed(subscriptionID:count:)` reports progress. A window of 0 leaves credit to
    /// `grantCredit(subscriptionID:count:)`.
    public mutating func subscribe(
        _ pattern: TopicPattern, group: String? = nil, from start: StartPosition = .latest,
        ackMode: AckMode = .autoCommit, window: UInt32 = 256
    ) throws(WireError) -> (subscriptionID: UInt32, frame: Frame) {
        try requireReady()
        if let group {
            guard !group.isEmpty, group.utf8.count <= WireProtocol.maxNameLength,
                  !group.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else { throw WireError(.badFrame, "group name must be 1 to 255 bytes without control characters") }
        }
        var id = nextSubscriptionID
        while id == 0 || subscriptions[id] != nil { id &+= 1 }
        nextSubscriptionID = id &+ 1
        subscriptions[id] = Subscription(window: window, serverCredit: window, consumedSinceGrant: 0, group: group)
        sentSinceTick = true
        return (id, .subscribe(Subscribe(subscriptionID: id, pattern: pattern, group: group, start: start,
                                         initialCredit: window, ackMode: ackMode)))
    }

    /// The application finished with `count` delivered events. Returns a CREDIT to send once half
    /// the window has been consumed, so the server never runs dry while events are being handled.
    public mutating func consumed(subscriptionID id: UInt32, count: UInt32 = 1) -> Frame? {
        guard isReady, var sub = subscriptions[id], !sub.unsubscribing, sub.window > 0 else { return nil }
        sub.consumedSinceGrant = sub.consumedSinceGrant.addingReportingOverflow(count).overflow ? .max : sub.consumedSinceGrant + count
        guard sub.consumedSinceGrant >= max(1, sub.window / 2) else {
            subscriptions[id] = sub
            return nil
        }
        let grant = sub.consumedSinceGrant
        sub.consumedSinceGrant = 0
        sub.serverCredit = sub.serverCredit.addingReportingOverflow(grant).overflow ? .max : sub.serverCredit + grant
        subscriptions[id] = sub
        sentSinceTick = true
        return .credit(subscriptionID: id, count: grant)
    }

    /// An explicit CREDIT, for subscriptions that manage credit themselves.
    public mutating func grantCredit(subscriptionID id: UInt32, count: UInt32) throws(WireError) -> Frame {
        try requireReady()
        guard count > 0 else { throw WireError(.badFrame, "CREDIT must grant at least 1") }
        guard var sub = subscriptions[id], !sub.unsubscribing else {
            throw WireError(.unknownSubscription, "no open subscription has id \(id)", streamID: id)
        }
        sub.serverCredit = sub.serverCredit.addingReportingOverflow(count).overflow ? .max : sub.serverCredit + count
        subscriptions[id] = sub
        sentSinceTick = true
        return .credit(subscriptionID: id, count: count)
    }

    /// An ACK committing everything up to and including `offset` for the subscription's group.
    public mutating func acknowledge(subscriptionID id: UInt32, topic: Topic, partition: UInt32, offset: UInt64) throws(WireError) -> Frame {
        guard case .ready = state else { throw WireError(.notReady, "the connection is not open") }
        guard let sub = subscriptions[id] else {
            throw WireError(.unknownSubscription, "no open subscription has id \(id)", streamID: id)
        }
        guard sub.group != nil else {
            throw WireError(.protocolViolation, "subscription \(id) has no consumer group to commit to", streamID: id)
        }
        sentSinceTick = true
        return .ack(Ack(subscriptionID: id, topic: topic, partition: partition, offset: offset))
    }

    public mutating func unsubscribe(subscriptionID id: UInt32) throws(WireError) -> Frame {
        try requireReady()
        guard let sub = subscriptions[id], !sub.unsubscribing else {
            throw WireError(.unknownSubscription, "no open subscription has id \(id)", streamID: id)
        }
        subscriptions[id]!.unsubscribing = true
        sentSinceTick = true
        return .unsubscribe(subscriptionID: id)
    }

    /// Clean close: GOODBYE, then wait for the server's.
    public mutating func close() -> [Action] {
        switch state {
        case .idle, .awaitingWelcome:
            return endEverything(nil)
        case .ready(let welcome):
            if serverSaidGoodbye && !outstanding.isEmpty {
                return []  // GOODBYE goes out with the last answer
            }
            state = .closing(welcome)
            sentSinceTick = true
            return serverSaidGoodbye ? [.send(.goodbye)] + endEverything(nil) : [.send(.goodbye)]
        case .closing, .closed:
            return []
        }
    }

    // MARK: Inputs

    public mutating func received(_ frame: Frame) -> [Action] {
        ticksSinceReceive = 0
        switch state {
        case .idle, .closed:
            return []
        case .awaitingWelcome:
            switch frame {
            case .welcome(let welcome):
                guard configuration.supportedVersions.contains(welcome.version) else {
                    return endEverything(WireError(.unsupportedVersion,
                        "server chose version \(welcome.version), outside \(configuration.supportedVersions)"))
                }
                state = .ready(welcome)
                return [.connected(welcome)]
            case .error(let error):
                return endEverything(error)
            default:
                return endEverything(violation("\(frame.type) before WELCOME"))
            }
        case .ready, .closing:
            return receivedInSession(frame)
        }
    }

    public mutating func decodingFailed(_ error: WireError) -> [Action] {
        state == .closed ? [] : endEverything(error)
    }

    /// The connection is gone: every open request and subscription ends.
    public mutating func channelClosed() -> [Action] {
        state == .closed ? [] : endEverything(WireError(.notReady, "the connection closed"))
    }

    /// Call once per heartbeat interval (WELCOME's).
    public mutating func heartbeatTick() -> [Action] {
        if state == .closed || state == .idle { return [] }
        ticksSinceReceive += 1
        if ticksSinceReceive >= configuration.idleTimeoutTicks {
            return endEverything(WireError(.idleTimeout, "nothing received for \(ticksSinceReceive) heartbeat intervals"))
        }
        defer { sentSinceTick = false }
        guard !sentSinceTick, welcome != nil else { return [] }
        let nonce = nextPingNonce
        nextPingNonce &+= 1
        return [.send(.ping(nonce: nonce))]
    }

    private mutating func receivedInSession(_ frame: Frame) -> [Action] {
        switch frame {
        case .ping(let nonce):
            sentSinceTick = true
            return [.send(.pong(nonce: nonce))]
        case .pong:
            return []
        case .goodbye:
            if case .closing = state { return endEverything(nil) }
            serverSaidGoodbye = true
            return replyGoodbyeIfDone()
        case .error(let error):
            return receivedError(error)
        case .publishAck(let id, let receipts):
            guard let request = outstanding[id] else {
                return endEverything(violation("PUBLISH_ACK for request \(id), which is not outstanding"))
            }
            guard request.count == receipts.count else {
                return endEverything(violation("PUBLISH_ACK for request \(id) has \(receipts.count) receipts for \(request.count) events"))
            }
            outstanding[id] = nil
            return [.publishAcknowledged(requestID: id, receipts: receipts)] + replyGoodbyeIfDone()
        case .subscribed(let id):
            // Unknown ids are ignored: the server may answer a SUBSCRIBE we have since given up on.
            return subscriptions[id] == nil ? [] : [.subscribed(subscriptionID: id)]
        case .event(let delivery):
            let id = delivery.subscriptionID
            guard var sub = subscriptions[id] else { return [] }
            guard sub.serverCredit > 0 else {
                return endEverything(violation("EVENT on subscription \(id) without credit"))
            }
            sub.serverCredit -= 1
            subscriptions[id] = sub
            // Events sent before the server saw UNSUBSCRIBE are dropped, not delivered.
            return sub.unsubscribing ? [] : [.deliver(delivery)]
        case .unsubscribed(let id):
            guard subscriptions.removeValue(forKey: id) != nil else { return [] }
            return [.subscriptionEnded(subscriptionID: id, error: nil)]
        case .assignment(let assignment):
            guard let sub = subscriptions[assignment.subscriptionID], !sub.unsubscribing else { return [] }
            return [.assignment(assignment)]
        case .welcome:
            return endEverything(violation("a second WELCOME"))
        case .hello, .publish, .publishBatch, .publishEncoded, .subscribe, .credit, .ack, .unsubscribe:
            return endEverything(violation("\(frame.type) is sent by clients, not servers"))
        }
    }

    private mutating func receivedError(_ error: WireError) -> [Action] {
        if error.isFatal { return endEverything(error) }
        switch error.inReplyTo {
        case .publish?, .publishBatch?:
            guard outstanding.removeValue(forKey: error.streamID) != nil else {
                return endEverything(violation("ERROR for request \(error.streamID), which is not outstanding"))
            }
            return [.publishFailed(requestID: error.streamID, error: error)] + replyGoodbyeIfDone()
        case .subscribe?:
            guard subscriptions.removeValue(forKey: error.streamID) != nil else { return [] }
            return [.subscriptionEnded(subscriptionID: error.streamID, error: error)]
        default:
            return [.error(error)]
        }
    }

    // MARK: Helpers

    private mutating func reserveRequest(type: FrameType, events: [Event]) throws(WireError) -> UInt32 {
        try reserveRequest(type: type, count: events.count, size: events.reduce(0) { $0 + EventCodec.encodedSize($1) })
    }

    /// `size`: the events' encoded bytes.
    private mutating func reserveRequest(type: FrameType, count: Int, size eventBytes: Int) throws(WireError) -> UInt32 {
        try requireReady()
        let welcome = welcome!
        guard outstanding.count < Int(welcome.maxInFlightPublishes) else {
            throw WireError(.overloaded, "\(outstanding.count) publishes in flight, the server allows \(welcome.maxInFlightPublishes)")
        }
        // Header, then for a batch a count and a length per event.
        let size = WireProtocol.headerSize + (type == .publishBatch ? 4 + 4 * count : 0) + eventBytes
        guard size <= Int(welcome.maxFrameLength) else {
            throw WireError(.frameTooLarge, "the frame would be \(size) bytes; the server accepts at most \(welcome.maxFrameLength)")
        }
        var id = nextRequestID
        while id == 0 || outstanding[id] != nil { id &+= 1 }
        nextRequestID = id &+ 1
        outstanding[id] = (type, count)
        sentSinceTick = true
        return id
    }

    private func requireReady() throws(WireError) {
        guard isReady else { throw WireError(.notReady, "the connection is not open") }
    }

    private mutating func replyGoodbyeIfDone() -> [Action] {
        guard serverSaidGoodbye, outstanding.isEmpty, case .ready = state else { return [] }
        return [.send(.goodbye)] + endEverything(nil)
    }

    /// Answers every open request and subscription, then closes.
    private mutating func endEverything(_ error: WireError?) -> [Action] {
        state = .closed
        let failure = error ?? WireError(.notReady, "the connection closed")
        var actions: [Action] = outstanding.keys.sorted().map { .publishFailed(requestID: $0, error: failure) }
        actions += subscriptions.keys.sorted().map { .subscriptionEnded(subscriptionID: $0, error: error) }
        outstanding.removeAll()
        subscriptions.removeAll()
        actions.append(.close(error))
        return actions
    }

    private func violation(_ message: String) -> WireError {
        WireError(.protocolViolation, message, isFatal: true)
    }
}
