/// A topic pattern with MQTT wildcards: `+` matches exactly one level, `#` (last level only) matches
/// the remaining levels, including none — `a/#` matches `a`, `a/b` and `a/b/c`; `#` matches
/// everything. Otherwise the rules of `Topic` apply.
public struct TopicPattern: Hashable, Sendable, CustomStringConvertible {
    public let text: String
    /// The UTF-8 of `text`, kept so that matching is a byte walk with no allocation.
    private let bytes: [UInt8]
    /// Number of `+` and `#` levels, i.e. how many values `captures` returns.
    public let wildcardCount: Int

    public init(_ text: String) throws(TopicPatternError) {
        let bytes = Array(text.utf8)
        if let violation = bytes.withUnsafeBufferPointer({ TopicSyntax.check($0, wildcards: true) }) {
            throw TopicPatternError(input: text, violation: violation)
        }
        self.text = text
        self.bytes = bytes
        var count = 0
        for b in bytes where b == TopicSyntax.plus || b == TopicSyntax.hash { count += 1 }
        self.wildcardCount = count
    }

    /// A pattern that matches exactly this topic.
    public init(exactly topic: Topic) {
        self.text = topic.name
        self.bytes = Array(topic.name.utf8)
        self.wildcardCount = 0
    }

    public var description: String { text }

    public var levels: [Substring] {
        text.split(separator: "/", omittingEmptySubsequences: false)
    }

    /// True when the pattern has no wildcard and so matches one topic only.
    public var isLiteral: Bool { wildcardCount == 0 }

    public static func == (lhs: TopicPattern, rhs: TopicPattern) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public func matches(_ topic: Topic) -> Bool {
        bytes.withUnsafeBufferPointer { pattern in
            TopicSyntax.withUTF8(topic.name) { topic in
                Self.walk(pattern, topic, capture: nil)
            }
        }
    }

    /// The wildcard captures in pattern order when the topic matches, for route templates `{1}`,
    /// `{2}`…: a `+` captures its level, a `#` captures the remaining levels joined by `/` (empty when
    /// it matched the parent). Nil when the topic does not match.
    public func captures(_ topic: Topic) -> [String]? {
        var result: [String] = []
        result.reserveCapacity(wildcardCount)
        let matched = bytes.withUnsafeBufferPointer { pattern in
            TopicSyntax.withUTF8(topic.name) { topicBytes in
                Self.walk(pattern, topicBytes) { range in
                    result.append(String(decoding: UnsafeBufferPointer(rebasing: topicBytes[range]), as: UTF8.self))
                }
            }
        }
        return matched ? result : nil
    }

    /// Walks pattern and topic level by level. Both are known valid, so a wildcard byte is always a
    /// whole level and `#` is always last.
    @inline(__always)
    private static func walk(
        _ p: UnsafeBufferPointer<UInt8>, _ t: UnsafeBufferPointer<UInt8>,
        capture: ((Range<Int>) -> Void)?
    ) -> Bool {
        let slash = TopicSyntax.slash
        var i = 0  // start of the current pattern level
        var j = 0  // start of the current topic level
        let pEnd = p.count
        let tEnd = t.count
        while true {
            let first = p[i]
            if first == TopicSyntax.hash {
                capture?(j..<tEnd)
                return true
            }
            if first == TopicSyntax.plus {
                let start = j
                while j < tEnd, t[j] != slash { j += 1 }
                capture?(start..<j)
                i += 1
            } else {
                while i < pEnd, p[i] != slash {
                    guard j < tEnd, t[j] == p[i] else { return false }
                    i += 1
                    j += 1
                }
                // The topic level must end where the pattern level ends.
                if j < tEnd, t[j] != slash { return false }
            }
            // Both sit at the end or at a `/`.
            let pDone = i == pEnd
            let tDone = j == tEnd
            if pDone { return tDone }
            if tDone {
                // Only a trailing `/#` may still match: `a/#` matches `a`.
                guard pEnd - i == 2, p[i + 1] == TopicSyntax.hash else { return false }
                capture?(tEnd..<tEnd)
                return true
            }
            i += 1
            j += 1
        }
    }
}

public struct TopicPatternError: MeshError, Equatable {
    public let input: String
    public let reason: String
    /// 1-based index of the offending level, when the problem is inside one.
    public let level: Int?
    /// 0-based byte offset (in the UTF-8 of `input`) of the offending byte or empty level.
    public let byteOffset: Int?

    public init(input: String, reason: String, level: Int? = nil, byteOffset: Int? = nil) {
        self.input = input
        self.reason = reason
        self.level = level
        self.byteOffset = byteOffset
    }

    init(input: String, violation: TopicSyntax.Violation) {
        self.init(input: input, reason: violation.reason, level: violation.level, byteOffset: violation.byteOffset)
    }

    public var code: String { "topic.pattern.invalid" }
    public var message: String { "invalid topic pattern \(TopicSyntax.quoted(input)): \(reason)" }
    public var description: String { message }
}
