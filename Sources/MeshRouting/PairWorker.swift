import Foundation
import Logging
import MeshCore
import MeshLog
import Synchronization

/// Delivers one route's events to one destination. It owns a durable cursor (the consumer group
/// `route:<route>:<n>`) and one task per matching partition, so a slow or failing destination
/// only ever holds back itself. Each partition task reads up to `buffer` records, filters,
/// transforms and delivers them under the policy, then commits; a crash before the commit
/// redelivers (at least once), never skips.
final class PairWorker: Sendable {
    let route: Route
    let index: Int
    let spec: DestinationSpec
    let group: String
    let destination: (any Destination)?
    let waitingReason: String?
    let counters = DeliveryCounters()
    private let log: DurableLog
    private let logger: Logger
    private let fresh: Bool
    /// Events go through unchanged but for their topic: no filter, no transform, a topic
    /// template that reads no attribute, and a destination that takes the log's encoding.
    private let passThrough: Bool

    private struct State {
        var topics: [String: TopicLog] = [:]
        var tasks: [Task<Void, Never>] = []
        var stopped = false
    }
    private let state = Mutex(State())

    init(route: Route, index: Int, destination: (any Destination)?, waitingReason: String?, log: DurableLog, logger: Logger) {
        self.route = route
        self.index = index
        self.spec = route.destinations[index]
        self.group = route.group(destination: index)
        self.destination = destination
        self.waitingReason = waitingReason
        self.log = log
        self.logger = logger
        fresh = log.offsets.committed(group: group).isEmpty
        passThrough = route.filter == nil && spec.transform.isEmpty && !spec.topicTemplate.readsAttributes
            && destination?.acceptsEncoded == true
    }

    static let marker = GroupOffset(topic: "", partition: 0, offset: 0)

    /// Attaches to every existing matching topic. A brand-new cursor starts at the end of topics
    /// that already exist (unless `start: earliest`) and commits those positions at once, so a
    /// restart cannot move them; topics created later are read from their start.
    func start() {
        guard case .topics(let pattern) = route.source, destination != nil else { return }
        let existing = log.topics.filter { pattern.matches($0.topic) }
        if fresh {
            var initial = [Self.marker]
            if !spec.policy.startAtEarliest {
                for t in existing {
                    for p in t.partitions where log.offsets.committed(group: group, topic: t.topic.name, partition: p.index) == nil {
                        initial.append(GroupOffset(topic: t.topic.name, partition: p.index, offset: p.endOffset))
                    }
                }
            }
            do { try log.offsets.commitNow(group: group, initial) } catch {
                logger.error("cannot record the start of cursor \(group): \(error)")
            }
        }
        for t in existing { addTopic(t) }
    }

    func addTopic(_ topic: TopicLog) {
        guard destination != nil else { return }
        state.withLock { s in
            guard !s.stopped, s.topics[topic.topic.name] == nil else { return }
            s.topics[topic.topic.name] = topic
            for p in topic.partitions {
                s.tasks.append(Task { [self] in await self.run(topic: topic.topic, partition: p) })
            }
        }
    }

    /// Cancels every partition task and waits for them; uncommitted work is redelivered later.
    func stop() async {
        let tasks = state.withLock { s -> [Task<Void, Never>] in
            s.stopped = true
            return s.tasks
        }
        for t in tasks { t.cancel() }
        for t in tasks { await t.value }
    }

    /// Records not yet committed across the partitions this pair reads.
    var lag: Int64 {
        let topics = state.withLock { Array($0.topics.values) }
        var total: Int64 = 0
        for t in topics {
            for p in t.partitions {
                let committed = log.offsets.committed(group: group, topic: t.topic.name, partition: p.index) ?? p.startOffset
                total += max(0, p.endOffset - committed)
            }
        }
        return total
    }

    /// Age of the oldest record not yet committed, in seconds (0 when caught up): one small read
    /// per lagging partition, so status and scrapes may call it, the delivery loop never does.
    var lagSeconds: Double {
        let topics = state.withLock { Array($0.topics.values) }
        var oldest: Int64?
        for t in topics {
            for p in t.partitions {
                let committed = log.offsets.committed(group: group, topic: t.topic.name, partition: p.index) ?? p.startOffset
                guard committed < p.endOffset, let r = try? p.read(from: max(committed, p.startOffset), maxRecords: 1, maxBytes: 1).first else { continue }
                oldest = min(oldest ?? r.timestamp, r.timestamp)
            }
        }
        guard let oldest else { return 0 }
        return max(0, Double(log.options.clock() - oldest) / 1_000_000)
    }

