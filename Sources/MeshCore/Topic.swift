/// A mesh topic: `/`-separated levels, UTF-8, 1–255 bytes, no empty level, no `+`, `#`, NUL,
/// whitespace or control characters.
public struct Topic: Hashable, Sendable, CustomStringConvertible {
    public let name: String

    public init(_ name: String) throws(TopicError) {
        if let violation = TopicSyntax.withUTF8(name, { TopicSyntax.check($0, wildcards: false) }) {
            throw TopicError(input: name, violation: violation)
        }
        self.name = name
    }

    public var description: String { name }

    // Topics compare by their bytes, as MQTT does: String's own == treats canonically equivalent
    // spellings ("é" composed or not) as equal, which would make routing disagree with matching.
    public static func == (lhs: Topic, rhs: Topic) -> Bool {
        lhs.name.utf8.elementsEqual(rhs.name.utf8)
    }

    public func hash(into hasher: inout Hasher) {
        TopicSyntax.withUTF8(name) { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The levels in order; never empty, and no level is empty.
    public var levels: [Substring] {
        name.split(separator: "/", omittingEmptySubsequences: false)
    }

    public var levelCount: Int {
        TopicSyntax.withUTF8(name) { bytes in
            var count = 1
            for b in bytes where b == TopicSyntax.slash { count += 1 }
            return count
        }
    }
}

public struct TopicError: MeshError, Equatable {
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

    public var code: String { "topic.invalid" }
    public var message: String { "invalid topic \(TopicSyntax.quoted(input)): \(reason)" }
    public var description: String { message }
}
