/// A mesh topic: `/`-separated levels, UTF-8, 1–255 bytes, no empty level, no `+`, `#`, NUL or
/// whitespace.
public struct Topic: Hashable, Sendable, CustomStringConvertible {
    public let name: String

    public init(_ name: String) throws(TopicError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else {
            throw TopicError(input: name, reason: "a topic is 1 to 255 bytes, this one is \(bytes.count)")
        }
        self.name = name
    }

    public var description: String { name }
}

public struct TopicError: Error, Sendable, Equatable, CustomStringConvertible {
    public let input: String
    public let reason: String
    public var description: String { "invalid topic \"\(input)\": \(reason)" }
}
