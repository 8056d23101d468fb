import MeshCore
import MeshRouting

/// Egress: publishes events on the connector's broker. A delivery returns once the broker
/// acknowledged (PUBACK for QoS 1, PUBCOMP for QoS 2, written for QoS 0). While the broker is away
/// it fails at once and retryably, so events wait in the log and the route's policy retries them in
/// order when it is back. The connector is looked up at each delivery, so a reload that changes the
/// connector's options takes effect on running routes too.
///
/// It takes each read batch of a partition whole: the batch's publishes are queued to the client in
/// log order in one step and stream out over the one connection with up to the connector's
/// `publish_inflight` unacknowledged, and the delivery returns when the last PUBACK is in (the engine
/// then commits the cursor past the batch). A failure fails the batch, whose retry republishes it
/// (at least once); a failure the policy gives up on sends the batch one event at a time, so only
/// the event that fails alone is dead-lettered (docs/connectors.md, Egress).
struct MQTTDestination: Destination {
    let connectors: MQTTConnectors
    let name: String

    func deliver(_ event: Event) async throws(DeliveryError) {
        try await deliver(batch: [event])
    }

    var acceptsBatches: Bool { true }

    func deliver(batch events: [Event]) async throws(DeliveryError) {
        guard let runtime = connectors.runtime(named: name) else {
            throw DeliveryError("mqtt connector \(name) is not running", retryable: true)
        }
        let s = runtime.settings
        let properties = s.protocolVersion == .v5
        var messages: [MQTTMessage] = []
        messages.reserveCapacity(events.count)
        for event in events {
            messages.append(MQTTEventMapping.message(from: event, topic: event.topic.name, qos: s.qos, retain: s.retain, properties: properties))
        }
        if case .failure(let f) = await runtime.client.publish(messages) { throw Self.error(f) }
    }

    static func error(_ f: MQTTPublishFailure) -> DeliveryError {
        guard let code = f.reasonCode else {
            return DeliveryError(f.reason, retryable: f.permanent ? false : true)
        }
        // MQTT 5 reason codes as HTTP-like statuses, so `retry_on` classes apply.
        let status: Int
        switch code {
        case 0x87: status = 403   // not authorised
        case 0x90: status = 400   // topic name invalid
        case 0x95: status = 413   // packet too large
        case 0x97: status = 429   // quota exceeded
        case 0x99: status = 415   // payload format invalid
        default: status = 502
        }
        return DeliveryError(f.reason, status: status)
    }
}
