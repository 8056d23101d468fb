import CoreMetrics
import Logging
import MeshCore
import MeshLog
import Synchronization

/// Settings of the publish/subscribe engine.
public struct BrokerOptions: Sendable {
    /// The node (site) name: event sources default to `meshgate://<node>/<ingress>`.
    public var node = "meshgate"
    /// The largest event `data` accepted (SPEC §8: 1 MiB by default).
    public var maxEventBytes = 1 << 20
    /// Appends waiting for the log at most; beyond it publishes are refused as overloaded.
    public var maxPendingAppends = 200_000
    /// What an overloaded publisher is told to wait.
    public var retryAfterMilliseconds = 200
    /// Create a topic (with the log's default settings) on its first publish.
    public var autoCreateTopics = true
    /// Where publish metrics are recorded; nil: the process's bootstrapped `MetricsSystem`.
    public var metricsFactory: (any MetricsFactory)?

    public init() {}
}

/// The one publish/subscribe engine behind every API: validates and stores events, serves reads,
/// subscriptions and consumer groups. The HTTP and TCP listeners are thin adapters over it.
public final class Broker: Sendable {
    public let log: DurableLog
    public let options: BrokerOptions
    let logger: Logger
    let groups: GroupCoordinator
    private let pending = Atomic<Int>(0)
    private let subscriptions = Mutex<[UInt64: WeakSubscription]>([:])
    private let nextSubscriptionID = Atomic<UInt64>(0)
    private let metrics: PublishMetrics

    public init(log: DurableLog, options: BrokerOptions = BrokerOptions(), logger: Logger = Logger(label: "meshgate.broker")) {
        self.log = log
        self.options = options
        self.logger = logger
        self.groups = GroupCoordinator(log: log)
        metrics = PublishMetrics(factory: options.metricsFactory ?? MetricsSystem.factory)
        log.observeNewTopics { [weak self] topic in self?.topicCreated(topic) }
    }

    // MARK: Publishing

    /// Validates, fills (SPEC §1) and durably appends `events`; the completion gets one receipt per
    /// event, in order, once all are as durable as their topics ask. Events of one partition are
    /// appended as one batch with consecutive offsets.
    public func publish(_ events: [Event], ingress: String,
                        completion: @escaping @Sendable (Result<[PublishReceipt], BrokerError>) -> Void) {
        guard !events.isEmpty else { return completion(.success([])) }
        let api = metrics.api(ingress)
        let started = ContinuousClock.now
        var bytes = 0
        for e in events { bytes += e.data.count }
        let dataBytes = bytes
        let completion: @Sendable (Result<[PublishReceipt], BrokerError>) -> Void = { result in
            switch result {
            case .success(let receipts):
                api.events.increment(by: receipts.count)
                api.bytes.increment(by: dataBytes)
                let (seconds, attoseconds) = (ContinuousClock.now - started).components
                api.latency.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            case .failure(let error):
                api.failed(error.kind)
            }
            completion(result)
        }
        var prepared: [(event: Event, topic: TopicLog, partition: Int, bytes: [UInt8])] = []
        prepared.reserveCapacity(events.count)
        do throws(BrokerError) {
            for event in events {
                prepared.append(try prepare(event, ingress: ingress))
            }
        } catch {
            return completion(.failure(error))
        }
        let count = prepared.count
        if pending.wrappingAdd(count, ordering: .relaxed).newValue > options.maxPendingAppends {
            pending.wrappingSubtract(count, ordering: .relaxed)
            return completion(.failure(BrokerError(.overloaded, "the log has \(options.maxPendingAppends) appends waiting; retry shortly",
                                                   retryAfterMilliseconds: options.retryAfterMilliseconds)))
        }
        if count == 1 {
            let p = prepared[0]
            p.topic.partitions[p.partition].append(p.bytes) { [self] result in
                pending.wrappingSubtract(1, ordering: .relaxed)
                completion(result.map { [PublishReceipt(id: p.event.id, topic: p.topic.topic.name, partition: p.partition, offset: $0)] }
                    .mapError(BrokerError.init))
            }
            return
        }
        // Group by partition, keeping each event's index so receipts come back in request order.
        var groups: [TopicPartition: (log: PartitionLog, indices: [Int], payloads: [[UInt8]])] = [:]
        for (i, p) in prepared.enumerated() {
            let key = TopicPartition(topic: p.topic.topic.name, partition: p.partition)
            groups[key, default: (p.topic.partitions[p.partition], [], [])].indices.append(i)
            groups[key]!.payloads.append(p.bytes)
        }
        let collector = BatchCollector(count: count, groups: groups.count, completion: completion)
        let ids = prepared.map(\.event.id)
        for (key, group) in groups {
            group.log.append(batch: group.payloads) { [self] result in
                pending.wrappingSubtract(group.indices.count, ordering: .relaxed)
                switch result {
                case .success(let first):
                    for (k, index) in group.indices.enumerated() {
                        collector.set(index, PublishReceipt(id: ids[index], topic: key.topic, partition: key.partition, offset: first + Int64(k)))
                    }
                    collector.groupDone(nil)
                case .failure(let error):
                    collector.groupDone(BrokerError(error))
                }
            }
        }
    }