    var topicCount: Int { state.withLock { $0.topics.count } }

    // MARK: the partition loop

    private struct Item: Sendable {
        let original: Event
        let prepared: Result<Event, DeliveryError>
    }

    private func run(topic: Topic, partition p: PartitionLog) async {
        // The cursor commit of one batch (an fsync of the offsets journal) runs while the next
        // batch is read and delivered; commits still land in batch order, each awaiting the one
        // before. A crash between delivery and commit redelivers, as the at-least-once contract
        // allows.
        var committing: Task<Bool, Never>?
        await deliverLoop(topic: topic, partition: p, committing: &committing)
        if let committing { _ = await Self.finished(committing) }
    }

    /// Waits for a commit; cancelling the waiter stops the commit's retries (not a write under way).
    private static func finished(_ commit: Task<Bool, Never>) async -> Bool {
        await withTaskCancellationHandler { await commit.value } onCancel: { commit.cancel() }
    }

    private func deliverLoop(topic: Topic, partition p: PartitionLog, committing: inout Task<Bool, Never>?) async {
        var next = log.offsets.committed(group: group, topic: topic.name, partition: p.index) ?? p.startOffset
        let policy = spec.policy
        while !Task.isCancelled {
            if next < p.startOffset {
                counters.add(counters.expired, Int(p.startOffset - next))
                logger.warning("retention removed \(p.startOffset - next) record(s) of \(topic) before \(group) delivered them")
                next = p.startOffset
            }
            if next > p.endOffset {
                // The cursor is past the log's end: records it had seen were lost in a power failure
                // of a topic with fsync none/interval. Continue from the end rather than stall.
                logger.warning("\(group): cursor \(next) is past the end \(p.endOffset) of \(topic)#\(p.index); continuing from the end")
                next = p.endOffset
            }
            let records: [LogRecord]
            do { records = try p.read(from: next, maxRecords: policy.buffer) } catch {
                if error.code == .closed { return }
                logger.error("\(group) cannot read \(topic)#\(p.index) at \(next): \(error)")
                if (try? await Task.sleep(for: .seconds(1))) == nil { return }
                continue
            }
            if records.isEmpty {
                await p.waitForData(beyond: next)
                // A closed log wakes waiters without data: pause instead of spinning until stopped.
                if p.endOffset <= next, (try? await Task.sleep(for: .milliseconds(100))) == nil { return }
                continue
            }
            if passThrough, let encoded = readdressed(records, from: topic) {
                counters.add(counters.read, records.count)
                counters.add(counters.matched, records.count)
                switch await deliverBatch(count: encoded.count, { (destination) throws(DeliveryError) in
                    try await destination.deliver(encoded: encoded)
                }) {
                case .delivered: break
                case .cancelled: return
                case .gaveUp:
                    // One by one, decoded: the policy dead-letters what fails alone.
                    guard await deliver(items(of: records, topic: topic, partition: p, counting: false), tryBatch: false) else { return }
                }
            } else {
                guard await deliver(items(of: records, topic: topic, partition: p, counting: true), tryBatch: true) else { return }
            }
            let end = records.last!.offset + 1
            if let previous = committing, await Self.finished(previous) == false { return }
            let position = GroupOffset(topic: topic.name, partition: p.index, offset: end)
            committing = Task { await self.commit(position) }
            next = end
        }
    }

    /// The batch re-addressed to the rendered topic in the log's own encoding, for a pass-through
    /// pair; nil when any record needs the full path (it is not an event, or the rendered topic is
    /// invalid), which then reports it.
    private func readdressed(_ records: [LogRecord], from topic: Topic) -> [EncodedEvent]? {
        let captures = route.source.pattern.captures(topic) ?? []
        guard let target = try? Topic(spec.topicTemplate.render(topic: topic, captures: captures)) else { return nil }
        var out: [EncodedEvent] = []
        out.reserveCapacity(records.count)
        for r in records {
            // Unchanged topic: the record's own bytes, not a copy.
            guard let (bytes, key) = try? EventCodec.retopic(r.payload, topic: target) else { return nil }
            out.append(EncodedEvent(topic: target, partitionKey: key, bytes: bytes))
        }
        return out
    }

