import Foundation
import MeshCore

/// Events as the CloudEvents HTTP protocol binding (1.0) writes them, for POSTing.
enum CloudEventsHTTPEncoding {
    /// Binary mode: each attribute in a `ce-` header, `Content-Type` = `datacontenttype`, the
    /// body is the data. Trace context goes in the W3C `traceparent`/`tracestate` headers and the
    /// mesh topic in `meshgate-topic` (not a `ce-` header: `topic` is no CloudEvents attribute).
    /// Written as bytes straight into the request's header block: no string per line.
    static func binaryHeaders(_ e: Event, into h: inout HeaderLines) {
        h.append("ce-specversion: ", Event.specversion)
        h.append("ce-id: ", encoding: e.id)
        h.append("ce-source: ", encoding: e.source)
        h.append("ce-type: ", encoding: e.type)
        if let v = e.subject { h.append("ce-subject: ", encoding: v) }
        if let v = e.time { h.append("ce-time: ", v.rfc3339) }
        if let v = e.dataschema { h.append("ce-dataschema: ", encoding: v) }
        if let v = e.partitionKey { h.append("ce-partitionkey: ", encoding: v) }
        for (name, value) in e.extensions { h.append("ce-\(name): ", encoding: value) }
        if let v = e.traceparent { h.append("traceparent: ", encoding: v) }
        if let v = e.tracestate { h.append("tracestate: ", encoding: v) }
        h.append("meshgate-topic: ", encoding: e.topic.name)
        // No datacontenttype: send no Content-Type rather than curl's form default.
        if let v = e.datacontenttype { h.append("Content-Type: ", encoding: v) } else { h.append("Content-Type:", "") }
    }

