import Foundation

/// A CESQL value: the language has three primitive types (CESQL v1 §3.1).
public enum CESQLValue: Hashable, Sendable, CustomStringConvertible {
    case string(String)
    case integer(Int32)
    case boolean(Bool)

    public var type: CESQLType {
        switch self {
        case .string: .string
        case .integer: .integer
        case .boolean: .boolean
        }
    }

    public var description: String {
        switch self {
        case .string(let s): "'\(s.replacingOccurrences(of: "'", with: "\\'"))'"
        case .integer(let i): String(i)
        case .boolean(let b): b ? "true" : "false"
        }
    }

    /// The zero value of each type, returned with an error (CESQL v1 §3.3).
    public static func zero(_ type: CESQLType) -> CESQLValue {
        switch type {
        case .string: .string("")
        case .integer: .integer(0)
        case .boolean: .boolean(false)
        }
    }
}

public enum CESQLType: String, Hashable, Sendable, CustomStringConvertible {
    case string = "String", integer = "Integer", boolean = "Boolean"
    public var description: String { rawValue }
}

/// An error met while evaluating an expression. The spec's error kinds: parse errors happen at
/// load; at run time there are missing attributes, casts and math.
public struct CESQLEvaluationError: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable {
        case missingAttribute = "missing attribute"
        case cast = "cast error"
        case math = "math error"
        case function = "function error"
        case data = "data error"
    }
    public let kind: Kind
    public let message: String
    /// 0-based character offset in the expression text.
    public let offset: Int

    public init(_ kind: Kind, _ message: String, offset: Int) {
        self.kind = kind
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(kind.rawValue) at character \(offset + 1): \(message)" }
}

/// A syntax or type error found when an expression is compiled, with its 0-based character offset.
public struct CESQLParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public init(_ message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }
    public var description: String { message }
}

/// Casts with the semantics of the built-in `INT`, `BOOL` and `STRING` functions (CESQL v1 §3.5.3).
enum CESQLCast {
    static func toInteger(_ v: CESQLValue) -> Int32? {
        switch v {
        case .integer(let i): return i
        case .boolean(let b): return b ? 1 : 0
        case .string(let s): return parseInteger(s)
        }
    }

    static func parseInteger(_ s: String) -> Int32? {
        var utf8 = Substring(s).utf8[...]
        var negative = false
        if let first = utf8.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            utf8 = utf8.dropFirst()
        }
        guard !utf8.isEmpty, utf8.count <= 11 else { return nil }
        var value: Int64 = 0
        for b in utf8 {
            guard b >= 48 && b <= 57 else { return nil }
            value = value * 10 + Int64(b - 48)
        }
        if negative { value = -value }
        return Int32(exactly: value)
    }

    static func toBoolean(_ v: CESQLValue) -> Bool? {
        switch v {
        case .boolean(let b): return b
        case .integer(let i): return i != 0
        case .string(let s): return parseBoolean(s)
        }
    }

    static func parseBoolean(_ s: String) -> Bool? {
        switch s.lowercased() {
        case "true": true
        case "false": false
        default: nil
        }
    }

    static func toString(_ v: CESQLValue) -> String {
        switch v {
        case .string(let s): s
        case .integer(let i): String(i)
        case .boolean(let b): b ? "true" : "false"
        }
    }

    static func cast(_ v: CESQLValue, to type: CESQLType) -> CESQLValue? {
        switch type {
        case .string: .string(toString(v))
        case .integer: toInteger(v).map(CESQLValue.integer)
        case .boolean: toBoolean(v).map(CESQLValue.boolean)
        }
    }
}
