import Yams

/// Walks a composed YAML tree keeping every node's position, collecting errors instead of
/// stopping at the first, and substituting `${ENV}` in scalars.
final class YAMLReader {
    let file: String
    let environment: [String: String]
    var errors: [ConfigError] = []

    init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    func error(_ node: Node?, _ message: String, offset: Int = 0) {
        let mark = node?.mark
        var column = mark?.column ?? 1
        if offset > 0, case .scalar(let s)? = node {
            // Point inside the string: quotes shift the text one column right.
            column += offset + ((s.style == .singleQuoted || s.style == .doubleQuoted) ? 1 : 0)
        }
        errors.append(ConfigError(file: file, line: mark?.line ?? 1, column: column, message))
    }

    func kind(_ node: Node) -> String {
        switch node {
        case .scalar(let s): s.style == .plain && s.string.isEmpty ? "nothing" : "the scalar '\(s.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    /// The mapping's entries by key, rejecting unknown and duplicate keys.
    func mapping(_ node: Node, what: String, allowed: [String]) -> [String: (key: Node, value: Node)]? {
        guard case .mapping(let m) = node else {
            error(node, "expected \(what) (a mapping), found \(kind(node))")
            return nil
        }
        var out: [String: (key: Node, value: Node)] = [:]
        for (k, v) in m {
            guard case .scalar(let ks) = k else { error(k, "expected a key name in \(what)"); continue }
            let key = ks.string
            if out[key] != nil {
                error(k, "duplicate key '\(key)' in \(what)")
                continue
            }
            if !allowed.contains(key) {
                error(k, "unknown key '\(key)' in \(what)\(Suggest.didYouMean(key, in: allowed)); expected one of: \(allowed.joined(separator: ", "))")
                continue
            }
            out[key] = (k, v)
        }
        return out
    }

    /// A plain mapping of free-form keys (headers, set:).
    func entries(_ node: Node, what: String) -> [(key: String, keyNode: Node, value: Node)]? {
        guard case .mapping(let m) = node else {
            error(node, "expected \(what) (a mapping), found \(kind(node))")
            return nil
        }
        var seen: Set<String> = []
        var out: [(String, Node, Node)] = []
        for (k, v) in m {
            guard case .scalar(let ks) = k else { error(k, "expected a key in \(what)"); continue }
            if !seen.insert(ks.string).inserted { error(k, "duplicate key '\(ks.string)' in \(what)"); continue }
            out.append((ks.string, k, v))
        }
        return out
    }

    func sequence(_ node: Node, what: String) -> [Node]? {
        if case .sequence(let s) = node { return Array(s) }
        error(node, "expected \(what) (a list), found \(kind(node))")
        return nil
    }

    /// A string scalar after `${ENV}` substitution; `$${` is a literal `${`.
    func string(_ node: Node, what: String) -> String? {
        guard case .scalar(let s) = node else {
            error(node, "expected \(what) (a string), found \(kind(node))")
            return nil
        }
        return substitute(s.string, node: node)
    }

    /// The scalar as written, before substitution (for redacted views).
    func raw(_ node: Node) -> String? {
        if case .scalar(let s) = node { return s.string }
        return nil
    }

    func substitute(_ text: String, node: Node) -> String? {
        guard text.contains("$") else { return text }
        var out = ""
        var rest = Substring(text)
        var ok = true
        while let dollar = rest.firstIndex(of: "$") {
            out += rest[..<dollar]
            let after = rest[dollar...]
            if after.hasPrefix("$${") {
                out += "${"
                rest = after.dropFirst(3)
            } else if after.hasPrefix("${"), let close = after.firstIndex(of: "}") {
                let name = String(after[after.index(dollar, offsetBy: 2)..<close])
                if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
                    error(node, "invalid environment variable reference ${\(name)}; expected ${NAME} with letters, digits and _")
                    ok = false
                } else if let value = environment[name] {
                    out += value
                } else {
                    error(node, "environment variable \(name) is not set (referenced as ${\(name)})")
                    ok = false
                }
                rest = after[after.index(after: close)...]
            } else {
                out += "$"
                rest = after.dropFirst()
            }
        }
        out += rest
        return ok ? out : nil
    }

    func int(_ node: Node, what: String, range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, what: what) else { return nil }
        guard let v = Int(text) else {
            error(node, "expected \(what) (a whole number), found '\(text)'")
            return nil
        }
        guard range.contains(v) else {
            error(node, "\(what) must be between \(range.lowerBound) and \(range.upperBound), not \(v)")
            return nil
        }
        return v
    }

    func bool(_ node: Node, what: String) -> Bool? {
        guard let text = string(node, what: what) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error(node, "expected \(what) (true or false), found '\(text)'")
            return nil
        }
    }

    /// `250ms`, `2s`, `1.5s`, `5m`, `1h`.
    func duration(_ node: Node, what: String) -> Duration? {
        guard let text = string(node, what: what) else { return nil }
        if let d = Self.parseDuration(text) { return d }
        error(node, "expected \(what) as a duration like 200ms, 5s, 2m or 1h (at most 2562047h), found '\(text)'")
        return nil
    }

    static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if suffix == "s", number.hasSuffix("m") { continue }
            // Int64(exactly:) is nil past Int64 nanoseconds (~292 years) instead of trapping.
            guard let v = Double(number), v >= 0, v.isFinite,
                  let ns = Int64(exactly: (v * scale * 1e9).rounded(.towardZero)) else { return nil }
            return .nanoseconds(ns)
        }
        return nil
    }
}
