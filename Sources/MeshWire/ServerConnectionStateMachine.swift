import MeshCore

/// The server's side of one TCP connection, as a value that takes inputs and returns actions.
///
/// The channel handler feeds it every decoded frame and every completion of work it started, and
/// carries out the returned actions in order; the machine never does I/O, so the whole protocol is
/// testable without a socket. Actions are returned as small arrays because several inputs need
/// more than one (an ERROR then a close, the last publish ack then GOODBYE then a close).
///
/// States: awaiting HELLO → (authenticating) → ready → draining → closed. See docs/protocol.md.
public struct ServerConnectionStateMachine: Sendable {
    public struct Configuration: Sendable {
        /// Sent in WELCOME as the server name.
        public var nodeName: String
        public var supportedVersions: ClosedRange<UInt16>
        /// The largest length prefix accepted, advertised in WELCOME; the decoder must use the same.
        public var maxFrameLength: UInt32
        /// The largest encoded event accepted in PUBLISH / PUBLISH_BATCH.
        public var maxEventSize: Int
        /// Advertised in WELCOME; the handler calls `heartbeatTick()` once per interval.
        public var heartbeatIntervalMilliseconds: UInt32
        /// A connection that receives nothing for this many ticks is closed.
        public var idleTimeoutTicks: Int
        /// Unanswered PUBLISH / PUBLISH_BATCH requests allowed at once; more get `overloaded`.
        public var maxInFlightPublishes: Int
        /// Open subscriptions allowed at once; more get `overloaded`.
        public var maxSubscriptions: Int
        /// The retry hint sent with `overloaded`.
        public var overloadRetryAfterMilliseconds: UInt32
        /// When true, HELLO must carry a token, which the handler checks (`.authenticate`).
        public var requiresAuthentication: Bool

        public init(
            nodeName: String,
            supportedVersions: ClosedRange<UInt16> = WireProtocol.supportedVersions,
            maxFrameLength: UInt32 = WireProtocol.defaultMaxFrameLength,
            maxEventSize: Int = WireProtocol.defaultMaxEventSize,
            heartbeatIntervalMilliseconds: UInt32 = 10_000,
            idleTimeoutTicks: Int = 3,
            maxInFlightPublishes: Int = 128,
            maxSubscriptions: Int = 256,
            overloadRetryAfterMilliseconds: UInt32 = 100,
            requiresAuthentication: Bool = false
        ) {
            self.nodeName = nodeName
            self.supportedVersions = supportedVersions
            self.maxFrameLength = maxFrameLength
            self.maxEventSize = maxEventSize
            self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
            self.idleTimeoutTicks = idleTimeoutTicks
            self.maxInFlightPublishes = maxInFlightPublishes
            self.maxSubscriptions = maxSubscriptions
            self.overloadRetryAfterMilliseconds = overloadRetryAfterMilliseconds
            self.requiresAuthentication = requiresAuthentication
        }
    }

    public enum Action: Hashable, Sendable {
        /// Write this frame.
        case send(Frame)
        /// Check `hello.token`; answer with `authenticationSucceeded()` or `authenticationFailed(_:)`.
        case authenticate(Hello)
        /// Validate, fill and append these events; answer with `publishCompleted(requestID:result:)`.
        case publish(requestID: UInt32, events: [Event])
        /// The same for events kept in their encoding (a bridge connection, `Frame.publishEncoded`).
        case publishEncoded(requestID: UInt32, events: [[UInt8]])
        /// Open the subscription; answer with `subscribeCompleted(subscriptionID:result:)`. Deliver
        /// through `deliver(...)` (or `canDeliver` + `consumeCredit`) so credit is respected.
        case subscribe(Subscribe)
        /// The client granted more credit: deliveries that were waiting may resume.
        case grantCredit(subscriptionID: UInt32, count: UInt32)
        /// Commit `offset + 1` as the group's position in this partition.
        case commit(subscriptionID: UInt32, group: String, topic: Topic, partition: UInt32, offset: UInt64)
        /// Stop delivering on this subscription and release what it holds.
        case unsubscribe(subscriptionID: UInt32)
        /// Close the connection once the frames before this action are written.
        case close(WireError?)
    }

