import MeshCore

/// What an expression reads: an event's attributes, and its payload as JSON when asked.
public struct CESQLInput {
    public let event: Event
    public init(_ event: Event) { self.event = event }

    /// CloudEvents attributes and extensions by name; the mesh's `topic` too. Nil when absent.
    public func attribute(_ name: String) -> String? {
        switch name {
        case "id": event.id
        case "source": event.source
        case "type": event.type
        case "specversion": Event.specversion
        case "subject": event.subject
        case "time": event.time?.rfc3339
        case "datacontenttype": event.datacontenttype
        case "dataschema": event.dataschema
        case "topic": event.topic.name
        case "partitionkey": event.partitionKey
        case "traceparent": event.traceparent
        case "tracestate": event.tracestate
        default: event.extensions[name]
        }
    }
}

struct CESQLEvaluator {
    let input: CESQLInput
    var errors: [CESQLEvaluationError] = []

    init(input: CESQLInput) { self.input = input }

    private mutating func fail(_ kind: CESQLEvaluationError.Kind, _ message: String, _ offset: Int) {
        errors.append(CESQLEvaluationError(kind, message, offset: offset))
    }

    private mutating func cast(_ v: CESQLValue, to type: CESQLType, at offset: Int) -> CESQLValue {
        if v.type == type { return v }
        if let c = CESQLCast.cast(v, to: type) { return c }
        fail(.cast, "cannot cast \(v) to \(type)", offset)
        return .zero(type)
    }

    private mutating func int(_ node: CESQLNode, _ offset: Int) -> Int32 {
        if case .integer(let i) = cast(eval(node), to: .integer, at: offset) { return i }
        return 0
    }

    private mutating func bool(_ node: CESQLNode, _ offset: Int) -> Bool {
        if case .boolean(let b) = cast(eval(node), to: .boolean, at: offset) { return b }
        return false
    }

    private mutating func string(_ node: CESQLNode, _ offset: Int) -> String {
        CESQLCast.toString(eval(node))
    }

    mutating func eval(_ node: CESQLNode) -> CESQLValue {
        switch node {
        case .literal(let v):
            return v
        case .attribute(let name, let offset):
            if let value = input.attribute(name) { return .string(value) }
            fail(.missingAttribute, "the event has no attribute '\(name)'", offset)
            return .zero(.string)
        case .data(let steps, let text, let offset):
            switch JSONPathScanner.lookup(input.event.data, steps) {
            case .value(let v): return v
            case .missing:
                fail(.missingAttribute, "\(text) is not in the event's JSON data", offset)
            case .notScalar(let what):
                fail(.data, "\(text) is \(what), not a string, number or boolean", offset)
            case .invalidJSON:
                fail(.data, "the event's data is not valid JSON", offset)
            }
            return .zero(.string)
        case .exists(let name):
            return .boolean(input.attribute(name) != nil)
        case .existsData(let steps):
            switch JSONPathScanner.lookup(input.event.data, steps) {
            case .value, .notScalar: return .boolean(true)
            case .missing, .invalidJSON: return .boolean(false)
            }
        case .not(let e, let offset):
            return .boolean(!bool(e, offset))
        case .negate(let e, let offset):
            let v = int(e, offset)
            if v == Int32.min {
                fail(.math, "-(\(v)) overflows a 32-bit integer", offset)
                return .integer(v)
            }
            return .integer(-v)
        case .binary(let op, let l, let r, let offset):
            return binary(op, l, r, offset)
        case .like(let e, let pattern, let negated, _):
            let s = string(e, 0)
            return .boolean(pattern.matches(s) != negated)
        case .inSet(let e, let set, let negated, let offset):
            let x = eval(e)
            var found = false
            for item in set {
                let y = cast(eval(item), to: x.type, at: offset)
                if y == x { found = true; break }
            }
            return .boolean(found != negated)
        case .call(let f, let args, let offset):
            return call(f, args, offset)
        }
    }

