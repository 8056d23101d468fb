import MeshCore

/// Maps topics to the values whose patterns match them, walking one trie node per level instead of
/// testing every pattern: the cost of a match grows with the topic's depth and the wildcards on its
/// path, not with the number of routes. Built once, then read-only (safe to share across threads).
public struct TopicTrie<Value: Sendable>: Sendable {
    final class Node: @unchecked Sendable {
        // Mutated only while building; read-only once the trie is shared.
        var children: [Substring: Node] = [:]
        var plus: Node?
        var hash: [Int] = []   // entries whose pattern ends in `#` here
        var exact: [Int] = []  // entries whose pattern ends exactly here
    }

    private let root = Node()
    public private(set) var entries: [(pattern: TopicPattern, value: Value)] = []

    public init() {}

    public var count: Int { entries.count }

    public mutating func insert(_ pattern: TopicPattern, _ value: Value) {
        let id = entries.count
        entries.append((pattern, value))
        var node = root
        for level in pattern.levels {
            if level == "#" {
                node.hash.append(id)
                return
            }
            if level == "+" {
                if node.plus == nil { node.plus = Node() }
                node = node.plus!
            } else {
                if let next = node.children[level] {
                    node = next
                } else {
                    let next = Node()
                    node.children[level] = next
                    node = next
                }
            }
        }
        node.exact.append(id)
    }

    /// Indexes (insertion order) of the entries matching `topic`, ascending.
    public func matchIndexes(_ topic: Topic) -> [Int] {
        var out: [Int] = []
        let levels = topic.levels
        Self.walk(root, levels[...], &out)
        if out.count > 1 { out.sort() }
        return out
    }

    public func matches(_ topic: Topic) -> [(pattern: TopicPattern, value: Value)] {
        matchIndexes(topic).map { entries[$0] }
    }

    /// Calls `body` for every match without allocating a result array (the hot path).
    public func forEachMatch(_ topic: Topic, _ body: (Int) -> Void) {
        var out: [Int] = []
        out.reserveCapacity(4)
        Self.walk(root, topic.levels[...], &out)
        for i in out { body(i) }
    }

    private static func walk(_ node: Node, _ levels: ArraySlice<Substring>, _ out: inout [Int]) {
        // `a/#` also matches `a` itself, so a `#` child counts at every depth including the end.
        out.append(contentsOf: node.hash)
        guard let level = levels.first else {
            out.append(contentsOf: node.exact)
            return
        }
        let rest = levels.dropFirst()
        if let child = node.children[level] { walk(child, rest, &out) }
        if let plus = node.plus { walk(plus, rest, &out) }
    }
}
