import Foundation
import MeshCore

/// Events as the CloudEvents HTTP protocol binding (1.0) writes them, for POSTing.
enum CloudEventsHTTPEncoding {
    /// Binary mode: each attribute in a `ce-` header, `Content-Type` = `datacontenttype`, the
    /// body is the data. Trace context goes in the W3C `traceparent`/`tracestate` headers and the
    /// mesh topic in `meshgate-topic` (not a `ce-` header: `topic` is no CloudEvents attribute).
    static func binaryHeaders(_ e: Event, into h: inout [String]) {
        h.append("ce-specversion: \(Event.specversion)")
        h.append("ce-id: \(headerValue(e.id))")
        h.append("ce-source: \(headerValue(e.source))")
        h.append("ce-type: \(headerValue(e.type))")
        if let v = e.subject { h.append("ce-subject: \(headerValue(v))") }
        if let v = e.time { h.append("ce-time: \(v.rfc3339)") }
        if let v = e.dataschema { h.append("ce-dataschema: \(headerValue(v))") }
        if let v = e.partitionKey { h.append("ce-partitionkey: \(headerValue(v))") }
        for (name, value) in e.extensions { h.append("ce-\(name): \(headerValue(value))") }
        if let v = e.traceparent { h.append("traceparent: \(headerValue(v))") }
        if let v = e.tracestate { h.append("tracestate: \(headerValue(v))") }
        h.append("meshgate-topic: \(headerValue(e.topic.name))")
        // No datacontenttype: send no Content-Type rather than curl's form default.
        h.append(e.datacontenttype.map { "Content-Type: \(headerValue($0))" } ?? "Content-Type:")
    }

    /// Header values are percent-encoded as the binding requires: space, `"`, `%` and everything
    /// outside printable ASCII (so no value can break a header line).
    static func headerValue(_ s: String) -> String {
        let utf8 = s.utf8
        if utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x25 }) { return s }
        var out = ""
        out.reserveCapacity(utf8.count * 3)
        let hex = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        for b in utf8 {
            if b > 0x20 && b < 0x7F && b != 0x22 && b != 0x25 { bytes.append(b) } else {
                bytes.append(UInt8(ascii: "%")); bytes.append(hex[Int(b >> 4)]); bytes.append(hex[Int(b & 15)])
            }
        }
        out = String(decoding: bytes, as: UTF8.self)
        return out
    }

    // MARK: structured and batch mode

    static let structuredContentType = "application/cloudevents+json; charset=utf-8"
    static let batchContentType = "application/cloudevents-batch+json; charset=utf-8"

    /// One structured-mode CloudEvent (JSON format 1.0), with the mesh `topic` beside the
    /// attributes. `data` is JSON when the content type says JSON (or is absent) and the bytes
    /// are JSON, a string for other textual data, `data_base64` otherwise: the bytes always
    /// survive exactly.
    static func structured(_ e: Event, into out: inout [UInt8]) {
        var first = true
        func key(_ k: String) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            string(k, into: &out)
            out.append(UInt8(ascii: ":"))
        }
        out.append(UInt8(ascii: "{"))
        key("specversion"); string(Event.specversion, into: &out)
        key("id"); string(e.id, into: &out)
        key("source"); string(e.source, into: &out)
        key("type"); string(e.type, into: &out)
        if let v = e.subject { key("subject"); string(v, into: &out) }
        if let v = e.time { key("time"); string(v.rfc3339, into: &out) }
        if let v = e.datacontenttype { key("datacontenttype"); string(v, into: &out) }
        if let v = e.dataschema { key("dataschema"); string(v, into: &out) }
        if let v = e.partitionKey { key("partitionkey"); string(v, into: &out) }
        if let v = e.traceparent { key("traceparent"); string(v, into: &out) }
        if let v = e.tracestate { key("tracestate"); string(v, into: &out) }
        for (name, value) in e.extensions { key(name); string(value, into: &out) }
        key("topic"); string(e.topic.name, into: &out)
        if !e.data.isEmpty {
            let jsonType = e.datacontenttype.map(isJSON) ?? true
            if jsonType, (try? JSONSerialization.jsonObject(with: Data(e.data), options: [.fragmentsAllowed])) != nil {
                key("data"); out.append(contentsOf: e.data)
            } else if !jsonType, let s = String(validating: e.data, as: UTF8.self) {
                key("data"); string(s, into: &out)
            } else {
                key("data_base64"); string(Data(e.data).base64EncodedString(), into: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    static func batch(_ events: [Event]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, e) in events.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            structured(e, into: &out)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// `application/json`, `text/json` and any `+json` media type.
    static func isJSON(_ contentType: String) -> Bool {
        let media = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return media == "application/json" || media == "text/json" || media.hasSuffix("+json")
    }

    static func string(_ s: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20: out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
