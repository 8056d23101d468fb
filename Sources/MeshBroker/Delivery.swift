import MeshCore
import MeshLog

/// Where a publish landed.
public struct PublishReceipt: Sendable, Equatable {
    public let id: String
    public let topic: String
    public let partition: Int
    public let offset: Int64

    public init(id: String, topic: String, partition: Int, offset: Int64) {
        self.id = id
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// One partition of one topic.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let topic: String
    public let partition: Int

    public init(topic: String, partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// An event read from the log, with where it is stored. The payload is the stored encoding, so a
/// consumer that forwards it (the TCP protocol) need not decode and re-encode it.
public struct Delivery: Sendable {
    public let topic: String
    public let partition: Int
    public let offset: Int64
    /// Append time, microseconds since the epoch.
    public let timestamp: Int64
    public let payload: [UInt8]

    public init(topic: String, partition: Int, offset: Int64, timestamp: Int64, payload: [UInt8]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.payload = payload
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }

    public func decode() throws(BrokerError) -> Event {
        do {
            return try EventCodec.decode(payload)
        } catch {
            throw BrokerError(.storage, "\(topic)[\(partition)] offset \(offset) holds an undecodable event: \(error.message)")
        }
    }
}

/// Where a subscription starts in partitions it has no committed offset for.
public enum StartPosition: Sendable, Equatable {
    case earliest
    case latest
    case offset(Int64)
    /// Microseconds since the epoch: the first event appended at or after it.
    case time(Int64)
}
