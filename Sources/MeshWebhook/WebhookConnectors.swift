import Logging
import MeshCore
import MeshRouting
import Synchronization

/// The runtime of every `type: webhook` connector: give it to the route engine as (part of) its
/// `DestinationProvider`, show `status` in `GET /v1/connectors`, and call `stop()` after the
/// route engine has stopped. All connectors share one libcurl multi handle on one thread.
///
/// Routes that name the same connector share its endpoint (one concurrency limit, one set of
/// counters). When a reload changes a connector's url or options, the engine restarts the pairs
/// that use it and they get a fresh endpoint; the old one goes once its last delivery ends.
public final class WebhookConnectors: DestinationProvider, Sendable {
    private let threads: Int
    private let logger: Logger
    private let denyPrivate: Bool
    private struct State {
        var endpoints: [String: WebhookEndpoint] = [:]
        var stopped = false
        /// Started with the first endpoint, so a gateway without webhooks never loads libcurl.
        var loop: CurlLoop?
    }
    private let state = Mutex(State())

    /// `denyPrivate` is the default of every connector's `deny_private` (a connector's own
    /// setting wins): refuse targets that resolve to private, loopback or link-local addresses.
    /// `threads` is the number of libcurl threads (each with its own multi handle and connection
    /// cache); one carries tens of thousands of requests a second.
    public init(logger: Logger = Logger(label: "meshgate.webhook"), denyPrivate: Bool = false, threads: Int = 1) {
        self.logger = logger
        self.denyPrivate = denyPrivate
        self.threads = threads
    }

    public func destination(for connector: ConnectorSpec, route: Route, spec: DestinationSpec) -> (any Destination)? {
        guard connector.kind == .webhook else { return nil }
        let endpoint = state.withLock { s -> Result<WebhookEndpoint, WebhookConfigError>? in
            if s.stopped { return nil }
            if let e = s.endpoints[connector.name], e.spec.sameRuntime(as: connector) { return .success(e) }
            do throws(WebhookConfigError) {
                let config = try WebhookConfig(connector, denyPrivate: denyPrivate)
                if let unavailable = curlUnavailable { throw WebhookConfigError(option: "type", unavailable) }
                let loop = s.loop ?? CurlLoop(threads: threads)
                s.loop = loop
                let e = WebhookEndpoint(spec: connector, config: config, loop: loop, logger: logger)
                s.endpoints[connector.name] = e
                return .success(e)
            } catch {
                return .failure(error)
            }
        }
        switch endpoint {
        case .success(let e): return WebhookDestination(endpoint: e)
        case .failure(let error):
            logger.error("webhook connector \(connector.name) at \(connector.location): \(error.message)")
            return nil
        case nil: return nil
        }
    }

    /// One row per connector that some route destination uses, sorted by name.
    public var status: [WebhookConnectorStatus] {
        let endpoints = state.withLock { Array($0.endpoints.values) }
        return endpoints.map(\.status).filter { $0.destinations > 0 }.sorted { $0.name < $1.name }
    }

    /// Aborts transfers still running and stops the curl thread. Stop the route engine first
    /// (its deliveries then end on their own and their cursors stay committed where they were).
    public func stop() async {
        let loop = state.withLock { s -> CurlLoop? in
            defer { s.stopped = true }
            return s.stopped ? nil : s.loop
        }
        await loop?.shutdown()
    }
}

/// A route destination delivering through a webhook endpoint.
final class WebhookDestination: Destination {
    let endpoint: WebhookEndpoint

    init(endpoint: WebhookEndpoint) {
        self.endpoint = endpoint
        endpoint.stats.withLock { $0.users += 1 }
    }

    deinit { endpoint.stats.withLock { $0.users -= 1 } }

    func deliver(_ event: Event) async throws(DeliveryError) {
        try await endpoint.deliver(event)
    }
}