    /// The batch decoded, filtered and transformed for delivery; `counting` is off when the batch
    /// was counted already (a pass-through batch falling back to one by one).
    private func items(of records: [LogRecord], topic: Topic, partition p: PartitionLog, counting: Bool) -> [Item] {
        var items: [Item] = []
        items.reserveCapacity(records.count)
        for r in records {
            if counting { counters.add(counters.read) }
            let event: Event
            do { event = try EventCodec.decode(r.payload) } catch {
                if counting { counters.add(counters.undecodable) }
                logger.error("\(group): record \(topic)#\(p.index)@\(r.offset) is not an event (\(error)); skipped")
                continue
            }
            if let filter = route.filter {
                switch filter.matches(CESQLInput(event)) {
                case .matched: break
                case .notMatched:
                    counters.add(counters.notMatched)
                    continue
                case .error:
                    counters.add(counters.filterErrors)
                    counters.add(counters.notMatched)
                    continue
                }
            }
            if counting { counters.add(counters.matched) }
            let captures = route.source.pattern.captures(topic) ?? []
            items.append(Item(original: event, prepared: Result { () throws(DeliveryError) in try spec.prepare(event, captures: captures) }))
        }
        return items
    }

    /// Commits the cursor, retrying a failed commit every second. False when the log closed or
    /// the task was cancelled first.
    private func commit(_ position: GroupOffset) async -> Bool {
        while true {
            do {
                try await log.offsets.commit(group: group, [position])
                return true
            } catch {
                if error.code == .closed { return false }
                logger.error("\(group) cannot commit \(position.topic)#\(position.partition)@\(position.offset): \(error)")
                if (try? await Task.sleep(for: .seconds(1))) == nil { return false }
            }
        }
    }

    /// Delivers a batch under the ordering policy (as one batch first, when `tryBatch` and the
    /// destination takes batches). False when cancelled.
    private func deliver(_ items: [Item], tryBatch: Bool) async -> Bool {
        if items.isEmpty { return true }
        if tryBatch, destination?.acceptsBatches == true {
            var events: [Event] = []
            events.reserveCapacity(items.count)
            for item in items { if case .success(let e) = item.prepared { events.append(e) } }
            if events.count == items.count {
                switch await deliverBatch(count: events.count, { (destination) throws(DeliveryError) in
                    try await destination.deliver(batch: events)
                }) {
                case .delivered: return true
                case .cancelled: return false
                case .gaveUp: break  // one by one below: the policy dead-letters what fails alone
                }
            }
        }
        let policy = spec.policy
        var lanes: [[Item]] = []
        if policy.ordering == .key && policy.inFlight > 1 {
            var laneOf: [String: Int] = [:]
            for item in items {
                if let key = item.original.partitionKey {
                    if let i = laneOf[key] { lanes[i].append(item); continue }
                    laneOf[key] = lanes.count
                }
                lanes.append([item])
            }
        } else if policy.inFlight > 1 {
            lanes = items.map { [$0] }
        } else {
            lanes = [items]
        }
        if lanes.count == 1 {
            for item in lanes[0] { guard await deliverOne(item) else { return false } }
            return true
        }
        return await withTaskGroup(of: Bool.self) { group in
            var running = 0
            var ok = true
            for lane in lanes {
                if running >= policy.inFlight {
                    if await group.next() == false { ok = false }
                    running -= 1
                }
                group.addTask { [self] in
                    for item in lane { guard await self.deliverOne(item) else { return false } }
                    return true
                }
                running += 1
            }
            for await r in group where !r { ok = false }
            return ok
        }
    }

    private enum BatchOutcome { case delivered, cancelled, gaveUp }

