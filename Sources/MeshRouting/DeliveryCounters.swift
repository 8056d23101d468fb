import Synchronization

/// Counters of one (route, destination) pair. Relaxed atomics: they are statistics, read for
/// status and metrics, never used to coordinate.
public final class DeliveryCounters: Sendable {
    let read = Atomic<Int>(0)
    let matched = Atomic<Int>(0)
    let notMatched = Atomic<Int>(0)
    let filterErrors = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let failedAttempts = Atomic<Int>(0)
    let deadLettered = Atomic<Int>(0)
    let undecodable = Atomic<Int>(0)
    let expired = Atomic<Int>(0)
    let lastErrorText = Mutex<(String, Int?)?>(nil)

    public init() {}

    func add(_ a: borrowing Atomic<Int>, _ n: Int = 1) { a.add(n, ordering: .relaxed) }

    func noteError(_ e: DeliveryError) { lastErrorText.withLock { $0 = (e.message, e.status) } }

    public var snapshot: Snapshot {
        let last = lastErrorText.withLock { $0 }
        return Snapshot(read: read.load(ordering: .relaxed), matched: matched.load(ordering: .relaxed),
                        notMatched: notMatched.load(ordering: .relaxed), filterErrors: filterErrors.load(ordering: .relaxed),
                        delivered: delivered.load(ordering: .relaxed), failedAttempts: failedAttempts.load(ordering: .relaxed),
                        deadLettered: deadLettered.load(ordering: .relaxed), undecodable: undecodable.load(ordering: .relaxed),
                        expired: expired.load(ordering: .relaxed), lastError: last?.0, lastStatus: last?.1)
    }

    /// `matched = delivered + deadLettered + in flight`; nothing leaves any other way.
    public struct Snapshot: Sendable, Equatable {
        public let read: Int
        public let matched: Int
        public let notMatched: Int
        /// Filter evaluations that raised an error (counted as no match, per CESQL).
        public let filterErrors: Int
        public let delivered: Int
        public let failedAttempts: Int
        public let deadLettered: Int
        /// Log records that are not events (should never happen; logged as errors).
        public let undecodable: Int
        /// Records removed by retention before this destination read them.
        public let expired: Int
        public let lastError: String?
        public let lastStatus: Int?
    }
}