    public func publish(_ events: [Event], ingress: String) async throws(BrokerError) -> [PublishReceipt] {
        let result: Result<[PublishReceipt], BrokerError> = await withUnsafeContinuation { cont in
            publish(events, ingress: ingress) { cont.resume(returning: $0) }
        }
        return try result.get()
    }

    private func prepare(_ event: Event, ingress: String) throws(BrokerError) -> (event: Event, topic: TopicLog, partition: Int, bytes: [UInt8]) {
        if event.data.count > options.maxEventBytes {
            throw BrokerError(.tooLarge, "event data of \(event.data.count) bytes exceeds the limit of \(options.maxEventBytes) bytes")
        }
        var filled = event.filled(node: options.node, ingress: ingress)
        // The origin site heads the hop list (SPEC §1); bridges append the sites an event crosses.
        if filled.hops.isEmpty { filled.hops = [options.node] }
        do { try filled.validate() } catch { throw BrokerError(.invalidEvent, error.message) }
        let topic = try topicLog(filled.topic, create: options.autoCreateTopics)
        let partition = topic.partition(forKey: filled.partitionKey)
        return (filled, topic, partition, EventCodec.encode(filled))
    }

    /// The topic's log; created with the default settings when `create` is set.
    public func topicLog(_ topic: Topic, create: Bool = false) throws(BrokerError) -> TopicLog {
        if let existing = log.topic(topic) { return existing }
        guard create else { throw BrokerError(.unknownTopic, "topic \(topic) does not exist") }
        do { return try log.createTopic(topic) } catch { throw BrokerError(error) }
    }

    // MARK: Reading

    /// Reads up to `max` events of one partition from `offset`; when there are none yet, waits up
    /// to `waitMilliseconds` for the first to arrive. `next` is the offset to ask for next time.
    public func fetch(topic: Topic, partition: Int, from offset: Int64, max: Int, maxBytes: Int = 4 << 20,
                      waitMilliseconds: Int = 0) async throws(BrokerError) -> (deliveries: [Delivery], next: Int64) {
        let t = try topicLog(topic)
        let p: PartitionLog
        do { p = try t.partition(partition) } catch { throw BrokerError(error) }
        if offset >= p.endOffset && waitMilliseconds > 0 && offset == p.endOffset {
            await Self.wait(for: p, beyond: offset, upTo: waitMilliseconds)
        }
        do {
            let records = try p.read(from: offset, maxRecords: max, maxBytes: maxBytes)
            let next = records.last.map { $0.offset + 1 } ?? offset
            return (records.map { Delivery(topic: topic.name, partition: partition, offset: $0.offset, timestamp: $0.timestamp, payload: $0.payload) }, next)
        } catch {
            throw BrokerError(error)
        }
    }