    private mutating func binary(_ op: CESQLBinaryOp, _ l: CESQLNode, _ r: CESQLNode, _ offset: Int) -> CESQLValue {
        switch op {
        case .and:
            // Short-circuit: the right side is not evaluated when the left decides.
            if !bool(l, offset) { return .boolean(false) }
            return .boolean(bool(r, offset))
        case .or:
            if bool(l, offset) { return .boolean(true) }
            return .boolean(bool(r, offset))
        case .xor:
            let a = bool(l, offset)
            return .boolean(a != bool(r, offset))
        case .eq, .ne:
            // `=` is ambiguous: the right operand's type picks the overload, the left is cast to it.
            let x = eval(l)
            let y = eval(r)
            let equal = cast(x, to: y.type, at: offset) == y
            return .boolean(op == .eq ? equal : !equal)
        case .lt, .le, .gt, .ge:
            let a = int(l, offset), b = int(r, offset)
            switch op {
            case .lt: return .boolean(a < b)
            case .le: return .boolean(a <= b)
            case .gt: return .boolean(a > b)
            default: return .boolean(a >= b)
            }
        case .add, .sub, .mul, .div, .mod:
            let a = int(l, offset), b = int(r, offset)
            let result: (Int32, Bool)
            switch op {
            case .add: result = a.addingReportingOverflow(b)
            case .sub: result = a.subtractingReportingOverflow(b)
            case .mul: result = a.multipliedReportingOverflow(by: b)
            case .div:
                if b == 0 { fail(.math, "division by zero", offset); return .integer(0) }
                result = a.dividedReportingOverflow(by: b)
            default:
                if b == 0 { fail(.math, "modulo by zero", offset); return .integer(0) }
                result = a.remainderReportingOverflow(dividingBy: b)
            }
            if result.1 { fail(.math, "\(a) \(op.rawValue) \(b) overflows a 32-bit integer", offset) }
            return .integer(result.0)
        }
    }

    private mutating func call(_ f: CESQLFunction, _ args: [CESQLNode], _ offset: Int) -> CESQLValue {
        switch f {
        case .length:
            return .integer(Int32(clamping: string(args[0], offset).count))
        case .concat:
            var out = ""
            for a in args { out += string(a, offset) }
            return .string(out)
        case .concatWS:
            let sep = string(args[0], offset)
            var parts: [String] = []
            for a in args.dropFirst() { parts.append(string(a, offset)) }
            return .string(parts.joined(separator: sep))
        case .lower:
            return .string(string(args[0], offset).lowercased())
        case .upper:
            return .string(string(args[0], offset).uppercased())
        case .trim:
            let s = string(args[0], offset)
            let ws: Set<Character> = [" ", "\t", "\n", "\r", "\u{0B}", "\u{0C}"]
            return .string(String(s.drop(while: { ws.contains($0) }).reversed().drop(while: { ws.contains($0) }).reversed()))
        case .left, .right:
            let s = string(args[0], offset)
            let n = int(args[1], offset)
            if n < 0 {
                fail(.function, "\(f.rawValue) needs a length of 0 or more, not \(n)", offset)
                return .string(s)
            }
            if s.count <= Int(n) { return .string(s) }
            return .string(f == .left ? String(s.prefix(Int(n))) : String(s.suffix(Int(n))))
        case .substring:
            let s = Array(string(args[0], offset))
            let pos = Int(int(args[1], offset))
            let len: Int? = args.count == 3 ? Int(int(args[2], offset)) : nil
            if pos > s.count || pos < -s.count {
                fail(.function, "SUBSTRING position \(pos) is outside a string of \(s.count) characters", offset)
                return .string("")
            }
            if let len, len < 0 {
                fail(.function, "SUBSTRING length must not be negative, not \(len)", offset)
                return .string("")
            }
            if pos == 0 { return .string("") }
            let start = pos > 0 ? pos - 1 : s.count + pos
            let end = len.map { min(s.count, start + $0) } ?? s.count
            return .string(String(s[start..<max(start, end)]))
        case .abs:
            let v = int(args[0], offset)
            if v == Int32.min {
                fail(.math, "ABS(\(v)) overflows a 32-bit integer", offset)
                return .integer(Int32.max)
            }
            return .integer(Swift.abs(v))
        case .int:
            return cast(eval(args[0]), to: .integer, at: offset)
        case .bool:
            return cast(eval(args[0]), to: .boolean, at: offset)
        case .string:
            return .string(string(args[0], offset))
        case .isBool:
            return .boolean(CESQLCast.parseBoolean(string(args[0], offset)) != nil)
        case .isInt:
            return .boolean(CESQLCast.parseInteger(string(args[0], offset)) != nil)
        }
    }
}
