import MeshCore
import MeshWire
import NIOCore
import Synchronization

/// A subscription opened by `MeshClient.subscribe`: an async sequence of deliveries.
///
/// The server sends at most `window` events beyond what this sequence's consumer has taken; credit
/// goes back to the server as the consumer iterates (half a window at a time), so a slow consumer
/// slows the server's sending for this subscription only. Iteration ends when the subscription is
/// cancelled or the client closed, and throws when the server ends it with an error (or the
/// connection is lost and the client does not reconnect).
///
/// One task iterates at a time.
public final class MeshSubscription: AsyncSequence, Sendable {
    public typealias Element = MeshDelivery

    public let pattern: TopicPattern
    public let group: String?
    public let start: StartPosition
    public let ackMode: AckMode
    public let window: UInt32

    struct Binding {
        let connection: ClientConnectionRef
        let id: UInt32
    }

    private struct State {
        var buffer: [MeshDelivery] = []
        var head = 0
        var waiter: CheckedContinuation<MeshDelivery?, any Error>?
        var subscribedWaiter: CheckedContinuation<Void, any Error>?
        var isSubscribed = false
        var end: Result<Void, WireError>?
        var binding: Binding?
        /// Events taken by the consumer and not yet returned to the server as credit.
        var unreported: UInt32 = 0
        /// The next offset per partition after what the consumer took: where a resumed
        /// subscription without a group continues.
        var positions: [TopicPartition: UInt64] = [:]
        var assignment: MeshAssignment?
    }

    private let state = Mutex(State())
    private let assignmentStream: AsyncStream<MeshAssignment>
    private let assignmentContinuation: AsyncStream<MeshAssignment>.Continuation
    weak let client: MeshClient?

    init(client: MeshClient, pattern: TopicPattern, group: String?, start: StartPosition, ackMode: AckMode, window: UInt32) {
        self.client = client
        self.pattern = pattern
        self.group = group
        self.start = start
        self.ackMode = ackMode
        self.window = Swift.max(window, 1)
        (assignmentStream, assignmentContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(16))
    }

    /// The partitions this group member owns, as the server last said; nil without a group.
    public var assignment: MeshAssignment? { state.withLock { $0.assignment } }

    /// Every assignment the server sends (group subscriptions), newest kept when not read.
    public var assignments: AsyncStream<MeshAssignment> { assignmentStream }

    /// The next offset per partition after the last event taken from this sequence.
    public var positions: [TopicPartition: UInt64] { state.withLock { $0.positions } }

    public func makeAsyncIterator() -> Iterator { Iterator(subscription: self) }

    public struct Iterator: AsyncIteratorProtocol {
        let subscription: MeshSubscription

        public mutating func next() async throws -> MeshDelivery? {
            try await subscription.next()
        }
    }

    // MARK: Consumer side

