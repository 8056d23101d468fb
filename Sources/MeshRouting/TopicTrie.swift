import MeshCore

/// Maps topics to the values whose patterns match them, walking one trie node per level instead of
/// testing every pattern: the cost of a match grows with the topic's depth and the wildcards on its
/// path, not with the number of routes. Built once, then read-only (safe to share across threads).
public struct TopicTrie<Value: Sendable>: Sendable {
    /// A child is found by a 64-bit FNV-1a hash of its level's bytes, computed while scanning the
    /// topic, then confirmed byte for byte: no `String`/`Substring` is made per lookup.
    struct Child {
        let level: [UInt8]
        let node: Node
    }

    final class Node: @unchecked Sendable {
        // Mutated only while building; read-only once the trie is shared.
        var children: [UInt64: Child] = [:]
        var collisions: [Child] = []  // same hash, different bytes (practically never)
        var plus: Node?
        var hash: [Int] = []   // entries whose pattern ends in `#` here
        var exact: [Int] = []  // entries whose pattern ends exactly here

        func child(_ level: [UInt8], hash h: UInt64) -> Node? {
            if let c = children[h], c.level == level { return c.node }
            return collisions.first { $0.level == level }?.node
        }

        func addChild(_ level: [UInt8]) -> Node {
            let h = fnv(level[...])
            if let existing = child(level, hash: h) { return existing }
            let node = Node()
            if children[h] == nil { children[h] = Child(level: level, node: node) } else { collisions.append(Child(level: level, node: node)) }
            return node
        }
    }

    @inline(__always)
    static func fnv<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
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
                node = node.addChild(Array(level.utf8))
            }
        }
        node.exact.append(id)
    }

    /// Indexes (insertion order) of the entries matching `topic`, ascending.
    public func matchIndexes(_ topic: Topic) -> [Int] {
        var out: [Int] = []
        forEachMatch(topic) { out.append($0) }
        if out.count > 1 { out.sort() }
        return out
    }

    public func matches(_ topic: Topic) -> [(pattern: TopicPattern, value: Value)] {
        matchIndexes(topic).map { entries[$0] }
    }

    /// Calls `body` with the index of every matching entry, in no particular order, without
    /// allocating (the hot path).
    public func forEachMatch(_ topic: Topic, _ body: (Int) -> Void) {
        var name = topic.name
        name.withUTF8 { bytes in Self.walk(root, bytes, 0, body) }
    }

    private static func walk(_ node: Node, _ b: UnsafeBufferPointer<UInt8>, _ at: Int, _ body: (Int) -> Void) {
        // `a/#` also matches `a` itself, so a `#` entry counts at every depth including the end.
        for i in node.hash { body(i) }
        guard at <= b.count else {
            for i in node.exact { body(i) }
            return
        }
        var end = at
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        while end < b.count, b[end] != 0x2F {
            h = (h ^ UInt64(b[end])) &* 0x100_0000_01B3
            end += 1
        }
        if !node.children.isEmpty {
            if let c = node.children[h], c.level.elementsEqual(UnsafeBufferPointer(rebasing: b[at..<end])) {
                walk(c.node, b, end + 1, body)
            } else {
                for c in node.collisions where c.level.elementsEqual(UnsafeBufferPointer(rebasing: b[at..<end])) {
                    walk(c.node, b, end + 1, body)
                }
            }
        }
        if let plus = node.plus { walk(plus, b, end + 1, body) }
    }
}
