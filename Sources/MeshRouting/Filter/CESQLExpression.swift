/// A compiled CESQL v1 expression, extended with `data.<path>` access into JSON payloads.
///
/// Parse once at load (`CESQLExpression(_:)` throws `CESQLParseError` with a character offset),
/// evaluate per event. Evaluation is total: it always returns a value plus the errors it met, as
/// the spec requires; a filter matches only when the value is `true` and there were no errors.
public struct CESQLExpression: Sendable, CustomStringConvertible {
    public let text: String
    let root: CESQLNode
    /// True when the expression reads `data`, so the payload is scanned only when it must be.
    public let touchesData: Bool

    public init(_ text: String) throws(CESQLParseError) {
        var parser = CESQLParser(text)
        root = try parser.parseExpression()
        self.text = text
        touchesData = root.touchesData
        try CESQLTypeCheck.check(root)
    }

    public var description: String { text }

    /// The statically known result type, nil when it depends on a JSON payload.
    public var resultType: CESQLType? { CESQLTypeCheck.staticType(root) }

    public func evaluate(_ event: CESQLInput) -> (value: CESQLValue, errors: [CESQLEvaluationError]) {
        var context = CESQLEvaluator(input: event)
        let value = context.eval(root)
        return (value, context.errors)
    }

    /// A filter passes only on `true` with no errors (CESQL v1 §1.2).
    public func matches(_ event: CESQLInput) -> FilterResult {
        var context = CESQLEvaluator(input: event)
        let value = context.eval(root)
        if !context.errors.isEmpty { return .error(context.errors) }
        return value == .boolean(true) ? .matched : .notMatched(value)
    }
}

public enum FilterResult: Sendable, Equatable {
    case matched
    case notMatched(CESQLValue)
    case error([CESQLEvaluationError])

    public var isMatch: Bool { self == .matched }
}

public enum CESQLBinaryOp: String, Sendable {
    case and = "AND", or = "OR", xor = "XOR"
    case eq = "=", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    case add = "+", sub = "-", mul = "*", div = "/", mod = "%"
}

public enum CESQLFunction: String, Sendable, CaseIterable {
    case length = "LENGTH", concat = "CONCAT", concatWS = "CONCAT_WS", lower = "LOWER", upper = "UPPER"
    case trim = "TRIM", left = "LEFT", right = "RIGHT", substring = "SUBSTRING", abs = "ABS"
    case int = "INT", bool = "BOOL", string = "STRING", isBool = "IS_BOOL", isInt = "IS_INT"

    /// Accepted argument counts; nil upper bound means variadic.
    var arity: (min: Int, max: Int?) {
        switch self {
        case .concat: (0, nil)
        case .concatWS: (1, nil)
        case .left, .right: (2, 2)
        case .substring: (2, 3)
        default: (1, 1)
        }
    }

    var parameterTypes: [CESQLType] {
        switch self {
        case .length, .lower, .upper, .trim, .isBool, .isInt: [.string]
        case .concat, .concatWS: [.string]
        case .left, .right: [.string, .integer]
        case .substring: [.string, .integer, .integer]
        case .abs: [.integer]
        case .int, .bool, .string: []  // any
        }
    }

    func parameterType(_ i: Int) -> CESQLType? {
        let types = parameterTypes
        if types.isEmpty { return nil }
        return i < types.count ? types[i] : types.last
    }

    var returnType: CESQLType {
        switch self {
        case .length, .abs, .int: .integer
        case .bool, .isBool, .isInt: .boolean
        default: .string
        }
    }
}

/// One step of a `data.<path>`: an object key or an array index.
public enum DataPathStep: Hashable, Sendable {
    case key(String)
    case index(Int)
}

indirect enum CESQLNode: Sendable {
    case literal(CESQLValue)
    case attribute(String, offset: Int)
    case data([DataPathStep], text: String, offset: Int)
    case exists(String)
    case existsData([DataPathStep])
    case not(CESQLNode, offset: Int)
    case negate(CESQLNode, offset: Int)
    case binary(CESQLBinaryOp, CESQLNode, CESQLNode, offset: Int)
    case like(CESQLNode, LikePattern, negated: Bool, offset: Int)
    case inSet(CESQLNode, [CESQLNode], negated: Bool, offset: Int)
    case call(CESQLFunction, [CESQLNode], offset: Int)

    var touchesData: Bool {
        switch self {
        case .literal, .attribute, .exists: false
        case .data, .existsData: true
        case .not(let e, _), .negate(let e, _): e.touchesData
        case .binary(_, let l, let r, _): l.touchesData || r.touchesData
        case .like(let e, _, _, _): e.touchesData
        case .inSet(let e, let set, _, _): e.touchesData || set.contains { $0.touchesData }
        case .call(_, let args, _): args.contains { $0.touchesData }
        }
    }
}

