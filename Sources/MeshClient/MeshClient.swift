import MeshCore
@_exported import MeshNet
import MeshWire
import NIOCore
import NIOPosix
import Synchronization

/// An async/await client of meshgate's TCP protocol (docs/client.md).
///
/// One `MeshClient` holds one connection that any number of tasks share: publishes are pipelined
/// (and single publishes made at the same moment are merged into PUBLISH_BATCH frames), each
/// subscription is an `AsyncSequence` with credit-based flow control.
///
/// Reconnecting: when the connection drops (not after `close()`), the client reconnects with
/// exponential backoff and jitter and re-subscribes every open subscription — a group resumes from
/// its committed offsets, a subscription without a group from the position its consumer reached.
/// Publishes in flight when the connection drops, and publishes made while it is down, fail with a
/// `WireError` whose `isRetryable` is true; the event may or may not have been stored.
public final class MeshClient: Sendable {
    public struct Configuration: Sendable {
        /// Free text the server logs, e.g. `"billing-service"`.
        public var name: String
        /// A bearer token or JWT for servers with authentication on.
        public var token: String?
        /// Merge single publishes made in the same instant into one PUBLISH_BATCH.
        public var mergePublishes = true
        /// Events in one merged PUBLISH_BATCH at most. Small enough that a window of publishes goes
        /// out as several batches the server stores one after another: it answers the first while
        /// this side still encodes the next, instead of the two taking turns over one big batch
        /// (1 connection, 256 in flight: about 1.5× the rate of batches of 1,024; 16 connections: the same).
        public var maxMergedEvents = 128
        public var maxMergedBytes = 512 << 10
        /// Reconnect after the connection drops. Off: the client ends like a closed one.
        public var reconnect = true
        public var initialBackoff: Duration = .milliseconds(100)
        public var maxBackoff: Duration = .seconds(5)
        /// Give up reconnecting after this many failed attempts in a row (nil: never).
        public var maxReconnectAttempts: Int?
        /// How long connecting may take: the TCP connection, and then the server's WELCOME.
        public var connectTimeout: Duration = .seconds(5)
        /// How long `close()` waits for the server's GOODBYE.
        public var closeTimeout: Duration = .seconds(5)
        /// Idle timeout in heartbeat intervals.
        public var idleTimeoutTicks = 3
        /// Connect as a bridge from another meshgate site (`name` is the site name): the server
        /// applies its loop check and dedupe, and answers events it did not store with
        /// `PublishReceipt.duplicate` / `.loop` positions (partition `0xFFFFFFFF`).
        public var bridge = false
        /// Connect over TLS: the CA to trust, a client certificate for mutual TLS, the name to
        /// verify. nil: plain TCP.
        public var tls: ClientTLS?

        public init(name: String = "meshgate-swift", token: String? = nil) {
            self.name = name
            self.token = token
        }
    }

    public let host: String
    public let port: Int
    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let tls: ClientTLSContext?

    private struct State {
        var connection: ClientConnectionRef?
        var subscriptions: [ObjectIdentifier: MeshSubscription] = [:]
        var closed = false
        var reconnecting = false
        var generation = 0
    }

    private let state = Mutex(State())

