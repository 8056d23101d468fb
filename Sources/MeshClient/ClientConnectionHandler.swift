import MeshCore
import MeshNet
import MeshWire
import NIOCore
import NIOPosix

/// What a connection tells a subscription. Called on the connection's event loop.
protocol SubscriptionSink: AnyObject, Sendable {
    func subscribed()
    func deliver(_ delivery: EventDelivery)
    func assignment(_ assignment: Assignment)
    /// The server ended the subscription: UNSUBSCRIBED (nil) or an ERROR about it.
    func ended(_ error: WireError?)
}

/// One publish request waiting for its answer: either one caller's event or batch, or the single
/// events of several callers merged into one PUBLISH_BATCH.
struct PublishRequest {
    typealias Single = @Sendable (Result<MeshReceipt, WireError>) -> Void
    typealias Batch = @Sendable (Result<[MeshReceipt], WireError>) -> Void

    var events: [Event]
    /// One caller per event (a single publish, or singles merged into one batch).
    var singles: [Single]
    /// One caller for all the events (a caller's own batch); `singles` is empty then.
    var batch: Batch?

    /// Several callers' events in one frame: a bad event among them is retried alone.
    var merged: Bool { batch == nil && events.count > 1 }
    /// The events' encoded size when merging summed it already, so sending need not sum it again.
    var encodedSize: Int?

    /// Instead of `events`: events already encoded, whose caller takes the bare receipts.
    var encoded: [[UInt8]] = []
    var completeEncoded: (@Sendable (Result<[PublishReceipt], WireError>) -> Void)?

    init(encoded: [[UInt8]], _ complete: @escaping @Sendable (Result<[PublishReceipt], WireError>) -> Void) {
        events = []
        singles = []
        self.encoded = encoded
        completeEncoded = complete
    }

    init(events: [Event], singles: [Single]) {
        self.events = events
        self.singles = singles
    }

    init(batch events: [Event], _ complete: @escaping Batch) {
        self.events = events
        singles = []
        batch = complete
    }

    func finish(_ result: Result<[PublishReceipt], WireError>) {
        if let completeEncoded { return completeEncoded(result) }
        switch result {
        case .success(let receipts):
            // Read each event's id and topic in place: copying whole events here cost more than
            // the rest of the answer.
            func receipt(_ i: Int) -> MeshReceipt {
                MeshReceipt(id: events[i].id, topic: events[i].topic, partition: receipts[i].partition, offset: receipts[i].offset)
            }
            let answered = min(events.count, receipts.count)
            if let batch {
                batch(.success((0..<answered).map(receipt)))
            } else {
                for i in 0..<answered { singles[i](.success(receipt(i))) }
                for i in answered..<singles.count { singles[i](.failure(WireError(.internalError, "the server answered \(answered) of \(events.count) events"))) }
            }
        case .failure(let error):
            if let batch { batch(.failure(error)) }
            for done in singles { done(.failure(error)) }
        }
    }
}