/// A compiled `LIKE` pattern: `%` any run, `_` one character, `\` escapes either.
struct LikePattern: Sendable {
    enum Piece: Sendable, Equatable { case literal(Character), one, any }
    let pieces: [Piece]
    /// When the pattern has no wildcard, a plain comparison does.
    let exact: String?

    init(_ text: String) {
        var pieces: [Piece] = []
        var escaped = false
        for c in text {
            if escaped {
                pieces.append(.literal(c))
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "%" {
                if pieces.last != .any { pieces.append(.any) }
            } else if c == "_" {
                pieces.append(.one)
            } else {
                pieces.append(.literal(c))
            }
        }
        if escaped { pieces.append(.literal("\\")) }
        self.pieces = pieces
        if pieces.allSatisfy({ if case .literal = $0 { true } else { false } }) {
            exact = String(pieces.map { if case .literal(let c) = $0 { c } else { " " } })
        } else {
            exact = nil
        }
    }

    func matches(_ value: String) -> Bool {
        if let exact { return value == exact }
        let s = Array(value)
        var i = 0, p = 0
        var star = -1, mark = 0
        while i < s.count {
            if p < pieces.count {
                switch pieces[p] {
                case .any:
                    star = p
                    mark = i
                    p += 1
                    continue
                case .one:
                    i += 1
                    p += 1
                    continue
                case .literal(let c) where c == s[i]:
                    i += 1
                    p += 1
                    continue
                default:
                    break
                }
            }
            guard star >= 0 else { return false }
            p = star + 1
            mark += 1
            i = mark
        }
        while p < pieces.count, pieces[p] == .any { p += 1 }
        return p == pieces.count
    }
}

/// Load-time checks the spec allows: result type of a filter, literal casts that can never work.
enum CESQLTypeCheck {
    static func staticType(_ node: CESQLNode) -> CESQLType? {
        switch node {
        case .literal(let v): v.type
        case .attribute: .string
        case .data: nil
        case .exists, .existsData, .not, .like, .inSet: .boolean
        case .negate: .integer
        case .binary(let op, _, _, _):
            switch op {
            case .and, .or, .xor, .eq, .ne, .lt, .le, .gt, .ge: .boolean
            case .add, .sub, .mul, .div, .mod: .integer
            }
        case .call(let f, _, _): f.returnType
        }
    }

    static func check(_ node: CESQLNode) throws(CESQLParseError) {
        switch node {
        case .literal, .attribute, .data, .exists, .existsData: break
        case .not(let e, let at):
            try requireCastable(e, to: .boolean, at: at)
            try check(e)
        case .negate(let e, let at):
            try requireCastable(e, to: .integer, at: at)
            try check(e)
        case .binary(let op, let l, let r, let at):
            try check(l)
            try check(r)
            switch op {
            case .and, .or, .xor:
                try requireCastable(l, to: .boolean, at: at)
                try requireCastable(r, to: .boolean, at: at)
            case .lt, .le, .gt, .ge, .add, .sub, .mul, .div, .mod:
                try requireCastable(l, to: .integer, at: at)
                try requireCastable(r, to: .integer, at: at)
            case .eq, .ne:
                if let t = staticType(r) { try requireCastable(l, to: t, at: at) }
            }
        case .like(let e, _, _, _):
            try check(e)
        case .inSet(let e, let set, _, let at):
            try check(e)
            for item in set {
                try check(item)
                if let t = staticType(e) { try requireCastable(item, to: t, at: at) }
            }
        case .call(let f, let args, let at):
            for (i, a) in args.enumerated() {
                try check(a)
                if let t = f.parameterType(i) { try requireCastable(a, to: t, at: at) }
            }
        }
    }

    /// Only literals are known at load; anything else may cast at run time.
    private static func requireCastable(_ node: CESQLNode, to type: CESQLType, at offset: Int) throws(CESQLParseError) {
        guard case .literal(let v) = node else { return }
        if CESQLCast.cast(v, to: type) == nil {
            throw CESQLParseError("the literal \(v) can never be cast to \(type)", offset: offset)
        }
    }
}
