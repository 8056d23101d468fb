/// Finds one path in a JSON document by scanning its bytes, without building a tree: filters on
/// `data.<path>` touch a few fields of each payload, so skipping the rest is the fast way.
enum JSONPathScanner {
    enum Result: Equatable {
        case value(CESQLValue)
        case missing
        case notScalar(String)
        case invalidJSON
    }

    static func lookup(_ data: [UInt8], _ steps: [DataPathStep]) -> Result {
        data.withUnsafeBufferPointer { buf in
            var s = Scanner(b: buf, i: 0)
            s.skipSpace()
            guard s.i < buf.count else { return .invalidJSON }
            for step in steps {
                switch step {
                case .key(let key):
                    guard s.peek == UInt8(ascii: "{") else { return s.validValueAhead() ? .missing : .invalidJSON }
                    switch s.enterObject(key: key) {
                    case .found: continue
                    case .absent: return .missing
                    case .invalid: return .invalidJSON
                    }
                case .index(let index):
                    guard s.peek == UInt8(ascii: "[") else { return s.validValueAhead() ? .missing : .invalidJSON }
                    switch s.enterArray(index: index) {
                    case .found: continue
                    case .absent: return .missing
                    case .invalid: return .invalidJSON
                    }
                }
            }
            return s.scalar()
        }
    }

    enum Step { case found, absent, invalid }

    struct Scanner {
        let b: UnsafeBufferPointer<UInt8>
        var i: Int

        var peek: UInt8 { i < b.count ? b[i] : 0 }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func validValueAhead() -> Bool {
            var copy = self
            return copy.skipValue()
        }

        mutating func enterObject(key: String) -> Step {
            i += 1
            skipSpace()
            if peek == UInt8(ascii: "}") { return .absent }
            while true {
                skipSpace()
                guard peek == UInt8(ascii: "\"") else { return .invalid }
                let start = i + 1
                guard let (end, escaped) = skipString() else { return .invalid }
                let matches: Bool
                if escaped {
                    matches = decodeString(start, end) == key
                } else {
                    matches = key.utf8.elementsEqual(UnsafeBufferPointer(rebasing: b[start..<end]))
                }
                skipSpace()
                guard peek == UInt8(ascii: ":") else { return .invalid }
                i += 1
                skipSpace()
                if matches { return i < b.count ? .found : .invalid }
                guard skipValue() else { return .invalid }
                skipSpace()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                if peek == UInt8(ascii: "}") { return .absent }
                return .invalid
            }
        }

        mutating func enterArray(index: Int) -> Step {
            i += 1
            skipSpace()
            if peek == UInt8(ascii: "]") { return .absent }
            var n = 0
            while true {
                skipSpace()
                if n == index { return i < b.count ? .found : .invalid }
                guard skipValue() else { return .invalid }
                n += 1
                skipSpace()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                if peek == UInt8(ascii: "]") { return .absent }
                return .invalid
            }
        }

        /// At a `"`: moves past the closing quote; returns the content's end and whether it has escapes.
        mutating func skipString() -> (Int, Bool)? {
            i += 1
            var escaped = false
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") { let end = i; i += 1; return (end, escaped) }
                if c == UInt8(ascii: "\\") { escaped = true; i += 2; continue }
                if c < 0x20 { return nil }
                i += 1
            }
            return nil
        }

