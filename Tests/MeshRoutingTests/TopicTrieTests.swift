import MeshTestSupport
import MeshCore
import Testing
@testable import MeshRouting

struct TopicTrieTests {
    static let words = ["a", "b", "c", "orders", "eu", "x1", "é"]

    static func randomTopic(_ rng: inout SeededRandom) -> Topic {
        let n = Int.random(in: 1...5, using: &rng)
        return try! Topic((0..<n).map { _ in words.randomElement(using: &rng)! }.joined(separator: "/"))
    }

    static func randomPattern(_ rng: inout SeededRandom) -> TopicPattern {
        let n = Int.random(in: 1...5, using: &rng)
        var levels: [String] = []
        for i in 0..<n {
            let r = Int.random(in: 0..<10, using: &rng)
            if r == 0 && i == n - 1 { levels.append("#") } else if r < 3 { levels.append("+") } else { levels.append(words.randomElement(using: &rng)!) }
        }
        return try! TopicPattern(levels.joined(separator: "/"))
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func agreesWithTheNaiveMatcher(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var trie = TopicTrie<Int>()
        var patterns: [TopicPattern] = []
        for i in 0..<500 {
            let p = Self.randomPattern(&rng)
            patterns.append(p)
            trie.insert(p, i)
        }
        for _ in 0..<3000 {
            let topic = Self.randomTopic(&rng)
            let expected = patterns.indices.filter { patterns[$0].matches(topic) }
            let got = trie.matchIndexes(topic)
            #expect(got == expected, "topic \(topic)")
        }
    }

    @Test func hashMatchesTheParentAndDuplicatesAreKept() throws {
        var trie = TopicTrie<String>()
        trie.insert(try TopicPattern("a/#"), "a-hash")
        trie.insert(try TopicPattern("#"), "all")
        trie.insert(try TopicPattern("a/+"), "a-plus")
        trie.insert(try TopicPattern("a/+"), "a-plus-again")
        #expect(trie.matches(try Topic("a")).map(\.value) == ["a-hash", "all"])
        #expect(trie.matches(try Topic("a/b")).map(\.value) == ["a-hash", "all", "a-plus", "a-plus-again"])
        #expect(trie.matches(try Topic("b")).map(\.value) == ["all"])
    }
}

struct TemplateTests {
    let pattern = try! TopicPattern("orders/+/#")

    @Test func rendersTopicAndCaptures() throws {
        let t = try Template("x/{1}/{2}/{topic}", captures: 2, attributes: false)
        let topic = try Topic("orders/eu/a/b")
        #expect(t.render(topic: topic, captures: pattern.captures(topic)!) == "x/eu/a/b/orders/eu/a/b")
        let braces = try Template("{{lit}}-{1}", captures: 1, attributes: false)
        #expect(braces.render(topic: topic, captures: ["eu"]) == "{lit}-eu")
    }

    @Test func rejectsBadPlaceholders() {
        #expect(throws: Template.ParseError.self) { try Template("a/{3}", captures: 2, attributes: false) }
        #expect(throws: Template.ParseError.self) { try Template("a/{type}", captures: 2, attributes: false) }
        #expect(throws: Template.ParseError.self) { try Template("a/{1", captures: 2, attributes: false) }
        #expect(throws: Template.ParseError.self) { try Template("a/}", captures: 2, attributes: false) }
        #expect((try? Template("{type}-{source}", captures: 0, attributes: true)) != nil)
    }

    @Test(arguments: [
        ("orders/#", "orders/copy", true), ("orders/#", "audit/{1}", false), ("orders/+", "{topic}", true),
        ("orders/+", "x/{topic}", false), ("orders/+", "orders/{1}", true), ("orders/+", "orders/{1}/x", false),
        ("orders/+/x", "orders/a/{1}", true), ("orders/+/x", "orders/a/{1}/y", false), ("orders/+/x", "{1}/a/x", true), ("a/#", "b/{1}", false),
        ("+/b", "{1}/c", false), ("+/b", "x-{1}/b", true), ("#", "anything", true), ("a/+", "a", false),
        ("a/#", "a", true), ("x/#", "{1}", true),
    ] as [(String, String, Bool)])
    func loopCheck(_ from: String, _ to: String, _ loops: Bool) throws {
        let p = try TopicPattern(from)
        let t = try Template(to, captures: p.wildcardCount, attributes: false)
        #expect(LoopCheck.canLoop(t, from: p) == loops, "\(from) -> \(to)")
    }
}
