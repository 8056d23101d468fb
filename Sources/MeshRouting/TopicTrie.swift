import MeshCore

/// Maps topics to the values whose patterns match them, walking one trie node per level instead of
/// testing every pattern: the cost of a match grows with the topic's depth and the wildcards on its
/// path, not with the number of routes. Built once, then read-only (safe to share across threads).
public struct TopicTrie<Value: Sendable>: Sendable {
    /// A child is found by a 64-bit FNV-1a hash of its level's bytes, computed while scanning the
    /// topic, then confirmed byte for byte: no `String`/`Substring` is made per lookup. Hash
    /// collisions just probe on, so they cost time, never correctness.
    struct Child {
        let level: [UInt8]
        let node: Node
    }

    final class Node: @unchecked Sendable {
        // Mutated only while building; read-only once the trie is shared.
        var childList: [Child] = []
        var hashes: [UInt64] = []
        /// Open addressing over `hashes` (slot = index + 1, 0 = empty): one multiply-free probe per
        /// level instead of a SipHash dictionary lookup.
        var slots: [Int32] = []
        var mask = 0
        var plus: Node?
        var hash: [Int] = []   // entries whose pattern ends in `#` here
        var exact: [Int] = []  // entries whose pattern ends exactly here

        @inline(__always)
        func lookup(_ h: UInt64, _ level: UnsafeBufferPointer<UInt8>) -> Node? {
            if slots.isEmpty { return nil }
            var i = Int(truncatingIfNeeded: h ^ (h >> 29)) & mask
            while true {
                let slot = Int(slots[i])
                if slot == 0 { return nil }
                if hashes[slot - 1] == h, childList[slot - 1].level.elementsEqual(level) { return childList[slot - 1].node }
                i = (i + 1) & mask
            }
        }

        func addChild(_ level: [UInt8]) -> Node {
            let h = fnv(level[...])
            if let existing = level.withUnsafeBufferPointer({ lookup(h, $0) }) { return existing }
            let node = Node()
            childList.append(Child(level: level, node: node))
            hashes.append(h)
            if childList.count * 2 > slots.count { rehash() } else { place(childList.count - 1) }
            return node
        }

        private func rehash() {
            var capacity = 4
            while capacity < childList.count * 2 { capacity <<= 1 }
            slots = Array(repeating: 0, count: capacity)
            mask = capacity - 1
            for i in childList.indices { place(i) }
        }

        private func place(_ index: Int) {
            let h = hashes[index]
            var i = Int(truncatingIfNeeded: h ^ (h >> 29)) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = Int32(index + 1)
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
        if let child = node.lookup(h, UnsafeBufferPointer(rebasing: b[at..<end])) {
            walk(child, b, end + 1, body)
        }
        if let plus = node.plus { walk(plus, b, end + 1, body) }
    }
}
