import MeshCore

/// One frame of the TCP protocol, as docs/protocol.md specifies it. The header's id field is part
/// of each case (a request id, subscription id or nonce) so that a frame is one self-contained value.
public enum Frame: Hashable, Sendable {
    // Connection
    case hello(Hello)
    case welcome(Welcome)
    case ping(nonce: UInt32)
    case pong(nonce: UInt32)
    case goodbye
    case error(WireError)

    // Publishing
    case publish(requestID: UInt32, event: Event)
    case publishBatch(requestID: UInt32, events: [Event])
    /// A PUBLISH_BATCH whose events stay in their encoding (the same bytes on the wire): what a
    /// bridge sends from its log, and what a server reads (`FrameDecoder.keepsEncodedEvents`), so
    /// the events are checked and stored without being decoded and encoded again.
    case publishEncoded(requestID: UInt32, events: [[UInt8]])
    case publishAck(requestID: UInt32, receipts: [PublishReceipt])

    // Subscriptions; the header id is the subscription id.
    case subscribe(Subscribe)
    case subscribed(subscriptionID: UInt32)
    case event(EventDelivery)
    case credit(subscriptionID: UInt32, count: UInt32)
    case ack(Ack)
    case unsubscribe(subscriptionID: UInt32)
    case unsubscribed(subscriptionID: UInt32)
    case assignment(Assignment)

    public var type: FrameType {
        switch self {
        case .hello: .hello
        case .welcome: .welcome
        case .ping: .ping
        case .pong: .pong
        case .goodbye: .goodbye
        case .error: .error
        case .publish: .publish
        case .publishBatch, .publishEncoded: .publishBatch
        case .publishAck: .publishAck
        case .subscribe: .subscribe
        case .subscribed: .subscribed
        case .event: .event
        case .credit: .credit
        case .ack: .ack
        case .unsubscribe: .unsubscribe
        case .unsubscribed: .unsubscribed
        case .assignment: .assignment
        }
    }

    /// The value of the header's id field.
    public var streamID: UInt32 {
        switch self {
        case .hello, .welcome, .goodbye: 0
        case .ping(let nonce), .pong(let nonce): nonce
        case .error(let error): error.streamID
        case .publish(let id, _), .publishBatch(let id, _), .publishEncoded(let id, _), .publishAck(let id, _): id
        case .subscribe(let s): s.subscriptionID
        case .subscribed(let id), .unsubscribe(let id), .unsubscribed(let id), .credit(let id, _): id
        case .event(let e): e.subscriptionID
        case .ack(let a): a.subscriptionID
        case .assignment(let a): a.subscriptionID
        }
    }
}

/// HELLO: the client's first frame.
public struct Hello: Hashable, Sendable {
    /// The oldest and newest protocol versions the client speaks.
    public var minVersion: UInt16
    public var maxVersion: UInt16
    /// Free text for logs and status, e.g. `"meshgate-cli/0.3"`.
    public var clientName: String
    /// A bearer token or JWT; nil when the client sends none.
    public var token: String?
    /// The client is another meshgate site forwarding events (flag bit 1): `clientName` is its site
    /// name, and the server applies bridge ingress (loop check and dedupe) to its publishes.
    public var bridge: Bool

    public init(minVersion: UInt16, maxVersion: UInt16, clientName: String, token: String? = nil, bridge: Bool = false) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.clientName = clientName
        self.token = token
        self.bridge = bridge
    }

    public init(versions: ClosedRange<UInt16> = WireProtocol.supportedVersions, clientName: String, token: String? = nil, bridge: Bool = false) {
        self.init(minVersion: versions.lowerBound, maxVersion: versions.upperBound, clientName: clientName, token: token, bridge: bridge)
    }
}

/// WELCOME: the server's answer to an accepted HELLO, fixing the session's parameters.
public struct Welcome: Hashable, Sendable {
    public var version: UInt16
    public var serverName: String
    /// The largest length prefix either side may send from now on.
    public var maxFrameLength: UInt32
    /// How often each side sends a PING when it has sent nothing else; the idle timeout is a
    /// multiple of it (docs/protocol.md, "Heartbeats").
    public var heartbeatIntervalMilliseconds: UInt32
    /// The most PUBLISH / PUBLISH_BATCH requests the server accepts unanswered at once.
    public var maxInFlightPublishes: UInt32