    /// Header values are percent-encoded as the binding requires: space, `"`, `%` and everything
    /// outside printable ASCII (so no value can break a header line).
    static func headerValue(_ s: String) -> String {
        var out: [UInt8] = []
        appendHeaderValue(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendHeaderValue(_ s: String, to out: inout [UInt8]) {
        let hex: StaticString = "0123456789ABCDEF"
        for b in s.utf8 {
            if b > 0x20 && b < 0x7F && b != 0x22 && b != 0x25 { out.append(b) } else {
                out.append(UInt8(ascii: "%"))
                hex.withUTF8Buffer { out.append($0[Int(b >> 4)]); out.append($0[Int(b & 15)]) }
            }
        }
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
            if jsonType, isValidJSON(e.data) {
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

    /// `application/json`, `text/json` and any `+json` media type (case-insensitive, parameters
    /// and surrounding blanks ignored). Byte by byte: it runs for every event of a batch.
    static func isJSON(_ contentType: String) -> Bool {
        var utf8 = Substring(contentType).utf8
        if let semicolon = utf8.firstIndex(of: UInt8(ascii: ";")) { utf8 = utf8[..<semicolon] }
        func blank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
        while let b = utf8.first, blank(b) { utf8 = utf8.dropFirst() }
        while let b = utf8.last, blank(b) { utf8 = utf8.dropLast() }
        func hasSuffix(_ suffix: String) -> Bool {
            utf8.count >= suffix.utf8.count && zip(utf8.suffix(suffix.utf8.count), suffix.utf8).allSatisfy { lower($0) == $1 }
        }
        func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
        func equals(_ s: String) -> Bool { utf8.count == s.utf8.count && hasSuffix(s) }
        return equals("application/json") || equals("text/json") || hasSuffix("+json")
    }

    /// Whether `bytes` are one JSON value (RFC 8259, surrounding whitespace allowed) in valid
    /// UTF-8: only then is `data` inlined in a structured event. A scan, building nothing;
    /// nesting deeper than 512 counts as not JSON (the data then goes as `data_base64`).
    static func isValidJSON(_ bytes: [UInt8]) -> Bool {
        var nonASCII = false
        let valid = bytes.withUnsafeBufferPointer { b -> Bool in
            var i = 0
            let n = b.count
            // Open containers, innermost last: true for an object, false for an array.
            var stack: [Bool] = []
            func skipSpace() { while i < n, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
            func digits() -> Bool {
                let start = i
                while i < n, b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
                return i > start
            }
            func string() -> Bool {  // at the opening quote
                i += 1
                while i < n {
                    let c = b[i]
                    if c == 0x22 { i += 1; return true }
                    if c < 0x20 { return false }
                    if c >= 0x80 { nonASCII = true }
                    if c == 0x5C {
                        i += 1
                        guard i < n else { return false }
                        switch b[i] {
                        case 0x22, 0x5C, 0x2F, UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"): break
                        case UInt8(ascii: "u"):
                            guard i + 4 < n else { return false }
                            for k in 1...4 {
                                let h = b[i + k] | 0x20
                                guard (h >= 0x30 && h <= 0x39) || (h >= UInt8(ascii: "a") && h <= UInt8(ascii: "f")) else { return false }
                            }
                            i += 4
                        default: return false
                        }
                    }
                    i += 1
                }
                return false
            }
            func literal(_ word: StaticString) -> Bool {
                let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
                guard n - i >= w.count, UnsafeBufferPointer(rebasing: b[i..<i + w.count]).elementsEqual(w) else { return false }
                i += w.count
                return true
            }
            func number() -> Bool {
                if b[i] == UInt8(ascii: "-") { i += 1 }
                guard i < n else { return false }
                if b[i] == 0x30 { i += 1 } else if !digits() { return false }
                if i < n, b[i] == UInt8(ascii: ".") { i += 1; guard digits() else { return false } }
                if i < n, b[i] | 0x20 == UInt8(ascii: "e") {
                    i += 1
                    if i < n, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                    guard digits() else { return false }
                }
                return true
            }
            while true {
                // A value.
                skipSpace()
                guard i < n else { return false }
                switch b[i] {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    let object = b[i] == UInt8(ascii: "{")
                    i += 1
                    skipSpace()
                    if i < n, b[i] == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                        i += 1  // empty: a complete value, handled below
                    } else {
                        guard stack.count < 512 else { return false }
                        stack.append(object)
                        if object {
                            guard i < n, b[i] == 0x22, string() else { return false }
                            skipSpace()
                            guard i < n, b[i] == UInt8(ascii: ":") else { return false }
                            i += 1
                        }
                        continue
                    }
                case 0x22: guard string() else { return false }
                case UInt8(ascii: "t"): guard literal("true") else { return false }
                case UInt8(ascii: "f"): guard literal("false") else { return false }
                case UInt8(ascii: "n"): guard literal("null") else { return false }
                case UInt8(ascii: "-"), 0x30...0x39: guard number() else { return false }
                default: return false
                }
                // After a complete value: the next member or element, or close containers.
                while true {
                    skipSpace()
                    guard let object = stack.last else { return i == n }
                    guard i < n else { return false }
                    if b[i] == UInt8(ascii: ",") {
                        i += 1
                        if object {
                            skipSpace()
                            guard i < n, b[i] == 0x22, string() else { return false }
                            skipSpace()
                            guard i < n, b[i] == UInt8(ascii: ":") else { return false }
                            i += 1
                        }
                        break
                    }
                    guard b[i] == (object ? UInt8(ascii: "}") : UInt8(ascii: "]")) else { return false }
                    i += 1
                    stack.removeLast()
                }
            }
        }
        // Bytes past ASCII must be UTF-8, as JSON text is: checked only when there are any.
        return valid && (!nonASCII || String(validating: bytes, as: UTF8.self) != nil)
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

/// Request header lines as libcurl's header list takes them: each `Name: value` line ends in a
/// NUL, the lines back to back in one buffer (`mesh_curl_slist_block` lays the list nodes out in
/// front of them). A line ends at its first NUL, as a C string would.
struct HeaderLines: Sendable {
    private(set) var bytes: [UInt8] = []
    private(set) var count = 0

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    /// `prefix` (the name and `: `) then `value` as it is.
    mutating func append(_ prefix: String, _ value: String) {
        let start = bytes.count
        bytes.append(contentsOf: prefix.utf8)
        bytes.append(contentsOf: value.utf8)
        endLine(from: start)
    }

    /// `prefix` then `value` percent-encoded (`CloudEventsHTTPEncoding.headerValue`).
    mutating func append(_ prefix: String, encoding value: String) {
        let start = bytes.count
        bytes.append(contentsOf: prefix.utf8)
        CloudEventsHTTPEncoding.appendHeaderValue(value, to: &bytes)
        endLine(from: start)
    }

    /// A whole line, `Name: value`.
    mutating func append(line: String) { append(line, "") }

    mutating func append(contentsOf other: HeaderLines) {
        bytes.append(contentsOf: other.bytes)
        count += other.count
    }

    private mutating func endLine(from start: Int) {
        if let nul = bytes[start...].firstIndex(of: 0) { bytes.removeSubrange(nul...) }
        bytes.append(0)
        count += 1
    }

    /// The lines as strings (for tests and logs).
    var lines: [String] {
        bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
    }
}
