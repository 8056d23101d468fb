import MeshCore

/// One problem in a route file, placed at `file:line:column` (1-based; columns count Unicode
/// scalars as YAML does), saying what was expected.
public struct ConfigError: MeshError, Hashable, Comparable {
    public let file: String
    public let line: Int
    public let column: Int
    public let reason: String

    public init(file: String, line: Int, column: Int, _ reason: String) {
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason
    }

    public var code: String { "routes.invalid" }
    /// The compiler-style form `meshgate routes check` prints.
    public var message: String { "\(file):\(line):\(column): error: \(reason)" }

    public static func < (a: ConfigError, b: ConfigError) -> Bool {
        (a.file, a.line, a.column, a.reason) < (b.file, b.line, b.column, b.reason)
    }
}

/// Every problem found in one load; a load either succeeds completely or reports all of these.
public struct ConfigErrors: MeshError {
    public let errors: [ConfigError]
    public init(_ errors: [ConfigError]) { self.errors = errors.sorted() }
    public var code: String { "routes.invalid" }
    public var message: String { errors.map(\.message).joined(separator: "\n") }
}

enum Suggest {
    /// "did you mean …?" for a misspelt key, when one known key is close enough.
    static func didYouMean(_ word: String, in candidates: [String]) -> String {
        let best = candidates.map { ($0, distance(word.lowercased(), $0)) }.min { $0.1 < $1.1 }
        guard let (name, d) = best, d <= max(2, word.count / 3) else { return "" }
        return "; did you mean '\(name)'?"
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = prev
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
