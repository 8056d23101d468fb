import MeshCore
import MeshLog
import Synchronization

/// Something events are delivered to: a log topic, an MQTT broker, a webhook, a remote site.
/// The engine calls `deliver` for one event at a time per key (see `DeliveryPolicy.ordering`), and
/// may call it concurrently for different keys up to the policy's `in_flight`. The event's `topic`
/// is already the rendered destination topic. Returning means the destination has it (the engine
/// then commits the cursor); throwing lets the policy decide whether to retry or dead-letter.
public protocol Destination: Sendable {
    func deliver(_ event: Event) async throws(DeliveryError)
    /// True for destinations that gain from many events per round trip (a remote site): the engine
    /// then hands them each read batch of a partition whole, in log order, with `deliver(batch:)`,
    /// and falls back to `deliver(_:)` one by one for a batch the policy gives up on.
    var acceptsBatches: Bool { get }
    /// Delivers all of `events` (in order) or throws; a retry resends the whole batch.
    func deliver(batch events: [Event]) async throws(DeliveryError)
    /// True for destinations that take events in the log's own encoding: a route with no filter,
    /// no transform and a topic template that reads no attribute then hands them each read batch
    /// re-addressed (`EventCodec.retopic`), never decoding an event.
    var acceptsEncoded: Bool { get }
    /// Delivers all of `events` (in order) or throws, as `deliver(batch:)`.
    func deliver(encoded events: [EncodedEvent]) async throws(DeliveryError)
}

/// An event in the log's encoding, already addressed to its destination topic.
public struct EncodedEvent: Sendable {
    public let topic: Topic
    public let partitionKey: String?
    public let bytes: [UInt8]

    public init(topic: Topic, partitionKey: String?, bytes: [UInt8]) {
        self.topic = topic
        self.partitionKey = partitionKey
        self.bytes = bytes
    }
}

extension Destination {
    public var acceptsBatches: Bool { false }

    public func deliver(batch events: [Event]) async throws(DeliveryError) {
        for event in events { try await deliver(event) }
    }

    public var acceptsEncoded: Bool { false }

    public func deliver(encoded events: [EncodedEvent]) async throws(DeliveryError) {
        var decoded: [Event] = []
        decoded.reserveCapacity(events.count)
        for e in events {
            do { decoded.append(try EventCodec.decode(e.bytes)) } catch {
                throw DeliveryError("an encoded event is not an event: \(error.message)", retryable: false)
            }
        }
        try await deliver(batch: decoded)
    }
}

/// Builds the runtime of connector destinations. The connector modules implement this; a nil
/// result means "no runtime for this connector yet": the pair waits and its events stay in the log.
public protocol DestinationProvider: Sendable {
    func destination(for connector: ConnectorSpec, route: Route, spec: DestinationSpec) -> (any Destination)?
}

/// A failed delivery. `status` is a protocol status (HTTP code, or an MQTT reason code mapped to
/// one); `retryAfter` comes from a `Retry-After` header or equivalent; `retryable` overrides the
/// policy's status classes when the destination knows better (nil: let the policy decide);
/// `response` is the start of what the destination answered (an HTTP body), kept on the
/// dead-letter event so whoever reads it can see why the destination refused.
public struct DeliveryError: MeshError, Equatable {
    public let reason: String
    public let status: Int?
    public let retryAfter: Duration?
    public let retryable: Bool?
    public let response: String?

    public init(_ reason: String, status: Int? = nil, retryAfter: Duration? = nil, retryable: Bool? = nil, response: String? = nil) {
        self.reason = reason
        self.status = status
        self.retryAfter = retryAfter
        self.retryable = retryable
        self.response = response
    }

    public var code: String { "delivery.failed" }
    public var message: String { status.map { "\(reason) (status \($0))" } ?? reason }
}

/// Appends to a topic of the built-in log, creating it with the log's default config.
public struct LogTopicDestination: Destination {
    public let log: DurableLog

    public init(log: DurableLog) { self.log = log }

    public func deliver(_ event: Event) async throws(DeliveryError) {
        do {
            let topic = try log.createTopic(event.topic)
            _ = try await topic.append(EventCodec.encode(event), key: event.partitionKey)
        } catch {
            throw DeliveryError("cannot append to \(event.topic): \(error)", retryable: true)
        }
    }