/// The client's side of one connection, living on its channel's event loop: it feeds a
/// `ClientConnectionStateMachine`, carries out its actions, queues publishes beyond the server's
/// in-flight limit, and merges single publishes made in the same event-loop turn into batches.
final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    struct Options: Sendable {
        var mergePublishes: Bool
        var maxMergedEvents: Int
        var maxMergedBytes: Int
        /// How long the server has to answer HELLO with WELCOME before the connection is given up.
        var handshakeTimeout: TimeAmount = .seconds(10)
    }

    private var machine: ClientConnectionStateMachine
    private let options: Options
    private var context: ChannelHandlerContext?
    private var welcomePromise: EventLoopPromise<Welcome>?
    private var heartbeat: RepeatedTask?
    private var handshakeTimer: Scheduled<Void>?
    private var inFlight: [UInt32: PublishRequest] = [:]
    /// Requests waiting for an in-flight slot, oldest first.
    private var queued: [PublishRequest] = []
    private var queuedHead = 0
    /// Single publishes of this turn of the loop, to be merged: kept as the request they become, which
    /// is queued whole when it reaches the merge limits or the turn ends.
    private var singles = PublishRequest(events: [], singles: [])
    private var singlesBytes = 0
    private var turnScheduled = false
    private var sinks: [UInt32: any SubscriptionSink] = [:]
    private var needsFlush = false
    /// Called once when the connection is gone, with the reason (nil for a clean close).
    var onClose: (@Sendable (WireError?) -> Void)?
    private var closeReason: WireError?
    private var closed = false

    init(configuration: ClientConnectionStateMachine.Configuration, options: Options) {
        machine = ClientConnectionStateMachine(configuration: configuration)
        self.options = options
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelInactive(context: ChannelHandlerContext) {
        run(machine.channelClosed())
        finishClose()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        run(machine.received(unwrapInboundIn(data)))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wire = error as? WireError {
            run(machine.decodingFailed(wire))
        } else {
            closeReason = closeReason ?? WireError(.notReady, "connection error: \(describeTLSFailure(error) ?? "\(error)")")
            context.close(promise: nil)
        }
    }

    // MARK: Requests (on the event loop)

    func start(_ promise: EventLoopPromise<Welcome>) {
        // The connection may already be gone (reset or closed by the peer between connect and
        // here): then nothing would ever answer the promise.
        if closed { return promise.fail(closeReason ?? WireError.disconnected) }
        welcomePromise = promise
        if let context {
            // A link that accepts the connection and then carries nothing (a stalled proxy, a
            // hung peer) must not hold the handshake forever: no heartbeat runs before WELCOME.
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let limit = options.handshakeTimeout
            handshakeTimer = context.eventLoop.scheduleTask(in: limit) {
                let handler = bound.value
                guard handler.welcomePromise != nil else { return }
                handler.closeReason = handler.closeReason ?? WireError(.notReady, "no WELCOME from the server within \(limit.nanoseconds / 1_000_000) ms")
                handler.context?.close(promise: nil)
            }
        }
        do {
            write(try machine.start())
            flushIfNeeded()
        } catch {
            promise.fail(error)
            welcomePromise = nil
        }
    }

    /// Takes the event (`consuming`): it moves into the turn's batch instead of being copied.
    func publish(_ event: consuming Event, _ complete: @escaping PublishRequest.Single) {
        guard machine.isReady else { return complete(.failure(closeReason ?? .disconnected)) }
        if options.mergePublishes {
            let size = EventCodec.encodedSize(event) + 4
            if !singles.events.isEmpty, singlesBytes + size > options.maxMergedBytes { queueSingles() }
            singlesBytes += size
            singles.events.append(event)
            singles.singles.append(complete)
            if singles.events.count >= options.maxMergedEvents { queueSingles() }
            scheduleTurnEnd()
        } else {
            enqueue(PublishRequest(events: [event], singles: [complete]))
        }
    }

    func publish(batch events: [Event], _ complete: @escaping PublishRequest.Batch) {
        guard machine.isReady else { return complete(.failure(closeReason ?? .disconnected)) }
        enqueue(PublishRequest(batch: events, complete))
    }

    func publish(encoded events: [[UInt8]], _ complete: @escaping @Sendable (Result<[PublishReceipt], WireError>) -> Void) {
        guard machine.isReady else { return complete(.failure(closeReason ?? .disconnected)) }
        enqueue(PublishRequest(encoded: events, complete))
    }

    func subscribe(_ sink: any SubscriptionSink, pattern: TopicPattern, group: String?, start: StartPosition,
                   ackMode: AckMode, window: UInt32) throws(WireError) -> UInt32 {
        let (id, frame) = try machine.subscribe(pattern, group: group, from: start, ackMode: ackMode, window: window)
        sinks[id] = sink
        write(frame)
        flushIfNeeded()
        return id
    }

    func consumed(subscriptionID id: UInt32, count: UInt32) {
        if let frame = machine.consumed(subscriptionID: id, count: count) {
            write(frame)
            flushIfNeeded()
        }
    }

    func acknowledge(subscriptionID id: UInt32, topic: Topic, partition: UInt32, offset: UInt64) throws(WireError) {
        write(try machine.acknowledge(subscriptionID: id, topic: topic, partition: partition, offset: offset))
        flushIfNeeded()
    }

    func unsubscribe(subscriptionID id: UInt32) {
        sinks[id] = nil
        if let frame = try? machine.unsubscribe(subscriptionID: id) {
            write(frame)
            flushIfNeeded()
        }
    }

    /// GOODBYE; the channel closes once the server answers.
    func close() {
        run(machine.close())
        flushIfNeeded()
    }

    // MARK: Publishing

    private func scheduleTurnEnd() {
        guard !turnScheduled, let context else { return }
        turnScheduled = true
        // Runs after the tasks already queued on the loop, so publishes made meanwhile merge.
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute { bound.value.endTurn() }
    }

    private func endTurn() {
        turnScheduled = false
        queueSingles()
        pump()
    }

    /// Queues the turn's single publishes so far as one request (a batch within the merge limits),
    /// moving their arrays rather than copying the events.
    private func queueSingles() {
        guard !singles.events.isEmpty else { return }
        var request = PublishRequest(events: [], singles: [])
        swap(&request, &singles)
        request.encodedSize = singlesBytes - 4 * request.events.count
        singlesBytes = 0
        queued.append(request)
    }

    /// Queues a request behind the turn's single publishes made before it, keeping the callers' order.
    private func enqueue(_ request: PublishRequest) {
        queueSingles()
        queued.append(request)
        pump()
    }

    /// Sends queued requests while the server's in-flight limit allows.
    private func pump() {
        let limit = Int(machine.welcome?.maxInFlightPublishes ?? 0)
        while queuedHead < queued.count, machine.outstandingPublishCount < limit {
            let request = queued[queuedHead]
            queuedHead += 1
            do throws(WireError) {
                let (id, frame) = request.completeEncoded != nil ? try machine.publish(encoded: request.encoded)
                    : request.events.count == 1 && !request.merged
                    ? try machine.publish(request.events[0]) : try machine.publish(batch: request.events, encodedSize: request.encodedSize)
                inFlight[id] = request
                write(frame)
            } catch {
                request.finish(.failure(error))
            }
        }
        if queuedHead == queued.count {
            queued.removeAll(keepingCapacity: true)
            queuedHead = 0
        } else if queuedHead > 1024, queuedHead * 2 > queued.count {
            queued.removeFirst(queuedHead)
            queuedHead = 0
        }
        flushIfNeeded()
    }

    private func publishFinished(_ id: UInt32, _ result: Result<[PublishReceipt], WireError>) {
        guard let request = inFlight.removeValue(forKey: id) else { return }
        if case .failure(let error) = result, request.merged,
           [.forbidden, .invalidTopic, .invalidEvent, .eventTooLarge].contains(error.code) {
            // One caller's bad event failed the merged batch (nothing was stored): send each alone
            // so that only that caller hears about it.
            for (event, done) in zip(request.events, request.singles).reversed() {
                queued.insert(PublishRequest(events: [event], singles: [done]), at: queuedHead)
            }
        } else {
            request.finish(result)
        }
    }

    // MARK: Actions

    private func run(_ actions: [ClientConnectionStateMachine.Action]) {
        let connectionEnding = actions.contains { if case .close = $0 { true } else { false } }
        var publishesDone = false
        for action in actions {
            switch action {
            case .send(let frame):
                write(frame)
            case .connected(let welcome):
                handshakeTimer?.cancel()
                handshakeTimer = nil
                startHeartbeat(welcome)
                welcomePromise?.succeed(welcome)
                welcomePromise = nil
            case .publishAcknowledged(let id, let receipts):
                publishFinished(id, .success(receipts))
                publishesDone = true
            case .publishFailed(let id, let error):
                publishFinished(id, .failure(connectionEnding && !error.isFatal ? (closeReason ?? error) : error))
                publishesDone = true
            case .subscribed(let id):
                sinks[id]?.subscribed()
            case .subscriptionEnded(let id, let error):
                // When the whole connection ends, the client decides (reconnect or not).
                if let sink = sinks.removeValue(forKey: id), !connectionEnding { sink.ended(error) }
            case .deliver(let delivery):
                sinks[delivery.subscriptionID]?.deliver(delivery)
            case .assignment(let assignment):
                sinks[assignment.subscriptionID]?.assignment(assignment)
            case .error:
                break  // a refused CREDIT / ACK / UNSUBSCRIBE; nothing waits for it
            case .close(let error):
                closeReason = closeReason ?? error
                flushIfNeeded()
                context?.close(promise: nil)
            }
        }
        if publishesDone { pump() }
        flushIfNeeded()
    }

    private func finishClose() {
        guard !closed else { return }
        closed = true
        heartbeat?.cancel()
        heartbeat = nil
        handshakeTimer?.cancel()
        handshakeTimer = nil
        let reason = closeReason ?? WireError.disconnected
        welcomePromise?.fail(reason)
        welcomePromise = nil
        // Whatever never reached the server fails like what was in flight.
        let failure = closeReason?.code == .notReady || closeReason == nil ? WireError.disconnected : reason
        for request in queued[queuedHead...] { request.finish(.failure(failure)) }
        queued.removeAll()
        queuedHead = 0
        singles.finish(.failure(failure))
        singles = PublishRequest(events: [], singles: [])
        singlesBytes = 0
        for request in inFlight.values { request.finish(.failure(failure)) }
        inFlight.removeAll()
        sinks.removeAll()
        onClose?(closeReason)
    }

    private func startHeartbeat(_ welcome: Welcome) {
        guard let context, heartbeat == nil, welcome.heartbeatIntervalMilliseconds > 0 else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let interval = TimeAmount.milliseconds(Int64(welcome.heartbeatIntervalMilliseconds))
        heartbeat = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let handler = bound.value
            handler.run(handler.machine.heartbeatTick())
        }
    }

    private func write(_ frame: Frame) {
        guard let context else { return }
        context.write(wrapOutboundOut(frame), promise: nil)
        needsFlush = true
    }

    private func flushIfNeeded() {
        guard needsFlush, let context else { return }
        needsFlush = false
        context.flush()
    }
}
