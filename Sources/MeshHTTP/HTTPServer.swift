import Logging
import MeshAuth
import MeshBroker
import MeshNet
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Settings of the HTTP listener (SPEC §3, §8).
public struct HTTPServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port; `HTTPServer.start()` returns the one bound.
    public var port = 8080
    /// Largest structured-mode or batch body. A plain or binary-mode body is the event's data and
    /// is bounded by the broker's `maxEventBytes` instead.
    public var maxStructuredBodyBytes = 8 << 20
    /// Largest request head (all header names and values).
    public var maxHeaderBytes = 16 << 10
    /// How often an idle Server-Sent Events stream gets a comment line.
    public var heartbeatInterval: TimeAmount = .seconds(15)
    /// Longest `wait_ms` a fetch may ask for.
    public var maxFetchWaitMilliseconds = 30_000
    /// Most events one fetch returns.
    public var maxFetchEvents = 1000
    /// How long shutdown waits for in-flight publishes to be acknowledged.
    public var drainTimeout: TimeAmount = .seconds(10)
    /// The OpenAPI document served at `/v1/openapi.yaml`.
    public var openAPIDocument: String = OpenAPIDocument.yaml
    /// Routes and connectors for the admin API; without one those endpoints report routing off.
    public var admin: (any AdminSource)?
    /// TLS, connection limits and timeouts (HTTPConnectionGuards.swift).
    public var connection = HTTPConnectionSettings()
    /// Who may do what (docs/security.md); disabled lets every request through.
    public var access: AccessControl = .disabled

    public init() {}
}

/// The HTTP listener: a NIO server bootstrap with the NIOHTTP1 codec, pipelining assistance and one
/// handler per connection that routes by hand. No web framework: on this machine a framework's
/// per-request cost halves publish throughput (docs/http-api.md, "Why bare NIO").
public final class HTTPServer: Sendable {
    let core: ServerCore
    private let group: any EventLoopGroup
    private let serverChannel = Mutex<(any Channel)?>(nil)

    public init(broker: Broker, configuration: HTTPServerConfiguration = HTTPServerConfiguration(), status: NodeStatus,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "meshgate.http")) {
        core = ServerCore(broker: broker, configuration: configuration, status: status, logger: logger)
        self.group = group
    }

    public var configuration: HTTPServerConfiguration { core.configuration }

    /// Binds and starts accepting. Returns the bound address (the real port when asked for 0).
    @discardableResult
    public func start() async throws -> ListenerInfo {
        let core = self.core
        try configuration.connection.tls?.prepare()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                core.track(channel)
                return channel.eventLoop.makeCompletedFuture { try core.configurePipeline(channel) }
            }
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        serverChannel.withLock { $0 = channel }
        let port = channel.localAddress?.port ?? configuration.port
        return ListenerInfo(name: "http", host: configuration.host, port: port)
    }

    /// The bound port, once started.
    public var port: Int? { serverChannel.withLock { $0?.localAddress?.port } }

    /// Stops accepting, waits (up to the drain timeout) for in-flight publishes to be answered, then
    /// closes every connection, Server-Sent Events streams included.
    public func shutdown() async {
        core.shuttingDown.store(true, ordering: .releasing)
        let channel = serverChannel.withLock { c -> (any Channel)? in defer { c = nil }; return c }
        try? await channel?.close()
        let deadline = ContinuousClock.now + .nanoseconds(configuration.drainTimeout.nanoseconds)
        while core.inflight.load(ordering: .acquiring) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let pending = core.inflight.load(ordering: .acquiring)
        if pending > 0 { core.logger.warning("closing with \(pending) publishes still unanswered") }
        for c in core.connections.withLock({ Array($0.values) }) {
            try? await c.close()
        }
    }
}

/// State shared by the server and its connection handlers.
final class ServerCore: Sendable {
    let broker: Broker
    let configuration: HTTPServerConfiguration
    let status: NodeStatus
    let logger: Logger
    let openAPIBytes: [UInt8]
    /// Publishes handed to the broker and not yet answered: shutdown waits for them.
    let inflight = Atomic<Int>(0)
    let shuttingDown = Atomic<Bool>(false)
    let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    /// Open Server-Sent Events streams, re-checked when the access configuration is reloaded.
    let streams = LiveStreams()
    private let inboxes = Mutex<[ObjectIdentifier: LoopInbox]>([:])

    init(broker: Broker, configuration: HTTPServerConfiguration, status: NodeStatus, logger: Logger) {
        self.broker = broker
        self.configuration = configuration
        self.status = status
        self.logger = logger
        openAPIBytes = Array(configuration.openAPIDocument.utf8)
        let streams = self.streams, access = configuration.access
        if access.enabled { access.onReload { streams.recheck(access) } }
    }

    /// The inbox of an event loop, made on first use (there is one per loop of the group).
    func inbox(for loop: any EventLoop) -> LoopInbox {
        inboxes.withLock { boxes in
            if let box = boxes[ObjectIdentifier(loop)] { return box }
            let box = LoopInbox(loop: loop, broker: broker)
            boxes[ObjectIdentifier(loop)] = box
            return box
        }
    }

    func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        connections.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = connections.withLock { $0.removeValue(forKey: id) }
        }
    }
}
