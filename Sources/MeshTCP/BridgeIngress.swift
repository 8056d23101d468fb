import MeshBroker
import MeshCore
import MeshWire

/// How a site takes events forwarded by another site's bridge (a connection whose HELLO has the
/// bridge flag). The implementation (MeshBridge) checks hop lists for loops and de-duplicates by
/// (origin site, event id) before it stores; the TCP listener only routes such publishes to it.
public protocol BridgeIngress: Sendable {
    /// Stores what is new in `events` and answers one receipt per event, in order: where it was
    /// stored, or `PublishReceipt.duplicate` / `.loop` for an event acknowledged without storing.
    func publish(_ events: [Event], from peer: String,
                 completion: @escaping @Sendable (Result<[MeshWire.PublishReceipt], WireError>) -> Void)
    /// The same for events that arrived in their encoding (checked already), which it stores as
    /// those bytes with its own hop appended where it can (docs/bridging.md, "Pass-through").
    func publish(encoded events: [EventEnvelope], from peer: String,
                 completion: @escaping @Sendable (Result<[MeshWire.PublishReceipt], WireError>) -> Void)
}
