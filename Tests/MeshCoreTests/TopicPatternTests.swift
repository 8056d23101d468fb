import MeshTestSupport
import Testing
@testable import MeshCore

@Suite struct TopicPatternTests {
    struct Case: Sendable, CustomStringConvertible {
        let pattern: String
        let topic: String
        let captures: [String]?
        var description: String { "\(pattern) ~ \(topic)" }
    }

    static let table: [Case] = [
        Case(pattern: "#", topic: "a", captures: ["a"]),
        Case(pattern: "#", topic: "a/b/c", captures: ["a/b/c"]),
        Case(pattern: "+", topic: "a", captures: ["a"]),
        Case(pattern: "+", topic: "a/b", captures: nil),
        Case(pattern: "+/+", topic: "a/b", captures: ["a", "b"]),
        Case(pattern: "+/+", topic: "a", captures: nil),
        Case(pattern: "+/+", topic: "a/b/c", captures: nil),
        Case(pattern: "a/#", topic: "a", captures: [""]),
        Case(pattern: "a/#", topic: "a/b", captures: ["b"]),
        Case(pattern: "a/#", topic: "a/b/c", captures: ["b/c"]),
        Case(pattern: "a/#", topic: "ab", captures: nil),
        Case(pattern: "a/#", topic: "b/a", captures: nil),
        Case(pattern: "a/+/#", topic: "a/x", captures: ["x", ""]),
        Case(pattern: "a/+/#", topic: "a/x/y/z", captures: ["x", "y/z"]),
        Case(pattern: "a/+/#", topic: "a", captures: nil),
        Case(pattern: "a/b", topic: "a/b", captures: []),
        Case(pattern: "a/b", topic: "a/bc", captures: nil),
        Case(pattern: "a/bc", topic: "a/b", captures: nil),
        Case(pattern: "a/b", topic: "a/b/c", captures: nil),
        Case(pattern: "a/b/c", topic: "a/b", captures: nil),
        Case(pattern: "+/b/+", topic: "x/b/y", captures: ["x", "y"]),
        Case(pattern: "+/b/+", topic: "x/c/y", captures: nil),
        Case(pattern: "sensors/+/temp", topic: "sensors/日本/temp", captures: ["日本"]),
        Case(pattern: "é/#", topic: "é/ü/ö", captures: ["ü/ö"]),
        Case(pattern: "a/+", topic: "a", captures: nil),
    ]

    @Test(arguments: table)
    func matchesAndCaptures(_ c: Case) throws {
        let pattern = try TopicPattern(c.pattern)
        let topic = try Topic(c.topic)
        #expect(pattern.matches(topic) == (c.captures != nil))
        #expect(pattern.captures(topic) == c.captures)
        if let captures = c.captures { #expect(captures.count == pattern.wildcardCount) }
    }

    struct Rejection: Sendable, CustomStringConvertible {
        let input: String
        let level: Int?
        let byte: Int?
        let reason: String
        var description: String { input.debugDescription }
    }

    static let rejections: [Rejection] = [
        Rejection(input: "", level: nil, byte: nil, reason: "a topic pattern is 1 to 255 bytes, this one is 0"),
        Rejection(input: "a/#/b", level: 2, byte: 2,
                  reason: "level 2 is \"#\" (byte 2) but \"#\" is only allowed as the last level"),
        Rejection(input: "a/b#", level: 2, byte: 3,
                  reason: "level 2 mixes \"#\" with other characters (byte 3); a wildcard must be a whole level"),
        Rejection(input: "a/#b", level: 2, byte: 2,
                  reason: "level 2 mixes \"#\" with other characters (byte 2); a wildcard must be a whole level"),
        Rejection(input: "+a", level: 1, byte: 0,
                  reason: "level 1 mixes \"+\" with other characters (byte 0); a wildcard must be a whole level"),
        Rejection(input: "x/a+", level: 2, byte: 3,
                  reason: "level 2 mixes \"+\" with other characters (byte 3); a wildcard must be a whole level"),
        Rejection(input: "++", level: 1, byte: 0,
                  reason: "level 1 mixes \"+\" with other characters (byte 0); a wildcard must be a whole level"),
        Rejection(input: "a//+", level: 2, byte: 2, reason: "level 2 is empty (byte 2)"),
        Rejection(input: "+/", level: 2, byte: 2, reason: "level 2 is empty (byte 2)"),
        Rejection(input: "+/a b", level: 2, byte: 3, reason: "level 2 contains whitespace U+0020 (byte 3)"),
    ]

    @Test(arguments: rejections)
    func rejectsInvalidPatterns(_ r: Rejection) {
        #expect {
            try TopicPattern(r.input)
        } throws: { error in
            guard let error = error as? TopicPatternError else { return false }
            #expect(error.level == r.level)
            #expect(error.byteOffset == r.byte)
            #expect(error.reason == r.reason)
            #expect(error.message == "invalid topic pattern \"\(r.input)\": \(r.reason)")
            #expect(error.code == "topic.pattern.invalid")
            return true
        }
    }