    enum State: Hashable, Sendable {
        case awaitingHello
        case authenticating(version: UInt16)
        case ready(version: UInt16)
        /// Finishing in-flight publishes before closing; GOODBYE has come from one side or both.
        case draining(goodbyeReceived: Bool, goodbyeSent: Bool)
        case closed
    }

    struct Subscription: Sendable {
        enum Status: Sendable {
            /// SUBSCRIBE passed on, `subscribeCompleted` not yet in.
            case pending
            case active
            /// UNSUBSCRIBE arrived while pending; UNSUBSCRIBED goes out once the outcome is known.
            case cancelling
        }
        var status: Status
        var group: String?
        var credit: UInt32
    }

    public let configuration: Configuration
    private(set) var state: State = .awaitingHello
    /// The client's HELLO, once received: its name, and whether it is a bridge from another site.
    public private(set) var hello: Hello?
    /// Request id → (frame type, event count) of publishes handed to the handler and not answered.
    private var inFlight: [UInt32: (type: FrameType, count: Int)] = [:]
    private var subscriptions: [UInt32: Subscription] = [:]
    private var ticksSinceReceive = 0
    private var sentSinceTick = false
    private var nextPingNonce: UInt32 = 1

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: Observations

    /// The version chosen in WELCOME, once there is one.
    public var negotiatedVersion: UInt16? {
        switch state {
        case .authenticating(let v), .ready(let v): v
        default: nil
        }
    }

    public var isReady: Bool { if case .ready = state { true } else { false } }
    public var isClosed: Bool { state == .closed }
    public var inFlightPublishCount: Int { inFlight.count }

    /// Credit left on a subscription; 0 for unknown ones.
    public func credit(for subscriptionID: UInt32) -> UInt32 {
        subscriptions[subscriptionID]?.credit ?? 0
    }

    /// True when an EVENT may be sent now: the connection is ready, the subscription is active and
    /// it has credit.
    public func canDeliver(_ subscriptionID: UInt32) -> Bool {
        guard isReady, let sub = subscriptions[subscriptionID] else { return false }
        return sub.status == .active && sub.credit > 0
    }

    // MARK: Inputs

    public mutating func received(_ frame: Frame) -> [Action] {
        if state == .closed { return [] }
        ticksSinceReceive = 0
        return noteSends(handle(frame))
    }

    /// The decoder threw: answer with the error and close.
    public mutating func decodingFailed(_ error: WireError) -> [Action] {
        if state == .closed { return [] }
        return noteSends(fail(error))
    }

    public mutating func authenticationSucceeded() -> [Action] {
        guard case .authenticating(let version) = state else { return [] }
        return noteSends(welcome(version: version))
    }

    public mutating func authenticationFailed(_ reason: String) -> [Action] {
        guard case .authenticating = state else { return [] }
        return noteSends(fail(WireError(.authenticationFailed, reason, inReplyTo: .hello)))
    }

    /// The connection's credential stopped being valid (a reload removed the token, or the JWT
    /// expired): an `authenticationFailed` error, then the connection closes.
    public mutating func credentialsRevoked(_ reason: String) -> [Action] {
        guard state != .closed else { return [] }
        return noteSends(fail(WireError(.authenticationFailed, reason)))
    }

