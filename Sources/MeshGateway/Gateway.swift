import Logging
import MeshAuth
import MeshBridge
import MeshBroker
import MeshHTTP
import MeshLog
import MeshNet
import MeshTCP
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The composition root: the one place that knows every part. It opens the log, builds the
/// broker over it, routing beside it and the listeners over the broker, and runs them as services of one
/// `ServiceGroup`: started in that order, stopped in the reverse one on SIGTERM/SIGINT (or
/// `shutdown()`), so listeners stop accepting and drain before the log is flushed and closed. The
/// route files load before the group starts, so the listeners never accept an event before its
/// route exists.
public final class Gateway: Sendable {
    public static let version = "0.1.0"

    public let config: GatewayConfig
    public let status: NodeStatus
    public let log: DurableLog
    public let broker: Broker
    public let listeners: [any Listener]
    /// Route files, the delivery engine, and the connector runtimes they use.
    public let routing: RoutingControl
    /// The receiving side of site bridges: loop check and the durable dedupe window.
    public let bridgeIngress: BridgeIngressService
    /// The Prometheus registry behind `GET /metrics` and the swift-metrics backend of the parts.
    public let metrics: GatewayMetrics
    /// The listeners' TLS (one context shared by both, reloaded on SIGHUP); nil when TLS is off.
    public let tls: ServerTLS?
    /// Connection limits and their counters, one per built-in listener.
    public let connectionLimiters: [ConnectionLimiter]
    /// Identities and ACLs of every listener (docs/security.md); reloaded on SIGHUP.
    public let access: AccessControl
    private let logger: Logger
    private let group = Mutex<ServiceGroup?>(nil)
    private let shutdownRequested = Atomic<Bool>(false)

    /// Opens the log (a failure here is the caller's runtime error) and builds the listeners.
    /// `extraListeners` are built over the same broker and status and run after the built-in ones.
    /// `metrics` is the executable's (the one it bootstrapped `MetricsSystem` with); by default
    /// the gateway makes its own, so gateways embedded side by side keep separate numbers.
    public init(config: GatewayConfig, logger: Logger = Logger(label: "meshgate"),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                metrics: GatewayMetrics? = nil,
                extraListeners: [@Sendable (Broker, NodeStatus) -> any Listener] = []) throws(LogError) {
        self.config = config
        self.logger = logger
        let metrics = metrics ?? GatewayMetrics(enabled: config.metrics)
        self.metrics = metrics
        let access: AccessControl
        do { access = try AccessControl(config.auth) } catch {
            // GatewayConfig.load has checked the key already; should it fail here, JWTs are refused, tokens still work.
            logger.error("auth.jwt: \(error.message); JWTs are refused")
            var auth = config.auth
            auth.jwt = nil
            access = (try? AccessControl(auth)) ?? .disabled
        }
        self.access = access
        let status = NodeStatus(node: config.node, version: Self.version)
        self.status = status
        var logOptions = config.logOptions
        logOptions.metricsFactory = metrics.factory
        let log = try DurableLog(directory: config.dataDirectory, options: logOptions, logger: Logger(label: "meshgate.log"))
        self.log = log
        var options = BrokerOptions()
        options.node = config.node
        options.maxEventBytes = config.maxEventBytes
        options.metricsFactory = metrics.factory
        let broker = Broker(log: log, options: options, logger: Logger(label: "meshgate.broker"))
        self.broker = broker
        let routing = RoutingControl(config: config, log: log, broker: broker, status: status, logger: logger)
        let ingress = routing.runtimes.bridgeIngress
        bridgeIngress = ingress
        self.routing = routing
        let tls = config.serverTLSFiles.map { ServerTLS(files: $0) }
        self.tls = tls
        let limits = ConnectionLimits(maxConnections: config.maxConnections, maxConnectionsPerPeer: config.maxConnectionsPerPeer)
        let limiters = ["http", "tcp"].map { ConnectionLimiter(listener: $0, limits: limits) }
        connectionLimiters = limiters
        var render: (@Sendable () -> [UInt8])?
        if metrics.enabled {
            render = { metrics.render(log: log, status: status, routing: routing, access: access, connections: limiters) }
        }
        let admin = GatewayAdmin(routing: routing, metrics: render)
        listeners = Self.makeListeners(config: config, broker: broker, status: status, admin: admin, group: eventLoopGroup,
                                       bridgeIngress: ingress, access: access, tls: tls, limiters: limiters)
            + extraListeners.map { $0(broker, status) }
        for l in listeners { status.setNotReady("listener \(l.name)", "starting") }
    }