    @Test func literalPatterns() throws {
        let exact = TopicPattern(exactly: try Topic("a/b"))
        #expect(exact.isLiteral)
        #expect(exact == (try TopicPattern("a/b")))
        #expect(exact.matches(try Topic("a/b")))
        #expect(!(try TopicPattern("a/+")).isLiteral)
        #expect(try TopicPattern("a/+/#").levels == ["a", "+", "#"])
    }

    // MARK: Property test against an obviously correct matcher

    /// Level lists compared recursively, straight from the MQTT rules.
    static func naiveCaptures(_ pattern: ArraySlice<Substring>, _ topic: ArraySlice<Substring>) -> [String]? {
        guard let head = pattern.first else { return topic.isEmpty ? [] : nil }
        if head == "#" { return [topic.joined(separator: "/")] }
        guard let level = topic.first else {
            // Topic exhausted: only a lone trailing "#" still matches (the parent rule).
            return pattern.count == 1 && head == "#" ? [""] : nil
        }
        if head == "+" {
            return naiveCaptures(pattern.dropFirst(), topic.dropFirst()).map { [String(level)] + $0 }
        }
        guard Array(head.utf8) == Array(level.utf8) else { return nil }
        return naiveCaptures(pattern.dropFirst(), topic.dropFirst())
    }

    static func naiveCaptures(_ pattern: String, _ topic: String) -> [String]? {
        let p = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let t = topic.split(separator: "/", omittingEmptySubsequences: false)
        return naiveCaptures(p[...], t[...])
    }

    @Test func agreesWithNaiveMatcher() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SeededRandom(seed: seed)
        let alphabet = ["a", "b", "ab", "é"]
        func level() -> String { alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        func topic() -> String {
            (0..<(1 + Int(rng.next() % 4))).map { _ in level() }.joined(separator: "/")
        }
        func pattern() -> String {
            let count = 1 + Int(rng.next() % 4)
            var levels: [String] = []
            for index in 0..<count {
                switch rng.next() % 6 {
                case 0: levels.append("+")
                case 1 where index == count - 1: levels.append("#")
                default: levels.append(level())
                }
            }
            return levels.joined(separator: "/")
        }
        var matched = 0
        for _ in 0..<20_000 {
            let p = pattern()
            let t = topic()
            let expected = Self.naiveCaptures(p, t)
            let compiled = try TopicPattern(p)
            let topic = try Topic(t)
            let got = compiled.captures(topic)
            #expect(compiled.matches(topic) == (expected != nil), "seed \(seed): \(p) ~ \(t)")
            #expect(got == expected, "seed \(seed): \(p) ~ \(t)")
            if expected != nil { matched += 1 }
            if got != expected { break }
        }
        // The generator must exercise both outcomes to mean anything.
        #expect(matched > 1000, "seed \(seed)")
        #expect(matched < 19_000, "seed \(seed)")
    }
}

