import MeshCore

/// Decides whether a destination topic template can produce a topic that its own route's `from`
/// pattern matches — a route that feeds itself forever.
public enum LoopCheck {
    enum Level: Equatable {
        case literal(Substring)
        case one           // any single level
        case many(min: Int) // any run of levels (at least `min`)
    }

    /// The set of topics a template can produce, as levels. A level holding any placeholder is
    /// "any one level"; a placeholder that can span levels (`{topic}`, a `#` capture) makes that
    /// stretch "any run of levels".
    static func shape(of template: Template, pattern: TopicPattern) -> [Level] {
        let patternLevels = pattern.levels
        var captureIsMulti: [Bool] = []
        for l in patternLevels where l == "+" || l == "#" { captureIsMulti.append(l == "#") }
        var levels: [Level] = []
        var current: [Template.Piece] = []
        func finish() {
            var multi = false, placeholder = false
            var text = ""
            for p in current {
                switch p {
                case .literal(let s): text += s
                case .topic: multi = true; placeholder = true
                case .capture(let n): placeholder = true; if n - 1 < captureIsMulti.count, captureIsMulti[n - 1] { multi = true }
                case .attribute: placeholder = true
                }
            }
            if multi { levels.append(.many(min: 0)) } else if placeholder { levels.append(.one) } else { levels.append(.literal(Substring(text))) }
            current = []
        }
        for piece in template.pieces {
            if case .literal(let s) = piece, s.contains("/") {
                let parts = s.split(separator: "/", omittingEmptySubsequences: false)
                for (i, part) in parts.enumerated() {
                    if !part.isEmpty { current.append(.literal(String(part))) }
                    if i < parts.count - 1 { finish() }
                }
            } else {
                current.append(piece)
            }
        }
        finish()
        return levels
    }

    /// True when some topic the template can produce matches `pattern`.
    public static func canLoop(_ template: Template, from pattern: TopicPattern) -> Bool {
        let produced = shape(of: template, pattern: pattern)
        let wanted: [Level] = pattern.levels.map { $0 == "+" ? .one : $0 == "#" ? .many(min: 0) : .literal($0) }
        return overlap(produced[...], wanted[...])
    }

    private static func overlap(_ a: ArraySlice<Level>, _ b: ArraySlice<Level>) -> Bool {
        guard let x = a.first else { return b.allSatisfy { $0 == .many(min: 0) } }
        guard let y = b.first else { return a.allSatisfy { $0 == .many(min: 0) } }
        if case .many = x {
            // Consume zero levels of x, or one level of b while staying on x.
            return overlap(a.dropFirst(), b) || overlap(a, b.dropFirst())
        }
        if case .many = y {
            return overlap(a, b.dropFirst()) || overlap(a.dropFirst(), b)
        }
        switch (x, y) {
        case (.literal(let s), .literal(let t)) where s != t: return false
        default: return overlap(a.dropFirst(), b.dropFirst())
        }
    }
}
