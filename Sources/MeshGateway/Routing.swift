import Foundation
import Logging
import MeshBroker
import MeshConfig
import MeshHTTP
import MeshLog
import MeshRouting
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The connector runtimes, by connector type. Each connector module registers its provider; a
/// destination of a type nobody registered waits (its events stay in the log) and says so in
/// `GET /v1/connectors`.
public final class ConnectorRegistry: DestinationProvider {
    /// What a connector module reports for `GET /v1/connectors`: one JSON object per connector.
    public typealias StatusSource = @Sendable () -> [[String: any Sendable]]

    private let providers = Mutex<[ConnectorSpec.Kind: any DestinationProvider]>([:])
    private let statusSources = Mutex<[StatusSource]>([])

    public init() {}

    public func register(_ kind: ConnectorSpec.Kind, _ provider: any DestinationProvider, status: StatusSource? = nil) {
        providers.withLock { $0[kind] = provider }
        if let status { statusSources.withLock { $0.append(status) } }
    }

    public func destination(for connector: ConnectorSpec, route: Route, spec: DestinationSpec) -> (any Destination)? {
        providers.withLock { $0[connector.kind] }?.destination(for: connector, route: route, spec: spec)
    }

    /// What the connector runtimes report, one object per connector. Metrics and the status page
    /// read `name`, `state` and, when present, `lag` and `last_error`.
    var runtimeStatus: [[String: any Sendable]] {
        statusSources.withLock { $0 }.flatMap { $0() }
    }
}

/// Routing inside the gateway: the route manager over the routes directory (when there is one)
/// and what the admin API shows of it.
public final class RoutingControl: AdminSource {
    public let manager: RouteManager?
    public let registry: ConnectorRegistry
    let runtimes: ConnectorRuntimes
    let status: NodeStatus

    init(config: GatewayConfig, log: DurableLog, broker: Broker, status: NodeStatus, logger: Logger) {
        let connectors = ConnectorRegistry()
        self.registry = connectors
        runtimes = ConnectorRuntimes(site: config.node, dataDirectory: config.dataDirectory, webhookThreads: config.webhookThreads,
                                     bridgeTopic: config.bridgeTopic, log: log, broker: broker, registry: connectors)
        self.status = status
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: config.routesDirectory, isDirectory: &isDirectory), isDirectory.boolValue {
            let engine = RouteEngine(log: log, provider: connectors, logger: Logger(label: "meshgate.routing"))
            let manager = RouteManager(path: config.routesDirectory, engine: engine, logger: Logger(label: "meshgate.routes"))
            runtimes.follow(manager)
            self.manager = manager
            status.setNotReady("routes", "not loaded yet")
        } else {
            logger.info("no routes directory at \(config.routesDirectory); routing is off")
            manager = nil
        }
    }

    /// Reloads and keeps `/readyz` in step: ready once a table has loaded.
    @discardableResult
    func reload() async -> ReloadResult? {
        guard let manager else { return nil }
        let result = await manager.reload()
        if manager.status.loaded { status.setNotReady("routes", nil) } else {
            status.setNotReady("routes", "the route files do not load: " + result.errors.map(\.message).joined(separator: "; "))
        }
        return result
    }

    public func routes() -> [UInt8] {
        guard let s = manager?.status else {
            return json(["generation": 0, "loaded": false, "files": [String](), "routes": [Any](),
                         "last_error": "routing is off: no routes directory"])
        }
        let routes: [[String: Any]] = s.routes.map { r in
            var o: [String: Any] = ["name": r.name, "from": r.from, "location": r.location]
            if let w = r.where { o["where"] = w }
            o["destinations"] = r.destinations.map { d -> [String: Any] in
                var x: [String: Any] = ["index": d.index, "destination": d.destination, "group": d.group]
                if let dl = d.deadLetter { x["dead_letter"] = dl }
                return x
            }
            return o
        }
        var body: [String: Any] = ["generation": s.generation, "loaded": s.loaded, "files": s.files, "routes": routes,
                                   "reloads": s.reloads, "failed_reloads": s.failedReloads]
        body["last_error"] = s.lastError ?? NSNull()
        if let t = s.lastReload { body["last_reload"] = Self.rfc3339(t) }
        if let t = s.lastSuccess { body["last_success"] = Self.rfc3339(t) }
        return json(body)
    }

    public func reloadRoutes() async -> Result<[UInt8], RoutesRejected> {
        guard let result = await reload() else { return .failure(RoutesRejected(errors: ["routing is off: no routes directory"], routingOff: true)) }
        guard result.ok else { return .failure(RoutesRejected(errors: result.errors.map(\.message))) }
        var body: [String: Any] = ["generation": result.generation]
        if let c = result.changes { body["started"] = c.started; body["stopped"] = c.stopped; body["kept"] = c.kept }
        return .success(json(body))
    }

    public func connectors() -> [UInt8] {
        let s = manager?.status
        let declared: [[String: Any]] = (s?.connectors ?? []).map {
            ["name": $0.name, "type": $0.type, "options": $0.options, "location": $0.location]
        }
        let destinations: [[String: Any]] = (s?.destinations ?? []).map { d in
            var o: [String: Any] = ["route": d.route, "index": d.index, "group": d.group, "destination": d.destination,
                                    "state": d.state.rawValue, "topics": d.topics, "lag": d.lag,
                                    "lag_seconds": d.lagSeconds, "in_flight": d.inFlight,
                                    "read": d.counters.read, "matched": d.counters.matched, "delivered": d.counters.delivered,
                                    "failed_attempts": d.counters.failedAttempts, "dead_lettered": d.counters.deadLettered,
                                    "filter_errors": d.counters.filterErrors]
            if let w = d.waitingReason { o["waiting_reason"] = w }
            if let e = d.counters.lastError { o["last_error"] = e }
            if let st = d.counters.lastStatus { o["last_status"] = st }
            return o
        }
        let runtime: [[String: Any]] = registry.runtimeStatus.map { $0.mapValues { $0 as Any } }
        return json(["connectors": declared, "runtime": runtime, "destinations": destinations])
    }

    private func json(_ object: [String: Any]) -> [UInt8] {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map { [UInt8]($0) } ?? Array("{}".utf8)
    }

    static func rfc3339(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}

/// Routing as a service: watches the routes directory, reloads on SIGHUP, and stops every delivery
/// before the log closes. The first table is loaded before the service group starts
/// (`Gateway.run`), so no listener accepts an event before its route exists.
struct RoutingService: Service {
    let control: RoutingControl
    let logger: Logger

    func run() async throws {
        guard let manager = control.manager else {
            try? await gracefulShutdown()
            return
        }
        manager.watch()
        let hangups = await Hangups.shared.subscribe()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in hangups {
                    logger.notice("SIGHUP: reloading routes")
                    await control.reload()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        logger.info("stopping route deliveries and connectors")
        await manager.stop()
        await control.runtimes.stop()
    }
}

/// The admin API's view of the gateway: routes and connectors from routing, `/metrics` from the
/// gateway's metrics (nil when they are off).
struct GatewayAdmin: AdminSource {
    let routing: RoutingControl
    let render: (@Sendable () -> [UInt8])?

    init(routing: RoutingControl, metrics render: (@Sendable () -> [UInt8])?) {
        self.routing = routing
        self.render = render
    }

    func routes() -> [UInt8] { routing.routes() }
    func reloadRoutes() async -> Result<[UInt8], RoutesRejected> { await routing.reloadRoutes() }
    func connectors() -> [UInt8] { routing.connectors() }
    func metrics() -> [UInt8]? { render?() }
}
