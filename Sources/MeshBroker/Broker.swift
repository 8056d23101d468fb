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
        publish([PublishRequest(events: events, completion: completion)], ingress: ingress)
    }

    /// Publishes several requests at once — a burst of frames read from one connection. Each
    /// request is validated alone (a bad event fails its own request only) and gets its own
    /// completion, but the events of all of them are appended as one batch per partition, so a
    /// burst costs the log one queued append per partition instead of one per request. Within a
    /// partition, offsets follow the order of `requests`.
    public func publish(_ requests: [PublishRequest], ingress: String) {
        let api = metrics.api(ingress)
        let started = ContinuousClock.now
        var accepted: [PublishBurst.Request] = []
        accepted.reserveCapacity(requests.count)
        var plan = BurstPlan()
        for request in requests {
            if request.events.isEmpty && request.encoded.isEmpty {
                request.completion(.success([]))
                continue
            }
            let mark = plan.startRequest()
            var dataBytes = 0
            do throws(BrokerError) {
                // Through a buffer pointer, which lends each event: iterating or subscripting the
                // array would copy every one.
                try request.events.withUnsafeBufferPointer { (events) throws(BrokerError) in
                    for index in events.indices {
                        plan.add(try prepare(events[index], ingress: ingress))
                        dataBytes += events[index].data.count
                    }
                }
                try request.encoded.withUnsafeBufferPointer { (encoded) throws(BrokerError) in
                    // By pointer: even through the buffer pointer, handing `encoded[index]` to
                    // `prepare` copied (and then destroyed) each one.
                    guard let first = encoded.baseAddress else { return }
                    for index in encoded.indices {
                        plan.add(try prepare(first + index, ingress: ingress))
                        dataBytes += first[index].envelope.dataCount
                    }
                }
            } catch {
                plan.takeBack(mark)
                api.failed(error.kind)
                request.completion(.failure(error))
                continue
            }
            accepted.append(PublishBurst.Request(entries: mark.entries..<plan.entries.count, dataBytes: dataBytes,
                                                 completion: request.completion))
        }
        guard !accepted.isEmpty else { return }
        let count = plan.entries.count
        if pending.wrappingAdd(count, ordering: .relaxed).newValue > options.maxPendingAppends {
            pending.wrappingSubtract(count, ordering: .relaxed)
            let error = BrokerError(.overloaded, "the log has \(options.maxPendingAppends) appends waiting; retry shortly",
                                    retryAfterMilliseconds: options.retryAfterMilliseconds)
            for request in accepted {
                api.failed(error.kind)
                request.completion(.failure(error))
            }
            return
        }
        let burst = PublishBurst(requests: accepted, entries: plan.entries, groups: plan.groups, api: api, started: started)
        for (g, group) in plan.groups.enumerated() {
            let appended = plan.payloads[g].count
            group.log.append(batch: plan.payloads[g]) { [self] result in
                pending.wrappingSubtract(appended, ordering: .relaxed)
                burst.groupDone(g, result.mapError(BrokerError.init))
            }
        }
    }

    public func publish(_ events: [Event], ingress: String) async throws(BrokerError) -> [PublishReceipt] {
        let result: Result<[PublishReceipt], BrokerError> = await withUnsafeContinuation { cont in
            publish(events, ingress: ingress) { cont.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Validates one event and encodes it for the log as filled (SPEC §1). Returns what the
    /// receipt and the append need: the publish path never copies an event.
    private func prepare(_ event: Event, ingress: String) throws(BrokerError) -> (id: String, log: PartitionLog, topic: String, partition: Int, bytes: [UInt8]) {
        if event.data.count > options.maxEventBytes {
            throw BrokerError(.tooLarge, "event data of \(event.data.count) bytes exceeds the limit of \(options.maxEventBytes) bytes")
        }
        // Filling sets every required attribute that is missing; only extensions can be invalid.
        do { try event.validateExtensions() } catch { throw BrokerError(.invalidEvent, error.message) }
        let topic = try topicLog(event.topic, create: options.autoCreateTopics)
        let partition = topic.partition(forKey: event.partitionKey)
        // The origin site heads the hop list (SPEC §1); bridges append the sites an event crosses.
        let (id, bytes) = EventCodec.encodeFilled(event, node: options.node, ingress: ingress, originHop: options.node)
        return (id, topic.partitions[partition], topic.topic.name, partition, bytes)
    }

    /// The same for an event in its encoding: filled from its bytes when it was published so, and
    /// otherwise (a bridge's) stored as it is, which filling must not change.
    private func prepare(_ e: UnsafePointer<EncodedPublish>, ingress: String) throws(BrokerError) -> (id: String, log: PartitionLog, topic: String, partition: Int, bytes: [UInt8]) {
        // Read through the pointer, never copied out: a copy retains each of the envelope's
        // strings and arrays, once per event.
        guard e.pointee.envelope.isFilled || e.pointee.isPublished else {
            throw BrokerError(.invalidEvent, "an encoded event must have an id, a source, a type, a time and hops")
        }
        if e.pointee.envelope.dataCount > options.maxEventBytes {
            throw BrokerError(.tooLarge, "event data of \(e.pointee.envelope.dataCount) bytes exceeds the limit of \(options.maxEventBytes) bytes")
        }
        if let error = e.pointee.envelope.extensionError { throw BrokerError(.invalidEvent, error.message) }
        let topic = try topicLog(e.pointee.envelope.topic, create: options.autoCreateTopics)
        let partition = topic.partition(forKey: e.pointee.envelope.partitionKey)
        if e.pointee.isPublished {
            let (id, bytes) = e.pointee.envelope.filled(node: options.node, ingress: ingress, originHop: options.node)
            return (id, topic.partitions[partition], topic.topic.name, partition, bytes)
        }
        return (e.pointee.envelope.id, topic.partitions[partition], topic.topic.name, partition, e.pointee.bytes)
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

/// The appends a publish burst is building: its events in request order, grouped by partition.
/// A request that fails is taken back whole.
struct BurstPlan {
    var entries: [PublishBurst.Entry] = []
    var groups: [PublishBurst.Group] = []
    var payloads: [[[UInt8]]] = []
    private var groupOf: [ObjectIdentifier: Int] = [:]
    /// The groups the current request added to, in order, with how many each.
    private var touched: [(group: Int, count: Int)] = []

    struct Mark {
        let entries: Int
        let groups: Int
    }

    mutating func startRequest() -> Mark {
        touched.removeAll(keepingCapacity: true)
        return Mark(entries: entries.count, groups: groups.count)
    }

    mutating func add(_ p: (id: String, log: PartitionLog, topic: String, partition: Int, bytes: [UInt8])) {
        let g: Int
        if let last = groups.indices.last, groups[last].log === p.log {
            g = last
        } else if let known = groupOf[ObjectIdentifier(p.log)] {
            g = known
        } else {
            g = groups.count
            groups.append(PublishBurst.Group(log: p.log, topic: p.topic, partition: p.partition))
            payloads.append([])
            groupOf[ObjectIdentifier(p.log)] = g
        }
        if touched.last?.group == g { touched[touched.count - 1].count += 1 } else { touched.append((g, 1)) }
        entries.append(PublishBurst.Entry(id: p.id, group: g, position: payloads[g].count))
        payloads[g].append(p.bytes)
    }

    /// Takes back what the request started at `mark` added; the groups it opened are the newest.
    mutating func takeBack(_ mark: Mark) {
        entries.removeSubrange(mark.entries...)
        for (g, n) in touched.reversed() where g < mark.groups { payloads[g].removeLast(n) }
        for g in groups.indices.dropFirst(mark.groups) { groupOf[ObjectIdentifier(groups[g].log)] = nil }
        groups.removeSubrange(mark.groups...)
        payloads.removeSubrange(mark.groups...)
    }
}

/// One request of a publish burst: its events and where their receipts go.
public struct PublishRequest: Sendable {
    public let events: [Event]
    /// Events already encoded for the log (after `events`, in receipts too).
    public let encoded: [EncodedPublish]
    public let completion: @Sendable (Result<[PublishReceipt], BrokerError>) -> Void

    public init(events: [Event], encoded: [EncodedPublish] = [], completion: @escaping @Sendable (Result<[PublishReceipt], BrokerError>) -> Void) {
        self.events = events
        self.encoded = encoded
        self.completion = completion
    }
}

/// An event in its encoding. Either one a bridge forwards, to store as `bytes`, its encoding with
/// everything filled (`EventEnvelope.isFilled`) and the receiving site's hop appended (`envelope`
/// describes `bytes` but for that hop); or one published in its encoding, filled as a published
/// `Event` is (`EventEnvelope.filled`) and stored without being decoded.
public struct EncodedPublish: Sendable {
    public let envelope: EventEnvelope
    public let bytes: [UInt8]
    /// Published here, not forwarded: filled before it is stored.
    public let isPublished: Bool

    public init(envelope: EventEnvelope, bytes: [UInt8]) {
        self.envelope = envelope
        self.bytes = bytes
        isPublished = false
    }

    public init(published envelope: EventEnvelope) {
        self.envelope = envelope
        bytes = envelope.bytes
        isPublished = true
    }
}

/// The appends of one publish burst, one per partition it touched. When the last is durable,
/// every request gets its receipts — or the error of a partition that failed under it.
final class PublishBurst: Sendable {
    struct Request {
        let entries: Range<Int>
        let dataBytes: Int
        let completion: @Sendable (Result<[PublishReceipt], BrokerError>) -> Void
    }
    struct Entry {
        let id: String
        let group: Int
        /// The event's place in its partition's batch: its offset is the batch's first plus this.
        let position: Int
    }
    struct Group {
        let log: PartitionLog
        let topic: String
        let partition: Int
    }

    private let requests: [Request]
    private let entries: [Entry]
    private let groups: [Group]
    private let api: PublishMetrics.API
    private let started: ContinuousClock.Instant
    /// Per group: the first offset of its batch, or its error; and how many groups are still out.
    private let results: Mutex<(outcomes: [Result<Int64, BrokerError>?], remaining: Int)>

    init(requests: [Request], entries: [Entry], groups: [Group], api: PublishMetrics.API, started: ContinuousClock.Instant) {
        self.requests = requests
        self.entries = entries
        self.groups = groups
        self.api = api
        self.started = started
        results = Mutex((Array(repeating: nil, count: groups.count), groups.count))
    }

    func groupDone(_ group: Int, _ result: Result<Int64, BrokerError>) {
        let outcomes = results.withLock { r -> [Result<Int64, BrokerError>?]? in
            r.outcomes[group] = result
            r.remaining -= 1
            return r.remaining == 0 ? r.outcomes : nil
        }
        guard let outcomes else { return }
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        for request in requests {
            var receipts: [PublishReceipt] = []
            receipts.reserveCapacity(request.entries.count)
            var failure: BrokerError?
            for e in request.entries {
                let entry = entries[e]
                switch outcomes[entry.group]! {
                case .success(let first):
                    let g = groups[entry.group]
                    receipts.append(PublishReceipt(id: entry.id, topic: g.topic, partition: g.partition, offset: first + Int64(entry.position)))
                case .failure(let error):
                    failure = failure ?? error
                }
            }
            if let failure {
                api.failed(failure.kind)
                request.completion(.failure(failure))
            } else {
                api.events.increment(by: receipts.count)
                api.bytes.increment(by: request.dataBytes)
                api.latency.recordNanoseconds(nanoseconds)
                request.completion(.success(receipts))
            }
        }
    }
}

final class WeakSubscription: Sendable {
    weak let value: Subscription?
    init(_ value: Subscription) { self.value = value }
}
