import MeshCore
import MeshLog
import Synchronization

/// A live subscription: a cursor in each partition it is assigned, read round robin so that no
/// partition starves another. One consumer calls `next` at a time; assignment changes (group
/// rebalances, new topics) may happen concurrently and take effect at the next read.
public final class Subscription: Sendable {
    public let id: UInt64
    public let pattern: TopicPattern
    public let group: String?
    let start: StartPosition
    unowned let broker: Broker

    struct Cursor {
        let log: PartitionLog
        var next: Int64
        /// A pending `notify` on the partition, while the consumer waits (`arming` while the
        /// token is being obtained).
        var armed: UInt64?
        /// Which arming `armed` belongs to, so a notification that fires before its token is
        /// stored cannot leave a stale token behind (which would never fire again).
        var armSeq: UInt64 = 0
    }

    static let arming = UInt64.max

    struct State {
        var cursors: [TopicPartition: Cursor] = [:]
        var order: [TopicPartition] = []
        var turn = 0
        var resume: [TopicPartition: Int64]
        var waiter: UnsafeContinuation<Void, Never>?
        var woken = false
        var closed = false
        var generation = 0
        var nextArmSeq: UInt64 = 0
        var onAssignment: (@Sendable (_ partitions: [TopicPartition], _ generation: Int) -> Void)?
    }

    let state: Mutex<State>

    init(id: UInt64, broker: Broker, pattern: TopicPattern, group: String?, start: StartPosition, resume: [TopicPartition: Int64]) {
        self.id = id
        self.broker = broker
        self.pattern = pattern
        self.group = group
        self.start = start
        state = Mutex(State(resume: resume))
    }

    deinit {
        let armed = state.withLock { s in s.cursors.values.compactMap { c in c.armed.map { (c.log, $0) } } }
        for (log, token) in armed where token != Self.arming { log.cancelNotify(token) }
    }

    /// The partitions this subscription reads now.
    public var assignment: [TopicPartition] { state.withLock { $0.order } }

    /// The next offset to read in each assigned partition — the stream's resume point.
    public var positions: [TopicPartition: Int64] {
        state.withLock { s in s.cursors.mapValues(\.next) }
    }

    /// Called (on any thread) after every assignment change, and at once with the current one.
    public func onAssignment(_ handler: @escaping @Sendable ([TopicPartition], Int) -> Void) {
        let (current, generation) = state.withLock { s in
            s.onAssignment = handler
            return (s.order, s.generation)
        }
        handler(current, generation)
    }

    /// Returns the next events (at most `max`, about `maxBytes`), waiting until there are some.
    /// Returns an empty array once the subscription is closed or the calling task is cancelled.
    public func next(max: Int = 256, maxBytes: Int = 1 << 20) async -> [Delivery] {
        while !Task.isCancelled {
            let (work, closed) = state.withLock { s -> ([(TopicPartition, Cursor)], Bool) in
                let n = s.order.count
                guard n > 0 else { return ([], s.closed) }
                let first = s.turn % n
                s.turn = (s.turn + 1) % n
                return ((0..<n).map { i in let tp = s.order[(first + i) % n]; return (tp, s.cursors[tp]!) }, s.closed)
            }
            if closed { return [] }
            var out: [Delivery] = []
            var bytes = 0
            for (tp, cursor) in work where cursor.log.endOffset > cursor.next {
                var from = cursor.next
                let records: [LogRecord]
                do throws(LogError) {
                    records = try cursor.log.read(from: from, maxRecords: max - out.count, maxBytes: Swift.max(maxBytes - bytes, 1))
                } catch {
                    if error.code == .offsetOutOfRange {
                        // Retention deleted what this cursor pointed at: go on from the oldest retained.
                        from = cursor.log.startOffset
                        update(tp, expecting: cursor.next, to: from)
                    } else {
                        broker.logger.error("subscription \(id) cannot read \(tp): \(error.message)")
                    }
                    continue
                }
                guard let last = records.last else { continue }
                if update(tp, expecting: cursor.next, to: last.offset + 1) {
                    for r in records {
                        out.append(Delivery(topic: tp.topic, partition: tp.partition, offset: r.offset, timestamp: r.timestamp, payload: r.payload))
                        bytes += r.payload.count
                    }
                }
                if out.count >= max || bytes >= maxBytes { break }
            }
            if !out.isEmpty { return out }
            await waitForData()
        }
        return []
    }

    /// Moves a cursor forward unless the assignment changed under the read. Returns whether it did.
    @discardableResult
    private func update(_ tp: TopicPartition, expecting old: Int64, to next: Int64) -> Bool {
        state.withLock { s in
            guard s.cursors[tp]?.next == old else { return false }
            s.cursors[tp]!.next = next
            return true
        }
    }

