import Foundation
import Logging
import MeshBroker
import MeshCore
import MeshRouting
import Synchronization

/// Every `type: mqtt` connector of the route table: one libmosquitto client (its own loop thread)
/// per connector that some route uses, for both directions.
///
/// Wiring (the gateway): pass this as the `RouteEngine`'s `DestinationProvider` (egress), and call
/// `apply(_:)` with every table that is loaded (ingress subscriptions, connector changes) — for
/// example from `RouteManager.onApply`. `status` feeds `GET /v1/connectors`; `stop()` on shutdown,
/// before the log is closed.
public final class MQTTConnectors: DestinationProvider, Sendable {
    private let broker: Broker
    private let logger: Logger

    final class Runtime: Sendable {
        let spec: ConnectorSpec
        let settings: MQTTSettings
        let client: MQTTClient
        let ingress: MQTTIngress
        let ingressRoutes = Mutex<[String]>([])
        let problems = Mutex<[String]>([])

        init(spec: ConnectorSpec, settings: MQTTSettings, client: MQTTClient, ingress: MQTTIngress) {
            self.spec = spec
            self.settings = settings
            self.client = client
            self.ingress = ingress
        }
    }

    private struct State {
        var runtimes: [String: Runtime] = [:]
        /// Connectors whose options do not parse, with why.
        var invalid: [String: (ConnectorSpec, String)] = [:]
        var stopped = false
    }
    private let state = Mutex(State())

    public init(broker: Broker, logger: Logger = Logger(label: "meshgate.mqtt")) {
        self.broker = broker
        self.logger = logger
    }

    // MARK: DestinationProvider (egress)

    public func destination(for connector: ConnectorSpec, route: Route, spec: DestinationSpec) -> (any Destination)? {
        guard connector.kind == .mqtt else { return nil }
        // `apply(_:)` sees every table before the route engine asks for its destinations, so the
        // runtime is normally there already, with its ingress routes; one started here has none.
        guard ensureRuntime(connector, routes: [], filters: []) != nil else { return nil }
        return MQTTDestination(connectors: self, name: connector.name)
    }

    func runtime(named name: String) -> Runtime? {
        state.withLock { $0.runtimes[name] }
    }

    /// The running runtime for `spec`, started (or restarted when its options changed) as needed.
    ///
    /// A new runtime knows its ingress `routes` and subscription `filters` before its client starts:
    /// a persistent session hands over its queued and unacknowledged messages right after CONNACK,
    /// and an ingress without routes would acknowledge them as unrouted, losing them.
    @discardableResult
    private func ensureRuntime(_ spec: ConnectorSpec, routes: [Route], filters: Set<String>) -> Runtime? {
        let settings: MQTTSettings
        do { settings = try MQTTSettings(spec) } catch {
            state.withLock { $0.invalid[spec.name] = (spec, error.message) }
            logger.error("mqtt connector \(spec.name) (\(spec.location)): \(error.message)")
            return nil
        }
        if let unavailable = mosquittoUnavailable {
            state.withLock { $0.invalid[spec.name] = (spec, unavailable) }
            logger.error("mqtt connector \(spec.name) (\(spec.location)): \(unavailable)")
            return nil
        }
        let (runtime, replaced) = state.withLock { s -> (Runtime?, Runtime?) in
            if s.stopped { return (nil, nil) }
            s.invalid[spec.name] = nil
            if let existing = s.runtimes[spec.name], existing.spec.url == spec.url, existing.spec.options == spec.options {
                return (existing, nil)
            }
            let ingress = MQTTIngress(connector: spec.name, broker: broker, routes: routes, logger: logger)
            let client = MQTTClient(name: spec.name, settings: settings, sink: ingress, logger: logger)
            client.setSubscriptions(filters)
            let fresh = Runtime(spec: spec, settings: settings, client: client, ingress: ingress)
            let old = s.runtimes[spec.name]
            s.runtimes[spec.name] = fresh
            client.start()
            return (fresh, old)
        }
        if let replaced {
            // One client id connected twice would make the broker kick one of them.
            replaced.ingress.stop()
            Task { await replaced.client.stop() }
        }
        return runtime
    }

    // MARK: Ingress and lifecycle

