@_exported import MeshCore
@_exported import MeshWire

/// Where a published event was stored.
public struct MeshReceipt: Hashable, Sendable, CustomStringConvertible {
    /// The event's id: the one it was published with, or the one the client gave it.
    public var id: String
    public var topic: Topic
    public var partition: UInt32
    public var offset: UInt64

    public init(id: String, topic: Topic, partition: UInt32, offset: UInt64) {
        self.id = id
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    public var description: String { "\(topic) partition \(partition) offset \(offset) id \(id)" }
}

/// One event received on a subscription, with where it is stored.
public struct MeshDelivery: Sendable {
    public var topic: Topic { event.topic }
    public var partition: UInt32
    public var offset: UInt64
    public var event: Event

    public init(partition: UInt32, offset: UInt64, event: Event) {
        self.partition = partition
        self.offset = offset
        self.event = event
    }
}

/// The topic-partitions a consumer-group member owns, as the server last said (ASSIGNMENT).
public struct MeshAssignment: Hashable, Sendable {
    public var generation: UInt32
    public var partitions: [TopicPartition]
}

extension WireError {
    /// True when the same request may succeed if sent again later: the connection dropped, the
    /// server was overloaded, shutting down or could not reach its storage. A publish that failed
    /// this way may or may not have been stored (the answer was lost); retrying it can store it
    /// twice, and consumers deduplicate by event id.
    public var isRetryable: Bool {
        switch code {
        case .overloaded, .notReady, .storageUnavailable, .idleTimeout, .internalError: true
        default: false
        }
    }

    static var disconnected: WireError { WireError(.notReady, "the connection to the server was lost") }
    static var clientClosed: WireError { WireError(.notReady, "the client was closed") }
}
