import Foundation
import MeshCore

/// MQTT message ↔ CloudEvent, following the CloudEvents MQTT protocol binding (binary content mode):
/// the payload is the event's `data`; with MQTT 5 every attribute travels as a user property named
/// after it, and `datacontenttype` as the Content Type property. Correlation data and the response
/// topic become the `correlationdata` (base64) and `responsetopic` extensions. MQTT 3.1.1 has no
/// properties, so only the payload crosses (the gateway fills the rest at ingest).
public enum MQTTEventMapping {
    /// Attributes that become event fields rather than extensions.
    static let fieldAttributes: Set<String> = ["id", "source", "type", "subject", "time", "dataschema", "datacontenttype",
                                               "partitionkey", "traceparent", "tracestate", "specversion"]

    /// The event for a received message on mesh topic `topic`. Returns the event and the names of
    /// user properties that could not become attributes (not a CloudEvents name after lowercasing
    /// and dropping characters other than a–z and 0–9, or a reserved one).
    public static func event(from m: MQTTMessage, topic: Topic) -> (Event, dropped: [String]) {
        var e = Event(topic: topic, datacontenttype: m.contentType, data: m.payload)
        var dropped: [String] = []
        for p in m.userProperties {
            let name = attributeName(p.name)
            switch name {
            case "specversion": break
            case "id": e.id = p.value
            case "source": e.source = p.value
            case "type": e.type = p.value
            case "subject": e.subject = p.value
            case "dataschema": e.dataschema = p.value
            case "datacontenttype": if e.datacontenttype == nil { e.datacontenttype = p.value }
            case "partitionkey": e.partitionKey = p.value
            case "traceparent": e.traceparent = p.value
            case "tracestate": e.tracestate = p.value
            case "time":
                if let t = try? Timestamp(rfc3339: p.value) { e.time = t } else { dropped.append(p.name) }
            default:
                guard let name, (try? Event.validateExtensionName(name)) != nil else {
                    dropped.append(p.name)
                    continue
                }
                // MQTT allows a name to repeat; CloudEvents does not: repeated values are joined by ",".
                e.extensions[name] = e.extensions[name].map { "\($0),\(p.value)" } ?? p.value
            }
        }
        if let cd = m.correlationData { e.extensions["correlationdata"] = Data(cd).base64EncodedString() }
        if let rt = m.responseTopic { e.extensions["responsetopic"] = rt }
        // One device's messages keep their order across partitions unless the device says otherwise.
        if e.partitionKey == nil { e.partitionKey = m.topic }
        return (e, dropped)
    }

    /// The message that publishes `event` on MQTT `topic`.
    public static func message(from event: Event, topic: String, qos: Int32, retain: Bool, properties: Bool) -> MQTTMessage {
        var m = MQTTMessage(topic: topic, payload: event.data, qos: qos, retain: retain)
        guard properties else { return m }
        var props: [MQTTMessage.UserProperty] = [
            .init("specversion", Event.specversion), .init("id", event.id), .init("source", event.source), .init("type", event.type),
        ]
        if let v = event.subject { props.append(.init("subject", v)) }
        if let v = event.time { props.append(.init("time", v.rfc3339)) }
        if let v = event.dataschema { props.append(.init("dataschema", v)) }
        if let v = event.partitionKey { props.append(.init("partitionkey", v)) }
        if let v = event.traceparent { props.append(.init("traceparent", v)) }
        if let v = event.tracestate { props.append(.init("tracestate", v)) }
        for (name, value) in event.extensions {
            switch name {
            case "correlationdata": m.correlationData = Data(base64Encoded: value).map { Array($0) } ?? Array(value.utf8)
            case "responsetopic": m.responseTopic = value
            default: props.append(.init(name, value))
            }
        }
        m.userProperties = props
        m.contentType = event.datacontenttype
        return m
    }

    /// A user property name as a CloudEvents attribute name: lowercased, characters outside a–z
    /// and 0–9 removed; nil when nothing valid is left.
    static func attributeName(_ raw: String) -> String? {
        if Event.isValidAttributeName(raw) { return raw }
        let s = String(String.UnicodeScalarView(raw.lowercased().unicodeScalars.filter { ("a"..."z").contains($0) || ("0"..."9").contains($0) }))
        return Event.isValidAttributeName(s) ? s : nil
    }
}