    /// The built-in listeners: HTTP and TCP, over the same broker.
    static func makeListeners(config: GatewayConfig, broker: Broker, status: NodeStatus, admin: any AdminSource,
                              group: any EventLoopGroup, bridgeIngress: (any BridgeIngress)? = nil,
                              access: AccessControl = .disabled, tls: ServerTLS? = nil, limiters: [ConnectionLimiter] = []) -> [any Listener] {
        var http = HTTPServerConfiguration()
        http.host = config.http.host
        http.port = config.http.port
        http.maxHeaderBytes = config.maxHeaderBytes
        http.maxStructuredBodyBytes = config.maxBodyBytes
        http.admin = admin
        http.access = access
        var tcp = TCPServer.Configuration()
        tcp.connection.maxEventSize = config.maxEventBytes
        tcp.connection.maxInFlightPublishes = config.maxInFlight
        tcp.bridgeIngress = bridgeIngress
        tcp.access = access
        configureConnections(http: &http, tcp: &tcp, config: config, tls: tls, limiters: limiters)
        let tcpServer = TCPServer(broker: broker, configuration: tcp, logger: Logger(label: "meshgate.tcp"), eventLoopGroup: group)
        return [
            HTTPServer(broker: broker, configuration: http, status: status, group: group, logger: Logger(label: "meshgate.http")),
            TCPListener(server: tcpServer, host: config.tcp.host, port: config.tcp.port),
        ]
    }

    /// Runs until a graceful shutdown (one of `signals`, or `shutdown()`) has stopped every part.
    public func run(signals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        for remote in config.remoteListeners {
            logger.warning("listening beyond loopback with authentication off (\(remote)): anyone who can reach it can publish and read")
        }
        if access.enabled {
            logger.info("authentication on", metadata: ["tokens": "\(config.auth.tokens.count)", "roles": "\(config.auth.roles.count)",
                                                       "jwt": "\(config.auth.jwt?.algorithm.rawValue ?? "off")"])
        }
        logger.info("meshgate \(Self.version) starting", metadata: [
            "node": "\(config.node)", "data": "\(config.dataDirectory)", "fsync": "\(config.fsync)", "topics": "\(log.topics.count)",
        ])
        // The route files load before any listener accepts: an event accepted before its route
        // existed would wait on a topic that the route's new cursor then starts after (`start:
        // latest`), and never be routed. The listeners start with the service group, below.
        await routing.reload()
        var services: [any Service] = [LogService(log: log, logger: logger), BridgeIngressCheckpoints(ingress: bridgeIngress),
                                       RoutingService(control: routing, logger: logger),
                                       AuthReloadService(access: access, configFile: config.configFile, logger: logger)]
        if let tls { services.append(TLSReloadService(tls: tls, logger: logger)) }
        services += listeners.map { ListenerService(listener: $0, status: status, logger: logger) } as [any Service]
        let serviceGroup = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: signals,
            logger: logger))
        group.withLock { $0 = serviceGroup }
        if shutdownRequested.load(ordering: .acquiring) { await serviceGroup.triggerGracefulShutdown() }
        defer { log.close() }
        try await serviceGroup.run()
        logger.info("meshgate stopped")
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func shutdown() async {
        shutdownRequested.store(true, ordering: .releasing)
        if let g = group.withLock({ $0 }) { await g.triggerGracefulShutdown() }
    }
}