    /// Takes each read batch whole: one append per destination partition (one write, and for
    /// `fsync: always` one group commit, instead of one per event), all partitions at once, each
    /// partition's events in batch order. A failure fails the whole batch, whose retry may repeat
    /// the events another partition already took (at least once, as for a crash before the commit).
    public var acceptsBatches: Bool { true }

    public func deliver(batch events: [Event]) async throws(DeliveryError) {
        try await deliver(encoded: events.map { EncodedEvent(topic: $0.topic, partitionKey: $0.partitionKey, bytes: EventCodec.encode($0)) })
    }

    public var acceptsEncoded: Bool { true }

    public func deliver(encoded events: [EncodedEvent]) async throws(DeliveryError) {
        var groups: [(partition: PartitionLog, payloads: [[UInt8]])] = []
        var groupOf: [ObjectIdentifier: Int] = [:]
        var topic: TopicLog?
        for event in events {
            let partition: PartitionLog
            do {
                // A batch is usually all one topic: look it up once.
                if topic?.topic != event.topic { topic = try log.createTopic(event.topic) }
                partition = topic!.partitions[topic!.partition(forKey: event.partitionKey)]
            } catch {
                throw DeliveryError("cannot append to \(event.topic): \(error)", retryable: true)
            }
            let payload = event.bytes
            if let i = groupOf[ObjectIdentifier(partition)] {
                groups[i].payloads.append(payload)
            } else {
                groupOf[ObjectIdentifier(partition)] = groups.count
                groups.append((partition, [payload]))
            }
        }
        guard !groups.isEmpty else { return }
        let failure: (String, LogError)? = await withCheckedContinuation { continuation in
            let pending = Countdown(groups.count)
            for (partition, payloads) in groups {
                let name = partition.topicName
                partition.append(batch: payloads) { result in
                    if let outcome = pending.finish(result.failure.map { (name, $0) }) { continuation.resume(returning: outcome) }
                }
            }
        }
        if let (topic, error) = failure { throw DeliveryError("cannot append to \(topic): \(error)", retryable: true) }
    }
}

/// Counts the appends of a batch down; the last one to finish learns the first failure.
private final class Countdown: Sendable {
    private let state: Mutex<(left: Int, failure: (String, LogError)?)>

    init(_ count: Int) { state = Mutex((count, nil)) }

    /// Nil while appends are outstanding; then `.some(first failure or nil)`.
    func finish(_ failure: (String, LogError)?) -> (String, LogError)?? {
        state.withLock { s in
            if s.failure == nil, let failure { s.failure = failure }
            s.left -= 1
            return s.left == 0 ? .some(s.failure) : nil
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

extension Transform {
    /// The event as the destination should see it: attributes removed, then set from templates.
    /// Throws when a value cannot be set (a bad `time`, an invalid extension name).
    public func apply(to event: Event, source topic: Topic, captures: [String]) throws(DeliveryError) -> Event {
        var e = event
        for name in remove {
            switch name {
            case "subject": e.subject = nil
            case "time": e.time = nil
            case "datacontenttype": e.datacontenttype = nil
            case "dataschema": e.dataschema = nil
            case "partitionkey": e.partitionKey = nil
            case "traceparent": e.traceparent = nil
            case "tracestate": e.tracestate = nil
            default: e.extensions[name] = nil
            }
        }
        for a in assignments {
            let value = a.value.render(topic: topic, captures: captures, event: event)
            switch a.attribute {
            case "id": e.id = value
            case "source": e.source = value
            case "type": e.type = value
            case "subject": e.subject = value
            case "datacontenttype": e.datacontenttype = value
            case "dataschema": e.dataschema = value
            case "partitionkey": e.partitionKey = value
            case "time":
                do { e.time = try Timestamp(rfc3339: value) } catch {
                    throw DeliveryError("set time: \(value) is not an RFC 3339 timestamp", retryable: false)
                }
            default: e.extensions[a.attribute] = value
            }
        }
        return e
    }

    /// Attributes `remove:` may not name: CloudEvents requires them.
    public static let required: Set<String> = ["id", "source", "type", "specversion"]
    /// Attributes `set:` may not name.
    public static let unsettable: Set<String> = ["specversion", "topic", "data", "data_base64", "partition", "offset"]
}