    public init(version: UInt16, serverName: String, maxFrameLength: UInt32, heartbeatIntervalMilliseconds: UInt32, maxInFlightPublishes: UInt32) {
        self.version = version
        self.serverName = serverName
        self.maxFrameLength = maxFrameLength
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.maxInFlightPublishes = maxInFlightPublishes
    }
}

/// Where one published event was stored.
public struct PublishReceipt: Hashable, Sendable {
    public var partition: UInt32
    public var offset: UInt64

    public init(partition: UInt32, offset: UInt64) {
        self.partition = partition
        self.offset = offset
    }

    /// On a bridge connection: the event was not stored because this site already holds it
    /// (same origin and id). Partition `0xFFFFFFFF` never names a real partition.
    public static let duplicate = PublishReceipt(partition: .max, offset: 1)
    /// On a bridge connection: the event was not stored because its hop list already names this site.
    public static let loop = PublishReceipt(partition: .max, offset: 2)
    /// True for `duplicate` and `loop`: acknowledged, but nothing new was stored.
    public var isNotStored: Bool { partition == .max }
}

/// Where a subscription starts reading a partition that has no committed group offset.
public enum StartPosition: Hashable, Sendable {
    case earliest
    case latest
    /// The same offset in every partition (clamped errors are `offsetOutOfRange`).
    case offset(UInt64)
    /// The first event stored at or after this time, in microseconds since the Unix epoch.
    case time(microsecondsSinceEpoch: Int64)
}

public enum AckMode: UInt8, Hashable, Sendable {
    /// The server commits each event's offset for the group once the EVENT frame is written.
    case autoCommit = 0
    /// The client commits with ACK frames.
    case explicit = 1
}

/// SUBSCRIBE: open a subscription on this connection.
public struct Subscribe: Hashable, Sendable {
    /// Chosen by the client, non-zero, unique among the connection's open subscriptions.
    public var subscriptionID: UInt32
    public var pattern: TopicPattern
    /// A consumer group: its members share the partitions and its committed offsets win over `start`.
    public var group: String?
    public var start: StartPosition
    /// How many EVENT frames the server may send before it hears a CREDIT.
    public var initialCredit: UInt32
    public var ackMode: AckMode

    public init(subscriptionID: UInt32, pattern: TopicPattern, group: String? = nil, start: StartPosition = .latest, initialCredit: UInt32, ackMode: AckMode = .autoCommit) {
        self.subscriptionID = subscriptionID
        self.pattern = pattern
        self.group = group
        self.start = start
        self.initialCredit = initialCredit
        self.ackMode = ackMode
    }
}

/// EVENT: one event delivered on a subscription. Its topic is the event's own topic.
public struct EventDelivery: Hashable, Sendable {
    public var subscriptionID: UInt32
    public var partition: UInt32
    public var offset: UInt64
    public var event: Event

    public init(subscriptionID: UInt32, partition: UInt32, offset: UInt64, event: Event) {
        self.subscriptionID = subscriptionID
        self.partition = partition
        self.offset = offset
        self.event = event
    }
}

/// ACK: the client has processed everything up to and including `offset` in one partition; for a
/// group the committed position becomes `offset + 1`.
public struct Ack: Hashable, Sendable {
    public var subscriptionID: UInt32
    public var topic: Topic
    public var partition: UInt32
    public var offset: UInt64

    public init(subscriptionID: UInt32, topic: Topic, partition: UInt32, offset: UInt64) {
        self.subscriptionID = subscriptionID
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

public struct TopicPartition: Hashable, Sendable {
    public var topic: Topic
    public var partition: UInt32

    public init(topic: Topic, partition: UInt32) {
        self.topic = topic
        self.partition = partition
    }
}

/// ASSIGNMENT: the partitions a group member owns from now on; it replaces any earlier assignment.
public struct Assignment: Hashable, Sendable {
    public var subscriptionID: UInt32
    /// Grows with every rebalance of the group, so a late frame can be recognised.
    public var generation: UInt32
    public var partitions: [TopicPartition]

    public init(subscriptionID: UInt32, generation: UInt32, partitions: [TopicPartition]) {
        self.subscriptionID = subscriptionID
        self.generation = generation
        self.partitions = partitions
    }
}