    private init(host: String, port: Int, configuration: Configuration, group: any EventLoopGroup) throws(TLSSetupError) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.group = group
        tls = try configuration.tls.map { settings throws(TLSSetupError) in try ClientTLSContext(settings) }
    }

    /// Connects and completes the handshake.
    public static func connect(
        host: String = "127.0.0.1", port: Int = 7070, name: String = "meshgate-swift", token: String? = nil,
        configuration: Configuration? = nil, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> MeshClient {
        var configuration = configuration ?? Configuration(name: name, token: token)
        if configuration.token == nil { configuration.token = token }
        let client = try MeshClient(host: host, port: port, configuration: configuration, group: eventLoopGroup)
        let connection: ClientConnectionRef
        do {
            connection = try await client.open(generation: 0)
        } catch {
            // A connection that closed before WELCOME (a failed TLS handshake, a refusal) may
            // already have started reconnecting: this client is never handed out, so stop it.
            client.state.withLock { $0.closed = true }
            throw error
        }
        client.state.withLock { $0.connection = connection }
        return client
    }

    /// The parameters the server announced, while connected.
    public var welcome: Welcome? { state.withLock { $0.connection?.welcome } }

    public var isConnected: Bool { state.withLock { $0.connection != nil } }

    // MARK: Publishing

    /// Publishes one event and returns where it was stored, once it is durable. An event without
    /// an id gets one here, so that the receipt can name it.
    public func publish(_ event: Event) async throws -> MeshReceipt {
        try await connection().publish(withID(event))
    }

    /// Publishes events as one PUBLISH_BATCH: all are stored or (for an invalid event) none is.
    public func publish(batch events: [Event]) async throws -> [MeshReceipt] {
        guard !events.isEmpty else { return [] }
        return try await connection().publish(batch: events.map(withID))
    }

    /// Publishes without awaiting: `completion` runs on an event-loop thread with the receipt or
    /// the error. For load generators that keep thousands of publishes in flight.
    public func publish(_ event: consuming Event, completion: @escaping @Sendable (Result<MeshReceipt, WireError>) -> Void) {
        guard let connection = state.withLock({ $0.connection }) else {
            return completion(.failure(.disconnected))
        }
        connection.publish(withID(event), completion: completion)
    }

    /// Publishes a batch without awaiting. Batches published one after another from one task are
    /// sent in that order, so the server appends them in that order (a bridge relies on it).
    public func publish(batch events: [Event], completion: @escaping @Sendable (Result<[MeshReceipt], WireError>) -> Void) {
        guard let connection = state.withLock({ $0.connection }) else {
            return completion(.failure(.disconnected))
        }
        connection.publish(batch: events.map(withID), completion: completion)
    }

    /// Publishes several batches, in order, all on the one connection the client has now: a
    /// reconnect while they are handed over cannot send the later ones on a new connection ahead of
    /// earlier ones lost with the old. `completion` gets each batch's index and result; when there
    /// is no connection, every batch fails.
    public func publish(batches: [[Event]], completion: @escaping @Sendable (Int, Result<[MeshReceipt], WireError>) -> Void) {
        guard let connection = state.withLock({ $0.connection }) else {
            for index in batches.indices { completion(index, .failure(.disconnected)) }
            return
        }
        for (index, events) in batches.enumerated() {
            connection.publish(batch: events.map(withID)) { completion(index, $0) }
        }
    }

    /// `publish(batches:completion:)` for events already in their encoding (each with an id), as a
    /// bridge reads them from its log; `completion` gets the bare receipts.
    public func publish(encodedBatches batches: [[[UInt8]]], completion: @escaping @Sendable (Int, Result<[PublishReceipt], WireError>) -> Void) {
        guard let connection = state.withLock({ $0.connection }) else {
            for index in batches.indices { completion(index, .failure(.disconnected)) }
            return
        }
        connection.publish(encoded: batches, completion: completion)
    }

    private func withID(_ event: consuming Event) -> Event {
        if event.id.isEmpty { event.id = EventIDGenerator.shared.next().description }
        return event
    }

    // MARK: Subscribing

    /// Opens a subscription and waits until the server confirms it (SUBSCRIBED).
    ///
    /// - `group`: share the matching partitions with the group's other members; its committed
    ///   offsets win over `from`.
    /// - `ackMode`: `.autoCommit` commits what the server sent; `.explicit` commits what you `ack`.
    /// - `window`: how many events the server may send ahead of your iteration.
    public func subscribe(
        _ pattern: TopicPattern, group: String? = nil, from start: StartPosition = .latest,
        ackMode: AckMode = .autoCommit, window: UInt32 = 256
    ) async throws -> MeshSubscription {
        let subscription = MeshSubscription(client: self, pattern: pattern, group: group, start: start, ackMode: ackMode, window: window)
        let connection = try connection()
        state.withLock { $0.subscriptions[ObjectIdentifier(subscription)] = subscription }
        do {
            try await attach(subscription, to: connection, start: start)
            try await subscription.waitSubscribed()
        } catch {
            forget(subscription)
            subscription.finish(error as? WireError ?? WireError(.internalError, "\(error)"))
            throw error
        }
        return subscription
    }

    private func attach(_ subscription: MeshSubscription, to connection: ClientConnectionRef, start: StartPosition) async throws {
        let sink = SubscriptionSinkAdapter(subscription)
        let id = try await connection.subscribe(sink, pattern: subscription.pattern, group: subscription.group, start: start,
                                                ackMode: subscription.ackMode, window: subscription.window)
        subscription.bind(.init(connection: connection, id: id))
    }

    func forget(_ subscription: MeshSubscription) {
        _ = state.withLock { $0.subscriptions.removeValue(forKey: ObjectIdentifier(subscription)) }
    }

    // MARK: Closing

    /// Says GOODBYE once every publish in flight is answered, closes the connection and ends every
    /// subscription. No reconnect follows.
    public func close() async {
        let (connection, subscriptions) = state.withLock { s -> (ClientConnectionRef?, [MeshSubscription]) in
            s.closed = true
            defer { s.connection = nil; s.subscriptions.removeAll() }
            return (s.connection, Array(s.subscriptions.values))
        }
        await connection?.close(timeout: configuration.closeTimeout)
        for subscription in subscriptions { subscription.finish(nil) }
    }

    // MARK: Connection management

    func connection() throws(WireError) -> ClientConnectionRef {
        try state.withLock { s throws(WireError) -> ClientConnectionRef in
            if s.closed { throw WireError.clientClosed }
            guard let connection = s.connection else {
                throw WireError(.notReady, "the connection to the server was lost; reconnecting")
            }
            return connection
        }
    }

    private func open(generation: Int) async throws -> ClientConnectionRef {
        let machine = ClientConnectionStateMachine.Configuration(
            clientName: configuration.name, token: configuration.token, idleTimeoutTicks: configuration.idleTimeoutTicks,
            bridge: configuration.bridge)
        let options = ClientConnectionHandler.Options(
            mergePublishes: configuration.mergePublishes, maxMergedEvents: configuration.maxMergedEvents,
            maxMergedBytes: configuration.maxMergedBytes,
            handshakeTimeout: .nanoseconds(Int64(configuration.connectTimeout.components.seconds) * 1_000_000_000
                + configuration.connectTimeout.components.attoseconds / 1_000_000_000))
        return try await ClientConnectionRef.connect(
            host: host, port: port, configuration: machine, options: options, group: group,
            connectTimeout: configuration.connectTimeout, tls: tls
        ) { [weak self] reason in
            self?.connectionLost(generation: generation, reason: reason)
        }
    }

    private func connectionLost(generation: Int, reason: WireError?) {
        let (reconnect, subscriptions) = state.withLock { s -> (Bool, [MeshSubscription]) in
            guard s.generation == generation, !s.closed else { return (false, []) }
            s.connection = nil
            for sub in s.subscriptions.values { sub.bind(nil) }
            if configuration.reconnect {
                s.reconnecting = true
                return (true, [])
            }
            s.closed = true
            defer { s.subscriptions.removeAll() }
            return (false, Array(s.subscriptions.values))
        }
        for subscription in subscriptions { subscription.finish(reason ?? .disconnected) }
        if reconnect {
            Task { await self.reconnectLoop() }
        }
    }

    private func reconnectLoop() async {
        var backoff = configuration.initialBackoff
        var failures = 0
        while true {
            // Full jitter: a fleet of clients does not come back in lockstep.
            let jittered = backoff * Double.random(in: 0.5...1.0)
            try? await Task.sleep(for: jittered)
            let generation = state.withLock { s -> Int? in
                guard !s.closed else { return nil }
                s.generation += 1
                return s.generation
            }
            guard let generation else { return }
            do {
                let connection = try await open(generation: generation)
                let subscriptions = state.withLock { s -> [MeshSubscription]? in
                    guard !s.closed, s.generation == generation else { return nil }
                    s.connection = connection
                    s.reconnecting = false
                    return Array(s.subscriptions.values)
                }
                guard let subscriptions else {
                    await connection.close(timeout: .seconds(1))
                    return
                }
                for subscription in subscriptions where !subscription.isFinished {
                    do {
                        try await attach(subscription, to: connection, start: subscription.resumeStart())
                    } catch {
                        subscription.finish(error as? WireError ?? .disconnected)
                        forget(subscription)
                    }
                }
                return
            } catch {
                failures += 1
                if let limit = configuration.maxReconnectAttempts, failures >= limit {
                    let subscriptions = state.withLock { s -> [MeshSubscription] in
                        s.closed = true
                        defer { s.subscriptions.removeAll() }
                        return Array(s.subscriptions.values)
                    }
                    for subscription in subscriptions { subscription.finish(.disconnected) }
                    return
                }
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }
}
