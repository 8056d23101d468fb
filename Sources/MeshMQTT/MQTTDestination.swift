import MeshCore
import MeshRouting

/// Egress: publishes each event on the connector's broker. `deliver` returns once the broker
/// acknowledged (PUBACK for QoS 1, PUBCOMP for QoS 2, written for QoS 0). While the broker is away
/// it fails at once and retryably, so events wait in the log and the route's policy retries them in
/// order when it is back. The connector is looked up at each delivery, so a reload that changes the
/// connector's options takes effect on running routes too.
struct MQTTDestination: Destination {
    let connectors: MQTTConnectors
    let name: String

    func deliver(_ event: Event) async throws(DeliveryError) {
        guard let runtime = connectors.runtime(named: name) else {
            throw DeliveryError("mqtt connector \(name) is not running", retryable: true)
        }
        let s = runtime.settings
        let message = MQTTEventMapping.message(from: event, topic: event.topic.name, qos: s.qos, retain: s.retain,
                                               properties: s.protocolVersion == .v5)
        switch await runtime.client.publish(message) {
        case .success:
            return
        case .failure(let f):
            guard let code = f.reasonCode else {
                throw DeliveryError(f.reason, retryable: f.permanent ? false : true)
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
            throw DeliveryError(f.reason, status: status)
        }
    }
}
