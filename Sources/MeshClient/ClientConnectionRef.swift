import MeshCore
import MeshNet
import MeshWire
import NIOCore
import NIOPosix
import Synchronization

/// A sendable handle on one connection: every call hops to the channel's event loop, where the
/// `ClientConnectionHandler` keeps all the state.
struct ClientConnectionRef: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ClientConnectionHandler>
    let welcome: Welcome

    static func connect(
        host: String, port: Int, configuration: ClientConnectionStateMachine.Configuration,
        options: ClientConnectionHandler.Options, group: any EventLoopGroup, connectTimeout: Duration, tls: ClientTLSContext? = nil,
        onClose: @escaping @Sendable (WireError?) -> Void
    ) async throws -> ClientConnectionRef {
        // The handler is kept from the initializer rather than looked up in the pipeline later: a
        // TLS handshake that fails tears the pipeline down before the HELLO, and the handler is
        // what knows why.
        let made = Mutex<NIOLoopBound<ClientConnectionHandler>?>(nil)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.nanoseconds(Int64(connectTimeout.components.seconds) * 1_000_000_000
                + connectTimeout.components.attoseconds / 1_000_000_000))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ClientConnectionHandler(configuration: configuration, options: options)
                    handler.onClose = onClose
                    made.withLock { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                    try tls?.addHandler(to: channel, host: host)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: host, port: port)
            .get()
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: Welcome.self)
        do {
            guard let handler = made.withLock({ $0 }) else { throw WireError.disconnected }
            // A handler whose connection is already gone (a failed TLS handshake, a peer that
            // closed at once) fails the promise with the reason it knows.
            try await loop.submit { handler.value.start(promise) }.get()
            let welcome = try await promise.futureResult.get()
            return ClientConnectionRef(channel: channel, handler: handler, welcome: welcome)
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    func publish(_ event: Event) async throws -> MeshReceipt {
        let handler = self.handler
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<MeshReceipt, any Error>) in
            handler.eventLoop.execute {
                handler.value.publish(event) { cont.resume(with: $0.mapError { $0 }) }
            }
        }
    }

    func publish(batch events: [Event]) async throws -> [MeshReceipt] {
        let handler = self.handler
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<[MeshReceipt], any Error>) in
            handler.eventLoop.execute {
                handler.value.publish(batch: events) { cont.resume(with: $0.mapError { $0 }) }
            }
        }
    }

    /// Callback form of a batch: requests made from one thread are sent in call order, single
    /// publishes and batches alike (on the connection's own event loop it publishes at once, as a
    /// single publish does).
    func publish(batch events: [Event], completion: @escaping @Sendable (Result<[MeshReceipt], WireError>) -> Void) {
        let handler = self.handler
        if handler.eventLoop.inEventLoop {
            handler.value.publish(batch: events, completion)
        } else {
            handler.eventLoop.execute { handler.value.publish(batch: events, completion) }
        }
    }

    /// Encoded batches, in order, in one turn of the event loop.
    func publish(encoded batches: [[[UInt8]]], completion: @escaping @Sendable (Int, Result<[PublishReceipt], WireError>) -> Void) {
        let handler = self.handler
        handler.eventLoop.execute {
            for (index, events) in batches.enumerated() {
                handler.value.publish(encoded: events) { completion(index, $0) }
            }
        }
    }

    /// Callback form, for load generators that keep many publishes in flight without tasks. Called
    /// on the connection's own event loop (from a completion, say), it publishes at once.
    func publish(_ event: consuming Event, completion: @escaping PublishRequest.Single) {
        let handler = self.handler
        if handler.eventLoop.inEventLoop {
            handler.value.publish(event, completion)
        } else {
            let moved = event
            handler.eventLoop.execute { handler.value.publish(moved, completion) }
        }
    }

    func subscribe(_ sink: any SubscriptionSink, pattern: TopicPattern, group: String?, start: StartPosition,
                   ackMode: AckMode, window: UInt32) async throws -> UInt32 {
        let handler = self.handler
        return try await handler.eventLoop.submit { () throws -> UInt32 in
            try handler.value.subscribe(sink, pattern: pattern, group: group, start: start, ackMode: ackMode, window: window)
        }.get()
    }

    func consumed(subscriptionID: UInt32, count: UInt32) {
        let handler = self.handler
        handler.eventLoop.execute { handler.value.consumed(subscriptionID: subscriptionID, count: count) }
    }

    func acknowledge(subscriptionID: UInt32, topic: Topic, partition: UInt32, offset: UInt64) async throws {
        let handler = self.handler
        try await handler.eventLoop.submit { () throws in
            try handler.value.acknowledge(subscriptionID: subscriptionID, topic: topic, partition: partition, offset: offset)
        }.get()
    }

    func unsubscribe(subscriptionID: UInt32) {
        let handler = self.handler
        handler.eventLoop.execute { handler.value.unsubscribe(subscriptionID: subscriptionID) }
    }

    /// GOODBYE, then waits for the channel to close (the server answers GOODBYE once everything in
    /// flight is answered), at most `timeout`.
    func close(timeout: Duration) async {
        let handler = self.handler, channel = self.channel
        handler.eventLoop.execute { handler.value.close() }
        let done = channel.eventLoop.makePromise(of: Void.self)
        let (seconds, attoseconds) = timeout.components
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) {
            done.succeed(())
        }
        channel.closeFuture.whenComplete { _ in
            timer.cancel()
            done.succeed(())
        }
        try? await done.futureResult.get()
        try? await channel.close()
    }
}