    /// Brings the connectors in line with `table`: starts those that routes use, restarts those whose
    /// options changed, stops the rest, and sets each one's ingress routes and subscriptions.
    public func apply(_ table: RouteTable) async {
        var ingress: [String: [Route]] = [:]
        var used: Set<String> = []
        for route in table.routes {
            if case .connector(let name, _) = route.source, table.connectors[name]?.kind == .mqtt {
                ingress[name, default: []].append(route)
                used.insert(name)
            }
            for d in route.destinations {
                if case .connector(let name, _) = d.target, table.connectors[name]?.kind == .mqtt { used.insert(name) }
            }
        }
        var retired: [Runtime] = []
        for name in used.sorted() {
            let routes = ingress[name] ?? []
            var filters: Set<String> = []
            for r in routes {
                if case .connector(_, let filter) = r.source { filters.insert(filter.text) }
            }
            guard let spec = table.connectors[name], let runtime = ensureRuntime(spec, routes: routes, filters: filters) else { continue }
            var problems: [String] = []
            for r in routes {
                for d in r.destinations {
                    if case .connector(let other, _) = d.target {
                        problems.append("route \(r.name): an ingress route writes to log topics; '\(other)' is a connector — route a log topic to it instead")
                    }
                }
            }
            runtime.problems.withLock { $0 = problems }
            for p in problems { logger.error("mqtt \(name): \(p)") }
            runtime.ingress.setRoutes(routes)
            runtime.ingressRoutes.withLock { $0 = routes.map(\.name) }
            runtime.client.setSubscriptions(filters)
        }
        state.withLock { s in
            for (name, r) in s.runtimes where !used.contains(name) {
                retired.append(r)
                s.runtimes[name] = nil
            }
            for name in s.invalid.keys where !used.contains(name) { s.invalid[name] = nil }
        }
        for r in retired {
            r.ingress.stop()
            await r.client.stop()
        }
    }

    /// Disconnects every connector and waits for their loop threads to end. Call before closing the
    /// log: a burst being stored finishes (and is acknowledged) first.
    public func stop() async {
        let all = state.withLock { s -> [Runtime] in
            s.stopped = true
            defer { s.runtimes = [:] }
            return Array(s.runtimes.values)
        }
        for r in all { r.ingress.stop() }
        for r in all { await r.client.stop() }
    }

    /// One row per connector, for `GET /v1/connectors`. Secrets are not shown.
    public var status: [MQTTConnectorStatus] {
        let (runtimes, invalid) = state.withLock { (Array($0.runtimes.values), Array($0.invalid.values)) }
        var rows = runtimes.map { r in
            let c = r.client.status
            return MQTTConnectorStatus(
                name: r.spec.name, url: Self.redact(r.spec.url), clientID: r.settings.clientID, protocolVersion: r.settings.protocolVersion.rawValue,
                connection: c, ingressRoutes: r.ingressRoutes.withLock { $0 }, problems: r.problems.withLock { $0 },
                filtered: r.ingress.counters.filtered.load(ordering: .relaxed), unrouted: r.ingress.counters.unrouted.load(ordering: .relaxed),
                rejected: r.ingress.counters.rejected.load(ordering: .relaxed),
                droppedProperties: r.ingress.counters.droppedProperties.load(ordering: .relaxed))
        }
        for (spec, error) in invalid {
            var c = MQTTConnectionStatus()
            c.state = .refused
            c.lastError = error
            rows.append(MQTTConnectorStatus(name: spec.name, url: Self.redact(spec.url), clientID: spec.options["client_id"] ?? "",
                                            protocolVersion: spec.options["protocol"] ?? "5", connection: c, ingressRoutes: [], problems: [error],
                                            filtered: 0, unrouted: 0, rejected: 0, droppedProperties: 0))
        }
        return rows.sorted { $0.name < $1.name }
    }

    /// The URL without a password in its user info.
    static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") else { return url }
        let userinfo = url[scheme.upperBound..<at]
        guard let colon = userinfo.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}

/// One MQTT connector's row in `GET /v1/connectors`.
public struct MQTTConnectorStatus: Sendable {
    public let name: String
    public let url: String
    public let clientID: String
    public let protocolVersion: String
    /// State, last error, connection and message counters.
    public let connection: MQTTConnectionStatus
    public let ingressRoutes: [String]
    /// Configuration problems (e.g. an ingress route with a connector destination).
    public let problems: [String]
    /// Ingress messages a route's `where` filtered out; matched by no route (a subscription left in
    /// a persistent session by an older table); sent to a dead-letter topic; user properties dropped.
    public let filtered: Int
    public let unrouted: Int
    public let rejected: Int
    public let droppedProperties: Int
}
