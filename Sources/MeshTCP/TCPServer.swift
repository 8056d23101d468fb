import Logging
import MeshAuth
import MeshBroker
import MeshNet
import MeshWire
import NIOCore
import NIOPosix
import Synchronization

/// The TCP listener: accepts connections speaking the protocol of docs/protocol.md and serves each
/// with a `TCPConnectionHandler` over the shared `Broker`.
///
/// Lifecycle: `start(host:port:)` binds and returns the bound port (port 0 picks a free one);
/// `shutdown()` stops accepting, tells every connection GOODBYE, lets in-flight publishes be
/// answered and clients commit, and closes what is still open after the grace period.
public final class TCPServer: Sendable {
    public struct Configuration: Sendable {
        /// The protocol limits (frame size, heartbeats, in-flight publishes, ...). An empty node
        /// name is replaced by the broker's.
        public var connection: ServerConnectionStateMachine.Configuration
        /// Who may connect and what each identity may publish and subscribe (docs/security.md).
        /// When enabled, HELLO must carry a token (`connection.requiresAuthentication` is set).
        public var access: AccessControl
        /// How long `shutdown()` waits for clients to finish before closing their connections.
        public var shutdownGracePeriod: Duration
        /// A connection whose unsent output passes this many bytes stops pulling events and stops
        /// reading requests until the client catches up.
        public var writeBufferHighWaterMark: Int
        /// The ingress name in the default source of published events (`meshgate://<node>/tcp`).
        public var ingress: String
        /// Where publishes of bridge connections (HELLO bridge flag) go; nil refuses them.
        public var bridgeIngress: (any BridgeIngress)?
        /// TLS and connection limits (TCPConnectionGuards.swift).
        public var network = TCPNetworkSettings()

        public init(
            connection: ServerConnectionStateMachine.Configuration = .init(nodeName: ""),
            access: AccessControl = .disabled,
            shutdownGracePeriod: Duration = .seconds(5),
            writeBufferHighWaterMark: Int = 1 << 20,
            ingress: String = "tcp"
        ) {
            self.connection = connection
            self.access = access
            self.shutdownGracePeriod = shutdownGracePeriod
            self.writeBufferHighWaterMark = writeBufferHighWaterMark
            self.ingress = ingress
        }
    }

    public let broker: Broker
    public let configuration: Configuration
    let logger: Logger
    let group: any EventLoopGroup
    let connections = ConnectionRegistry()
    private let state = Mutex<(channel: (any Channel)?, port: Int?)>((nil, nil))

    public init(broker: Broker, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "meshgate.tcp"),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        var configuration = configuration
        if configuration.connection.nodeName.isEmpty { configuration.connection.nodeName = broker.options.node }
        if configuration.access.enabled { configuration.connection.requiresAuthentication = true }
        self.broker = broker
        self.configuration = configuration
        self.logger = logger
        self.group = eventLoopGroup
        if configuration.access.enabled {
            let connections = self.connections
            configuration.access.onReload { for c in connections.all() { c.recheckAccess() } }
        }
    }

    /// The bound port while listening.
    public var port: Int? { state.withLock { $0.port } }

    /// Binds and starts accepting. Returns the bound port.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 7070) async throws -> Int {
        let broker = self.broker, configuration = self.configuration, logger = self.logger, connections = self.connections
        let highWater = max(configuration.writeBufferHighWaterMark, 2)
        try configuration.network.tls?.prepare()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: highWater / 2, high: highWater))
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let refused = try configuration.network.configureFront(of: channel, maxFrameLength: configuration.connection.maxFrameLength)
                    guard !refused else { return }
                    let handler = TCPConnectionHandler(broker: broker, configuration: configuration, logger: logger, registry: connections)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .bind(host: host, port: port)
            .get()
        let bound = channel.localAddress?.port ?? port
        state.withLock { $0 = (channel, bound) }
        logger.info("TCP listener up", metadata: ["address": "\(host):\(bound)"])
        return bound
    }

    /// Stops accepting, says GOODBYE on every connection, waits up to the grace period for them to
    /// finish, then closes the rest.
    public func shutdown() async {
        let channel = state.withLock { s -> (any Channel)? in
            defer { s.channel = nil }
            return s.channel
        }
        try? await channel?.close()
        let open = connections.all()
        for connection in open { connection.shutdown() }
        let closed = open.map { $0.channel.closeFuture }
        if !closed.isEmpty {
            await EventLoopFuture.andAllComplete(closed, on: group.any()).wait(atMost: configuration.shutdownGracePeriod)
        }
        for connection in connections.all() { connection.channel.close(promise: nil) }
        for future in closed { try? await future.get() }
        state.withLock { $0.port = nil }
    }

    /// Open connections right now.
    public var connectionCount: Int { connections.count }
}

/// The open connections, for shutdown and status.
final class ConnectionRegistry: Sendable {
    struct Entry: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<TCPConnectionHandler>

        func shutdown() {
            let handler = self.handler
            channel.eventLoop.execute { handler.value.shutdown() }
        }

        func recheckAccess() {
            let handler = self.handler
            channel.eventLoop.execute { handler.value.recheckAccess() }
        }
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    func add(_ channel: any Channel, _ handler: NIOLoopBound<TCPConnectionHandler>) {
        entries.withLock { $0[ObjectIdentifier(channel)] = Entry(channel: channel, handler: handler) }
    }

    func remove(_ channel: any Channel) {
        _ = entries.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func all() -> [Entry] { entries.withLock { Array($0.values) } }
    var count: Int { entries.withLock { $0.count } }
}

extension EventLoopFuture {
    /// Waits until the future completes or `timeout` passes, whichever comes first.
    func wait(atMost timeout: Duration) async {
        let done = eventLoop.makePromise(of: Void.self)
        let (seconds, attoseconds) = timeout.components
        let timer = eventLoop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) {
            done.succeed(())
        }
        whenComplete { _ in
            timer.cancel()
            done.succeed(())
        }
        try? await done.futureResult.get()
    }
}
