import Synchronization

/// A counting semaphore for async callers, first come first served: bounds the requests in flight
/// to one endpoint. A waiter whose task is cancelled leaves the queue (and gets false).
final class ConcurrencyGate: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }
    private struct State {
        var available: Int
        var queue: [Waiter?] = []
        var head = 0
        var nextID: UInt64 = 0
        var waiting = 0

        mutating func popFirst() -> Waiter? {
            while head < queue.count {
                let w = queue[head]
                queue[head] = nil
                head += 1
                if let w { waiting -= 1; compact(); return w }
            }
            compact()
            return nil
        }

        mutating func compact() {
            if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 } else if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
        }
    }
    private let state: Mutex<State>

    init(limit: Int) { state = Mutex(State(available: limit)) }

    /// Callers waiting for a slot.
    var waiting: Int { state.withLock { $0.waiting } }

    /// Takes a slot, waiting for one if needed. False when the task was cancelled while waiting.
    func acquire() async -> Bool {
        if state.withLock({ s -> Bool in
            guard s.available > 0 else { return false }
            s.available -= 1
            return true
        }) { return true }
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let granted = state.withLock { s -> Bool in
                    if s.available > 0 { s.available -= 1; return true }
                    s.queue.append(Waiter(id: id, continuation: c))
                    s.waiting += 1
                    return false
                }
                if granted { c.resume(returning: true) }
            }
        } onCancel: {
            let removed = state.withLock { s -> Waiter? in
                guard let i = s.queue[s.head...].firstIndex(where: { $0?.id == id }) else { return nil }
                let w = s.queue[i]
                s.queue[i] = nil
                s.waiting -= 1
                return w
            }
            removed?.continuation.resume(returning: false)
        }
    }

    func release() {
        let next = state.withLock { s -> Waiter? in
            if let w = s.popFirst() { return w }
            s.available += 1
            return nil
        }
        next?.continuation.resume(returning: true)
    }
}