    func next() async throws -> MeshDelivery? {
        reportConsumed()
        if let ready = try takeBuffered() { return ready }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<MeshDelivery?, any Error>) in
                let immediate = state.withLock { s -> Result<MeshDelivery?, any Error>? in
                    if let item = Self.take(&s) { return .success(item) }
                    if let end = s.end { return end.map { nil }.mapError { $0 } }
                    if Task.isCancelled { return .success(nil) }
                    s.waiter = cont
                    return nil
                }
                if let immediate { cont.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    private func takeBuffered() throws -> MeshDelivery? {
        try state.withLock { s throws -> MeshDelivery? in
            if let item = Self.take(&s) { return item }
            if case .failure(let error)? = s.end { throw error }
            return nil
        }
    }

    private static func take(_ s: inout State) -> MeshDelivery? {
        guard s.head < s.buffer.count else { return nil }
        let item = s.buffer[s.head]
        s.head += 1
        if s.head == s.buffer.count {
            s.buffer.removeAll(keepingCapacity: true)
            s.head = 0
        }
        s.unreported += 1
        s.positions[TopicPartition(topic: item.topic, partition: item.partition)] = item.offset + 1
        return item
    }

    /// Returns credit for what the consumer took, half a window at a time.
    private func reportConsumed() {
        let report = state.withLock { s -> (Binding, UInt32)? in
            guard s.unreported >= Swift.max(1, window / 2), let binding = s.binding else { return nil }
            defer { s.unreported = 0 }
            return (binding, s.unreported)
        }
        guard let (binding, count) = report else { return }
        binding.connection.consumed(subscriptionID: binding.id, count: count)
    }

    // MARK: Acknowledging

    /// Commits everything up to and including `delivery` in its partition for the group
    /// (explicit ack mode). Throws when there is no group or the connection is down.
    public func ack(_ delivery: MeshDelivery) async throws {
        try await ack(topic: delivery.topic, partition: delivery.partition, offset: delivery.offset)
    }

    /// Same as `ack(_:)` for a partition and offset.
    public func ack(topic: Topic, partition: UInt32, offset: UInt64) async throws {
        guard group != nil else { throw WireError(.protocolViolation, "a subscription without a consumer group has nothing to commit") }
        guard let binding = state.withLock({ $0.binding }) else { throw WireError.disconnected }
        try await binding.connection.acknowledge(subscriptionID: binding.id, topic: topic, partition: partition, offset: offset)
    }

    /// Stops the subscription: the server is told UNSUBSCRIBE and iteration ends.
    public func cancel() {
        let binding = state.withLock { $0.binding }
        binding.map { $0.connection.unsubscribe(subscriptionID: $0.id) }
        finish(nil)
        client?.forget(self)
    }

    // MARK: Connection side

    /// Binds the subscription to the connection it was just sent on, or (nil) unbinds it from a
    /// lost one. The server's SUBSCRIBED and first events may arrive on the event loop before the
    /// subscribing task gets here, so a new binding keeps what they recorded; only a lost
    /// connection resets them, as the next one starts with a fresh window and a new SUBSCRIBED.
    func bind(_ binding: Binding?) {
        state.withLock { s in
            s.binding = binding
            if binding == nil {
                s.unreported = 0
                s.isSubscribed = false
            }
        }
    }

    /// Whether the server confirmed the subscription on the current connection.
    var isSubscribed: Bool { state.withLock { $0.isSubscribed } }

    /// Events taken by the consumer and not yet returned to the server as credit.
    var unreportedCredit: UInt32 { state.withLock { $0.unreported } }

    /// Waits for SUBSCRIBED (or the error that refused the subscription).
    func waitSubscribed() async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            let immediate = state.withLock { s -> Result<Void, any Error>? in
                if s.isSubscribed { return .success(()) }
                if let end = s.end { return end.mapError { $0 } }
                s.subscribedWaiter = cont
                return nil
            }
            if let immediate { cont.resume(with: immediate) }
        }
    }

    /// Where to start again on a new connection: a group resumes from its committed offsets; a
    /// subscription without one from the smallest position it reached (duplicates are dropped).
    func resumeStart() -> StartPosition {
        guard group == nil else { return start }
        return state.withLock { s in s.positions.values.min().map { .offset($0) } ?? start }
    }

    func finish(_ error: WireError?) {
        let (waiter, subscribedWaiter) = state.withLock { s -> (CheckedContinuation<MeshDelivery?, any Error>?, CheckedContinuation<Void, any Error>?) in
            guard s.end == nil else { return (nil, nil) }
            s.end = error.map { .failure($0) } ?? .success(())
            s.binding = nil
            defer { s.waiter = nil; s.subscribedWaiter = nil }
            return (s.buffer.count > s.head ? nil : s.waiter, s.subscribedWaiter)
        }
        assignmentContinuation.finish()
        if let error {
            waiter?.resume(throwing: error)
            subscribedWaiter?.resume(throwing: error)
        } else {
            waiter?.resume(returning: nil)
            subscribedWaiter?.resume(throwing: WireError.clientClosed)
        }
    }

    var isFinished: Bool { state.withLock { $0.end != nil } }
}

/// Receives on the connection's event loop what the server says about one subscription.
final class SubscriptionSinkAdapter: SubscriptionSink {
    let subscription: MeshSubscription

    init(_ subscription: MeshSubscription) { self.subscription = subscription }

    func subscribed() { subscription.markSubscribed() }
    func deliver(_ delivery: EventDelivery) { subscription.enqueue(delivery) }
    func assignment(_ assignment: Assignment) { subscription.assigned(assignment) }
    func ended(_ error: WireError?) {
        subscription.finish(error)
        subscription.client?.forget(subscription)
    }
}

extension MeshSubscription {
    func markSubscribed() {
        let waiter = state.withLock { s in
            s.isSubscribed = true
            defer { s.subscribedWaiter = nil }
            return s.subscribedWaiter
        }
        waiter?.resume()
    }

    func enqueue(_ delivery: EventDelivery) {
        let item = MeshDelivery(partition: delivery.partition, offset: delivery.offset, event: delivery.event)
        let waiter = state.withLock { s -> CheckedContinuation<MeshDelivery?, any Error>? in
            guard s.end == nil else { return nil }
            // After a reconnect without a group, events before the position reached are repeats.
            let key = TopicPartition(topic: item.topic, partition: item.partition)
            if group == nil, let reached = s.positions[key], item.offset < reached {
                s.unreported += 1  // still worth its credit
                if s.unreported >= Swift.max(1, window / 2), let binding = s.binding {
                    binding.connection.consumed(subscriptionID: binding.id, count: s.unreported)
                    s.unreported = 0
                }
                return nil
            }
            if let waiter = s.waiter, s.head == s.buffer.count {
                s.waiter = nil
                s.unreported += 1
                s.positions[key] = item.offset + 1
                return waiter
            }
            s.buffer.append(item)
            return nil
        }
        waiter?.resume(returning: item)
    }

    func assigned(_ assignment: Assignment) {
        let value = MeshAssignment(generation: assignment.generation, partitions: assignment.partitions)
        state.withLock { $0.assignment = value }
        assignmentContinuation.yield(value)
    }
}