    private func waitForData() async {
        // Arm a notification on every partition that has none, then sleep until one fires.
        let toArm = state.withLock { s -> [(TopicPartition, PartitionLog, Int64, UInt64)] in
            var list: [(TopicPartition, PartitionLog, Int64, UInt64)] = []
            for (tp, c) in s.cursors where c.armed == nil {
                s.nextArmSeq += 1
                s.cursors[tp]!.armed = Self.arming
                s.cursors[tp]!.armSeq = s.nextArmSeq
                list.append((tp, c.log, c.next, s.nextArmSeq))
            }
            return list
        }
        for (tp, log, next, seq) in toArm {
            // Fires once record `next` is readable, possibly before `notify` returns.
            let token = log.notify(beyond: next) { [weak self] in self?.fired(tp, seq) }
            let stale = state.withLock { s -> Bool in
                guard let c = s.cursors[tp], c.armSeq == seq else { return true }  // reassigned meanwhile
                if c.armed == Self.arming { s.cursors[tp]!.armed = token }  // nil: it fired already
                return false
            }
            if stale, let token { log.cancelNotify(token) }
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (cont: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.woken || s.closed {
                        s.woken = false
                        return true
                    }
                    s.waiter = cont
                    return false
                }
                if resumeNow { cont.resume() }
            }
        } onCancel: {
            wake()
        }
    }

    private func fired(_ tp: TopicPartition, _ seq: UInt64) {
        state.withLock { s in
            if s.cursors[tp]?.armSeq == seq { s.cursors[tp]!.armed = nil }
        }
        wake()
    }

    func wake() {
        let waiter = state.withLock { s -> UnsafeContinuation<Void, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.woken = true
            return nil
        }
        waiter?.resume()
    }

    // MARK: Assignment

    /// Replaces the assignment (group rebalance or the initial one).
    func assign(_ partitions: [TopicPartition], generation: Int) {
        let wanted = Set(partitions)
        let (removed, missing) = state.withLock { s -> ([(PartitionLog, UInt64)], [TopicPartition]) in
            var removed: [(PartitionLog, UInt64)] = []
            for (tp, c) in s.cursors where !wanted.contains(tp) {
                if let token = c.armed, token != Self.arming { removed.append((c.log, token)) }
                s.cursors.removeValue(forKey: tp)
            }
            s.order.removeAll { !wanted.contains($0) }
            s.generation = generation
            return (removed, partitions.filter { s.cursors[$0] == nil })
        }
        for (log, token) in removed { log.cancelNotify(token) }
        add(missing, newTopic: false)
        let (order, handler) = state.withLock { ($0.order, $0.onAssignment) }
        handler?(order, generation)
        wake()
    }

    /// Adds partitions; a partition of a topic created after the subscription started is read
    /// from its beginning, whatever the start position.
    func add(_ partitions: [TopicPartition], newTopic: Bool) {
        var fresh: [TopicPartition: Cursor] = [:]
        for tp in partitions {
            guard let topic = try? Topic(tp.topic), let t = broker.log.topic(topic), t.partitions.indices.contains(tp.partition) else { continue }
            let log = t.partitions[tp.partition]
            fresh[tp] = Cursor(log: log, next: position(for: tp, in: log, newTopic: newTopic), armed: nil)
        }
        guard !fresh.isEmpty else { return }
        state.withLock { s in
            for (tp, c) in fresh where s.cursors[tp] == nil { s.cursors[tp] = c }
            s.order = s.cursors.keys.sorted()
        }
        wake()
    }

    private func position(for tp: TopicPartition, in log: PartitionLog, newTopic: Bool) -> Int64 {
        let resumed = state.withLock { $0.resume.removeValue(forKey: tp) }
        let committed = group.flatMap { broker.log.offsets.committed(group: $0, topic: tp.topic, partition: tp.partition) }
        let startAt = log.startOffset, end = log.endOffset
        if let at = resumed ?? committed { return min(max(at, startAt), end) }
        if newTopic { return startAt }
        switch start {
        case .earliest: return startAt
        case .latest: return end
        case .offset(let o): return min(max(o, startAt), end)
        case .time(let t): return (try? log.offset(atOrAfter: t)) ?? end
        }
    }

    // MARK: Committing and closing

    /// Commits this member's group position in one partition: `offset` is the next to read.
    public func commit(_ tp: TopicPartition, next offset: Int64) async throws(BrokerError) {
        guard let group else { throw BrokerError(.invalidRequest, "subscription \(id) has no consumer group to commit for") }
        try await broker.commit(group: group, [GroupOffset(topic: tp.topic, partition: tp.partition, offset: offset)])
    }

    /// Commits the positions of everything returned so far.
    public func commitPositions() async throws(BrokerError) {
        guard let group else { return }
        let all = positions.map { GroupOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) }
        try await broker.commit(group: group, all)
    }

    /// Ends the subscription: leaves its group (which rebalances) and wakes a waiting `next`.
    public func close() {
        let already = state.withLock { s -> Bool in
            defer { s.closed = true }
            return s.closed
        }
        guard !already else { return }
        broker.ended(self)
        wake()
    }
}