    /// The outcome of a `.publish` action. Receipts must be one per event, in order.
    public mutating func publishCompleted(requestID: UInt32, result: Result<[PublishReceipt], WireError>) -> [Action] {
        guard state != .closed, let request = inFlight.removeValue(forKey: requestID) else { return [] }
        var actions: [Action]
        switch result {
        case .success(let receipts) where receipts.count == request.count:
            actions = [.send(.publishAck(requestID: requestID, receipts: receipts))]
        case .success(let receipts):
            let error = WireError(.internalError, "the server produced \(receipts.count) receipts for \(request.count) events",
                                  streamID: requestID, inReplyTo: request.type)
            actions = [.send(.error(error))]
        case .failure(let error):
            var error = error
            error.streamID = requestID
            error.inReplyTo = request.type
            if error.isFatal { return noteSends(fail(error)) }
            actions = [.send(.error(error))]
        }
        actions += finishDrainingIfDone()
        return noteSends(actions)
    }

    /// The outcome of a `.subscribe` action.
    public mutating func subscribeCompleted(subscriptionID id: UInt32, result: Result<Void, WireError>) -> [Action] {
        guard state != .closed, let sub = subscriptions[id], sub.status != .active else { return [] }
        var actions: [Action] = []
        switch (sub.status, result) {
        case (.cancelling, .success):
            subscriptions[id] = nil
            actions = [.unsubscribe(subscriptionID: id), .send(.unsubscribed(subscriptionID: id))]
        case (.cancelling, .failure):
            subscriptions[id] = nil
            actions = [.send(.unsubscribed(subscriptionID: id))]
        case (_, .failure(var error)):
            subscriptions[id] = nil
            error.streamID = id
            error.inReplyTo = .subscribe
            error.isFatal = false
            actions = [.send(.error(error))]
        case (_, .success):
            if isReady {
                subscriptions[id]?.status = .active
                actions = [.send(.subscribed(subscriptionID: id))]
            } else {
                // Shutting down: it opened too late to deliver anything.
                subscriptions[id] = nil
                actions = [.unsubscribe(subscriptionID: id),
                           .send(.error(WireError(.notReady, "the server is shutting down", streamID: id, inReplyTo: .subscribe)))]
            }
        }
        return noteSends(actions)
    }

    /// The server ended a subscription on its own (storage failure, revoked access). Without an
    /// error the client sees UNSUBSCRIBED, with one an ERROR about its SUBSCRIBE.
    public mutating func subscriptionEnded(subscriptionID id: UInt32, error: WireError?) -> [Action] {
        guard state != .closed, subscriptions.removeValue(forKey: id) != nil else { return [] }
        guard var error else { return noteSends([.send(.unsubscribed(subscriptionID: id))]) }
        error.streamID = id
        error.inReplyTo = .subscribe
        error.isFatal = false
        return noteSends([.send(.error(error))])
    }

    /// The group rebalanced: tell this member what it owns now.
    public mutating func assignmentChanged(_ assignment: Assignment) -> [Action] {
        guard isReady, let sub = subscriptions[assignment.subscriptionID], sub.status == .active, sub.group != nil else {
            return []
        }
        return noteSends([.send(.assignment(assignment))])
    }

    /// Takes one credit and returns the EVENT frame to write, or nil when `canDeliver` is false
    /// (the event must wait for CREDIT, or be dropped if the subscription is gone).
    public mutating func deliver(subscriptionID: UInt32, partition: UInt32, offset: UInt64, event: Event) -> Frame? {
        guard consumeCredit(subscriptionID) else { return nil }
        return .event(EventDelivery(subscriptionID: subscriptionID, partition: partition, offset: offset, event: event))
    }

    /// Takes one credit for an EVENT the caller writes itself. False, taking nothing, when
    /// `canDeliver` is false.
    public mutating func consumeCredit(_ subscriptionID: UInt32) -> Bool {
        guard canDeliver(subscriptionID) else { return false }
        subscriptions[subscriptionID]!.credit -= 1
        sentSinceTick = true
        return true
    }

