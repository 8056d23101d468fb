/// A small JSON reader and writer for the HTTP API.
///
/// Why not Foundation's: a structured-mode CloudEvent's `data` must be stored as the exact bytes the
/// publisher sent (so numbers keep their spelling and keys their order), errors must name the byte
/// offset of what is wrong, and the publish path must not pay for `Any` boxing. Values keep the
/// byte range they were parsed from.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number exactly as written.
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order; a repeated name keeps every occurrence (the reader rejects them).
    case object([(name: String, value: JSONValue)])

    static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.name == $1.name && $0.value == $1.value }
        default: false
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    subscript(name: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.name == name }?.value
    }
}

struct JSONError: Error, Sendable, Equatable {
    let byteOffset: Int
    let reason: String
    var message: String { "invalid JSON at byte \(byteOffset): \(reason)" }
}

/// A parsed value with where it was found, so a member's raw text can be kept.
struct JSONNode {
    var value: JSONValue
    var range: Range<Int>
}

struct JSONReader {
    private let bytes: UnsafeRawBufferPointer
    private var at = 0
    private var depth = 0
    static let maxDepth = 128

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        try bytes.withUnsafeBytes { raw in Result { () throws(JSONError) in try parse(raw) } }.get()
    }

    static func parseObjects(_ bytes: [UInt8], array: Bool) throws(JSONError) -> [[(name: String, node: JSONNode)]] {
        try bytes.withUnsafeBytes { raw in Result { () throws(JSONError) in try parseObjects(raw, array: array) } }.get()
    }

    /// Parses one complete document. For a top-level object, `members` gets each member's value
    /// range so that the caller can keep raw text (a CloudEvent's `data`).
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> JSONValue {
        var r = JSONReader(bytes)
        r.skipSpace()
        let v = try r.value().value
        r.skipSpace()
        if r.at < bytes.count { throw JSONError(byteOffset: r.at, reason: "unexpected \(r.describe(r.at)) after the end of the document") }
        return v
    }

    /// Parses a document that must be an object or an array of objects, returning each object's
    /// members with their value ranges (offsets into `bytes`).
    static func parseObjects(_ bytes: UnsafeRawBufferPointer, array: Bool) throws(JSONError) -> [[(name: String, node: JSONNode)]] {
        var r = JSONReader(bytes)
        r.skipSpace()
        var out: [[(name: String, node: JSONNode)]] = []
        if array {
            guard r.peek == UInt8(ascii: "[") else { throw JSONError(byteOffset: r.at, reason: "expected an array of CloudEvents, found \(r.describe(r.at))") }
            r.at += 1
            r.skipSpace()
            if r.peek == UInt8(ascii: "]") {
                r.at += 1
            } else {
                while true {
                    r.skipSpace()
                    out.append(try r.topObject())
                    r.skipSpace()
                    if r.peek == UInt8(ascii: ",") { r.at += 1; continue }
                    if r.peek == UInt8(ascii: "]") { r.at += 1; break }
                    throw JSONError(byteOffset: r.at, reason: "expected ',' or ']' in the array, found \(r.describe(r.at))")
                }
            }
        } else {
            out.append(try r.topObject())
        }
        r.skipSpace()
        if r.at < bytes.count { throw JSONError(byteOffset: r.at, reason: "unexpected \(r.describe(r.at)) after the end of the document") }
        return out
    }

    private mutating func topObject() throws(JSONError) -> [(name: String, node: JSONNode)] {
        guard peek == UInt8(ascii: "{") else { throw JSONError(byteOffset: at, reason: "expected a CloudEvent object, found \(describe(at))") }
        var members: [(name: String, node: JSONNode)] = []
        try objectBody { name, node in members.append((name, node)) }
        return members
    }

    private var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    private func describe(_ offset: Int) -> String {
        guard offset < bytes.count else { return "the end of the input" }
        let b = bytes[offset]
        if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x\(String(b, radix: 16))"
    }

    private mutating func skipSpace() {
        while at < bytes.count {
            switch bytes[at] {
            case 0x20, 0x09, 0x0A, 0x0D: at += 1
            default: return
            }
        }
    }

    private mutating func value() throws(JSONError) -> JSONNode {
        let start = at
        guard let b = peek else { throw JSONError(byteOffset: at, reason: "expected a value, found the end of the input") }
        switch b {
        case UInt8(ascii: "{"):
            var members: [(name: String, value: JSONValue)] = []
            try objectBody { name, node in members.append((name, node.value)) }
            return JSONNode(value: .object(members), range: start..<at)
        case UInt8(ascii: "["):
            depth += 1
            if depth > Self.maxDepth { throw JSONError(byteOffset: at, reason: "nested deeper than \(Self.maxDepth) levels") }
            at += 1
            var items: [JSONValue] = []
            skipSpace()
            if peek == UInt8(ascii: "]") {
                at += 1
            } else {
                while true {
                    skipSpace()
                    items.append(try value().value)
                    skipSpace()
                    if peek == UInt8(ascii: ",") { at += 1; continue }
                    if peek == UInt8(ascii: "]") { at += 1; break }
                    throw JSONError(byteOffset: at, reason: "expected ',' or ']' in an array, found \(describe(at))")
                }
            }
            depth -= 1
            return JSONNode(value: .array(items), range: start..<at)
        case UInt8(ascii: "\""):
            return JSONNode(value: .string(try string()), range: start..<at)
        case UInt8(ascii: "t"): try literal("true"); return JSONNode(value: .bool(true), range: start..<at)
        case UInt8(ascii: "f"): try literal("false"); return JSONNode(value: .bool(false), range: start..<at)
        case UInt8(ascii: "n"): try literal("null"); return JSONNode(value: .null, range: start..<at)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return JSONNode(value: .number(try number()), range: start..<at)
        default:
            throw JSONError(byteOffset: at, reason: "expected a value, found \(describe(at))")
        }
    }

    private mutating func objectBody(_ member: (String, JSONNode) throws(JSONError) -> Void) throws(JSONError) {
        depth += 1
        if depth > Self.maxDepth { throw JSONError(byteOffset: at, reason: "nested deeper than \(Self.maxDepth) levels") }
        at += 1
        skipSpace()
        if peek == UInt8(ascii: "}") {
            at += 1
            depth -= 1
            return
        }
        var seen = Set<String>()
        while true {
            skipSpace()
            guard peek == UInt8(ascii: "\"") else { throw JSONError(byteOffset: at, reason: "expected a member name in quotes, found \(describe(at))") }
            let nameAt = at
            let name = try string()
            if !seen.insert(name).inserted { throw JSONError(byteOffset: nameAt, reason: "member \"\(name)\" appears twice") }
            skipSpace()
            guard peek == UInt8(ascii: ":") else { throw JSONError(byteOffset: at, reason: "expected ':' after a member name, found \(describe(at))") }
            at += 1
            skipSpace()
            try member(name, try value())
            skipSpace()
            if peek == UInt8(ascii: ",") { at += 1; continue }
            if peek == UInt8(ascii: "}") { at += 1; break }
            throw JSONError(byteOffset: at, reason: "expected ',' or '}' in an object, found \(describe(at))")
        }
        depth -= 1
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        let w = word.utf8Start
        guard at + n <= bytes.count, (0..<n).allSatisfy({ bytes[at + $0] == w[$0] }) else {
            throw JSONError(byteOffset: at, reason: "expected a value, found \(describe(at))")
        }
        at += n
    }

    private mutating func number() throws(JSONError) -> String {
        let start = at
        func digits(_ r: inout JSONReader) -> Int {
            var n = 0
            while let b = r.peek, b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") { r.at += 1; n += 1 }
            return n
        }
        if peek == UInt8(ascii: "-") { at += 1 }
        if peek == UInt8(ascii: "0") {
            at += 1
        } else if digits(&self) == 0 {
            throw JSONError(byteOffset: at, reason: "expected a digit, found \(describe(at))")
        }
        if peek == UInt8(ascii: ".") {
            at += 1
            if digits(&self) == 0 { throw JSONError(byteOffset: at, reason: "expected a digit after '.', found \(describe(at))") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            if digits(&self) == 0 { throw JSONError(byteOffset: at, reason: "expected a digit in the exponent, found \(describe(at))") }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let b = peek else { throw JSONError(byteOffset: at, reason: "unterminated \\u escape") }
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw JSONError(byteOffset: at, reason: "expected a hex digit in a \\u escape, found \(describe(at))")
            }
            v = v << 4 | UInt32(d)
            at += 1
        }
        return v
    }

    private mutating func string() throws(JSONError) -> String {
        let open = at
        at += 1
        let start = at
        // Fast path: no escapes.
        while at < bytes.count {
            let b = bytes[at]
            if b == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<at])
                at += 1
                guard let s = String(validating: raw, as: UTF8.self) else {
                    throw JSONError(byteOffset: start, reason: "the string is not valid UTF-8")
                }
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw JSONError(byteOffset: at, reason: "unescaped control character in a string") }
            at += 1
        }
        var out = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<at]))
        while true {
            guard let b = peek else { throw JSONError(byteOffset: open, reason: "unterminated string") }
            at += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw JSONError(byteOffset: start, reason: "the string is not valid UTF-8")
                }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw JSONError(byteOffset: open, reason: "unterminated string") }
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    let escapeAt = at - 2
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard peek == UInt8(ascii: "\\"), at + 1 < bytes.count, bytes[at + 1] == UInt8(ascii: "u") else {
                            throw JSONError(byteOffset: escapeAt, reason: "a high surrogate escape without its low surrogate")
                        }
                        at += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw JSONError(byteOffset: escapeAt, reason: "invalid surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw JSONError(byteOffset: escapeAt, reason: "a lone surrogate escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw JSONError(byteOffset: at - 2, reason: "invalid escape \\\(Character(Unicode.Scalar(e)))")
                }
            default:
                if b < 0x20 { throw JSONError(byteOffset: at - 1, reason: "unescaped control character in a string") }
                out.append(b)
            }
        }
    }
}

