/// Recursive-descent parser for CESQL v1. Precedence follows the spec's grammar, tightest first:
/// unary `NOT`/`-`; `LIKE`/`IN` (postfix); `*` `/` `%`; `+` `-`; `=` `!=` `<>`; `<` `<=` `>` `>=`;
/// then `AND`/`OR`/`XOR`, left to right. Keywords are case-insensitive. Offsets count Unicode scalars,
/// as YAML columns do, so errors can be placed inside a route file.
///
/// Depth is bounded, because parsing, type checking, evaluation and freeing the tree all recurse:
/// at most `maxNesting` parentheses, unary operators, function calls and IN lists inside one
/// another, and at most `maxDepth` levels in the tree (a chain of 500 `OR`s is 500 levels).
struct CESQLParser {
    static let maxNesting = 64
    static let maxDepth = 1000

    enum Token: Equatable {
        case identifier(String)  // as written
        case string(String)
        case integer(String)
        case symbol(String)
        case dataPath([DataPathStep], String)
        case end
    }

    private let scalars: [Unicode.Scalar]
    private var pos = 0
    private var token: Token = .end
    private var tokenStart = 0
    /// How deeply the parse functions have recursed (parentheses, NOT, -, calls, IN lists).
    private var nesting = 0
    /// The tree depth of the node the last parse function returned.
    private var depth = 0

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
    }

    mutating func parseExpression() throws(CESQLParseError) -> CESQLNode {
        try advance()
        if token == .end { throw CESQLParseError("expected an expression, found nothing", offset: 0) }
        let node = try parseLogic()
        if token != .end { throw CESQLParseError("unexpected \(describe(token)) after a complete expression", offset: tokenStart) }
        return node
    }

    /// Enters one more level of recursion, or throws when the expression nests too deeply.
    private mutating func enter(at offset: Int) throws(CESQLParseError) {
        nesting += 1
        if nesting > Self.maxNesting {
            throw CESQLParseError("the expression nests more than \(Self.maxNesting) levels deep (parentheses, NOT, -, function calls, IN lists)", offset: offset)
        }
    }

    /// The depth of a node built over children of depth `childDepth`, checked against the limit.
    private mutating func built(over childDepth: Int, at offset: Int) throws(CESQLParseError) {
        depth = childDepth + 1
        if depth > Self.maxDepth {
            throw CESQLParseError("the expression is more than \(Self.maxDepth) operators deep", offset: offset)
        }
    }

    // MARK: precedence levels

    private mutating func parseLogic() throws(CESQLParseError) -> CESQLNode {
        var left = try parseOrdering()
        var leftDepth = depth
        while true {
            let op: CESQLBinaryOp
            if isKeyword("AND") { op = .and } else if isKeyword("OR") { op = .or } else if isKeyword("XOR") { op = .xor } else { depth = leftDepth; return left }
            let at = tokenStart
            try advance()
            let right = try parseOrdering()
            try built(over: max(leftDepth, depth), at: at)
            leftDepth = depth
            left = .binary(op, left, right, offset: at)
        }
    }

    private mutating func parseOrdering() throws(CESQLParseError) -> CESQLNode {
        var left = try parseEquality()
        var leftDepth = depth
        while case .symbol(let s) = token, let op = [("<", CESQLBinaryOp.lt), ("<=", .le), (">", .gt), (">=", .ge)].first(where: { $0.0 == s })?.1 {
            let at = tokenStart
            try advance()
            let right = try parseEquality()
            try built(over: max(leftDepth, depth), at: at)
            leftDepth = depth
            left = .binary(op, left, right, offset: at)
        }
        depth = leftDepth
        return left
    }

    private mutating func parseEquality() throws(CESQLParseError) -> CESQLNode {
        var left = try parseAdditive()
        var leftDepth = depth
        while case .symbol(let s) = token, s == "=" || s == "!=" || s == "<>" {
            let at = tokenStart
            try advance()
            let right = try parseAdditive()
            try built(over: max(leftDepth, depth), at: at)
            leftDepth = depth
            left = .binary(s == "=" ? .eq : .ne, left, right, offset: at)
        }
        depth = leftDepth
        return left
    }

    private mutating func parseAdditive() throws(CESQLParseError) -> CESQLNode {
        var left = try parseMultiplicative()
        var leftDepth = depth
        while case .symbol(let s) = token, s == "+" || s == "-" {
            let at = tokenStart
            try advance()
            let right = try parseMultiplicative()
            try built(over: max(leftDepth, depth), at: at)
            leftDepth = depth
            left = .binary(s == "+" ? .add : .sub, left, right, offset: at)
        }
        depth = leftDepth
        return left
    }

    private mutating func parseMultiplicative() throws(CESQLParseError) -> CESQLNode {
        var left = try parsePostfix()
        var leftDepth = depth
        while case .symbol(let s) = token, s == "*" || s == "/" || s == "%" {
            let at = tokenStart
            try advance()
            let right = try parsePostfix()
            try built(over: max(leftDepth, depth), at: at)
            leftDepth = depth
            left = .binary(s == "*" ? .mul : s == "/" ? .div : .mod, left, right, offset: at)
        }
        depth = leftDepth
        return left
    }

    private mutating func parsePostfix() throws(CESQLParseError) -> CESQLNode {
        var left = try parseUnary()
        var leftDepth = depth
        while true {
            let at = tokenStart
            var negated = false
            if isKeyword("NOT") {
                // Only `NOT LIKE` / `NOT IN` may follow an operand.
                try advance()
                negated = true
                guard isKeyword("LIKE") || isKeyword("IN") else {
                    throw CESQLParseError("expected LIKE or IN after NOT, found \(describe(token))", offset: tokenStart)
                }
            }
            if isKeyword("LIKE") {
                try advance()
                guard case .string(let pattern) = token else {
                    throw CESQLParseError("LIKE needs a string literal pattern, found \(describe(token))", offset: tokenStart)
                }
                try advance()
                try built(over: leftDepth, at: at)
                leftDepth = depth
                left = .like(left, LikePattern(pattern), negated: negated, offset: at)
            } else if isKeyword("IN") {
                try advance()
                guard token == .symbol("(") else {
                    throw CESQLParseError("IN needs a parenthesised list, found \(describe(token))", offset: tokenStart)
                }
                try enter(at: at)
                try advance()
                var items: [CESQLNode] = []
                var itemsDepth = leftDepth
                while true {
                    items.append(try parseLogic())
                    itemsDepth = max(itemsDepth, depth)
                    if token == .symbol(",") { try advance(); continue }
                    guard token == .symbol(")") else {
                        throw CESQLParseError("expected ',' or ')' in the IN list, found \(describe(token))", offset: tokenStart)
                    }
                    try advance()
                    break
                }
                nesting -= 1
                try built(over: itemsDepth, at: at)
                leftDepth = depth
                left = .inSet(left, items, negated: negated, offset: at)
            } else {
                depth = leftDepth
                return left
            }
        }
    }

    private mutating func parseUnary() throws(CESQLParseError) -> CESQLNode {
        let at = tokenStart
        if isKeyword("NOT") {
            try enter(at: at)
            try advance()
            let operand = try parseUnary()
            nesting -= 1
            try built(over: depth, at: at)
            return .not(operand, offset: at)
        }
        if token == .symbol("-") {
            try advance()
            // Fold a negative literal, so that -2147483648 is the smallest integer, not an overflow.
            if case .integer(let digits) = token {
                guard let value = Int32("-" + digits) else {
                    throw CESQLParseError("-\(digits) is not a 32-bit integer", offset: at)
                }
                try advance()
                depth = 1
                return .literal(.integer(value))
            }
            try enter(at: at)
            let operand = try parseUnary()
            nesting -= 1
            try built(over: depth, at: at)
            return .negate(operand, offset: at)
        }
        if isKeyword("EXISTS") {
            try advance()
            switch token {
            case .identifier(let name) where Self.isAttributeName(name):
                try advance()
                depth = 1
                return name == "data" ? .existsData([]) : .exists(name)
            case .dataPath(let steps, _):
                try advance()
                depth = 1
                return .existsData(steps)
            default:
                throw CESQLParseError("EXISTS needs an attribute name, found \(describe(token))", offset: tokenStart)
            }
        }
        return try parsePrimary()
    }

    private mutating func parsePrimary() throws(CESQLParseError) -> CESQLNode {
        let at = tokenStart
        depth = 1  // a leaf; the composite cases below set their own
        switch token {
        case .string(let s):
            try advance()
            return .literal(.string(s))
        case .integer(let digits):
            guard let value = Int32(digits) else {
                throw CESQLParseError("\(digits) is not a 32-bit integer (−2147483648 to 2147483647)", offset: at)
            }
            try advance()
            return .literal(.integer(value))
        case .dataPath(let steps, let text):
            try advance()
            return .data(steps, text: text, offset: at)
        case .symbol("("):
            try enter(at: at)
            try advance()
            let inner = try parseLogic()
            guard token == .symbol(")") else { throw CESQLParseError("expected ')', found \(describe(token))", offset: tokenStart) }
            try advance()
            nesting -= 1
            return inner
        case .identifier(let name):
            let upper = name.uppercased()
            if upper == "TRUE" || upper == "FALSE" {
                try advance()
                return .literal(.boolean(upper == "TRUE"))
            }
            try advance()
            if token == .symbol("(") {
                guard let function = CESQLFunction(rawValue: upper) else {
                    let known = CESQLFunction.allCases.map(\.rawValue).joined(separator: ", ")
                    throw CESQLParseError("unknown function \(name); the built-in functions are \(known)", offset: at)
                }
                try enter(at: at)
                try advance()
                var args: [CESQLNode] = []
                var argsDepth = 0
                if token != .symbol(")") {
                    while true {
                        args.append(try parseLogic())
                        argsDepth = max(argsDepth, depth)
                        if token == .symbol(",") { try advance(); continue }
                        break
                    }
                }
                guard token == .symbol(")") else {
                    throw CESQLParseError("expected ',' or ')' in the arguments of \(upper), found \(describe(token))", offset: tokenStart)
                }
                try advance()
                nesting -= 1
                try built(over: argsDepth, at: at)
                let (lo, hi) = function.arity
                if args.count < lo || (hi.map { args.count > $0 } ?? false) {
                    let expected = hi == nil ? "at least \(lo)" : lo == hi ? "\(lo)" : "\(lo) or \(hi!)"
                    throw CESQLParseError("\(upper) takes \(expected) argument(s), not \(args.count)", offset: at)
                }
                return .call(function, args, offset: at)
            }
            if ["AND", "OR", "XOR", "NOT", "LIKE", "IN", "EXISTS"].contains(upper) {
                throw CESQLParseError("expected a value, found the keyword \(upper)", offset: at)
            }
            guard Self.isAttributeName(name) else {
                throw CESQLParseError("\(name) is not an attribute name (lowercase a-z and 0-9 only)", offset: at)
            }
            if name == "data" { return .data([], text: "data", offset: at) }
            return .attribute(name, offset: at)
        default:
            throw CESQLParseError("expected a value, found \(describe(token))", offset: at)
        }
    }

    // MARK: lexer

    private func isKeyword(_ k: String) -> Bool {
        if case .identifier(let name) = token { return name.uppercased() == k }
        return false
    }

    static func isAttributeName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }

    private func describe(_ t: Token) -> String {
        switch t {
        case .identifier(let s): "'\(s)'"
        case .string(let s): "the string '\(s)'"
        case .integer(let s): "the number \(s)"
        case .symbol(let s): "'\(s)'"
        case .dataPath(_, let text): "'\(text)'"
        case .end: "the end of the expression"
        }
    }

    private static func isIdentStart(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || c == "_"
    }

    private static func isIdentPart(_ c: Unicode.Scalar) -> Bool {
        isIdentStart(c) || ("0"..."9").contains(c)
    }

    private mutating func advance() throws(CESQLParseError) {
        while pos < scalars.count, [" ", "\t", "\n", "\r"].contains(scalars[pos]) { pos += 1 }
        tokenStart = pos
        guard pos < scalars.count else { token = .end; return }
        let c = scalars[pos]
        if c == "'" || c == "\"" {
            pos += 1
            var out = String.UnicodeScalarView()
            while true {
                guard pos < scalars.count else {
                    throw CESQLParseError("unterminated string literal (missing \(c))", offset: tokenStart)
                }
                let d = scalars[pos]
                if d == "\\", pos + 1 < scalars.count, scalars[pos + 1] == c {
                    out.append(scalars[pos + 1])
                    pos += 2
                    continue
                }
                pos += 1
                if d == c { break }
                out.append(d)
            }
            token = .string(String(out))
            return
        }
        if ("0"..."9").contains(c) {
            var digits = ""
            while pos < scalars.count, ("0"..."9").contains(scalars[pos]) { digits.unicodeScalars.append(scalars[pos]); pos += 1 }
            if pos < scalars.count, Self.isIdentStart(scalars[pos]) {
                throw CESQLParseError("a number cannot be followed directly by letters", offset: pos)
            }
            token = .integer(digits)
            return
        }
        if Self.isIdentStart(c) || ("0"..."9").contains(c) {
            var name = ""
            while pos < scalars.count, Self.isIdentPart(scalars[pos]) { name.unicodeScalars.append(scalars[pos]); pos += 1 }
            if name == "data", pos < scalars.count, scalars[pos] == "." || scalars[pos] == "[" {
                token = try lexDataPath()
                return
            }
            token = .identifier(name)
            return
        }
        let two = pos + 1 < scalars.count ? String(String.UnicodeScalarView([c, scalars[pos + 1]])) : ""
        if ["!=", "<>", "<=", ">="].contains(two) {
            pos += 2
            token = .symbol(two)
            return
        }
        if "=<>+-*/%(),".unicodeScalars.contains(c) {
            pos += 1
            token = .symbol(String(c))
            return
        }
        throw CESQLParseError("unexpected character '\(c)'", offset: pos)
    }

    /// `data` then any of `.key` (letters, digits, `_`) and `[index]`.
    private mutating func lexDataPath() throws(CESQLParseError) -> Token {
        var steps: [DataPathStep] = []
        while pos < scalars.count {
            if scalars[pos] == "." {
                pos += 1
                var key = ""
                while pos < scalars.count, Self.isIdentPart(scalars[pos]) { key.unicodeScalars.append(scalars[pos]); pos += 1 }
                guard !key.isEmpty else { throw CESQLParseError("expected a field name after '.' in a data path", offset: pos) }
                steps.append(.key(key))
            } else if scalars[pos] == "[" {
                pos += 1
                var digits = ""
                while pos < scalars.count, ("0"..."9").contains(scalars[pos]) { digits.unicodeScalars.append(scalars[pos]); pos += 1 }
                guard !digits.isEmpty, pos < scalars.count, scalars[pos] == "]", let index = Int(digits) else {
                    throw CESQLParseError("expected an array index like [0] in a data path", offset: pos)
                }
                pos += 1
                steps.append(.index(index))
            } else {
                break
            }
        }
        var text = String.UnicodeScalarView()
        text.append(contentsOf: scalars[tokenStart..<pos])
        return .dataPath(steps, String(text))
    }
}
