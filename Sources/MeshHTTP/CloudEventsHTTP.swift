import Foundation
import MeshBroker
import MeshCore
import NIOCore
import NIOHTTP1

/// The CloudEvents HTTP protocol binding (v1.0.2) in both directions: a publish request becomes
/// events, a stored event becomes a structured-mode JSON object.
enum CloudEventsHTTP {
    enum Mode: Equatable {
        case plain, binary, structured, batch
    }

    static let structuredType = "application/cloudevents+json"
    static let batchType = "application/cloudevents-batch+json"

    /// The media type of a `Content-Type` value, lowercased, without parameters or spaces.
    static func mediaType(_ contentType: String) -> String {
        var out: [UInt8] = []
        for b in contentType.utf8 {
            if b == UInt8(ascii: ";") { break }
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { continue }
            out.append(b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `value`'s media type (before any `;`, spaces ignored, any case) is `expected`
    /// (lowercase). Allocation-free: it runs on every publish.
    static func mediaType(_ value: String, is expected: StaticString) -> Bool {
        let e = UnsafeBufferPointer(start: expected.utf8Start, count: expected.utf8CodeUnitCount)
        var i = 0
        for b in value.utf8 {
            if b == UInt8(ascii: ";") { break }
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { continue }
            guard i < e.count, (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b) == e[i] else { return false }
            i += 1
        }
        return i == e.count
    }

    static func equalsIgnoringCase(_ a: String, _ lower: StaticString) -> Bool {
        let e = UnsafeBufferPointer(start: lower.utf8Start, count: lower.utf8CodeUnitCount)
        var i = 0
        for b in a.utf8 {
            guard i < e.count, (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b) == e[i] else { return false }
            i += 1
        }
        return i == e.count
    }

    /// One pass over the headers, comparing bytes: this runs on every publish.
    static func mode(of headers: HTTPHeaders) -> Mode {
        var binary = false
        for (name, value) in headers {
            let u = name.utf8
            let count = u.count
            guard count > 3 else { continue }
            let i = u.startIndex
            let b0 = u[i] | 0x20, b1 = u[u.index(after: i)] | 0x20
            if b0 == UInt8(ascii: "c") && b1 == UInt8(ascii: "e") && u[u.index(i, offsetBy: 2)] == UInt8(ascii: "-") {
                binary = true
            } else if count == 12 && b0 == UInt8(ascii: "c") && equalsIgnoringCase(name, "content-type") {
                if mediaType(value, is: "application/cloudevents+json") { return .structured }
                if mediaType(value, is: "application/cloudevents-batch+json") { return .batch }
            }
        }
        return binary ? .binary : .plain
    }

    // MARK: Requests → events

    /// A plain POST: the body is the data; `Content-Type` becomes `datacontenttype`; `traceparent`
    /// and `tracestate` headers pass through (W3C trace context).
    static func plainEvent(topic: Topic, headers: HTTPHeaders, body: [UInt8]) -> Event {
        Event(topic: topic, datacontenttype: headers.first(name: "content-type"),
              traceparent: headers.first(name: "traceparent"), tracestate: headers.first(name: "tracestate"),
              data: body)
    }

    /// Binary mode: attributes in `ce-*` headers (percent-decoded as the binding says), the body
    /// is the data.
    static func binaryEvent(topic: Topic, headers: HTTPHeaders, body: [UInt8]) throws(Problem) -> Event {
        var event = Event(topic: topic, datacontenttype: headers.first(name: "content-type"),
                          traceparent: headers.first(name: "traceparent"), tracestate: headers.first(name: "tracestate"),
                          data: body)
        for (rawName, rawValue) in headers {
            let lower = rawName.lowercased()
            guard lower.hasPrefix("ce-") else { continue }
            let name = String(lower.dropFirst(3))
            let value = percentDecodeHeader(rawValue)
            switch name {
            case "specversion":
                guard value == Event.specversion else { throw .unsupportedSpecversion(value) }
            case "id": event.id = value
            case "source": event.source = value
            case "type": event.type = value
            case "subject": event.subject = value
            case "dataschema": event.dataschema = value
            case "datacontenttype": event.datacontenttype = value
            case "time":
                do { event.time = try Timestamp(rfc3339: value) } catch {
                    throw .invalidEvent("header ce-time: attribute \"time\" is not RFC 3339: \(error.message)")
                }
            case "partitionkey": event.partitionKey = value
            case "traceparent": event.traceparent = value
            case "tracestate": event.tracestate = value
            case "topic", "partition", "offset", "data", "data_base64":
                throw .invalidEvent("header \(rawName): \"\(name)\" is reserved and cannot be an extension")
            default:
                do { try Event.validateExtensionName(name) } catch {
                    throw .invalidEvent("header \(rawName): \(error.message)")
                }
                event.extensions[name] = value
            }
        }
        return event
    }

    /// Header values are percent-encoded by senders for characters outside printable ASCII; a `%`
    /// not followed by two hex digits is kept as it is.
    static func percentDecodeHeader(_ value: String) -> String {
        guard value.utf8.contains(UInt8(ascii: "%")) else { return value }
        return Router.percentDecode(value) ?? value
    }

    /// Structured mode (one object) or batch mode (an array of them).
    static func structuredEvents(topic: Topic, body: [UInt8], batch: Bool) throws(Problem) -> [Event] {
        let objects: [[(name: String, node: JSONNode)]]
        do {
            objects = try JSONReader.parseObjects(body, array: batch)
        } catch {
            throw .invalidJSON(error)
        }
        var events: [Event] = []
        events.reserveCapacity(objects.count)
        for (index, members) in objects.enumerated() {
            do {
                events.append(try event(topic: topic, members: members, body: body))
            } catch {
                if batch {
                    throw Problem(code: error.code, status: error.status, title: error.title, detail: "event \(index) of the batch: \(error.detail)")
                }
                throw error
            }
        }
        return events
    }

    private static func event(topic: Topic, members: [(name: String, node: JSONNode)], body: [UInt8]) throws(Problem) -> Event {
        var event = Event(topic: topic)
        var data: JSONNode?
        var dataBase64: String?
        var sawSpecversion = false
        func string(_ name: String, _ node: JSONNode) throws(Problem) -> String? {
            switch node.value {
            case .string(let s): return s
            case .null: return nil
            default: throw .invalidEvent("attribute \"\(name)\" must be a string, found \(node.value.typeName) at byte \(node.range.lowerBound)")
            }
        }
        for (name, node) in members {
            switch name {
            case "specversion":
                sawSpecversion = true
                guard case .string(let v) = node.value else {
                    throw .invalidEvent("attribute \"specversion\" must be the string \"1.0\", found \(node.value.typeName) at byte \(node.range.lowerBound)")
                }
                guard v == Event.specversion else { throw .unsupportedSpecversion(v) }
            case "id": event.id = try string(name, node) ?? ""
            case "source": event.source = try string(name, node) ?? ""
            case "type": event.type = try string(name, node) ?? ""
            case "subject": event.subject = try string(name, node)
            case "dataschema": event.dataschema = try string(name, node)
            case "datacontenttype": event.datacontenttype = try string(name, node)
            case "time":
                if let t = try string(name, node) {
                    do { event.time = try Timestamp(rfc3339: t) } catch {
                        throw .invalidEvent("attribute \"time\" is not RFC 3339: \(error.message)")
                    }
                }
            case "partitionkey": event.partitionKey = try string(name, node)
            case "traceparent": event.traceparent = try string(name, node)
            case "tracestate": event.tracestate = try string(name, node)
            case "data": data = node
            case "data_base64":
                if let s = try string(name, node) { dataBase64 = s }
            // Where a fetched event was stored: ignored, so that it can be posted again elsewhere.
            case "topic", "partition", "offset": continue
            default:
                do { try Event.validateExtensionName(name) } catch { throw .invalidEvent(error.message) }
                switch node.value {
                case .string(let s): event.extensions[name] = s
                case .number(let n): event.extensions[name] = n
                case .bool(let b): event.extensions[name] = b ? "true" : "false"
                case .null: continue
                default:
                    throw .invalidEvent("extension attribute \"\(name)\" must be a string, number or boolean, found \(node.value.typeName) at byte \(node.range.lowerBound)")
                }
            }
        }
        if !sawSpecversion { throw .invalidEvent("attribute \"specversion\" is required in a structured-mode CloudEvent") }
        if data != nil && dataBase64 != nil { throw .invalidEvent("a CloudEvent has either \"data\" or \"data_base64\", not both") }
        if let b64 = dataBase64 {
            guard let decoded = Data(base64Encoded: b64) else { throw .invalidEvent("attribute \"data_base64\" is not valid base64") }
            event.data = [UInt8](decoded)
        } else if let data, data.value != .null {
            // JSON data is kept as the exact text sent; a string under a non-JSON content type is
            // the data itself (CloudEvents JSON format §3.1).
            if case .string(let s) = data.value, let ct = event.datacontenttype, !isJSON(ct) {
                event.data = Array(s.utf8)
            } else {
                event.data = Array(body[data.range])
                if event.datacontenttype == nil { event.datacontenttype = "application/json" }
            }
        }
        return event
    }

    /// `application/json`, `text/json` and any `+json` media type.
    static func isJSON(_ contentType: String) -> Bool {
        let media = mediaType(contentType)
        return media == "application/json" || media == "text/json" || media.hasSuffix("+json")
    }

    // MARK: Events → structured JSON

    /// A stored event as a structured-mode CloudEvent that also carries where it is stored.
    /// `data` is JSON when the content type says JSON (or is absent) and the bytes are JSON, a
    /// string for other content types when the bytes are UTF-8, and `data_base64` otherwise, so
    /// the bytes always come back exactly.
    static func writeStructured(_ e: Event, topic: String, partition: Int, offset: Int64, into w: inout JSONWriter) {
        var first = true
        w.raw("{")
        w.key("specversion", first: &first); w.string(Event.specversion)
        w.key("id", first: &first); w.string(e.id)
        w.key("source", first: &first); w.string(e.source)
        w.key("type", first: &first); w.string(e.type)
        if let v = e.subject { w.key("subject", first: &first); w.string(v) }
        if let v = e.time { w.key("time", first: &first); w.string(v.rfc3339) }
        if let v = e.datacontenttype { w.key("datacontenttype", first: &first); w.string(v) }
        if let v = e.dataschema { w.key("dataschema", first: &first); w.string(v) }
        if let v = e.partitionKey { w.key("partitionkey", first: &first); w.string(v) }
        if let v = e.traceparent { w.key("traceparent", first: &first); w.string(v) }
        if let v = e.tracestate { w.key("tracestate", first: &first); w.string(v) }
        for (name, value) in e.extensions { w.key(name, first: &first); w.string(value) }
        w.key("topic", first: &first); w.string(topic)
        w.key("partition", first: &first); w.int(partition)
        w.key("offset", first: &first); w.int(offset)
        if !e.data.isEmpty {
            let ct = e.datacontenttype
            let jsonType = ct.map(isJSON) ?? true
            if jsonType, isValidJSON(e.data) {
                w.key("data", first: &first); w.raw(e.data)
            } else if !jsonType, let s = String(validating: e.data, as: UTF8.self) {
                w.key("data", first: &first); w.string(s)
            } else {
                w.key("data_base64", first: &first); w.string(Data(e.data).base64EncodedString())
            }
        }
        w.raw("}")
    }

    static func isValidJSON(_ bytes: [UInt8]) -> Bool {
        (try? JSONReader.parse(bytes)) != nil
    }
}
