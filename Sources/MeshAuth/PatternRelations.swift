import MeshCore

/// How two topic patterns relate, level by level: `+` is one level, `#` (always last) the
/// remaining levels including none, so `a/#` matches `a`.
extension TopicPattern {
    /// True when every topic this pattern matches is matched by `other` too.
    public func isCovered(by other: TopicPattern) -> Bool {
        let p = levels, q = other.levels
        var i = 0
        while true {
            if i < q.count, q[i] == "#" { return true }
            if i == p.count { return i == q.count }
            if i == q.count { return false }
            switch (p[i], q[i]) {
            case ("#", _): return false
            case (_, "+"): break
            case ("+", _): return false
            case (let a, let b): if a != b { return false }
            }
            i += 1
        }
    }

    /// True when at least one topic matches both patterns.
    public func overlaps(_ other: TopicPattern) -> Bool {
        let p = levels, q = other.levels
        var i = 0
        while true {
            if (i < p.count && p[i] == "#") || (i < q.count && q[i] == "#") { return true }
            if i == p.count || i == q.count { return i == p.count && i == q.count }
            if p[i] != "+", q[i] != "+", p[i] != q[i] { return false }
            i += 1
        }
    }
}
