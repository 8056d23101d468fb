import MeshCore
import MeshRouting

/// A route destination on a remote site (`type: meshgate` connector). The route engine hands it
/// each read batch of its durable cursor and commits only after this returns, so what is not
/// acknowledged by the remote is sent again after a cut or a crash (store-and-forward, at least
/// once); the remote's dedupe turns that into exactly one copy in its log.
struct BridgeDestination: Destination {
    let link: BridgeLink

    var acceptsBatches: Bool { true }

    func deliver(_ event: Event) async throws(DeliveryError) {
        try await deliver(batch: [event])
    }

    func deliver(batch events: [Event]) async throws(DeliveryError) {
        try await link.send(events.map { Self.stamped($0, site: link.site) })
    }

    /// The event as it leaves `site`: its hop list names the origin first and ends with `site`.
    /// An event without hops was published here before hop lists were stamped at ingest.
    static func stamped(_ event: Event, site: String) -> Event {
        guard event.hops.last != site else { return event }
        var e = event
        e.hops.append(site)
        return e
    }
}

/// A destination that cannot run (e.g. `tls://` before TLS support): every attempt fails with
/// the reason, so the events wait in the log and the reason shows in `GET /v1/connectors`.
struct UnavailableDestination: Destination {
    let reason: String
    func deliver(_ event: Event) async throws(DeliveryError) {
        throw DeliveryError(reason, retryable: true)
    }
}
