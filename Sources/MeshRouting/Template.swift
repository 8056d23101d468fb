import MeshCore

/// A string with placeholders filled per event: `{topic}` (the source topic), `{1}`, `{2}`… (the
/// wildcard captures of the route's `from` pattern, in order) and, in attribute values, any event
/// attribute by name (`{type}`, `{source}`, `{id}`…). `{{` and `}}` are literal braces.
public struct Template: Hashable, Sendable, CustomStringConvertible {
    public enum Piece: Hashable, Sendable {
        case literal(String)
        case topic
        case capture(Int)      // 1-based
        case attribute(String)
    }

    public let text: String
    public let pieces: [Piece]

    public struct ParseError: Error, Sendable {
        public let message: String
        /// 0-based offset (Unicode scalars) in the template text.
        public let offset: Int
    }

    /// `captures` is how many wildcards the `from` pattern has; `{n}` beyond it is an error.
    /// `attributes` allows `{name}` for event attributes (attribute values, not topics).
    public init(_ text: String, captures: Int, attributes: Bool) throws(ParseError) {
        let scalars = Array(text.unicodeScalars)
        var pieces: [Piece] = []
        var literal = String.UnicodeScalarView()
        var i = 0
        func flush() {
            if !literal.isEmpty { pieces.append(.literal(String(literal))); literal = String.UnicodeScalarView() }
        }
        while i < scalars.count {
            let c = scalars[i]
            if c == "{" {
                if i + 1 < scalars.count, scalars[i + 1] == "{" { literal.append("{"); i += 2; continue }
                guard let close = scalars[i...].firstIndex(of: "}") else {
                    throw ParseError(message: "unclosed '{' in template (write {{ for a literal brace)", offset: i)
                }
                var nameView = String.UnicodeScalarView()
                nameView.append(contentsOf: scalars[(i + 1)..<close])
                let name = String(nameView)
                flush()
                if name == "topic" {
                    pieces.append(.topic)
                } else if let n = Int(name), name.allSatisfy(\.isASCII) {
                    guard n >= 1 else { throw ParseError(message: "captures are numbered from {1}", offset: i) }
                    guard n <= captures else {
                        let have = captures == 0 ? "has no wildcards" : "has \(captures) wildcard(s), so {1}..{\(captures)} exist"
                        throw ParseError(message: "{\(n)} refers to a capture the route's from pattern does not have (it \(have))", offset: i)
                    }
                    pieces.append(.capture(n))
                } else if attributes, CESQLParser.isAttributeName(name) {
                    pieces.append(.attribute(name))
                } else {
                    let allowed = attributes ? "{topic}, {1}..{n} or an attribute such as {type}" : "{topic} or {1}..{n}"
                    throw ParseError(message: "unknown placeholder {\(name)}; expected \(allowed)", offset: i)
                }
                i = close + 1
                continue
            }
            if c == "}" {
                if i + 1 < scalars.count, scalars[i + 1] == "}" { literal.append("}"); i += 2; continue }
                throw ParseError(message: "unmatched '}' in template (write }} for a literal brace)", offset: i)
            }
            literal.append(c)
            i += 1
        }
        flush()
        self.text = text
        self.pieces = pieces
    }

    public var description: String { text }

    /// True when rendering needs the event itself (an `{attribute}` piece), not just its topic.
    public var readsAttributes: Bool { pieces.contains { if case .attribute = $0 { true } else { false } } }

    public var isConstant: Bool { pieces.allSatisfy { if case .literal = $0 { true } else { false } } }

    public func render(topic: Topic, captures: [String], event: Event? = nil) -> String {
        if pieces.count == 1, case .topic = pieces[0] { return topic.name }
        var out = ""
        for piece in pieces {
            switch piece {
            case .literal(let s): out += s
            case .topic: out += topic.name
            case .capture(let n): out += n <= captures.count ? captures[n - 1] : ""
            case .attribute(let name): out += event.flatMap { CESQLInput($0).attribute(name) } ?? ""
            }
        }
        return out
    }
}
