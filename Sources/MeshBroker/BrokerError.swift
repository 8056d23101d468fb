import MeshCore
import MeshLog

/// Why the broker refused or failed a request. `code` is stable; the HTTP layer maps it to a
/// problem type and status, the TCP layer to an error frame code.
public struct BrokerError: MeshError, Equatable {
    public enum Code: String, Sendable {
        case invalidTopic = "topic.invalid"
        case invalidPattern = "pattern.invalid"
        case invalidEvent = "event.invalid"
        case tooLarge = "event.too_large"
        case unknownTopic = "topic.unknown"
        case unknownPartition = "partition.unknown"
        case offsetOutOfRange = "offset.out_of_range"
        case overloaded = "overloaded"
        case storage = "storage.unavailable"
        case closed = "closed"
        case invalidRequest = "request.invalid"
    }

    public let kind: Code
    public let message: String
    /// For `overloaded`: how long the client should wait before retrying.
    public let retryAfterMilliseconds: Int?

    public var code: String { kind.rawValue }

    public init(_ kind: Code, _ message: String, retryAfterMilliseconds: Int? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfterMilliseconds = retryAfterMilliseconds
    }

    init(_ error: LogError) {
        switch error.code {
        case .recordTooLarge: self.init(.tooLarge, error.message)
        case .offsetOutOfRange: self.init(.offsetOutOfRange, error.message)
        case .unknownTopic: self.init(.unknownTopic, error.message)
        case .unknownPartition: self.init(.unknownPartition, error.message)
        case .closed: self.init(.closed, error.message)
        case .invalidConfig: self.init(.invalidRequest, error.message)
        default: self.init(.storage, error.message)
        }
    }
}
