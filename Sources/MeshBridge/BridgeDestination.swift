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

    /// Pass-through: a route with no filter, no transform and a topic template that reads no
    /// attribute hands over the log's own bytes, which go on the wire with only this site appended
    /// to their hop list (when it is not the last hop already): never decoded, never re-encoded.
    var acceptsEncoded: Bool { true }

    func deliver(encoded events: [EncodedEvent]) async throws(DeliveryError) {
        var out: [[UInt8]] = []
        out.reserveCapacity(events.count)
        var last: Int64?
        for e in events {
            do {
                let (bytes, time) = try EventCodec.leaving(e.bytes, site: link.site)
                out.append(bytes)
                last = time ?? last
            } catch {
                throw DeliveryError("an encoded event is not an event: \(error.message)", retryable: false)
            }
        }
        try await link.send(encoded: out, lastTime: last)
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