    /// Waits until the partition has data beyond `offset` or the time is up.
    static func wait(for p: PartitionLog, beyond offset: Int64, upTo milliseconds: Int) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await p.waitForData(beyond: offset) }
            group.addTask { try? await Task.sleep(for: .milliseconds(milliseconds)) }
            await group.next()
            group.cancelAll()
        }
    }

    // MARK: Subscriptions

    /// Starts a subscription to every partition of every topic matching `pattern` — or, with a
    /// group, to the share of them the group assigns to this member. `resume` positions (from a
    /// stream cursor) take precedence over committed offsets and `start`.
    public func subscribe(pattern: TopicPattern, group: String? = nil, start: StartPosition = .latest,
                          resume: [TopicPartition: Int64] = [:]) -> Subscription {
        let id = nextSubscriptionID.wrappingAdd(1, ordering: .relaxed).newValue
        let sub = Subscription(id: id, broker: self, pattern: pattern, group: group, start: start, resume: resume)
        subscriptions.withLock { $0[id] = WeakSubscription(sub) }
        if let group {
            groups.join(group: group, member: sub)
        } else {
            var all: [TopicPartition] = []
            for t in log.topics where pattern.matches(t.topic) {
                for p in t.partitions { all.append(TopicPartition(topic: t.topic.name, partition: p.index)) }
            }
            sub.assign(all, generation: 0)
        }
        return sub
    }

    func ended(_ sub: Subscription) {
        _ = subscriptions.withLock { $0.removeValue(forKey: sub.id) }
        if let group = sub.group { groups.leave(group: group, member: sub) }
    }

    private func topicCreated(_ topic: TopicLog) {
        let live = subscriptions.withLock { $0.values.compactMap(\.value) }
        for sub in live where sub.group == nil && sub.pattern.matches(topic.topic) {
            sub.add(topic.partitions.map { TopicPartition(topic: topic.topic.name, partition: $0.index) }, newTopic: true)
        }
        groups.topicCreated(topic)
    }

    /// Durably commits a consumer group's position (the next offset it will read).
    public func commit(group: String, _ offsets: [GroupOffset]) async throws(BrokerError) {
        do { try await log.offsets.commit(group: group, offsets) } catch { throw BrokerError(error) }
    }

    public func committed(group: String) -> [GroupOffset] {
        log.offsets.committed(group: group)
    }

    /// Current members and assignments of a group.
    public func members(of group: String) -> [(member: UInt64, partitions: [TopicPartition])] {
        groups.members(of: group)
    }
}

/// Gathers the receipts of a batch spread over several partitions.
final class BatchCollector: @unchecked Sendable {
    private let lock = NSLockLike()
    private var receipts: [PublishReceipt?]
    private var remaining: Int
    private var failure: BrokerError?
    private let completion: @Sendable (Result<[PublishReceipt], BrokerError>) -> Void

    init(count: Int, groups: Int, completion: @escaping @Sendable (Result<[PublishReceipt], BrokerError>) -> Void) {
        receipts = Array(repeating: nil, count: count)
        remaining = groups
        self.completion = completion
    }

    func set(_ index: Int, _ receipt: PublishReceipt) {
        lock.withLock { receipts[index] = receipt }
    }

    func groupDone(_ error: BrokerError?) {
        let done = lock.withLock { () -> Bool in
            if let error, failure == nil { failure = error }
            remaining -= 1
            return remaining == 0
        }
        guard done else { return }
        if let failure { completion(.failure(failure)) } else { completion(.success(receipts.map { $0! })) }
    }
}

/// A plain mutex for classes whose state is not a single value.
final class NSLockLike: Sendable {
    private let mutex = Mutex(())
    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try mutex.withLock { _ in try body() }
    }
}

final class WeakSubscription: Sendable {
    weak let value: Subscription?
    init(_ value: Subscription) { self.value = value }
}