    /// Call once per heartbeat interval. Closes an idle connection and sends PING on a quiet one.
    public mutating func heartbeatTick() -> [Action] {
        if state == .closed { return [] }
        ticksSinceReceive += 1
        if ticksSinceReceive >= configuration.idleTimeoutTicks {
            return noteSends(fail(WireError(.idleTimeout, "nothing received for \(ticksSinceReceive) heartbeat intervals")))
        }
        defer { sentSinceTick = false }
        guard !sentSinceTick, negotiatedVersion != nil || isDraining else { return [] }
        let nonce = nextPingNonce
        nextPingNonce &+= 1
        return [.send(.ping(nonce: nonce))]
    }

    /// Graceful shutdown: send GOODBYE, stop deliveries, answer in-flight publishes, refuse new
    /// work, and close once the client says GOODBYE too.
    public mutating func shutdown() -> [Action] {
        switch state {
        case .closed:
            return []
        case .awaitingHello, .authenticating:
            return noteSends(fail(WireError(.notReady, "the server is shutting down")))
        case .draining(let received, let sent):
            guard !sent else { return [] }
            state = .draining(goodbyeReceived: received, goodbyeSent: true)
            return noteSends([.send(.goodbye)] + finishDrainingIfDone())
        case .ready:
            state = .draining(goodbyeReceived: false, goodbyeSent: true)
            return noteSends([.send(.goodbye)] + stopAllDeliveries())
        }
    }

    /// The connection is gone: release every subscription. In-flight publishes may still complete
    /// in the log but nobody hears about it.
    public mutating func channelClosed() -> [Action] {
        guard state != .closed else { return [] }
        state = .closed
        let ids = subscriptions.keys.sorted()
        subscriptions.removeAll()
        inFlight.removeAll()
        return ids.map { .unsubscribe(subscriptionID: $0) }
    }

    // MARK: Frames

    private mutating func handle(_ frame: Frame) -> [Action] {
        switch state {
        case .closed:
            return []
        case .awaitingHello:
            guard case .hello(let hello) = frame else {
                return fail(violation("\(frame.type) before HELLO; HELLO must be the first frame", frame))
            }
            return negotiate(hello)
        case .authenticating:
            return fail(violation("\(frame.type) before WELCOME; wait for WELCOME after HELLO", frame))
        case .ready:
            return handleReady(frame)
        case .draining(let goodbyeReceived, _):
            // After its GOODBYE the client sends nothing; anything else is left unanswered.
            if goodbyeReceived { return [] }
            return handleDraining(frame)
        }
    }

    private mutating func negotiate(_ hello: Hello) -> [Action] {
        self.hello = hello
        let ours = configuration.supportedVersions
        guard hello.minVersion <= hello.maxVersion,
              hello.maxVersion >= ours.lowerBound, hello.minVersion <= ours.upperBound
        else {
            return fail(WireError(.unsupportedVersion,
                "client speaks versions \(hello.minVersion)...\(hello.maxVersion), server speaks \(ours.lowerBound)...\(ours.upperBound)",
                inReplyTo: .hello))
        }
        let version = min(hello.maxVersion, ours.upperBound)
        guard configuration.requiresAuthentication else { return welcome(version: version) }
        guard hello.token != nil else {
            return fail(WireError(.authenticationFailed, "this server requires a token in HELLO", inReplyTo: .hello))
        }
        state = .authenticating(version: version)
        return [.authenticate(hello)]
    }

    private mutating func welcome(version: UInt16) -> [Action] {
        state = .ready(version: version)
        return [.send(.welcome(Welcome(
            version: version, serverName: configuration.nodeName, maxFrameLength: configuration.maxFrameLength,
            heartbeatIntervalMilliseconds: configuration.heartbeatIntervalMilliseconds,
            maxInFlightPublishes: UInt32(clamping: configuration.maxInFlightPublishes))))]
    }

