import Logging
import MeshAuth
import MeshBroker
import MeshCore
import MeshLog
import MeshNet
import MeshWire
import NIOCore
import Synchronization

/// Serves one TCP connection: feeds every decoded frame and every finished piece of work to a
/// `ServerConnectionStateMachine` and carries out the actions it returns. All state lives on the
/// channel's event loop; work done elsewhere (log appends, subscription reads, commits) hops back.
///
/// Frames are encoded here, into one buffer flushed once per read burst or per batch of
/// completions, rather than by a `MessageToByteHandler(FrameEncoder)`: that coalesces hundreds of
/// PUBLISH_ACKs into one write, and EVENT frames are written straight from the log's stored bytes.
///
/// Backpressure: while the channel is not writable the handler neither pulls events from the
/// broker nor reads more requests, so a client that stops reading costs at most the write buffer's
/// high-water mark plus one pulled batch, and never slows other connections.
final class TCPConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The largest batch pulled from a subscription at once; also bounded by credit and bytes.
    static let maxPullEvents = 512
    static let maxPullBytes = 1 << 20
    /// Output beyond this is flushed at once rather than at the end of the read burst.
    static let flushThreshold = 64 << 10
    /// Publishes of one read burst go to the broker together, at the end of the burst or once
    /// they hold this many events. A few hundred events already make one append cheap per event;
    /// beyond that, storing the first part of a long burst while the rest is still being decoded
    /// (and answering it sooner, so the client refills its window sooner) is worth more.
    static let burstEvents = 128

    private final class OpenSubscription {
        let id: UInt32
        let broker: MeshBroker.Subscription
        let pattern: TopicPattern
        let group: String?
        let ackMode: AckMode
        var pulling = false
        /// Deliveries stopped (GOODBYE) but the member stays in its group so ACKs still commit.
        var stopped = false
        var lastGeneration = -1
        /// Auto-commit: the next offset per partition written and not yet committed.
        var written: [MeshBroker.TopicPartition: Int64] = [:]
        var committing = false

        init(id: UInt32, broker: MeshBroker.Subscription, pattern: TopicPattern, group: String?, ackMode: AckMode) {
            self.id = id
            self.broker = broker
            self.pattern = pattern
            self.group = group
            self.ackMode = ackMode
        }
    }

    private let broker: Broker
    private let configuration: TCPServer.Configuration
    private let logger: Logger
    private let registry: ConnectionRegistry
    private var machine: ServerConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var bound: NIOLoopBound<TCPConnectionHandler>?
    private var out = ByteBuffer()
    private var heartbeat: RepeatedTask?
    private var subscriptions: [UInt32: OpenSubscription] = [:]
    private var readHeld = false
    private var closing = false
    private var pendingCommits = 0
    /// GOODBYE and close, held back until the commits made before them are durable.
    private var heldActions: [ServerConnectionStateMachine.Action] = []
    private let completions = CompletionMailbox()
    /// PUBLISH requests decoded in this read burst, not yet handed to the broker.
    private var burst: [PublishRequest] = []
    private var burstEvents = 0
    /// EVENT frames written on this connection, for status and tests.
    private(set) var eventsWritten = 0
    /// Who HELLO's token says this is; everything is allowed while authentication is off.
    private var identity = Identity.anonymous
    /// The token HELLO presented, authenticated again after each reload.
    private var credential: String?

    init(broker: Broker, configuration: TCPServer.Configuration, logger: Logger, registry: ConnectionRegistry) {
        self.broker = broker
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
        self.machine = ServerConnectionStateMachine(configuration: configuration.connection)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.bound = bound
        out = context.channel.allocator.buffer(capacity: 4096)
        completions.drain = { bound.value.drainCompletions() }
        completions.eventLoop = context.eventLoop
        registry.add(context.channel, bound)
        if context.channel.isActive { startHeartbeat(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startHeartbeat(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        heartbeat?.cancel()
        heartbeat = nil
        registry.remove(context.channel)
        // Requests read in full are stored even though their acknowledgements can no longer reach
        // the client, as they would have been had the burst ended before the connection did.
        submitBurst()
        run(machine.channelClosed())
        for open in subscriptions.values { open.broker.close() }
        subscriptions.removeAll()
        heldActions.removeAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        run(machine.received(frame))
        if burstEvents >= Self.burstEvents { submitBurst() }
        if out.readableBytes >= Self.flushThreshold { flush() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        submitBurst()
        flush()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wire = error as? WireError {
            if wire.code == .frameTooLarge { configuration.network.limiter.stats.count(.frameBytes) }
            logger.debug("bad frame from \(context.remoteAddress.map { "\($0)" } ?? "?"): \(wire)")
            run(machine.decodingFailed(wire))
            flush()
        } else {
            logger.debug("connection error: \(error)")
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if readHeld {
                readHeld = false
                context.read()
            }
            for id in subscriptions.keys.sorted() { pull(id) }
        }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readHeld = true
        }
    }

    // MARK: Inputs from elsewhere

    /// The server is shutting down.
    func shutdown() {
        run(machine.shutdown())
        flush()
    }

    private func startHeartbeat(_ context: ChannelHandlerContext) {
        guard heartbeat == nil, let bound else { return }
        let interval = TimeAmount.milliseconds(Int64(max(1, configuration.connection.heartbeatIntervalMilliseconds)))
        heartbeat = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            bound.value.tick()
        }
    }

    private func tick() {
        run(machine.heartbeatTick())
        flush()
    }

    fileprivate func drainCompletions() {
        for (id, result) in completions.take() {
            run(machine.publishCompleted(requestID: id, result: result))
        }
        flush()
    }

    // MARK: Actions

    private func run(_ actions: [ServerConnectionStateMachine.Action]) {
        for (index, action) in actions.enumerated() {
            switch action {
            case .send(let frame):
                if case .goodbye = frame, pendingCommits > 0,
                   actions[index...].contains(where: { if case .close = $0 { true } else { false } }) {
                    heldActions = Array(actions[index...])
                    return
                }
                frame.encode(into: &out)
            case .authenticate(let hello):
                authenticate(hello)
            case .publish(let requestID, let events):
                let completions = self.completions
                if let refused = admitPublish(events) {
                    completions.post(requestID, .failure(refused))
                    break
                }
                if let hello = machine.hello, hello.bridge {
                    guard let ingress = configuration.bridgeIngress else {
                        completions.post(requestID, .failure(WireError(.forbidden, "this site does not accept bridges")))
                        break
                    }
                    ingress.publish(events, from: hello.clientName) { result in completions.post(requestID, result) }
                } else {
                    burst.append(PublishRequest(events: events, completion: answering(requestID)))
                    burstEvents += events.count
                }
            case .publishEncoded(let requestID, let encoded):
                if machine.hello?.bridge == true {
                    forward(requestID, encoded)
                } else if let undecodable = publishEncoded(requestID, encoded) {
                    // As the decoder would have answered it had it decoded the events.
                    return run(machine.decodingFailed(undecodable))
                }
            case .subscribe(let request):
                subscribe(request)
            case .grantCredit(let id, _):
                pull(id)
            case .commit(let id, let group, let topic, let partition, let offset):
                commit(id, group: group, topic: topic, partition: partition, offset: offset)
            case .unsubscribe(let id):
                endSubscription(id)
            case .close(let error):
                submitBurst()
                if error?.code == .authenticationFailed, machine.hello?.token == nil { configuration.access.noteMissingCredential() }
                close()
            }
        }
    }

    /// A PUBLISH_BATCH's events in their encoding: read (and checked as strictly as decoding
    /// would), admitted, then filled and stored from their bytes. An event decoding would refuse
    /// is returned as the fatal error it would have been, and nothing of the frame is published.
    private func publishEncoded(_ requestID: UInt32, _ encoded: [[UInt8]]) -> WireError? {
        var published: [EncodedPublish] = []
        published.reserveCapacity(encoded.count)
        for bytes in encoded {
            do { published.append(EncodedPublish(published: try EventEnvelope(bytes))) } catch {
                return WireError(decoding: error, streamID: requestID, inReplyTo: .publishBatch, isFatal: true)
            }
        }
        if let refused = admitPublish(topics: published.lazy.map { $0.envelope.topic }, count: published.count) {
            completions.post(requestID, .failure(refused))
            return nil
        }
        burst.append(PublishRequest(events: [], encoded: published, completion: answering(requestID)))
        burstEvents += published.count
        return nil
    }

    /// Answers a stored request: its receipts in a PUBLISH_ACK, or its error.
    private func answering(_ requestID: UInt32) -> @Sendable (Result<[MeshBroker.PublishReceipt], BrokerError>) -> Void {
        let completions = self.completions
        return { result in
            completions.post(requestID, result
                .map { $0.map { MeshWire.PublishReceipt(partition: UInt32($0.partition), offset: UInt64($0.offset)) } }
                .mapError { WireError(broker: $0) })
        }
    }

    /// Events a bridge forwarded in their encoding: read (and checked as strictly as decoding
    /// would), admitted like any publish, then handed to the bridge ingress as they are.
    private func forward(_ requestID: UInt32, _ encoded: [[UInt8]]) {
        let completions = self.completions
        var envelopes: [EventEnvelope] = []
        envelopes.reserveCapacity(encoded.count)
        for bytes in encoded {
            do { envelopes.append(try EventEnvelope(bytes)) } catch {
                return completions.post(requestID, .failure(WireError(decoding: error)))
            }
        }
        if let refused = admitPublish(topics: envelopes.lazy.map { $0.topic }, count: envelopes.count) {
            return completions.post(requestID, .failure(refused))
        }
        guard let hello = machine.hello, hello.bridge, let ingress = configuration.bridgeIngress else {
            return completions.post(requestID, .failure(WireError(.forbidden, "this site does not accept bridges")))
        }
        ingress.publish(encoded: envelopes, from: hello.clientName) { result in completions.post(requestID, result) }
    }

    /// Hands the burst's publishes to the broker: one append per partition for all of them.
    private func submitBurst() {
        guard !burst.isEmpty else { return }
        let requests = burst
        burst.removeAll(keepingCapacity: true)
        burstEvents = 0
        broker.publish(requests, ingress: configuration.ingress)
    }

    private func flush() {
        guard let context, out.readableBytes > 0, context.channel.isActive else { return }
        let buffer = out
        out = context.channel.allocator.buffer(capacity: 4096)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func close() {
        guard let context, !closing else { return }
        closing = true
        let channel = context.channel
        let buffer = out
        out.clear()
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: Access (docs/security.md)

    private func authenticate(_ hello: Hello) {
        guard let bound, let token = hello.token else {
            run(machine.authenticationFailed("this server requires a token in HELLO"))
            return
        }
        let access = configuration.access
        Task {
            let result = await access.authenticate(token)
            bound.eventLoop.execute {
                let handler = bound.value
                switch result {
                case .success(let identity):
                    handler.identity = identity
                    handler.credential = token
                    handler.run(handler.machine.authenticationSucceeded())
                case .failure(let failure):
                    handler.run(handler.machine.authenticationFailed(failure.message))
                }
                handler.flush()
            }
        }
    }

    /// The publish ACL (for a bridge too: its events are checked against the remote site's
    /// identity) and the identity's publish rate; nil when the events may go on.
    private func admitPublish(_ events: [Event]) -> WireError? {
        admitPublish(topics: events.lazy.map { $0.topic }, count: events.count)
    }

    private func admitPublish(topics: some Sequence<Topic>, count: Int) -> WireError? {
        let access = configuration.access
        if let denied = access.checkPublish(identity, topics) {
            return WireError(.forbidden, denied.description)
        }
        if let limited = access.admitPublish(identity, count: count) {
            return WireError(.overloaded, limited.description, retryAfterMilliseconds: UInt32(clamping: limited.retryAfterMilliseconds))
        }
        return nil
    }

    /// After a reload: the token is authenticated again; a refused one closes the connection,
    /// and subscriptions the new identity may not hold end with `forbidden`.
    func recheckAccess() {
        guard let credential, let bound, !machine.isClosed else { return }
        let access = configuration.access
        Task {
            let result = await access.authenticate(credential, record: false)
            bound.eventLoop.execute { bound.value.accessRechecked(result) }
        }
    }

    private func accessRechecked(_ result: Result<Identity, AuthFailure>) {
        guard !machine.isClosed, !closing else { return }
        switch result {
        case .failure(let failure):
            logger.info("closing a connection of \(identity.name): \(failure.message)")
            run(machine.credentialsRevoked("the connection's credential is no longer accepted: \(failure.message)"))
        case .success(let identity):
            self.identity = identity
            for id in subscriptions.keys.sorted() {
                guard let open = subscriptions[id], let denied = configuration.access.checkSubscribe(identity, open.pattern) else { continue }
                subscriptions[id] = nil
                open.broker.close()
                run(machine.subscriptionEnded(subscriptionID: id, error: WireError(.forbidden, denied.description)))
            }
        }
        flush()
    }

    // MARK: Subscriptions

    private func subscribe(_ request: Subscribe) {
        guard let bound else { return }
        if let denied = configuration.access.checkSubscribe(identity, request.pattern) {
            run(machine.subscribeCompleted(subscriptionID: request.subscriptionID, result: .failure(WireError(.forbidden, denied.description))))
            return
        }
        let broker = self.broker
        let start: MeshBroker.StartPosition = switch request.start {
        case .earliest: .earliest
        case .latest: .latest
        case .offset(let offset): .offset(Int64(clamping: offset))
        case .time(let micros): .time(micros)
        }
        // Off the event loop: positioning by time may read the disk.
        Task {
            let sub = broker.subscribe(pattern: request.pattern, group: request.group, start: start)
            bound.eventLoop.execute { bound.value.subscribeOpened(request, sub) }
        }
    }

    private func subscribeOpened(_ request: Subscribe, _ sub: MeshBroker.Subscription) {
        guard !closing, context?.channel.isActive == true else {
            sub.close()
            return
        }
        let id = request.subscriptionID
        subscriptions[id] = OpenSubscription(id: id, broker: sub, pattern: request.pattern, group: request.group, ackMode: request.ackMode)
        run(machine.subscribeCompleted(subscriptionID: id, result: .success(())))
        guard subscriptions[id]?.broker === sub else { return flush() }
        if request.group != nil, let bound {
            sub.onAssignment { partitions, generation in
                bound.eventLoop.execute { bound.value.assignmentChanged(id, sub, partitions, generation) }
            }
        }
        flush()
        pull(id)
    }

    private func assignmentChanged(_ id: UInt32, _ sub: MeshBroker.Subscription, _ partitions: [MeshBroker.TopicPartition], _ generation: Int) {
        guard let open = subscriptions[id], open.broker === sub, !open.stopped, generation > open.lastGeneration else { return }
        open.lastGeneration = generation
        let owned = partitions.compactMap { tp in
            (try? Topic(tp.topic)).map { MeshWire.TopicPartition(topic: $0, partition: UInt32(tp.partition)) }
        }
        run(machine.assignmentChanged(Assignment(subscriptionID: id, generation: UInt32(truncatingIfNeeded: generation), partitions: owned)))
        flush()
    }

    /// Starts one read from the broker when the subscription has credit, nothing is being read
    /// already and the client is keeping up with what was written.
    private func pull(_ id: UInt32) {
        guard let open = subscriptions[id], !open.pulling, !open.stopped, let context, context.channel.isWritable,
              machine.canDeliver(id), let bound
        else { return }
        open.pulling = true
        let max = Int(min(machine.credit(for: id), UInt32(Self.maxPullEvents)))
        let sub = open.broker, maxBytes = Self.maxPullBytes
        Task {
            let batch = await sub.next(max: max, maxBytes: maxBytes)
            bound.eventLoop.execute { bound.value.delivered(id, sub, batch) }
        }
    }

    private func delivered(_ id: UInt32, _ sub: MeshBroker.Subscription, _ batch: [Delivery]) {
        guard let open = subscriptions[id], open.broker === sub else { return }  // ended meanwhile
        open.pulling = false
        guard !batch.isEmpty, !open.stopped else { return }
        let autoCommit = open.group != nil && open.ackMode == .autoCommit
        for delivery in batch {
            // Credit only ever grows outside this function, and the batch was sized to it.
            guard machine.consumeCredit(id) else { break }
            Frame.encodeEvent(subscriptionID: id, partition: UInt32(delivery.partition), offset: UInt64(delivery.offset),
                              encodedEvent: delivery.payload, into: &out)
            eventsWritten += 1
            if autoCommit { open.written[delivery.topicPartition] = delivery.offset + 1 }
        }
        flush()
        if autoCommit { commitWritten(open) }
        pull(id)
    }

    /// Auto-commit: one commit in flight per subscription; what was written meanwhile goes next.
    private func commitWritten(_ open: OpenSubscription) {
        guard !open.committing, !open.written.isEmpty, let group = open.group, let bound else { return }
        let offsets = open.written.map { GroupOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) }
        open.written.removeAll()
        open.committing = true
        pendingCommits += 1
        let broker = self.broker, id = open.id, sub = open.broker
        Task {
            let failure: BrokerError?
            do throws(BrokerError) {
                try await broker.commit(group: group, offsets)
                failure = nil
            } catch {
                failure = error
            }
            bound.eventLoop.execute {
                let handler = bound.value
                if let open = handler.subscriptions[id], open.broker === sub {
                    open.committing = false
                    handler.commitWritten(open)
                }
                handler.commitFinished(id, failure, inReplyTo: .subscribe)
            }
        }
    }

    private func commit(_ id: UInt32, group: String, topic: Topic, partition: UInt32, offset: UInt64) {
        let tp = MeshBroker.TopicPartition(topic: topic.name, partition: Int(partition))
        // A partition this member no longer owns was rebalanced away: its new owner commits it.
        if let open = subscriptions[id], !open.broker.assignment.contains(tp) { return }
        guard let bound else { return }
        pendingCommits += 1
        let broker = self.broker
        let next = GroupOffset(topic: tp.topic, partition: tp.partition, offset: Int64(clamping: offset) &+ 1)
        Task {
            let failure: BrokerError?
            do throws(BrokerError) {
                try await broker.commit(group: group, [next])
                failure = nil
            } catch {
                failure = error
            }
            bound.eventLoop.execute { bound.value.commitFinished(id, failure, inReplyTo: .ack) }
        }
    }

    private func commitFinished(_ id: UInt32, _ failure: BrokerError?, inReplyTo: FrameType) {
        pendingCommits -= 1
        if let failure, !machine.isClosed, !closing {
            logger.warning("commit on subscription \(id) failed: \(failure.message)")
            var error = WireError(broker: failure)
            error.streamID = id
            error.inReplyTo = inReplyTo
            error.isFatal = false
            Frame.error(error).encode(into: &out)
        }
        if pendingCommits == 0, !heldActions.isEmpty {
            let held = heldActions
            heldActions.removeAll()
            run(held)
        }
        flush()
    }

    private func endSubscription(_ id: UInt32) {
        guard let open = subscriptions[id] else { return }
        if machine.isClosed || machine.isReady {
            subscriptions[id] = nil
            open.broker.close()
        } else {
            // Draining after a GOODBYE: no more events, but the member keeps its partitions so
            // that the client's last ACKs still commit.
            open.stopped = true
        }
    }
}

/// Publish outcomes arrive on the log's threads; they are queued here and handed to the event
/// loop in one hop per burst rather than one per request.
final class CompletionMailbox: @unchecked Sendable {
    typealias Completion = (UInt32, Result<[MeshWire.PublishReceipt], WireError>)
    private let items = Mutex<[Completion]>([])
    // Set once in handlerAdded, before any publish can complete; read-only afterwards.
    var drain: (@Sendable () -> Void)?
    var eventLoop: (any EventLoop)?

    func post(_ requestID: UInt32, _ result: Result<[MeshWire.PublishReceipt], WireError>) {
        let first = items.withLock { items -> Bool in
            items.append((requestID, result))
            return items.count == 1
        }
        if first, let drain, let eventLoop { eventLoop.execute(drain) }
    }

    func take() -> [Completion] {
        items.withLock { items in
            defer { items.removeAll(keepingCapacity: true) }
            return items
        }
    }
}
