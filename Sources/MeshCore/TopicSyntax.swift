/// The one validator behind `Topic` and `TopicPattern`, working on UTF-8 bytes so that the common
/// all-ASCII case never decodes a scalar.
enum TopicSyntax {
    static let slash = UInt8(ascii: "/")
    static let plus = UInt8(ascii: "+")
    static let hash = UInt8(ascii: "#")
    static let maxBytes = 255

    struct Violation: Sendable {
        var reason: String
        var level: Int?
        var byteOffset: Int?
    }

    /// Returns the first rule the bytes break, or nil. `wildcards` admits `+` and `#` as whole levels.
    static func check(_ bytes: UnsafeBufferPointer<UInt8>, wildcards: Bool) -> Violation? {
        let noun = wildcards ? "a topic pattern" : "a topic"
        guard !bytes.isEmpty, bytes.count <= maxBytes else {
            return Violation(reason: "\(noun) is 1 to \(maxBytes) bytes, this one is \(bytes.count)")
        }
        let end = bytes.count
        var level = 1
        var levelStart = 0
        var i = 0
        while i < end {
            let b = bytes[i]
            if b == slash {
                if i == levelStart {
                    return Violation(reason: "level \(level) is empty (byte \(i))", level: level, byteOffset: i)
                }
                level += 1
                levelStart = i + 1
                i += 1
                continue
            }
            if b < 0x80 {
                if b == plus || b == hash {
                    let char = b == plus ? "+" : "#"
                    guard wildcards else {
                        return Violation(
                            reason: "level \(level) contains \"\(char)\" (byte \(i)); wildcards belong in patterns, not topics",
                            level: level, byteOffset: i)
                    }
                    let levelEnds = i + 1 == end || bytes[i + 1] == slash
                    guard i == levelStart, levelEnds else {
                        return Violation(
                            reason: "level \(level) mixes \"\(char)\" with other characters (byte \(i)); a wildcard must be a whole level",
                            level: level, byteOffset: i)
                    }
                    if b == hash, i + 1 != end {
                        return Violation(
                            reason: "level \(level) is \"#\" (byte \(i)) but \"#\" is only allowed as the last level",
                            level: level, byteOffset: i)
                    }
                } else if b <= 0x20 || b == 0x7F {
                    return forbidden(Unicode.Scalar(b), level: level, at: i)
                }
                i += 1
                continue
            }
            // Multi-byte scalar. Callers hand us valid UTF-8 (a Swift String, or bytes the codec has
            // already validated), so the lead byte gives the length.
            let length = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2
            guard i + length <= end else {
                return Violation(reason: "invalid UTF-8 at byte \(i)", level: level, byteOffset: i)
            }
            var value = UInt32(b) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
            for k in 1..<length { value = value << 6 | (UInt32(bytes[i + k]) & 0x3F) }
            if let scalar = Unicode.Scalar(value),
               scalar.properties.isWhitespace || scalar.properties.generalCategory == .control {
                return forbidden(scalar, level: level, at: i)
            }
            i += length
        }
        if levelStart == end {
            return Violation(reason: "level \(level) is empty (byte \(end))", level: level, byteOffset: end)
        }
        return nil
    }

    private static func forbidden(_ scalar: Unicode.Scalar, level: Int, at offset: Int) -> Violation {
        let kind: String
        if scalar.value == 0 {
            kind = "NUL"
        } else if scalar.properties.isWhitespace {
            kind = "whitespace \(codePoint(scalar))"
        } else {
            kind = "control character \(codePoint(scalar))"
        }
        return Violation(reason: "level \(level) contains \(kind) (byte \(offset))", level: level, byteOffset: offset)
    }

    static func codePoint(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// The input in double quotes, with control and non-space whitespace characters escaped so an
    /// error message never carries raw newlines or NULs into a log line.
    static func quoted(_ input: String) -> String {
        var out = "\""
        for scalar in input.unicodeScalars {
            if scalar == "\"" || scalar == "\\" {
                out.unicodeScalars.append("\\")
                out.unicodeScalars.append(scalar)
            } else if scalar != " ",
                      scalar.properties.isWhitespace || scalar.properties.generalCategory == .control {
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Runs `body` over the string's UTF-8 without copying when the storage is native.
    @inline(__always)
    static func withUTF8<R>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = string.utf8.withContiguousStorageIfAvailable(body) { return r }
        var copy = string
        return copy.withUTF8(body)
    }
}