    private mutating func handleReady(_ frame: Frame) -> [Action] {
        switch frame {
        case .ping(let nonce):
            return [.send(.pong(nonce: nonce))]
        case .pong:
            return []
        case .goodbye:
            state = .draining(goodbyeReceived: true, goodbyeSent: false)
            return stopAllDeliveries() + finishDrainingIfDone()
        case .publish(let id, let event):
            return startPublish(id, type: .publish, events: [event])
        case .publishBatch(let id, let events):
            return startPublish(id, type: .publishBatch, events: events)
        case .publishEncoded(let id, let events):
            return startPublish(id, type: .publishBatch, sizes: events.lazy.map { $0.count }, count: events.count,
                                action: .publishEncoded(requestID: id, events: events))
        case .subscribe(let request):
            return startSubscription(request)
        case .credit(let id, let count):
            guard let sub = subscriptions[id] else { return [unknownSubscription(id, frame)] }
            let (sum, overflow) = sub.credit.addingReportingOverflow(count)
            subscriptions[id]!.credit = overflow ? .max : sum
            return sub.status == .active ? [.grantCredit(subscriptionID: id, count: count)] : []
        case .ack(let ack):
            return commit(ack, frame)
        case .unsubscribe(let id):
            guard let sub = subscriptions[id] else { return [unknownSubscription(id, frame)] }
            switch sub.status {
            case .pending:
                subscriptions[id]!.status = .cancelling
                return []
            case .cancelling:
                return []
            case .active:
                subscriptions[id] = nil
                return [.unsubscribe(subscriptionID: id), .send(.unsubscribed(subscriptionID: id))]
            }
        case .hello:
            return fail(violation("HELLO was already received", frame))
        case .welcome, .error, .publishAck, .subscribed, .event, .unsubscribed, .assignment:
            return fail(violation("\(frame.type) is sent by servers, not clients", frame))
        }
    }

    /// The server said GOODBYE first: answer what is in flight, let the client commit, refuse the rest.
    private mutating func handleDraining(_ frame: Frame) -> [Action] {
        switch frame {
        case .goodbye:
            state = .draining(goodbyeReceived: true, goodbyeSent: true)
            return finishDrainingIfDone()
        case .publish(let id, _), .publishBatch(let id, _), .publishEncoded(let id, _):
            if inFlight[id] != nil { return fail(violation("request id \(id) is already in flight", frame)) }
            return [.send(.error(WireError(.notReady, "the server is shutting down", streamID: id, inReplyTo: frame.type)))]
        case .subscribe(let request):
            if subscriptions[request.subscriptionID] != nil {
                return fail(violation("subscription id \(request.subscriptionID) is already open", frame))
            }
            return [.send(.error(WireError(.notReady, "the server is shutting down", streamID: request.subscriptionID, inReplyTo: .subscribe)))]
        case .credit(let id, _):
            return subscriptions[id] == nil ? [unknownSubscription(id, frame)] : []
        case .unsubscribe(let id):
            guard subscriptions.removeValue(forKey: id) != nil else { return [unknownSubscription(id, frame)] }
            return [.send(.unsubscribed(subscriptionID: id))]
        case .ack, .ping, .pong, .hello, .welcome, .error, .publishAck, .subscribed, .event, .unsubscribed, .assignment:
            return handleReady(frame)
        }
    }

    private mutating func startPublish(_ id: UInt32, type: FrameType, events: [Event]) -> [Action] {
        // By index: iterating the array would copy every event.
        startPublish(id, type: type, sizes: events.indices.lazy.map { EventCodec.encodedSize(events[$0]) }, count: events.count,
                     action: .publish(requestID: id, events: events))
    }