        mutating func skipValue() -> Bool {
            skipSpace()
            guard i < b.count else { return false }
            switch b[i] {
            case UInt8(ascii: "\""):
                return skipString() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                // Skip nested containers by depth, stepping over strings.
                var depth = 0
                while i < b.count {
                    let c = b[i]
                    if c == UInt8(ascii: "\"") { guard skipString() != nil else { return false }; continue }
                    if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { depth += 1 }
                    if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    }
                    i += 1
                }
                return false
            default:
                let start = i
                while i < b.count {
                    let c = b[i]
                    if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") || c == UInt8(ascii: "]") || c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { break }
                    i += 1
                }
                guard i > start else { return false }
                let first = b[start]
                if first == UInt8(ascii: "-") || (first >= 48 && first <= 57) { return true }
                let word = UnsafeBufferPointer(rebasing: b[start..<i])
                return word.elementsEqual("true".utf8) || word.elementsEqual("false".utf8) || word.elementsEqual("null".utf8)
            }
        }

        func decodeString(_ start: Int, _ end: Int) -> String? {
            var out = String.UnicodeScalarView()
            var bytes: [UInt8] = []
            var j = start
            func flush() {
                if !bytes.isEmpty { out.append(contentsOf: String(decoding: bytes, as: UTF8.self).unicodeScalars); bytes.removeAll() }
            }
            while j < end {
                let c = b[j]
                if c != UInt8(ascii: "\\") { bytes.append(c); j += 1; continue }
                flush()
                guard j + 1 < end else { return nil }
                let e = b[j + 1]
                j += 2
                switch e {
                case UInt8(ascii: "n"): out.append("\n")
                case UInt8(ascii: "t"): out.append("\t")
                case UInt8(ascii: "r"): out.append("\r")
                case UInt8(ascii: "b"): out.append("\u{08}")
                case UInt8(ascii: "f"): out.append("\u{0C}")
                case UInt8(ascii: "u"):
                    guard j + 4 <= end, let v = UInt32(String(decoding: UnsafeBufferPointer(rebasing: b[j..<j + 4]), as: UTF8.self), radix: 16) else { return nil }
                    j += 4
                    if (0xD800..<0xDC00).contains(v), j + 6 <= end, b[j] == UInt8(ascii: "\\"), b[j + 1] == UInt8(ascii: "u"),
                       let lo = UInt32(String(decoding: UnsafeBufferPointer(rebasing: b[j + 2..<j + 6]), as: UTF8.self), radix: 16),
                       (0xDC00..<0xE000).contains(lo) {
                        j += 6
                        out.append(Unicode.Scalar(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)) ?? "\u{FFFD}")
                    } else {
                        out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                    }
                default: out.append(Unicode.Scalar(e))
                }
            }
            flush()
            return String(out)
        }

        /// The value at the cursor as a CESQL value: strings, integers that fit 32 bits, booleans.
        /// Other numbers keep their JSON text as a string, so comparing them as integers is a cast error.
        mutating func scalar() -> Result {
            skipSpace()
            guard i < b.count else { return .invalidJSON }
            let start = i
            switch b[i] {
            case UInt8(ascii: "\""):
                guard let (end, escaped) = skipString() else { return .invalidJSON }
                if escaped {
                    guard let s = decodeString(start + 1, end) else { return .invalidJSON }
                    return .value(.string(s))
                }
                return .value(.string(String(decoding: UnsafeBufferPointer(rebasing: b[start + 1..<end]), as: UTF8.self)))
            case UInt8(ascii: "{"): return .notScalar("an object")
            case UInt8(ascii: "["): return .notScalar("an array")
            default:
                guard skipValue() else { return .invalidJSON }
                let text = UnsafeBufferPointer(rebasing: b[start..<i])
                if text.elementsEqual("true".utf8) { return .value(.boolean(true)) }
                if text.elementsEqual("false".utf8) { return .value(.boolean(false)) }
                if text.elementsEqual("null".utf8) { return .missing }
                var value: Int64 = 0
                var negative = false
                var k = 0
                if text.first == UInt8(ascii: "-") { negative = true; k = 1 }
                var integral = k < text.count && text.count - k <= 11
                while integral && k < text.count {
                    let d = text[k]
                    if d < 48 || d > 57 { integral = false; break }
                    value = value * 10 + Int64(d - 48)
                    k += 1
                }
                if integral, let v = Int32(exactly: negative ? -value : value) { return .value(.integer(v)) }
                let s = String(decoding: text, as: UTF8.self)
                guard let first = s.first, first == "-" || first.isNumber else { return .invalidJSON }
                return .value(.string(s))
            }
        }
    }
}