    /// Delivers a whole batch, retrying it under the policy; a failure the policy would give up on
    /// (not retryable, attempts or time exhausted) hands the batch back to per-event delivery.
    private func deliverBatch(count: Int, _ send: (any Destination) async throws(DeliveryError) -> Void) async -> BatchOutcome {
        guard let destination else { return .cancelled }
        let policy = spec.policy
        let clock = ContinuousClock()
        let started = clock.now
        var attempt = 0
        while true {
            if Task.isCancelled { return .cancelled }
            let failure: DeliveryError
            do throws(DeliveryError) {
                try await send(destination)
                counters.add(counters.delivered, count)
                return .delivered
            } catch {
                failure = error
            }
            attempt += 1
            counters.add(counters.failedAttempts)
            counters.noteError(failure)
            let retryable = failure.retryable ?? policy.isRetryable(status: failure.status)
            let elapsed = clock.now - started
            if !retryable || (policy.attempts.map { attempt >= $0 } ?? false) || (policy.maxElapsed.map { elapsed >= $0 } ?? false) {
                return .gaveUp
            }
            do { try await Task.sleep(for: policy.wait(afterAttempt: attempt, retryAfter: failure.retryAfter)) } catch { return .cancelled }
        }
    }

    /// Tries until delivered or the policy gives up (then dead-letters). False when cancelled.
    private func deliverOne(_ item: Item) async -> Bool {
        guard let destination else { return false }
        let policy = spec.policy
        let clock = ContinuousClock()
        let started = clock.now
        var attempt = 0
        while true {
            if Task.isCancelled { return false }
            let failure: DeliveryError
            switch item.prepared {
            case .success(let event):
                do throws(DeliveryError) {
                    try await destination.deliver(event)
                    counters.add(counters.delivered)
                    return true
                } catch {
                    failure = error
                }
            case .failure(let error):
                failure = error
            }
            attempt += 1
            counters.add(counters.failedAttempts)
            counters.noteError(failure)
            let retryable = failure.retryable ?? policy.isRetryable(status: failure.status)
            let elapsed = clock.now - started
            let exhausted = !retryable || (policy.attempts.map { attempt >= $0 } ?? false)
                || (policy.maxElapsed.map { elapsed >= $0 } ?? false)
            if exhausted, let dlq = spec.deadLetter {
                return await deadLetter(item.original, failure, attempts: attempt, to: dlq)
            }
            if exhausted {
                // No dead-letter topic (so the policy has no limits): a permanent failure keeps the
                // event in the log and this pair waits, loudly, rather than dropping it.
                logger.error("\(group) cannot deliver \(item.original.id) and has no dead_letter: \(failure.message); retrying")
            }
            var wait = policy.wait(afterAttempt: attempt, retryAfter: failure.retryAfter)
            if let maxElapsed = policy.maxElapsed, spec.deadLetter != nil {
                let left = maxElapsed - elapsed
                if wait > left { wait = max(left, .zero) }
            }
            do { try await Task.sleep(for: wait) } catch { return false }
        }
    }

    /// The original event, on the dead-letter topic, with why it got there. Never dropped: if the
    /// log cannot take it, this retries until it can (or the pair is stopped, which redelivers).
    private func deadLetter(_ event: Event, _ failure: DeliveryError, attempts: Int, to topic: Topic) async -> Bool {
        var dead = event
        dead.topic = topic
        dead.extensions["deadletterreason"] = failure.reason
        dead.extensions["deadletterattempts"] = String(attempts)
        if let status = failure.status { dead.extensions["deadletterstatus"] = String(status) }
        if let response = failure.response, !response.isEmpty { dead.extensions["deadletterresponse"] = response }
        dead.extensions["deadletterdest"] = spec.label
        dead.extensions["deadletterroute"] = route.name
        dead.extensions["deadlettertopic"] = event.topic.name
        while true {
            do {
                _ = try await log.createTopic(topic).append(EventCodec.encode(dead), key: dead.partitionKey)
                counters.add(counters.deadLettered)
                logger.warning("\(group) dead-lettered \(event.id) to \(topic) after \(attempts) attempt(s): \(failure.message)")
                return true
            } catch {
                logger.error("\(group) cannot write to dead-letter topic \(topic): \(error)")
                if (try? await Task.sleep(for: .seconds(1))) == nil { return false }
            }
        }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}