/// Appends JSON text to a byte array; the writer side of the API's bodies.
struct JSONWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    /// Decimal digits written straight into the bytes: no `String` in between.
    mutating func int<T: BinaryInteger>(_ v: T) {
        if let small = Int64(exactly: v) {
            int64(small)
        } else {
            raw(String(v))
        }
    }

    private mutating func int64(_ v: Int64) {
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
            if v == .min {
                raw("9223372036854775808")
                return
            }
        }
        var magnitude = v.magnitude
        if magnitude < 10 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for the 20 digits of a UInt64
        withUnsafeMutableBytes(of: &digits) { buffer in
            var end = buffer.count
            while magnitude > 0 {
                end -= 1
                buffer[end] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[end...]))
        }
    }

    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            // Most strings (ids, topics, names) need no escaping: copy them whole.
            if !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                bytes.append(contentsOf: utf8)
                return
            }
            for b in utf8 {
                switch b {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                case 0..<0x20:
                    raw("\\u00")
                    bytes.append(Self.hex[Int(b >> 4)])
                    bytes.append(Self.hex[Int(b & 0xF)])
                default: bytes.append(b)
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// `"name":` — `first` false puts a comma before it.
    mutating func key(_ name: String, first: inout Bool) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func value(_ v: JSONValue) {
        switch v {
        case .null: raw("null")
        case .bool(let b): raw(b ? "true" : "false")
        case .number(let n): raw(n)
        case .string(let s): string(s)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                value(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            var first = true
            for m in members {
                key(m.name, first: &first)
                value(m.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }
}