    private mutating func startPublish(_ id: UInt32, type: FrameType, sizes: some Sequence<Int>, count: Int, action: Action) -> [Action] {
        if inFlight[id] != nil {
            // Two requests with one id would make their answers ambiguous: the stream is unusable.
            return fail(WireError(.protocolViolation, "request id \(id) is already in flight", streamID: id, inReplyTo: type))
        }
        guard inFlight.count < configuration.maxInFlightPublishes else {
            return [.send(.error(WireError(.overloaded,
                "\(inFlight.count) publishes in flight, the limit is \(configuration.maxInFlightPublishes)",
                streamID: id, inReplyTo: type, retryAfterMilliseconds: configuration.overloadRetryAfterMilliseconds)))]
        }
        for (index, size) in sizes.enumerated() {
            if size > configuration.maxEventSize {
                let which = count == 1 ? "the event" : "event \(index)"
                return [.send(.error(WireError(.eventTooLarge,
                    "\(which) is \(size) bytes encoded; the maximum is \(configuration.maxEventSize)",
                    streamID: id, inReplyTo: type)))]
            }
        }
        inFlight[id] = (type, count)
        return [action]
    }

    private mutating func startSubscription(_ request: Subscribe) -> [Action] {
        let id = request.subscriptionID
        if subscriptions[id] != nil {
            return fail(WireError(.protocolViolation, "subscription id \(id) is already open", streamID: id, inReplyTo: .subscribe))
        }
        guard subscriptions.count < configuration.maxSubscriptions else {
            return [.send(.error(WireError(.overloaded,
                "\(subscriptions.count) subscriptions open, the limit is \(configuration.maxSubscriptions)",
                streamID: id, inReplyTo: .subscribe, retryAfterMilliseconds: configuration.overloadRetryAfterMilliseconds)))]
        }
        subscriptions[id] = Subscription(status: .pending, group: request.group, credit: request.initialCredit)
        return [.subscribe(request)]
    }

    private func commit(_ ack: Ack, _ frame: Frame) -> [Action] {
        guard let sub = subscriptions[ack.subscriptionID], sub.status != .cancelling else {
            return [unknownSubscription(ack.subscriptionID, frame)]
        }
        guard let group = sub.group else {
            return [.send(.error(WireError(.protocolViolation, "ACK on a subscription without a consumer group has nothing to commit",
                                           streamID: ack.subscriptionID, inReplyTo: .ack)))]
        }
        return [.commit(subscriptionID: ack.subscriptionID, group: group, topic: ack.topic, partition: ack.partition, offset: ack.offset)]
    }

    // MARK: Helpers

    private var isDraining: Bool { if case .draining = state { true } else { false } }

    /// Deliveries stop for good; the records stay so that ACKs can still commit while draining.
    private func stopAllDeliveries() -> [Action] {
        subscriptions.keys.sorted().map { .unsubscribe(subscriptionID: $0) }
    }

    private mutating func finishDrainingIfDone() -> [Action] {
        guard case .draining(let received, let sent) = state, received, inFlight.isEmpty else { return [] }
        state = .closed
        subscriptions.removeAll()
        return sent ? [.close(nil)] : [.send(.goodbye), .close(nil)]
    }

    /// A fatal error: send it, close, and forget everything.
    private mutating func fail(_ error: WireError) -> [Action] {
        let error = error.fatal()
        state = .closed
        let release = subscriptions.keys.sorted().map { Action.unsubscribe(subscriptionID: $0) }
        subscriptions.removeAll()
        inFlight.removeAll()
        return release + [.send(.error(error)), .close(error)]
    }

    private func violation(_ message: String, _ frame: Frame) -> WireError {
        WireError(.protocolViolation, message, streamID: frame.streamID, inReplyTo: frame.type)
    }

    private func unknownSubscription(_ id: UInt32, _ frame: Frame) -> Action {
        .send(.error(WireError(.unknownSubscription, "no open subscription has id \(id)", streamID: id, inReplyTo: frame.type)))
    }

    private mutating func noteSends(_ actions: [Action]) -> [Action] {
        if !sentSinceTick, actions.contains(where: { if case .send = $0 { true } else { false } }) {
            sentSinceTick = true
        }
        return actions
    }
}
